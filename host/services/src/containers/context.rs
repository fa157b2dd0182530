//! A build context as the engine receives it: the context folder as a tar
//! archive, minus what its `.dockerignore` excludes — as `docker build`
//! does. Links stay links (never followed), modes are kept as they are,
//! owners and times are fixed, and entries come in name order, so the same
//! folder makes the same archive. Named pipes, sockets and devices are
//! refused by name unless `.dockerignore` leaves them out.
//!
//! The folder is walked through directory handles (`openat` with
//! `O_NOFOLLOW`), so a link swapped in for a folder during the walk is
//! never followed. The walk checks a stop flag before every entry (and
//! while copying a file): the async entry points set it when their future
//! is dropped — when the calling plugin's deadline passes or its run is
//! cancelled — so no archiving outlives its call.
//!
//! `.dockerignore` rules, as Docker reads them (`moby/patternmatcher`): one
//! pattern per line, `#` comments, surrounding blanks trimmed, each pattern
//! cleaned as Go's `filepath.Clean` does and a leading `/` dropped; `*` and
//! `?` within a path segment, `[…]` classes, `\` escapes, `**` across any
//! number of segments; a pattern matching a folder excludes what is inside;
//! `!pattern` brings back what an earlier rule excluded, the last matching
//! rule deciding. Like Docker, each pattern becomes a regular expression
//! (matched in linear time). The Dockerfile and `.dockerignore` itself are
//! always sent.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use regex::{RegexSet, RegexSetBuilder};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use loktar_support::beneath;
use loktar_support::diagnostic::Diagnostic;

/// The ignore file in a context folder.
const IGNORE_FILE: &str = ".dockerignore";

/// The largest `.dockerignore` read, in bytes: real ones are a few hundred.
const MAX_IGNORE_BYTES: u64 = 1024 * 1024;

/// The largest compiled form of all `.dockerignore` patterns together, in bytes.
const MAX_COMPILED_BYTES: usize = 64 * 1024 * 1024;

/// Why a build context could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context folder could not be opened.
    #[error("cannot open the context folder: {0}")]
    Open(#[source] std::io::Error),
    /// An entry could not be read or written.
    #[error("cannot archive `{path}`: {source}")]
    Entry {
        /// The entry, relative to the context.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A named pipe, socket or device that `.dockerignore` does not leave out.
    #[error("`{path}` is a {kind}: a build context holds only files, folders and links")]
    Special {
        /// The entry, relative to the context.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A file name that is not UTF-8, which `.dockerignore` does not leave out.
    #[error("`{path}` is not a UTF-8 file name")]
    NotUtf8 {
        /// The entry, relative to the context, its odd bytes replaced.
        path: String,
    },
    /// `.dockerignore` could not be used.
    #[error("`.dockerignore` {0}")]
    IgnoreFile(&'static str),
    /// `.dockerignore` could not be read.
    #[error("cannot read `.dockerignore`: {0}")]
    IgnoreRead(#[source] std::io::Error),
    /// A `.dockerignore` pattern is not valid.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// The archive could not be written.
    #[error("cannot write the archive: {0}")]
    Write(#[source] std::io::Error),
    /// The stop flag was set: the call's deadline passed or its run was cancelled.
    #[error("archiving was stopped before the end")]
    Stopped,
}

impl ContextError {
    /// The obvious fix, if there is one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ContextError::Special { .. } | ContextError::NotUtf8 { .. } => {
                Some("remove it from the package, or add it to `.dockerignore`")
            }
            ContextError::IgnoreFile(_) => Some("make `.dockerignore` a small text file in the context folder"),
            ContextError::Ignore(_) => Some("fix or remove the pattern; `.dockerignore` follows Docker's rules"),
            _ => None,
        }
    }
}

/// As a failure of the container engine capability.
impl From<ContextError> for Diagnostic {
    fn from(error: ContextError) -> Self {
        Diagnostic::new(format!("cannot archive the build context: {error}"))
            .maybe_hint(error.hint().map(str::to_string))
    }
}

/// `.dockerignore` patterns that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A pattern that is not valid.
    #[error("`.dockerignore` line {line}: `{pattern}` {problem}")]
    Pattern {
        /// The line, counted from 1.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Patterns too many or too large to match together.
    #[error("`.dockerignore` has more patterns than can be matched together")]
    TooLarge,
    /// Patterns whose expressions the matcher refused (a bug of the translation, not of the file).
    #[error("`.dockerignore` cannot be matched: {0}")]
    Unmatchable(String),
}

/// The context folder, filtered by its `.dockerignore`, as a tar archive
/// written into `into`. Stops with [`ContextError::Stopped`] soon after
/// `stop` is set.
pub fn archive<W: Write>(
    context: &beneath::Folder,
    dockerfile: &str,
    into: W,
    stop: &AtomicBool,
) -> Result<W, ContextError> {
    // The folder's own handle, checked link by link when it was opened: no name is looked up again.
    let root = context.as_fd().try_clone_to_owned().map_err(ContextError::Open)?;
    let ignore = match read_ignore_file(&root)? {
        Some(text) => DockerIgnore::parse(&text)?,
        None => DockerIgnore::default(),
    };
    let kept = [dockerfile.trim_start_matches("./"), IGNORE_FILE];
    let mut walk = Walk { builder: tar::Builder::new(into), ignore: &ignore, kept: &kept, stop };
    walk.run(root)?;
    walk.builder.into_inner().map_err(ContextError::Write)
}

/// Writes the context folder as a gzipped tar to `file`; returns its size.
/// Dropping the future stops the archiving.
pub async fn archive_to_file(
    context: beneath::Folder,
    dockerfile: &str,
    file: std::fs::File,
) -> Result<u64, Diagnostic> {
    let dockerfile = dockerfile.to_string();
    stoppable(move |stop| {
        let gzip = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let written = archive(&context, &dockerfile, gzip, stop)?.finish().map_err(ContextError::Write)?;
        written.sync_all().map_err(ContextError::Write)?;
        Ok(written.metadata().map_err(ContextError::Write)?.len())
    })
    .await
}

/// The context folder as a tar archive in memory. Dropping the future stops the archiving.
pub(super) async fn archive_to_memory(context: beneath::Folder, dockerfile: &str) -> Result<Vec<u8>, Diagnostic> {
    let dockerfile = dockerfile.to_string();
    stoppable(move |stop| archive(&context, &dockerfile, Vec::new(), stop)).await
}

/// Runs `work` on the blocking pool with a stop flag that is set when this future is dropped.
async fn stoppable<T: Send + 'static>(
    work: impl FnOnce(&AtomicBool) -> Result<T, ContextError> + Send + 'static,
) -> Result<T, Diagnostic> {
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    tokio::task::spawn_blocking(move || work(stop.as_ref()))
        .await
        .map_err(|e| Diagnostic::new(format!("archiving the build context failed: {e}")))?
        .map_err(Diagnostic::from)
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The text of the context's `.dockerignore`, `None` when there is none; never through a link.
fn read_ignore_file(root: &OwnedFd) -> Result<Option<String>, ContextError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::openat(root, IGNORE_FILE, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => return Err(ContextError::IgnoreFile("is a link")),
        Err(errno) => return Err(ContextError::IgnoreRead(errno.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| ContextError::IgnoreRead(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(ContextError::IgnoreFile("is not a file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd).take(MAX_IGNORE_BYTES + 1).read_to_end(&mut bytes).map_err(ContextError::IgnoreRead)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_IGNORE_BYTES {
        return Err(ContextError::IgnoreFile("is larger than 1 MiB"));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| ContextError::IgnoreFile("is not UTF-8 text"))
}

/// One walk of a context folder into an archive.
struct Walk<'a, W: Write> {
    builder: tar::Builder<W>,
    ignore: &'a DockerIgnore,
    kept: &'a [&'a str],
    stop: &'a AtomicBool,
}

/// A folder being walked: its handle, its path in the context, the rules
/// matching it or a folder above it, and the names still to visit.
struct Folder {
    handle: OwnedFd,
    relative: String,
    matched: Vec<bool>,
    names: std::vec::IntoIter<Vec<u8>>,
}

impl<W: Write> Walk<'_, W> {
    /// Walks depth-first with a stack of its own: folder depth is the repository's to choose.
    fn run(&mut self, root: OwnedFd) -> Result<(), ContextError> {
        let root = self.open_folder(root, String::new(), vec![false; self.ignore.len()])?;
        let mut folders = vec![root];
        while let Some(folder) = folders.last_mut() {
            let Some(name) = folder.names.next() else {
                folders.pop();
                continue;
            };
            if self.stop.load(Ordering::Relaxed) {
                return Err(ContextError::Stopped);
            }
            if let Some(inner) = self.visit(folder, &name)? {
                folders.push(inner);
            }
        }
        Ok(())
    }

    /// Archives one entry of `folder`; returns the folder to walk next when it is one.
    fn visit(&mut self, folder: &Folder, name: &[u8]) -> Result<Option<Folder>, ContextError> {
        let shown = String::from_utf8_lossy(name);
        let relative =
            if folder.relative.is_empty() { shown.to_string() } else { format!("{}/{shown}", folder.relative) };
        let matched = self.ignore.matched(&folder.matched, &relative);
        let excluded = self.ignore.decide(&matched) && !self.kept.contains(&relative.as_str());
        let entry_error = |source: std::io::Error| ContextError::Entry { path: printable(&relative), source };
        let name = OsStr::from_bytes(name);
        let stat =
            rustix::fs::statat(&folder.handle, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| entry_error(e.into()))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind == FileType::Directory {
            if excluded && !self.ignore.may_bring_back_below(&relative) && !self.kept_below(&relative) {
                return Ok(None);
            }
            if std::str::from_utf8(name.as_bytes()).is_err() {
                return Err(ContextError::NotUtf8 { path: printable(&relative) });
            }
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let handle =
                rustix::fs::openat(&folder.handle, name, flags, Mode::empty()).map_err(|e| changed_or(&relative, e))?;
            if !excluded {
                let mode = rustix::fs::fstat(&handle).map_err(|e| entry_error(e.into()))?.st_mode;
                let mut header = header(tar::EntryType::Directory, mode, 0);
                self.builder.append_data(&mut header, &relative, std::io::empty()).map_err(entry_error)?;
            }
            return self.open_folder(handle, relative, matched).map(Some);
        }
        if excluded {
            return Ok(None);
        }
        if std::str::from_utf8(name.as_bytes()).is_err() {
            return Err(ContextError::NotUtf8 { path: printable(&relative) });
        }
        let added = match kind {
            FileType::RegularFile => self.add_file(folder, name, &relative),
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(&folder.handle, name, Vec::new()).map_err(|e| changed_or(&relative, e))?;
                let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                let mut header = header(tar::EntryType::Symlink, stat.st_mode, 0);
                self.builder.append_link(&mut header, &relative, target).map_err(entry_error)
            }
            other => Err(ContextError::Special { path: printable(&relative), kind: kind_name(other) }),
        };
        added.map(|()| None)
    }

    /// Archives the regular file `name` of `folder`, opened without following a link.
    fn add_file(&mut self, folder: &Folder, name: &OsStr, relative: &str) -> Result<(), ContextError> {
        let entry_error = |source: std::io::Error| ContextError::Entry { path: printable(relative), source };
        // Non-blocking: a named pipe swapped in since `statat` must not hang the open.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let handle =
            rustix::fs::openat(&folder.handle, name, flags, Mode::empty()).map_err(|e| changed_or(relative, e))?;
        let stat = rustix::fs::fstat(&handle).map_err(|e| entry_error(e.into()))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            return Err(ContextError::Special { path: printable(relative), kind: kind_name(kind) });
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        let mut header = header(tar::EntryType::Regular, stat.st_mode, size);
        let contents = Contents { file: std::fs::File::from(handle), left: size, stop: self.stop };
        match self.builder.append_data(&mut header, relative, contents) {
            Ok(()) => Ok(()),
            Err(_) if self.stop.load(Ordering::Relaxed) => Err(ContextError::Stopped),
            Err(source) => Err(entry_error(source)),
        }
    }

    /// A folder's handle with its names listed and sorted.
    fn open_folder(&self, handle: OwnedFd, relative: String, matched: Vec<bool>) -> Result<Folder, ContextError> {
        let shown = if relative.is_empty() { ".".to_string() } else { printable(&relative) };
        let entry_error = |source: std::io::Error| ContextError::Entry { path: shown.clone(), source };
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&handle).map_err(|e| entry_error(e.into()))? {
            if self.stop.load(Ordering::Relaxed) {
                return Err(ContextError::Stopped);
            }
            let entry = entry.map_err(|e| entry_error(e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort_unstable();
        Ok(Folder { handle, relative, matched, names: names.into_iter() })
    }

    /// Whether the Dockerfile or `.dockerignore` is somewhere below `folder`.
    fn kept_below(&self, folder: &str) -> bool {
        self.kept.iter().any(|kept| kept.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/')))
    }
}

/// The error for an entry that could not be opened: it was replaced while
/// archiving when it turned out to be a link or no folder any more.
fn changed_or(relative: &str, errno: rustix::io::Errno) -> ContextError {
    let source = if errno == rustix::io::Errno::LOOP || errno == rustix::io::Errno::NOTDIR {
        std::io::Error::other("it was replaced while the context was archived")
    } else {
        errno.into()
    };
    ContextError::Entry { path: printable(relative), source }
}

/// A tar header with the entry's own permission bits, and owner and time fixed.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode & 0o7777);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(tar::DETERMINISTIC_TIMESTAMP);
    header
}

/// A file's first `left` bytes; fails once `stop` is set or when the file is shorter.
struct Contents<'a> {
    file: std::fs::File,
    left: u64,
    stop: &'a AtomicBool,
}

impl Read for Contents<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("archiving was stopped"));
        }
        let wanted = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.file.read(&mut buf[..wanted])?;
        if read == 0 {
            // The header already promised `left` more bytes.
            return Err(std::io::Error::other("the file shrank while the context was archived"));
        }
        self.left -= read as u64;
        Ok(read)
    }
}

/// What a special file is, for messages.
fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "named pipe (FIFO)",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Directory => "folder",
        FileType::Symlink => "link",
        FileType::RegularFile => "file",
        FileType::Unknown => "file of unknown type",
    }
}

/// `text` with control characters escaped, for messages shown on a terminal.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// The rules of a `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
    /// Every rule's expression, matched together.
    set: Option<RegexSet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// The cleaned pattern.
    pattern: String,
    /// `!pattern`: brings matches back.
    exception: bool,
}

impl DockerIgnore {
    /// Reads the rules of a `.dockerignore` file's text, as Docker's `ignorefile.ReadAll` does.
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        let mut rules = Vec::new();
        let mut expressions = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = if index == 0 { line.trim_start_matches('\u{feff}') } else { line };
            // A comment only in the first column, as Docker reads them.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let invalid = |problem: &str| IgnoreError::Pattern {
                line: index + 1,
                pattern: printable(line),
                problem: problem.to_string(),
            };
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                return Err(invalid("is an exception of nothing"));
            }
            let cleaned = clean(pattern);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            expressions.push(to_regex(&cleaned).map_err(|problem| invalid(&problem))?);
            rules.push(Rule { pattern: cleaned, exception });
        }
        if rules.is_empty() {
            return Ok(DockerIgnore::default());
        }
        let set = RegexSetBuilder::new(&expressions).size_limit(MAX_COMPILED_BYTES).build().map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => IgnoreError::TooLarge,
            other => IgnoreError::Unmatchable(other.to_string()),
        })?;
        Ok(DockerIgnore { rules, set: Some(set) })
    }

    /// Whether `relative` (a `/`-separated path in the context) is left out.
    pub fn excludes(&self, relative: &str) -> bool {
        let mut matched = vec![false; self.len()];
        // Every folder on the way, then the path itself.
        for (end, _) in relative.match_indices('/').chain([(relative.len(), "")]) {
            matched = self.matched(&matched, &relative[..end]);
        }
        self.decide(&matched)
    }

    fn len(&self) -> usize {
        self.rules.len()
    }

    /// Which rules match `relative` or, as `above` says, a folder it is in.
    fn matched(&self, above: &[bool], relative: &str) -> Vec<bool> {
        let Some(set) = &self.set else { return Vec::new() };
        let mut matched = above.to_vec();
        for index in set.matches(relative).iter() {
            matched[index] = true;
        }
        matched
    }

    /// Whether the last rule that matched excludes.
    fn decide(&self, matched: &[bool]) -> bool {
        self.rules.iter().zip(matched).rev().find(|(_, matched)| **matched).is_some_and(|(rule, _)| !rule.exception)
    }

    /// Whether an exception may bring back something inside the excluded `folder`:
    /// one whose fixed start leads into it, or that starts with a wildcard.
    fn may_bring_back_below(&self, folder: &str) -> bool {
        let inside = format!("{folder}/");
        self.rules.iter().filter(|rule| rule.exception).any(|rule| {
            let fixed =
                rule.pattern.find(['*', '?', '[', '\\']).map_or(rule.pattern.as_str(), |at| &rule.pattern[..at]);
            fixed.starts_with(&inside) || inside.starts_with(fixed)
        })
    }
}

/// A path cleaned as Go's `filepath.Clean` does: no empty or `.` segments,
/// `..` taking back the segment before it, no trailing `/`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." if segments.last().is_some_and(|last| *last != "..") => {
                segments.pop();
            }
            ".." if rooted => {}
            other => segments.push(other),
        }
    }
    let joined = segments.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The regular expression of a cleaned pattern, as Docker's `Pattern.compile`
/// makes it: `*` and `?` stay within a segment, `**` spans segments
/// (`**/` also none), `\` escapes, `[…]` is a class that never matches `/`.
fn to_regex(pattern: &str) -> Result<String, String> {
    // `(?s)`: a newline in a file name is matched like any other character.
    let mut regex = String::from("(?s)^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    regex.push_str(if chars.peek().is_none() { ".*" } else { "(?:.*/)?" });
                } else {
                    regex.push_str(".*");
                }
            }
            '*' => regex.push_str("[^/]*"),
            '?' => regex.push_str("[^/]"),
            '\\' => push_literal(&mut regex, chars.next().unwrap_or('\\')),
            '[' => push_class(&mut regex, &mut chars)?,
            other => push_literal(&mut regex, other),
        }
    }
    regex.push('$');
    Ok(regex)
}

fn push_literal(regex: &mut String, c: char) {
    regex.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
}

/// A `[…]` class, its `[` already read, as Go's `filepath.Match` reads one:
/// `^` negates, `a-z` is a range, `\` escapes, a `]` first is literal.
fn push_class(regex: &mut String, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<(), String> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut items = String::new();
    let mut count = 0;
    loop {
        let c = match chars.next() {
            None => return Err("has a `[` without its `]`".to_string()),
            Some(']') if count > 0 => break,
            Some('\\') => chars.next().ok_or_else(|| "ends with `\\` inside a `[…]` class".to_string())?,
            Some(c) => c,
        };
        count += 1;
        push_class_char(&mut items, c);
        if chars.peek() == Some(&'-') {
            chars.next();
            let high = match chars.next() {
                Some('\\') => chars.next(),
                Some(']') | None => return Err("has a range without its end in a `[…]` class".to_string()),
                high => high,
            };
            let Some(high) = high.filter(|high| *high >= c) else {
                return Err("has a range that runs backwards in a `[…]` class".to_string());
            };
            items.push('-');
            push_class_char(&mut items, high);
        }
    }
    if negated {
        regex.push_str(&format!("[^/{items}]"));
    } else {
        regex.push_str(&format!("[[{items}]&&[^/]]"));
    }
    Ok(())
}

fn push_class_char(items: &mut String, c: char) {
    if c.is_ascii_punctuation() {
        items.push('\\');
    }
    items.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("valid patterns")
    }

    /// Whether the single pattern `pattern` matches `path` itself (not a folder above it).
    fn pattern_matches(pattern: &str, path: &str) -> bool {
        let ignore = ignore(pattern);
        ignore.decide(&ignore.matched(&[false], path))
    }

    #[test]
    fn rules_match_like_dockers() {
        let ignore = ignore(
            "# build output\nlogs/\n/secret.txt\n**/*.tmp\n!keep.tmp\nnode_modules\ndocs/*.md\n!docs/README.md\n",
        );
        for excluded in
            ["logs", "logs/a.log", "secret.txt", "a.tmp", "deep/er/b.tmp", "node_modules/x/y.js", "docs/guide.md"]
        {
            assert!(ignore.excludes(excluded), "`{excluded}` should be excluded");
        }
        for kept in ["keep.tmp", "src/main.py", "secret.txt.bak", "docs/README.md", "docs/img/a.md", "logsx"] {
            assert!(!ignore.excludes(kept), "`{kept}` should be kept");
        }
    }

    #[test]
    fn wildcards_stay_within_a_segment() {
        assert!(pattern_matches("*.py", "app.py"));
        assert!(pattern_matches("a?c", "abc"));
        assert!(pattern_matches("*", ""));
        assert!(!pattern_matches("*.py", "app.pyc"));
        assert!(pattern_matches("**", "any/depth"));
        assert!(!pattern_matches("*", "two/deep"));
        assert!(!pattern_matches("a?c", "a/c"));
    }

    #[test]
    fn patterns_are_cleaned_escaped_and_classed_like_dockers() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
        let rules = ignore("./build//out/\n/../top\n \tspaced  \nsrc/**/gen\nstar\\*\nfile[0-9].txt\nx[^a]\nv1.0\n");
        for excluded in ["build/out/x", "top", "spaced", "src/gen", "src/a/b/gen", "star*", "file7.txt", "xb", "v1.0"] {
            assert!(rules.excludes(excluded), "`{excluded}` should be excluded");
        }
        for kept in ["build", "src/agen", "starx", "filex.txt", "xa", "x/", "v1x0", "  spaced"] {
            assert!(!rules.excludes(kept), "`{kept}` should be kept");
        }
        assert!(!pattern_matches("a[/]b", "a/b"), "a class never matches `/`");
        assert!(!pattern_matches("a[^x]b", "a/b"), "a negated class never matches `/`");
        // A comment only in the first column; a leading BOM is no part of the first pattern.
        let rules = ignore("\u{feff}first\n # not a comment\n");
        assert!(rules.excludes("first") && rules.excludes("# not a comment"));
    }

    #[test]
    fn invalid_patterns_are_errors_naming_the_line() {
        let error = DockerIgnore::parse("ok\n\nbad[\n").expect_err("an unclosed class");
        assert_eq!(error.to_string(), "`.dockerignore` line 3: `bad[` has a `[` without its `]`");
        let error = DockerIgnore::parse("!\n").expect_err("an empty exception");
        assert_eq!(error.to_string(), "`.dockerignore` line 1: `!` is an exception of nothing");
        assert!(DockerIgnore::parse("[z-a]\n").is_err());
    }

    #[test]
    fn many_double_stars_over_a_deep_path_match_in_linear_time() {
        // Exponential before: every way of spreading 24 segments over 8 `**`.
        let rules = ignore(&format!("{}nomatch\n{}\n", "**/".repeat(8), "**/".repeat(8).trim_end_matches('/')));
        let deep = (0..24).map(|level| format!("d{level}")).collect::<Vec<_>>().join("/");
        let long = format!("{deep}/{}", "x/".repeat(2000));
        assert!(rules.excludes(&deep));
        assert!(rules.excludes(&long));
        let only_nomatch = ignore(&format!("{}nomatch\n", "**/".repeat(8)));
        assert!(!only_nomatch.excludes(&long));
        assert!(only_nomatch.excludes(&format!("{long}nomatch")));
    }

    #[test]
    fn an_exception_inside_an_excluded_folder_is_found() {
        let rules = ignore("vendor\n!vendor/keep/me.txt\n");
        assert!(rules.may_bring_back_below("vendor") && rules.may_bring_back_below("vendor/keep"));
        assert!(!rules.may_bring_back_below("node_modules"));
        assert!(rules.excludes("vendor/other.txt") && !rules.excludes("vendor/keep/me.txt"));
        assert!(ignore("a\n!**/*.md\n").may_bring_back_below("a"));
    }

    mod archives {
        use std::os::unix::fs::{PermissionsExt, symlink};

        use super::super::*;

        /// One archived entry: path, kind, mode, link target, contents.
        type Entry = (String, tar::EntryType, u32, Option<String>, Vec<u8>);

        /// The entries of a tar archive.
        fn entries(archive: &[u8]) -> Vec<Entry> {
            let mut reader = tar::Archive::new(archive);
            let mut found = Vec::new();
            for entry in reader.entries().expect("a tar archive") {
                let mut entry = entry.expect("an entry");
                let header = entry.header().clone();
                assert_eq!((header.uid().ok(), header.gid().ok()), (Some(0), Some(0)), "owners are fixed");
                assert_eq!(header.mtime().ok(), Some(tar::DETERMINISTIC_TIMESTAMP), "times are fixed");
                let path = entry.path().expect("a path").to_string_lossy().trim_end_matches('/').to_string();
                let link = entry.link_name().expect("a link name").map(|l| l.to_string_lossy().into_owned());
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).expect("contents");
                found.push((path, header.entry_type(), header.mode().expect("a mode"), link, contents));
            }
            found
        }

        fn write(dir: &Path, relative: &str, contents: &str, mode: u32) {
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
            std::fs::write(&path, contents).expect("a file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("a mode");
        }

        fn mkfifo(path: &Path) {
            rustix::fs::mknodat(rustix::fs::CWD, path, FileType::Fifo, Mode::from_raw_mode(0o644), 0).expect("a FIFO");
        }

        fn archived(dir: &Path) -> Result<Vec<u8>, ContextError> {
            archive(&beneath::Folder::open(dir).expect("open"), "Dockerfile", Vec::new(), &AtomicBool::new(false))
        }

        #[test]
        fn modes_are_kept_links_stay_links_owners_and_times_are_fixed() {
            let dir = tempfile::tempdir().expect("a temp dir");
            write(dir.path(), "Dockerfile", "FROM scratch\n", 0o644);
            write(dir.path(), "secret.key", "key\n", 0o600);
            write(dir.path(), "bin/run", "#!/bin/sh\n", 0o750);
            std::fs::set_permissions(dir.path().join("bin"), std::fs::Permissions::from_mode(0o700)).expect("mode");
            symlink("../../../../etc/shadow", dir.path().join("escape")).expect("a link");
            symlink("/etc", dir.path().join("bin/etc")).expect("a link");
            std::fs::hard_link(dir.path().join("secret.key"), dir.path().join("hard.key")).expect("a hard link");
            let found = entries(&archived(dir.path()).expect("archived"));
            let summary: Vec<(&str, tar::EntryType, u32, Option<&str>)> =
                found.iter().map(|(p, kind, mode, link, _)| (p.as_str(), *kind, *mode, link.as_deref())).collect();
            assert_eq!(
                summary,
                [
                    ("Dockerfile", tar::EntryType::Regular, 0o644, None),
                    ("bin", tar::EntryType::Directory, 0o700, None),
                    ("bin/etc", tar::EntryType::Symlink, 0o777, Some("/etc")),
                    ("bin/run", tar::EntryType::Regular, 0o750, None),
                    ("escape", tar::EntryType::Symlink, 0o777, Some("../../../../etc/shadow")),
                    ("hard.key", tar::EntryType::Regular, 0o600, None),
                    ("secret.key", tar::EntryType::Regular, 0o600, None),
                ]
            );
            assert_eq!(found[5].4, b"key\n", "a hard link is archived as the file");
            assert_eq!(archived(dir.path()).ok(), archived(dir.path()).ok(), "the same folder, the same archive");
        }

        #[test]
        fn special_files_are_refused_by_name_unless_ignored() {
            let dir = tempfile::tempdir().expect("a temp dir");
            write(dir.path(), "Dockerfile", "FROM scratch\n", 0o644);
            std::fs::create_dir(dir.path().join("sub")).expect("a folder");
            mkfifo(&dir.path().join("sub/pipe"));
            let error = archived(dir.path()).expect_err("a FIFO is refused");
            assert_eq!(
                error.to_string(),
                "`sub/pipe` is a named pipe (FIFO): a build context holds only files, folders and links"
            );
            let failure = Diagnostic::from(error);
            assert_eq!(failure.hint.as_deref(), Some("remove it from the package, or add it to `.dockerignore`"));

            write(dir.path(), ".dockerignore", "sub/pipe\n", 0o644);
            let names: Vec<String> =
                entries(&archived(dir.path()).expect("an ignored FIFO is fine")).into_iter().map(|e| e.0).collect();
            assert_eq!(names, [".dockerignore", "Dockerfile", "sub"]);

            write(dir.path(), ".dockerignore", "sub\n", 0o644);
            let names: Vec<String> =
                entries(&archived(dir.path()).expect("an ignored folder")).into_iter().map(|e| e.0).collect();
            assert_eq!(names, [".dockerignore", "Dockerfile"]);
        }

        #[test]
        fn the_dockerfile_and_the_ignore_file_are_sent_and_the_ignore_file_is_no_link() {
            let dir = tempfile::tempdir().expect("a temp dir");
            write(dir.path(), "docker/Dockerfile", "FROM scratch\n", 0o644);
            write(dir.path(), "docker/other", "x\n", 0o644);
            write(dir.path(), ".dockerignore", "docker\n.dockerignore\n", 0o644);
            let context = beneath::Folder::open(dir.path()).expect("open");
            let found = archive(&context, "./docker/Dockerfile", Vec::new(), &AtomicBool::new(false));
            let names: Vec<String> = entries(&found.expect("archived")).into_iter().map(|e| e.0).collect();
            assert_eq!(names, [".dockerignore", "docker/Dockerfile"]);

            std::fs::remove_file(dir.path().join(".dockerignore")).expect("removed");
            symlink("/etc/passwd", dir.path().join(".dockerignore")).expect("a link");
            let error = archived(dir.path()).expect_err("a linked ignore file is refused");
            assert_eq!(error.to_string(), "`.dockerignore` is a link");

            std::fs::remove_file(dir.path().join(".dockerignore")).expect("removed");
            write(dir.path(), ".dockerignore", &"a\n".repeat(600 * 1024), 0o644);
            let error = archived(dir.path()).expect_err("a huge ignore file is refused");
            assert_eq!(error.to_string(), "`.dockerignore` is larger than 1 MiB");
        }

        /// A sink that sets `stop` at its first write, as a deadline passing mid-walk would.
        #[derive(Debug)]
        struct StopAtFirstWrite<'a> {
            stop: &'a AtomicBool,
            written: usize,
        }

        impl Write for StopAtFirstWrite<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.stop.store(true, Ordering::Relaxed);
                self.written += buf.len();
                Ok(buf.len())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        #[test]
        fn archiving_stops_at_the_next_entry_once_told_to() {
            let dir = tempfile::tempdir().expect("a temp dir");
            for index in 0..50 {
                write(dir.path(), &format!("f{index:02}"), "x\n", 0o644);
            }
            let stop = AtomicBool::new(false);
            let sink = StopAtFirstWrite { stop: &stop, written: 0 };
            let result = archive(&beneath::Folder::open(dir.path()).expect("open"), "Dockerfile", sink, &stop);
            assert!(matches!(result, Err(ContextError::Stopped)), "{result:?}");

            // Stopped in the middle of a file too.
            write(dir.path(), "big", &"x".repeat(1 << 20), 0o644);
            let stop = AtomicBool::new(false);
            let mut header = header(tar::EntryType::Regular, 0o644, 1 << 20);
            let mut builder = tar::Builder::new(StopAtFirstWrite { stop: &stop, written: 0 });
            let file = std::fs::File::open(dir.path().join("big")).expect("open");
            let contents = Contents { file, left: 1 << 20, stop: &stop };
            assert!(builder.append_data(&mut header, "big", contents).is_err());
            assert!(builder.get_ref().written < 1 << 20, "the copy stopped early");
        }

        #[tokio::test]
        async fn dropping_the_call_stops_the_archiving() {
            let dir = tempfile::tempdir().expect("a temp dir");
            // A sparse file of 1 TiB: reading it through takes far longer than this test.
            let big = std::fs::File::create(dir.path().join("big")).expect("a file");
            big.set_len(1 << 40).expect("a sparse size");
            let (done, finished) = std::sync::mpsc::channel();
            let context = beneath::Folder::open(dir.path()).expect("open");
            let call = stoppable(move |stop| {
                let result = archive(&context, "Dockerfile", std::io::sink(), stop).map(drop);
                let stopped = matches!(result, Err(ContextError::Stopped));
                let _ = done.send(stopped);
                result
            });
            // As a plugin call's deadline or a cancelled run drops it.
            assert!(tokio::time::timeout(std::time::Duration::from_millis(300), call).await.is_err());
            let stopped = finished.recv_timeout(std::time::Duration::from_secs(20));
            assert_eq!(stopped, Ok(true), "the archiving ended, stopped, soon after the call was dropped");
        }
    }
}
