//! Which package owns a path: the one whose folder is the path's longest
//! prefix, compared by whole path components (`api` does not own `api-gw/x`).

use std::borrow::Cow;

use crate::{Package, PackageIndex, index_by};

/// A lookup from folders to the packages that own them.
#[derive(Debug)]
pub struct Owners<'a> {
    by_dir: Cow<'a, PackageIndex>,
}

impl<'a> Owners<'a> {
    /// Indexes the folders of `packages`; the value returned by [`Owners::owner`]
    /// is an index into that slice.
    pub fn new(packages: &'a [Package]) -> Self {
        let by_dir = index_by(packages, |package| &package.dir);
        Owners { by_dir: Cow::Owned(by_dir) }
    }

    /// Packages already indexed by folder
    /// ([`Workspace::owners`](crate::Workspace::owners)).
    pub fn indexed(by_dir: &'a PackageIndex) -> Self {
        Owners { by_dir: Cow::Borrowed(by_dir) }
    }

    /// The package owning `path`, if any. Costs one hash lookup per path component.
    pub fn owner(&self, path: &str) -> Option<usize> {
        // A path can itself be a package folder (a submodule, or a folder that became a file).
        let mut candidate = path;
        loop {
            if let Some(&index) = self.by_dir.get(candidate) {
                return Some(index);
            }
            match candidate.rfind('/') {
                Some(slash) => candidate = &candidate[..slash],
                None => return self.by_dir.get("").copied(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Providers, SourceFile, parse};

    #[test]
    fn longest_prefix_by_component_wins() {
        let source = r#"{"packages": [
            {"pkg_name": "api"}, {"pkg_name": "api-gw"},
            {"pkg_name": "nested", "pkg_dir": "api/plugins/nested"}]}"#;
        let source = SourceFile::new("loktar.json", source.to_string());
        let packages = parse(&source, &Providers::builtin()).expect("valid");
        let owners = Owners::new(&packages);
        let name = |path: &str| owners.owner(path).map(|i| packages[i].name.as_str());
        assert_eq!(name("api/main.py"), Some("api"));
        assert_eq!(name("api-gw/x"), Some("api-gw"));
        assert_eq!(name("api/plugins/nested/x/y.txt"), Some("nested"));
        assert_eq!(name("api/plugins/other.txt"), Some("api"));
        assert_eq!(name("apix"), None);
        assert_eq!(name("README.md"), None);
    }
}
