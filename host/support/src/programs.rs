//! Finding programs in `PATH` (with the `which` crate).
//!
//! Spawning a program by absolute path lets the standard library use
//! `posix_spawn` instead of `fork`: forking Loktar — with the address space
//! the plugin engine reserves — copies page tables on every spawn, which
//! costs more than running a small program.
//!
//! Nothing is remembered between calls: a program installed, removed or
//! moved in `PATH` is seen by the next lookup.

use std::path::PathBuf;

/// The executable file `name` resolves to in `PATH` now.
pub fn find(name: &str) -> Option<PathBuf> {
    which::which(name).ok()
}

/// The executable file `name` resolves to in `folders`, searched in order.
pub fn find_in(name: &str, folders: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    let folders: Vec<PathBuf> = folders.into_iter().collect();
    if folders.is_empty() {
        return None;
    }
    let path = std::env::join_paths(folders).ok()?;
    which::which_in(name, Some(path), "/").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_executable_files_in_the_given_folders_are_found() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        for folder in [&first, &second] {
            std::fs::create_dir(folder).expect("a folder");
        }
        std::fs::write(first.join("tool"), "").expect("a plain file");
        let executable = second.join("tool");
        std::fs::write(&executable, "#!/bin/sh\n").expect("a script");
        std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir(second.join("folder")).expect("a folder");

        assert_eq!(find_in("tool", [first.clone(), second.clone()]), Some(executable));
        assert_eq!(find_in("tool", [first]), None);
        assert_eq!(find_in("folder", [second]), None);
        assert_eq!(find_in("tool", []), None);
    }
}
