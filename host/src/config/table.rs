//! Packages looked up by name or by folder, without copying either.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxBuildHasher;

use super::Package;

/// Package indices keyed by one of the packages' own strings, the name or
/// the folder: hashed from the packages themselves, so no key is copied.
#[derive(Debug, Clone)]
pub struct PackageTable {
    key: Key,
    table: HashTable<usize>,
}

/// Which string of a package a table is keyed by.
#[derive(Debug, Clone, Copy)]
enum Key {
    Name,
    Dir,
}

impl Key {
    fn of(self, package: &Package) -> &str {
        match self {
            Key::Name => &package.name,
            Key::Dir => &package.dir,
        }
    }
}

fn hash(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
}

impl PackageTable {
    /// An empty table by name, with room for `capacity` packages.
    pub fn by_name(capacity: usize) -> PackageTable {
        PackageTable { key: Key::Name, table: HashTable::with_capacity(capacity) }
    }

    /// An empty table by folder, with room for `capacity` packages.
    pub fn by_dir(capacity: usize) -> PackageTable {
        PackageTable { key: Key::Dir, table: HashTable::with_capacity(capacity) }
    }

    /// The table with every package of `packages` added; of packages that
    /// share a key, the first.
    pub fn filled(mut self, packages: &[Package]) -> PackageTable {
        for index in 0..packages.len() {
            let _ = self.insert(packages, index);
        }
        self
    }

    /// The index of the package whose key is `key`.
    pub fn find(&self, packages: &[Package], key: &str) -> Option<usize> {
        let kind = self.key;
        self.table.find(hash(key), |&i| kind.of(&packages[i]) == key).copied()
    }

    /// Adds `packages[index]`, unless a package with the same key is
    /// there already: then returns that package's index.
    pub fn insert(&mut self, packages: &[Package], index: usize) -> Result<(), usize> {
        let kind = self.key;
        let key = kind.of(&packages[index]);
        match self.table.entry(hash(key), |&i| kind.of(&packages[i]) == key, |&i| hash(kind.of(&packages[i]))) {
            Entry::Occupied(first) => Err(*first.get()),
            Entry::Vacant(slot) => {
                slot.insert(index);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Providers, SourceFile, parse};

    fn packages(entries: &str) -> Vec<Package> {
        let source = SourceFile::new("loktar.json", format!(r#"{{"packages": [{entries}]}}"#));
        parse(&source, &Providers::builtin()).expect("valid")
    }

    #[test]
    fn finds_packages_by_their_own_strings_and_keeps_the_first_of_a_key() {
        let mut packages =
            packages(r#"{"pkg_name": "api", "pkg_dir": "services/api"}, {"pkg_name": "web"}, {"pkg_name": "api-v2"}"#);
        // Validation reports two packages in one folder; tables see them first.
        packages[2].dir = "services/api".to_string();
        let by_name = PackageTable::by_name(packages.len()).filled(&packages);
        assert_eq!(by_name.find(&packages, "web"), Some(1));
        assert_eq!(by_name.find(&packages, "services/api"), None);

        let mut by_dir = PackageTable::by_dir(0);
        assert_eq!(by_dir.insert(&packages, 0), Ok(()));
        assert_eq!(by_dir.insert(&packages, 1), Ok(()));
        // Same folder: the package already there is named, and stays.
        assert_eq!(by_dir.insert(&packages, 2), Err(0));
        assert_eq!(by_dir.find(&packages, "services/api"), Some(0));
        assert_eq!(by_dir.find(&packages, "web"), Some(1));
        assert_eq!(by_dir.find(&packages, "api"), None);
    }
}
