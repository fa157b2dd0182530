//! Finding programs in `PATH`, once per process.
//!
//! Spawning a program by absolute path lets the standard library use
//! `posix_spawn` instead of `fork`: forking Loktar — with the address space
//! the plugin engine reserves — copies page tables on every spawn, which
//! costs more than running a small program.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

/// The executable file `name` resolves to in `PATH`, remembered for the process.
pub fn find(name: &str) -> Option<PathBuf> {
    static FOUND: Mutex<Option<HashMap<String, Option<PathBuf>>>> = Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(PoisonError::into_inner);
    let found = found.get_or_insert_with(HashMap::new);
    if let Some(path) = found.get(name) {
        return path.clone();
    }
    let path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path));
    found.insert(name.to_string(), path.clone());
    path
}

/// Whether `path` is an executable file (links followed).
pub fn is_executable(path: &std::path::Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
