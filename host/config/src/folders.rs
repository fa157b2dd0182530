//! Whether every package folder exists in the working tree.
//!
//! Each parent folder is listed once instead of asking about every package
//! folder: with thousands of packages this is the difference between a few
//! dozen system calls and thousands.
//!
//! A package folder must be a real folder inside the repository: a link as
//! the folder or anywhere on its way is an error naming the link, since a
//! pull request could otherwise point a package at any folder of the
//! machine. Parents are opened from the root with `RESOLVE_NO_SYMLINKS`, so
//! that costs no extra call. (Plugins reach the folder only through a handle
//! opened the same way, [`loktar_support::beneath`]; this check tells the user early.)

use std::path::Path;

use rustc_hash::FxHashMap as HashMap;
use rustix::fs::{AtFlags, Dir, FileType};

use super::{Package, SourceFile, show_dir};
use loktar_support::beneath::{BeneathError, Folder};
use loktar_support::diagnostic::Diagnostic;
use loktar_support::suggest::closest;

/// Checks that every package folder exists in the working tree of `root`.
pub(super) fn check_folders(root: &Path, source: &SourceFile, packages: &[Package]) -> Vec<Diagnostic> {
    let mut by_parent: HashMap<&str, Vec<(&str, &Package)>> = HashMap::default();
    for package in packages.iter().filter(|package| !package.dir.is_empty()) {
        let (parent, leaf) = package.dir.rsplit_once('/').unwrap_or(("", &package.dir));
        by_parent.entry(parent).or_default().push((leaf, package));
    }
    let mut problems = Vec::new();
    let root_folder = Folder::open(root).ok();
    for (parent, wanted) in by_parent {
        // Each wanted name, then what the listing has under it.
        let mut found: HashMap<&[u8], Option<Entry>> = wanted.iter().map(|(leaf, _)| (leaf.as_bytes(), None)).collect();
        // Opened from the root with no link on the way; one that cannot be
        // opened holds none of its packages' folders.
        match root_folder.as_ref().map(|root| root.folder(Path::new(parent))) {
            Some(Ok(folder)) => find_entries(&folder, &mut found),
            Some(Err(BeneathError::Link { link })) => {
                for (_, package) in wanted {
                    problems.push(link_on_the_way(source, package, &link));
                }
                continue;
            }
            Some(Err(_)) | None => {}
        }
        for (leaf, package) in wanted {
            match found.get(leaf.as_bytes()).copied().flatten() {
                Some(Entry::Folder) => {}
                Some(Entry::Link) => problems.push(link_on_the_way(source, package, &package.dir)),
                Some(Entry::Other) => problems.push(
                    Diagnostic::new(format!(
                        "package `{}`: `{}` is a file, not a folder",
                        package.name,
                        show_dir(&package.dir)
                    ))
                    .at(source.location(package.positions.dir))
                    .hint("set `pkg_dir` to the folder that holds the package"),
                ),
                None => problems.push(missing_folder(root, source, package)),
            }
        }
    }
    problems
}

/// What a package folder's name is in its parent's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Folder,
    Link,
    Other,
}

fn link_on_the_way(source: &SourceFile, package: &Package, link: &str) -> Diagnostic {
    let what = if link == package.dir {
        format!("package `{}`: folder `{}` is a link", package.name, show_dir(&package.dir))
    } else {
        format!("package `{}`: `{link}` on the way to its folder `{}` is a link", package.name, show_dir(&package.dir))
    };
    Diagnostic::new(what)
        .at(source.location(package.positions.dir))
        .hint("a package folder must be a real folder inside the repository: point `pkg_dir` at the folder itself, not at a link")
}

/// Lists `folder` and records, for each name in `found` that it holds,
/// whether that entry is a folder, a link or something else. A folder that
/// cannot be listed holds none of them. Listing stops once every name is
/// found.
fn find_entries(folder: &Folder, found: &mut HashMap<&[u8], Option<Entry>>) {
    let Ok(mut entries) = Dir::read_from(folder) else {
        return;
    };
    // A listing names each entry once, so each name is found at most once.
    let mut unfound = found.len();
    while unfound > 0
        && let Some(Ok(entry)) = entries.next()
    {
        let Some(slot) = found.get_mut(entry.file_name().to_bytes()) else {
            continue;
        };
        unfound -= 1;
        let kind = match entry.file_type() {
            FileType::Unknown => rustix::fs::statat(folder, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                .map_or(FileType::Unknown, |stat| FileType::from_raw_mode(stat.st_mode)),
            kind => kind,
        };
        *slot = Some(match kind {
            FileType::Directory => Entry::Folder,
            FileType::Symlink => Entry::Link,
            _ => Entry::Other,
        });
    }
}

fn missing_folder(root: &Path, source: &SourceFile, package: &Package) -> Diagnostic {
    let guess = closest_existing_folder(root, &package.dir);
    let message = format!("package `{}`: folder `{}` does not exist", package.name, package.dir);
    let hint = match (package.positions.dir_written, guess) {
        (false, Some(guess)) => format!(
            "without `pkg_dir` the folder is the package name; set `\"pkg_dir\": \"{guess}\"` if that is its folder"
        ),
        (false, None) => {
            "without `pkg_dir` the folder is the package name; set `pkg_dir` to the package's folder".to_string()
        }
        (true, Some(guess)) => format!("did you mean `{guess}`? `pkg_dir` is relative to the repository root"),
        (true, None) => "`pkg_dir` is relative to the repository root; create the folder or fix the path".to_string(),
    };
    Diagnostic::new(message).at(source.location(package.positions.dir)).hint(hint)
}

/// Walks `dir` component by component, replacing each missing one with the
/// closest existing folder, to suggest what the user probably meant.
fn closest_existing_folder(root: &Path, dir: &str) -> Option<String> {
    let mut found: Vec<String> = Vec::new();
    for part in dir.split('/') {
        let here = root.join(found.join("/"));
        if here.join(part).is_dir() {
            found.push(part.to_string());
            continue;
        }
        let folders: Vec<String> = std::fs::read_dir(&here)
            .ok()?
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| name != ".git")
            .collect();
        found.push(closest(part, folders.iter().map(String::as_str))?.to_string());
    }
    Some(found.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Providers, validate};

    fn packages(dirs: &[&str]) -> (SourceFile, Vec<Package>) {
        let entries: Vec<String> = dirs
            .iter()
            .map(|dir| format!(r#"{{"pkg_name": "{}", "pkg_dir": "{dir}"}}"#, dir.replace('/', "-")))
            .collect();
        let source = SourceFile::new("loktar.json", format!(r#"{{"packages": [{}]}}"#, entries.join(", ")));
        let (packages, _, problems) = validate::parse(&source, &Providers::builtin());
        assert_eq!(problems, []);
        (source, packages)
    }

    /// The messages of the problems with `dirs` in `root`.
    fn check(root: &Path, dirs: &[&str]) -> Vec<String> {
        let (source, packages) = packages(dirs);
        check_folders(root, &source, &packages).into_iter().map(|problem| problem.message).collect()
    }

    /// A repository with `dirs` as folders.
    fn repository(dirs: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        for dir in dirs {
            std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
        }
        root
    }

    #[test]
    fn checks_folders_among_many_entries_of_one_parent() {
        let root = repository(&["group/a", "group/c", "group/x", "group/y", "group/z"]);
        std::fs::write(root.path().join("group/b"), "").expect("write");
        assert_eq!(check(root.path(), &["group/a", "group/c", "group/z"]), Vec::<String>::new());
        assert_eq!(
            check(root.path(), &["group/a", "group/b"]),
            ["package `group-b`: `group/b` is a file, not a folder"]
        );
        assert_eq!(check(root.path(), &["group/z", "group/d"]), ["package `group-d`: folder `group/d` does not exist"]);
    }

    #[test]
    fn folders_in_several_parents_are_checked() {
        let dirs = ["a/x", "a/y", "b/z", "top"];
        let root = repository(&dirs);
        assert_eq!(check(root.path(), &dirs), Vec::<String>::new());
        // A folder removed, and another replaced by a file.
        std::fs::remove_dir(root.path().join("b/z")).expect("rmdir");
        std::fs::remove_dir(root.path().join("a/y")).expect("rmdir");
        std::fs::write(root.path().join("a/y"), "").expect("write");
        let mut problems = check(root.path(), &dirs);
        problems.sort();
        assert_eq!(
            problems,
            ["package `a-y`: `a/y` is a file, not a folder", "package `b-z`: folder `b/z` does not exist"]
        );
    }

    #[test]
    fn a_link_as_the_folder_is_refused() {
        let root = repository(&["a/x", "b/target"]);
        std::os::unix::fs::symlink("../b/target", root.path().join("a/link")).expect("symlink");
        assert_eq!(check(root.path(), &["a/x", "a/link", "b/target"]), ["package `a-link`: folder `a/link` is a link"]);
    }

    #[test]
    fn links_on_the_way_to_a_folder_are_refused() {
        let root = repository(&["real/pkg"]);
        // A pull request makes a parent a link to somewhere else.
        std::os::unix::fs::symlink("/", root.path().join("other")).expect("symlink");
        assert_eq!(
            check(root.path(), &["real/pkg", "other/pkg", "other/etc"]),
            [
                "package `other-pkg`: `other` on the way to its folder `other/pkg` is a link",
                "package `other-etc`: `other` on the way to its folder `other/etc` is a link"
            ]
        );
    }
}
