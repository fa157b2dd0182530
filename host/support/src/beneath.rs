//! Files under a folder that someone else controls — a plugin's artifact
//! folder, a package folder of the repository being built, a store's folder
//! — reached only through the folder's handle.
//!
//! Every name is resolved by the kernel with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`: no `..`, no absolute path and no link, wherever it
//! is on the path and whenever it appeared, leads anywhere but below the
//! folder. A link is refused rather than followed: under these folders a
//! link is a plugin's or a pull request's trick, never something a build
//! needs the host to follow. Written over `rustix` because `cap-std`
//! follows links that stay inside, and the crates that refuse them all add
//! a layer of their own for five calls.
//!
//! Files with more than one name (hard links) are refused for reading and
//! are replaced, never written through, when written: their other name may
//! be outside.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// A folder opened once; names below it are resolved from this handle.
#[derive(Debug)]
pub struct Folder {
    fd: OwnedFd,
    /// Where it was when opened, for messages.
    shown: PathBuf,
}

/// Why a name below a folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// The name is absolute, empty or climbs out with `..`.
    #[error("`{0}` is not a relative path inside the folder")]
    NotInside(String),
    /// A link is on the path (or is the path).
    #[error("`{link}` is a link: links are not followed here")]
    Link {
        /// The link, relative to the folder.
        link: String,
    },
    /// The name is a FIFO, a socket or a device.
    #[error("`{0}` is not a regular file")]
    NotAFile(String),
    /// The file has other names, which may be outside.
    #[error("`{0}` has other names (hard links): it is not read through")]
    HardLink(String),
    /// Anything else the system said.
    #[error("`{path}`: {source}")]
    Io {
        /// The name, relative to the folder.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
}

impl BeneathError {
    fn io(path: &Path, errno: Errno) -> BeneathError {
        BeneathError::Io { path: path.display().to_string(), source: errno.into() }
    }
}

/// Openings never follow a link, never leave the folder, and never reach `/proc` magic.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);

impl Folder {
    /// Opens the folder at `path`, a path the operator or Loktar chose.
    pub fn open(path: &Path) -> std::io::Result<Folder> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Folder { fd, shown: path.to_path_buf() })
    }

    /// Makes the folder at `path` (and its parents) if needed, then opens it.
    pub fn create(path: &Path) -> std::io::Result<Folder> {
        std::fs::create_dir_all(path)?;
        Folder::open(path)
    }

    /// Where the folder was when opened, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// A path that names this very folder, whatever happens to its names:
    /// `/proc/self/fd/N`, for APIs that take a path (WASI preopens, a
    /// program's working folder). Valid while `self` lives.
    pub fn handle_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// The folder `relative` below this one; a link anywhere on the way is refused.
    pub fn folder(&self, relative: &Path) -> Result<Folder, BeneathError> {
        if is_here(relative) {
            let fd = self.fd.try_clone().map_err(|e| BeneathError::Io { path: ".".into(), source: e })?;
            return Ok(Folder { fd, shown: self.shown.clone() });
        }
        let relative = inside(relative)?;
        let fd = self.resolve(relative, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        Ok(Folder { fd, shown: self.shown.join(relative) })
    }

    /// The folder `relative` below this one, made with its parents if needed.
    pub fn create_folder(&self, relative: &Path) -> Result<Folder, BeneathError> {
        if is_here(relative) {
            return self.folder(relative);
        }
        let relative = inside(relative)?;
        let mut folder = self.folder(Path::new("."))?;
        for part in relative.components() {
            let part = Path::new(part.as_os_str());
            match rustix::fs::mkdirat(&folder.fd, part, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(errno) => return Err(BeneathError::io(&folder.relative_to(self).join(part), errno)),
            }
            folder = folder.folder(part).map_err(|error| self.rebase(&folder, error))?;
        }
        Ok(folder)
    }

    /// Opens the regular file `relative` for reading; refuses links, special
    /// files and files with other names.
    pub fn open_file(&self, relative: &Path) -> Result<File, BeneathError> {
        let relative = inside(relative)?;
        // Non-blocking, so that a FIFO is refused instead of waited on.
        let fd = self.resolve(relative, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| BeneathError::io(relative, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(BeneathError::NotAFile(relative.display().to_string()));
        }
        if stat.st_nlink > 1 {
            return Err(BeneathError::HardLink(relative.display().to_string()));
        }
        rustix::fs::fcntl_setfl(&fd, OFlags::RDONLY).map_err(|e| BeneathError::io(relative, e))?;
        Ok(File::from(fd))
    }

    /// Creates the file `relative` (and its folders), replacing a file of
    /// that name: a new file, never one written through an old name.
    pub fn create_file(&self, relative: &Path) -> Result<File, BeneathError> {
        let relative = inside(relative)?;
        let (parent, name) = self.parent_of(relative, true)?;
        match rustix::fs::statat(&parent.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => {
                    rustix::fs::unlinkat(&parent.fd, name, AtFlags::empty())
                        .map_err(|e| BeneathError::io(relative, e))?;
                }
                FileType::Symlink => return Err(BeneathError::Link { link: relative.display().to_string() }),
                _ => return Err(BeneathError::NotAFile(relative.display().to_string())),
            },
            Err(Errno::NOENT) => {}
            Err(errno) => return Err(BeneathError::io(relative, errno)),
        }
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        let fd =
            parent.resolve(Path::new(name), flags, Mode::from_raw_mode(0o644)).map_err(|e| self.rebase(&parent, e))?;
        Ok(File::from(fd))
    }

    /// Renames `from` to `to`, both below this folder; `to`'s folders are made if needed.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<(), BeneathError> {
        let (from_parent, from_name) = self.parent_of(inside(from)?, false)?;
        let (to_parent, to_name) = self.parent_of(inside(to)?, true)?;
        rustix::fs::renameat(&from_parent.fd, from_name, &to_parent.fd, to_name).map_err(|e| BeneathError::io(to, e))
    }

    /// Removes the file `relative`, if it is there.
    pub fn remove_file(&self, relative: &Path) -> Result<(), BeneathError> {
        let (parent, name) = self.parent_of(inside(relative)?, false)?;
        match rustix::fs::unlinkat(&parent.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(BeneathError::io(relative, errno)),
        }
    }

    /// The folder holding `relative` and its last name.
    fn parent_of<'a>(&self, relative: &'a Path, create: bool) -> Result<(Folder, &'a OsStr), BeneathError> {
        let name = relative.file_name().ok_or_else(|| BeneathError::NotInside(relative.display().to_string()))?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        let folder = if create { self.create_folder(parent)? } else { self.folder(parent)? };
        Ok((folder, name))
    }

    /// `openat2` below this folder; `ELOOP` is turned into the link it met.
    fn resolve(&self, relative: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, BeneathError> {
        loop {
            match rustix::fs::openat2(&self.fd, relative, flags | OFlags::CLOEXEC, mode, RESOLVE) {
                Ok(fd) => return Ok(fd),
                // A rename elsewhere raced the lookup: the kernel asks to try again.
                Err(Errno::AGAIN) => {}
                Err(Errno::LOOP) => {
                    return Err(BeneathError::Link { link: self.first_link(relative).display().to_string() });
                }
                Err(Errno::XDEV) => return Err(BeneathError::NotInside(relative.display().to_string())),
                Err(errno) => return Err(BeneathError::io(relative, errno)),
            }
        }
    }

    /// The first link on `relative`'s way, for the message (the whole path if none is found now).
    fn first_link(&self, relative: &Path) -> PathBuf {
        let mut walked = PathBuf::new();
        for part in relative.components() {
            walked.push(part);
            let is_link = rustix::fs::statat(&self.fd, &walked, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink);
            if is_link {
                return walked;
            }
        }
        relative.to_path_buf()
    }

    /// `self`'s path relative to `base`, for messages.
    fn relative_to(&self, base: &Folder) -> PathBuf {
        self.shown.strip_prefix(&base.shown).map(Path::to_path_buf).unwrap_or_default()
    }

    /// An error met below `inner` told relative to `self`.
    fn rebase(&self, inner: &Folder, error: BeneathError) -> BeneathError {
        let prefix = inner.relative_to(self);
        let join = |path: String| prefix.join(path).display().to_string();
        match error {
            BeneathError::Link { link } => BeneathError::Link { link: join(link) },
            BeneathError::NotInside(path) => BeneathError::NotInside(join(path)),
            BeneathError::NotAFile(path) => BeneathError::NotAFile(join(path)),
            BeneathError::HardLink(path) => BeneathError::HardLink(join(path)),
            BeneathError::Io { path, source } => BeneathError::Io { path: join(path), source },
        }
    }
}

impl AsFd for Folder {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether `relative` names the folder itself (`""` or `.`).
fn is_here(relative: &Path) -> bool {
    relative.components().all(|c| c == Component::CurDir)
}

/// `relative` when it is a plain relative path: no root, no `..`, no NUL.
fn inside(relative: &Path) -> Result<&Path, BeneathError> {
    let plain = !relative.as_os_str().is_empty()
        && !relative.as_os_str().as_bytes().contains(&0)
        && relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if plain { Ok(relative) } else { Err(BeneathError::NotInside(relative.display().to_string())) }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    use super::*;

    fn scratch() -> (tempfile::TempDir, Folder) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("inside/deeper")).expect("folders");
        std::fs::write(dir.path().join("secret"), "canary").expect("secret");
        let folder = Folder::open(&dir.path().join("inside")).expect("open");
        (dir, folder)
    }

    #[test]
    fn links_anywhere_on_the_path_are_refused() {
        let (dir, folder) = scratch();
        let inside = dir.path().join("inside");
        symlink("../secret", inside.join("relative")).expect("link");
        symlink(dir.path().join("secret"), inside.join("absolute")).expect("link");
        symlink("..", inside.join("deeper/up")).expect("link");
        symlink("deeper", inside.join("sideways")).expect("link");
        for (name, link) in [
            ("relative", "relative"),
            ("absolute", "absolute"),
            ("deeper/up/secret", "deeper/up"),
            ("sideways/x", "sideways"),
        ] {
            match folder.open_file(Path::new(name)) {
                Err(BeneathError::Link { link: found }) => assert_eq!(found, link, "{name}"),
                other => panic!("{name}: expected a refused link, got {other:?}"),
            }
            assert!(matches!(folder.create_file(Path::new(name)), Err(BeneathError::Link { .. })), "{name}");
        }
        for name in ["../secret", "/etc/passwd", "", "deeper/../../secret"] {
            assert!(matches!(folder.open_file(Path::new(name)), Err(BeneathError::NotInside(_))), "{name}");
        }
        assert_eq!(std::fs::read_to_string(dir.path().join("secret")).expect("read"), "canary");
    }

    #[test]
    fn hard_links_are_not_read_and_are_replaced_when_written() {
        let (dir, folder) = scratch();
        std::fs::hard_link(dir.path().join("secret"), dir.path().join("inside/hard")).expect("hard link");
        assert!(matches!(folder.open_file(Path::new("hard")), Err(BeneathError::HardLink(_))));
        folder.create_file(Path::new("hard")).expect("create").write_all(b"new").expect("write");
        assert_eq!(std::fs::read_to_string(dir.path().join("secret")).expect("read"), "canary");
        let mut text = String::new();
        folder.open_file(Path::new("hard")).expect("open").read_to_string(&mut text).expect("read");
        assert_eq!(text, "new");
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let (dir, folder) = scratch();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("inside/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("fifo");
        assert!(matches!(folder.open_file(Path::new("fifo")), Err(BeneathError::NotAFile(_))));
        assert!(matches!(folder.create_file(Path::new("fifo")), Err(BeneathError::NotAFile(_))));
    }

    #[test]
    fn folders_are_made_and_renames_stay_inside() {
        let (dir, folder) = scratch();
        folder.create_file(Path::new("a/b/c.partial")).expect("create").write_all(b"x").expect("write");
        folder.rename(Path::new("a/b/c.partial"), Path::new("d/c")).expect("rename");
        assert_eq!(std::fs::read_to_string(dir.path().join("inside/d/c")).expect("read"), "x");
        symlink(dir.path(), dir.path().join("inside/out")).expect("link");
        assert!(matches!(folder.create_folder(Path::new("out/new")), Err(BeneathError::Link { .. })));
        assert!(!dir.path().join("new").exists());
        let sub = folder.folder(Path::new("deeper")).expect("folder");
        assert!(sub.handle_path().join(".").is_dir());
    }
}
