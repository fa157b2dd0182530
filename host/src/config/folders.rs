//! Whether every package folder exists in the working tree.
//!
//! Each parent folder is listed once instead of asking about every package
//! folder: with thousands of packages this is the difference between a few
//! dozen system calls and thousands. Even so, the kernel's work per entry
//! listed makes this several milliseconds at ten thousand packages, on every
//! command. So the parents found to hold all their packages' folders are
//! remembered in `.git/loktar/folders`, each with its identity and times as
//! `stat` reports them, and with a digest of the folder names checked in it.
//! A parent whose entries change gets a new modification time, so the next
//! check lists again only the parents that changed since, or whose packages
//! did. This is how git trusts its index.
//!
//! A timestamp is only as fine as the file system keeps it: a change soon
//! after a listing could leave it unchanged. So a parent is remembered only
//! once it has been left alone for [`SETTLED`].
//!
//! A package folder must be a real folder inside the repository: a link as
//! the folder or anywhere on its way is an error naming the link, since a
//! pull request could otherwise point a package at any folder of the
//! machine. Parents are opened from the root with `RESOLVE_NO_SYMLINKS`, so
//! that costs no extra call. (Plugins reach the folder only through a handle
//! opened the same way, [`crate::beneath`]; this check tells the user early.)

use std::hash::BuildHasher;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustc_hash::{FxBuildHasher, FxHashMap as HashMap};
use rustix::fs::{AtFlags, FileType, RawDir};

use super::{Package, SourceFile, show_dir};
use crate::beneath::{BeneathError, Folder};
use crate::diagnostic::Diagnostic;
use crate::suggest::closest;

/// How long a parent folder must have been left alone before it is remembered.
const SETTLED: Duration = Duration::from_secs(1);

/// The first line of the file of remembered parents; another means another format.
const HEADER: &str = "loktar folders 1";

/// Checks that every package folder exists in the working tree of `root`.
pub(super) fn check_folders(root: &Path, source: &SourceFile, packages: &[Package]) -> Vec<Diagnostic> {
    check(root, source, packages, SETTLED).problems
}

/// What a check found, and which parents it had to list.
struct Checked {
    problems: Vec<Diagnostic>,
    listed: Vec<String>,
}

fn check(root: &Path, source: &SourceFile, packages: &[Package], settled: Duration) -> Checked {
    let mut by_parent: HashMap<&str, Vec<(&str, &Package)>> = HashMap::default();
    for package in packages.iter().filter(|package| !package.dir.is_empty()) {
        let (parent, leaf) = split_parent(&package.dir);
        by_parent.entry(parent).or_default().push((leaf, package));
    }
    let memory = Memory::of(root);
    let remembered = memory.as_ref().map(Memory::read).unwrap_or_default();
    // Before any listing: a parent changed during one is not settled.
    let now = SystemTime::now();
    let mut checked = Checked { problems: Vec::new(), listed: Vec::new() };
    let mut verified: HashMap<String, Seen> = HashMap::default();
    // For listings: none when every parent is remembered.
    let mut buffer = Vec::new();
    let root_folder = Folder::open(root).ok();
    for (parent, wanted) in by_parent {
        let dir = root.join(parent);
        // Only worth knowing when the parent can be remembered: a line of the file each.
        let rememberable = memory.is_some() && !parent.contains(['\n', '\r']);
        let seen = rememberable.then(|| Seen::of(&dir, wanted.iter().map(|(leaf, _)| *leaf))).flatten();
        if let Some(seen) = seen
            && remembered.get(parent) == Some(&seen)
        {
            verified.insert(parent.to_string(), seen);
            continue;
        }
        checked.listed.push(parent.to_string());
        // Each wanted name, then what the listing has under it.
        let mut found: HashMap<&[u8], Option<Entry>> = wanted.iter().map(|(leaf, _)| (leaf.as_bytes(), None)).collect();
        buffer.resize(64 * 1024, std::mem::MaybeUninit::uninit());
        let problems_before = checked.problems.len();
        // Opened from the root with no link on the way; one that cannot be
        // opened holds none of its packages' folders.
        match root_folder.as_ref().map(|root| root.folder(Path::new(parent))) {
            Some(Ok(folder)) => find_entries(&folder, &mut found, &mut buffer),
            Some(Err(BeneathError::Link { link })) => {
                for (_, package) in wanted {
                    checked.problems.push(link_on_the_way(source, package, &link));
                }
                continue;
            }
            Some(Err(_)) | None => {}
        }
        for (leaf, package) in wanted {
            match found.get(leaf.as_bytes()).copied().flatten() {
                Some(Entry::Folder) => {}
                Some(Entry::Link) => checked.problems.push(link_on_the_way(source, package, &package.dir)),
                Some(Entry::Other) => checked.problems.push(
                    Diagnostic::new(format!(
                        "package `{}`: `{}` is a file, not a folder",
                        package.name,
                        show_dir(&package.dir)
                    ))
                    .at(source.location(package.positions.dir))
                    .hint("set `pkg_dir` to the folder that holds the package"),
                ),
                None => checked.problems.push(missing_folder(root, source, package)),
            }
        }
        let all_there = checked.problems.len() == problems_before;
        if let Some(seen) = seen.filter(|seen| all_there && seen.settled_by(now, settled)) {
            verified.insert(parent.to_string(), seen);
        }
    }
    if let Some(memory) = memory
        && verified != remembered
    {
        memory.write(&verified);
    }
    checked.listed.sort();
    checked
}

/// A parent folder as last found holding all its packages' folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    device: u64,
    inode: u64,
    /// Last change of its entries, in nanoseconds since 1970.
    modified: i128,
    /// Last change of the folder itself (also when it is moved), likewise.
    changed: i128,
    /// Of the names of the package folders checked in it, in any order.
    names: u64,
}

impl Seen {
    fn of<'a>(dir: &Path, names: impl Iterator<Item = &'a str>) -> Option<Seen> {
        // The parent itself, not what it may link to: a parent turned into a link is not the one remembered.
        let metadata = std::fs::symlink_metadata(dir).ok()?;
        let nanos = |seconds: i64, nanoseconds: i64| i128::from(seconds) * 1_000_000_000 + i128::from(nanoseconds);
        Some(Seen {
            device: metadata.dev(),
            inode: metadata.ino(),
            modified: nanos(metadata.mtime(), metadata.mtime_nsec()),
            changed: nanos(metadata.ctime(), metadata.ctime_nsec()),
            names: digest(names),
        })
    }

    /// Whether the folder had been left alone for `settled` at `now`.
    fn settled_by(&self, now: SystemTime, settled: Duration) -> bool {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos() as i128);
        self.modified.max(self.changed) + settled.as_nanos() as i128 <= now
    }
}

/// A folder's parent (`""` for the root) and its own name.
fn split_parent(dir: &str) -> (&str, &str) {
    // The last `/` is near the end, and found without a searcher's set-up.
    match dir.bytes().rposition(|byte| byte == b'/') {
        Some(slash) => (&dir[..slash], &dir[slash + 1..]),
        None => ("", dir),
    }
}

/// A digest of a set of names that does not depend on their order: the sum
/// of a hash of each, mixed so that sums of hashes do not cancel out as
/// sums of the plain multiplicative hashes would (`p1 + p2` and `p0 + p3`).
fn digest<'a>(names: impl Iterator<Item = &'a str>) -> u64 {
    names.fold(0u64, |sum, name| sum.wrapping_add(mix(FxBuildHasher.hash_one(name))))
}

/// MurmurHash3's finalizer: every bit of the input affects every bit of the output.
fn mix(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Where the parents found complete are remembered: in the repository's git
/// folder, when it has one of its own (a linked worktree does not).
struct Memory {
    file: PathBuf,
}

impl Memory {
    fn of(root: &Path) -> Option<Memory> {
        let git = root.join(".git");
        git.is_dir().then(|| Memory { file: git.join("loktar").join("folders") })
    }

    /// The remembered parents; none if the file is missing or not understood.
    fn read(&self) -> HashMap<String, Seen> {
        let Ok(text) = std::fs::read_to_string(&self.file) else {
            return HashMap::default();
        };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return HashMap::default();
        }
        lines.map(parse_line).collect::<Option<_>>().unwrap_or_default()
    }

    /// Replaces the remembered parents, atomically. A failure only means
    /// that the next check lists everything again.
    fn write(&self, verified: &HashMap<String, Seen>) {
        let mut text = format!("{HEADER}\n");
        for (parent, seen) in verified {
            let Seen { device, inode, modified, changed, names } = seen;
            text.push_str(&format!("{device} {inode} {modified} {changed} {names:016x} {parent}\n"));
        }
        let temporary = self.file.with_extension(format!("{}", std::process::id()));
        let written = self
            .file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&temporary, text))
            .and_then(|()| std::fs::rename(&temporary, &self.file));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            tracing::debug!(file = %self.file.display(), %error, "cannot remember the checked folders");
        }
    }
}

/// One remembered parent: `device inode modified changed names parent`.
fn parse_line(line: &str) -> Option<(String, Seen)> {
    let mut fields = line.splitn(6, ' ');
    let mut number = || fields.next()?.parse::<i128>().ok();
    let (device, inode, modified, changed) = (number()?, number()?, number()?, number()?);
    let names = u64::from_str_radix(fields.next()?, 16).ok()?;
    let parent = fields.next()?.to_string();
    let seen =
        Seen { device: u64::try_from(device).ok()?, inode: u64::try_from(inode).ok()?, modified, changed, names };
    Some((parent, seen))
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

/// Lists the folder `fd` and records, for each name in `found` that it
/// holds, whether that entry is a folder, a link or something else. A
/// folder that cannot be listed holds none of them. Listing stops once
/// every name is found, which saves the last read: it only reports the end
/// of the listing, yet on ext4 costs about a third as much as reading two
/// hundred names.
fn find_entries(fd: &Folder, found: &mut HashMap<&[u8], Option<Entry>>, buffer: &mut [std::mem::MaybeUninit<u8>]) {
    let mut entries = RawDir::new(fd, buffer);
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
            FileType::Unknown => rustix::fs::statat(fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
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
    use crate::config::{Providers, validate};

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

    /// Checks `dirs` in `root` with a short settling time; returns the
    /// problems' messages and the parents listed.
    fn check_quickly(root: &Path, dirs: &[&str]) -> (Vec<String>, Vec<String>) {
        let (source, packages) = packages(dirs);
        let checked = check(root, &source, &packages, Duration::from_millis(50));
        (checked.problems.into_iter().map(|problem| problem.message).collect(), checked.listed)
    }

    /// A repository with `dirs` as folders, left alone long enough to be remembered.
    fn settled_repository(dirs: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(".git")).expect("mkdir .git");
        for dir in dirs {
            std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
        }
        std::thread::sleep(Duration::from_millis(100));
        root
    }

    #[test]
    fn checks_folders_among_many_entries_of_one_parent() {
        let root = tempfile::tempdir().expect("temp dir");
        for name in ["a", "c", "x", "y", "z"] {
            std::fs::create_dir_all(root.path().join("group").join(name)).expect("mkdir");
        }
        std::fs::write(root.path().join("group/b"), "").expect("write");
        let check = |names: &[&str]| {
            let entries: Vec<String> =
                names.iter().map(|n| format!(r#"{{"pkg_name": "{n}", "pkg_dir": "group/{n}"}}"#)).collect();
            let source = SourceFile::new("loktar.json", format!(r#"{{"packages": [{}]}}"#, entries.join(", ")));
            let (packages, _, problems) = validate::parse(&source, &Providers::builtin());
            assert_eq!(problems, []);
            let problems = check_folders(root.path(), &source, &packages);
            problems.into_iter().map(|p| p.message).collect::<Vec<_>>()
        };
        assert_eq!(check(&["a", "c", "z"]), Vec::<String>::new());
        assert_eq!(check(&["a", "b"]), ["package `b`: `group/b` is a file, not a folder"]);
        assert_eq!(check(&["z", "d"]), ["package `d`: folder `group/d` does not exist"]);
    }

    #[test]
    fn a_repeated_check_lists_only_the_parents_that_changed() {
        let dirs = ["a/x", "a/y", "b/z", "top"];
        let root = settled_repository(&dirs);
        let none = Vec::<String>::new();
        assert_eq!(check_quickly(root.path(), &dirs), (none.clone(), vec!["".into(), "a".into(), "b".into()]));
        assert_eq!(check_quickly(root.path(), &dirs), (none.clone(), none.clone()));
        // A folder removed, and another replaced by a file.
        std::fs::remove_dir(root.path().join("b/z")).expect("rmdir");
        std::fs::remove_dir(root.path().join("a/y")).expect("rmdir");
        std::fs::write(root.path().join("a/y"), "").expect("write");
        let (problems, listed) = check_quickly(root.path(), &dirs);
        assert_eq!(
            problems,
            ["package `a-y`: `a/y` is a file, not a folder", "package `b-z`: folder `b/z` does not exist"]
        );
        assert_eq!(listed, ["a", "b"]);
        // A parent is listed again until it holds every folder it should.
        assert_eq!(check_quickly(root.path(), &dirs).1, ["a", "b"]);
    }

    #[test]
    fn a_new_package_in_a_remembered_parent_is_checked() {
        let root = settled_repository(&["a/x"]);
        check_quickly(root.path(), &["a/x"]);
        assert_eq!(check_quickly(root.path(), &["a/x"]).1, Vec::<String>::new());
        let (problems, listed) = check_quickly(root.path(), &["a/x", "a/new"]);
        assert_eq!(
            (problems, listed),
            (vec!["package `a-new`: folder `a/new` does not exist".to_string()], vec!["a".into()])
        );
    }

    #[test]
    fn only_settled_parents_without_links_are_remembered() {
        let root = settled_repository(&["a/x", "b/target"]);
        std::os::unix::fs::symlink("../b/target", root.path().join("a/link")).expect("symlink");
        std::thread::sleep(Duration::from_millis(100));
        check_quickly(root.path(), &["a/link", "b/target"]);
        let (problems, listed) = check_quickly(root.path(), &["a/link", "b/target"]);
        assert_eq!(listed, ["a"]);
        assert_eq!(problems, ["package `a-link`: folder `a/link` is a link"]);
        // Not settled: `check_folders` waits a second.
        let (source, packages) = packages(&["b/target"]);
        let fresh = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(fresh.path().join(".git")).expect("mkdir .git");
        std::fs::create_dir_all(fresh.path().join("b/target")).expect("mkdir");
        assert_eq!(check_folders(fresh.path(), &source, &packages), []);
        assert_eq!(check(fresh.path(), &source, &packages, SETTLED).listed, ["b"]);
    }

    #[test]
    fn links_on_the_way_to_a_folder_are_refused_even_once_remembered() {
        let root = settled_repository(&["real/pkg", "other/pkg"]);
        check_quickly(root.path(), &["real/pkg", "other/pkg"]);
        assert_eq!(check_quickly(root.path(), &["real/pkg", "other/pkg"]), (vec![], vec![]));
        // A pull request replaces a parent with a link to somewhere else.
        std::fs::remove_dir_all(root.path().join("other")).expect("rm");
        std::os::unix::fs::symlink("/", root.path().join("other")).expect("symlink");
        let (problems, _) = check_quickly(root.path(), &["real/pkg", "other/pkg", "other/etc"]);
        assert_eq!(
            problems,
            [
                "package `other-pkg`: `other` on the way to its folder `other/pkg` is a link",
                "package `other-etc`: `other` on the way to its folder `other/etc` is a link"
            ]
        );
    }

    #[test]
    fn a_memory_file_not_understood_is_replaced() {
        let root = settled_repository(&["a/x"]);
        let file = root.path().join(".git/loktar/folders");
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        for garbage in ["", "loktar folders 1\n1 2 3\n", "loktar folders 1\nx y z w 0 a\n", "other\n"] {
            std::fs::write(&file, garbage).expect("write");
            assert_eq!(check_quickly(root.path(), &["a/x"]).1, ["a"], "{garbage:?}");
            let rewritten = std::fs::read_to_string(&file).expect("rewritten");
            assert!(rewritten.starts_with("loktar folders 1\n") && rewritten.ends_with(" a\n"), "{rewritten}");
            assert_eq!(check_quickly(root.path(), &["a/x"]).1, Vec::<String>::new());
        }
    }

    #[test]
    fn digests_do_not_depend_on_order_but_on_every_name() {
        assert_eq!(digest(["p00001", "p00002"].into_iter()), digest(["p00002", "p00001"].into_iter()));
        assert_ne!(digest(["p00001", "p00002"].into_iter()), digest(["p00000", "p00003"].into_iter()));
        assert_ne!(digest(["a"].into_iter()), digest(["a", "b"].into_iter()));
    }
}
