//! Finding programs in `PATH`.
//!
//! Spawning a program by absolute path lets the standard library use
//! `posix_spawn` instead of `fork`: forking Loktar — with the address space
//! the plugin engine reserves — copies page tables on every spawn, which
//! costs more than running a small program.
//!
//! Nothing is remembered between calls: a server runs many tenants, and a
//! program installed, removed or moved in `PATH` is seen by the next lookup.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The executable file `name` resolves to in `PATH` now.
pub fn find(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

/// Whether `path` is an executable file (links followed).
pub fn is_executable(path: &std::path::Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
