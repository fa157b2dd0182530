//! What changed: the files and commit messages of a git range or of the
//! uncommitted work tree.
//!
//! The range defaults to the merge-base of `HEAD` with the default branch (or
//! the previous commit when `HEAD` is on the default branch). A range that
//! cannot be resolved is an error with the fix — never a silent "everything".

mod git;
pub mod pull_request;

use std::path::{Path, PathBuf};

pub use git::Git;
use git::{Pending, byte_fields, fields};

use loktar_support::diagnostic::Diagnostic;

/// Which changes to look at.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The older end of the range; default: merge-base with the default branch.
    pub base: Option<String>,
    /// The newer end; default: `HEAD`.
    pub head: Option<String>,
    /// The default branch; default: `origin/HEAD`, then `main`, then `master`.
    pub default_branch: Option<String>,
    /// Look at uncommitted changes (staged, unstaged, untracked) instead of a range.
    pub worktree: bool,
}

/// How a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// New file.
    Added,
    /// Content or mode changed.
    Modified,
    /// Removed.
    Deleted,
    /// Moved here from `old_path`.
    Renamed,
    /// Copied here from `old_path`.
    Copied,
    /// Type changed (file, symlink, submodule).
    TypeChanged,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// The path, relative to the repository root.
    pub path: String,
    /// The path before a rename or copy.
    pub old_path: Option<String>,
    /// How it changed.
    pub status: Status,
}

impl ChangedFile {
    /// Every path the change touches: both ends of a rename count.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        let old = match self.status {
            Status::Renamed => self.old_path.as_deref(),
            _ => None,
        };
        std::iter::once(self.path.as_str()).chain(old)
    }
}

/// A commit in the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full hash.
    pub sha: String,
    /// Full message.
    pub message: String,
}

impl Commit {
    /// The first line of the message.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or("")
    }
}

/// How the base of the range was chosen, for the plan's header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BaseOrigin {
    /// Given by `--base` or `LOKTAR_BASE`.
    Given,
    /// The merge-base of head with the default branch.
    MergeBase {
        /// The default branch used.
        branch: String,
    },
    /// Head is on the default branch: its first parent.
    Parent {
        /// The default branch used.
        branch: String,
    },
    /// Head is the first commit: everything in it is new.
    RootCommit,
    /// Uncommitted changes against `HEAD`.
    Worktree,
    /// A GitHub pull request's base, as the API gives it.
    PullRequest {
        /// The pull request's number.
        number: u64,
        /// Its base branch.
        branch: String,
    },
}

/// Everything that changed in the selected range.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    /// The base commit, `None` when head is the root commit or in an empty repository.
    pub base: Option<String>,
    /// The head commit, `None` for uncommitted changes.
    pub head: Option<String>,
    /// How the base was chosen.
    pub origin: BaseOrigin,
    /// Changed files, in git's order.
    pub files: Vec<ChangedFile>,
    /// Commits in `base..head`, newest first, merges left out.
    pub commits: Vec<Commit>,
}

/// The files each commit touched: `(sha, paths)`, in the change set's order.
pub type CommitFiles = Vec<(String, Vec<String>)>;

/// Where the details of a change set come from, beyond its files and
/// messages: local git, or GitHub's API for a pull request.
pub trait History {
    /// The files each commit of `changes` touched.
    fn files_by_commit(&self, changes: &ChangeSet) -> Result<CommitFiles, Diagnostic>;
    /// The text of a file at a commit, `None` when it does not exist there.
    fn file_at(&self, commit: &str, path: &str) -> Option<String>;
}

impl History for Git {
    fn files_by_commit(&self, changes: &ChangeSet) -> Result<CommitFiles, Diagnostic> {
        files_by_commit(self, changes)
    }

    fn file_at(&self, commit: &str, path: &str) -> Option<String> {
        file_at(self, commit, path)
    }
}

/// Finds the repository root: the nearest folder at or above `start` that holds `.git`.
pub fn find_root(start: &Path) -> Result<PathBuf, Diagnostic> {
    let start = std::path::absolute(start)
        .map_err(|error| Diagnostic::new(format!("cannot resolve `{}`: {error}", start.display())))?;
    if !start.is_dir() {
        return Err(Diagnostic::new(format!("`{}` is not a folder", start.display())));
    }
    start.ancestors().find(|dir| dir.join(".git").exists()).map(Path::to_path_buf).ok_or_else(|| {
        Diagnostic::new(format!("`{}` is not inside a git repository", start.display()))
            .hint("run loktar inside a clone of the monorepo, or pass `--repo <folder>`")
    })
}

/// Reads the changes selected by `selection`.
pub fn changes(git: &Git, selection: &Selection) -> Result<ChangeSet, Diagnostic> {
    if selection.worktree {
        return worktree_changes(git);
    }
    let head_name = selection.head.as_deref().unwrap_or("HEAD");
    if let Some(base_name) = &selection.base {
        return given_range(git, base_name, head_name);
    }
    let head = resolve(git, head_name, "head")?;
    let (base, origin) = default_base(git, &head, head_name, selection.default_branch.as_deref())?;
    let (files, commits) = finish_range(start_range(git, base.as_deref(), &head)?)?;
    Ok(ChangeSet { base, head: Some(head), origin, files, commits })
}

/// A range named by the user: resolving the names and reading the range are
/// independent, so the three git calls overlap.
fn given_range(git: &Git, base_name: &str, head_name: &str) -> Result<ChangeSet, Diagnostic> {
    for (name, role) in [(base_name, "base"), (head_name, "head")] {
        if name.starts_with('-') {
            return Err(
                Diagnostic::new(format!("{role} `{name}` is not a commit")).hint("name a branch, tag or commit")
            );
        }
    }
    let base_commit = format!("{base_name}^{{commit}}");
    let head_commit = format!("{head_name}^{{commit}}");
    // The diff first: it takes longest. Full hashes, which CI systems pass,
    // need no resolving: the diff and the log fail on anything that is not
    // a commit here.
    let reading = start_range(git, Some(&base_commit), &head_commit)?;
    let resolving = if is_full_hash(base_name) && is_full_hash(head_name) {
        None
    } else {
        Some(git.start(&["rev-parse", &base_commit, &head_commit])?)
    };
    let shas = match resolving {
        None => Some((base_name.to_ascii_lowercase(), head_name.to_ascii_lowercase())),
        Some(resolving) => resolving.finish().ok().and_then(|out| {
            let out = String::from_utf8_lossy(&out).into_owned();
            let mut lines = out.lines().map(str::to_string);
            Some((lines.next()?, lines.next()?))
        }),
    };
    match (shas, finish_range(reading)) {
        (Some((base, head)), Ok((files, commits))) => {
            Ok(ChangeSet { base: Some(base), head: Some(head), origin: BaseOrigin::Given, files, commits })
        }
        (_, read) => {
            // Name the end that does not resolve, else report what git said.
            resolve(git, base_name, "base")?;
            resolve(git, head_name, "head")?;
            Err(read
                .err()
                .unwrap_or_else(|| Diagnostic::new(format!("cannot resolve `{base_name}` and `{head_name}`"))))
        }
    }
}

/// Whether `name` is a complete SHA-1 or SHA-256 commit hash.
pub fn is_full_hash(name: &str) -> bool {
    matches!(name.len(), 40 | 64) && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Starts the diff of a range (from the root when `base` is `None`) and its log.
fn start_range(git: &Git, base: Option<&str>, head: &str) -> Result<(Pending, Pending), Diagnostic> {
    let diff_args: Vec<&str> = match base {
        Some(base) => vec!["diff", "--no-ext-diff", "--no-relative", "--name-status", "-z", "-M", base, head, "--"],
        None => vec!["diff-tree", "-r", "--root", "--no-commit-id", "--name-status", "-z", "-M", head, "--"],
    };
    let range = base.map(|base| format!("{base}..{head}"));
    let log_args = ["log", "--no-merges", "-z", "--format=%H%x00%B", range.as_deref().unwrap_or(head), "--"];
    Ok((git.start(&diff_args)?, git.start(&log_args)?))
}

fn finish_range((diff, log): (Pending, Pending)) -> Result<(Vec<ChangedFile>, Vec<Commit>), Diagnostic> {
    let diff = diff.finish().map_err(Diagnostic::from)?;
    let log = log.finish().map_err(Diagnostic::from)?;
    Ok((parse_name_status(&diff), parse_log(&log)))
}

/// The files each commit touched, for the commits of a change set.
fn files_by_commit(git: &Git, changes: &ChangeSet) -> Result<CommitFiles, Diagnostic> {
    let Some(head) = &changes.head else {
        return Ok(Vec::new());
    };
    let range = match &changes.base {
        Some(base) => format!("{base}..{head}"),
        None => head.clone(),
    };
    let output = git
        .run(&["log", "--no-merges", "-z", "--format=%x01%H", "--name-status", "--no-renames", &range, "--"])
        .map_err(Diagnostic::from)?;
    Ok(parse_commit_files(&output))
}

/// Parses `git log -z --format=%x01%H --name-status` output: each commit is
/// a field `\x01<sha>`, then a status field and a path field per file.
/// A path may hold any byte but NUL — a leading newline, a `\x01` — so it
/// is never looked at: only its position says it is a path.
fn parse_commit_files(output: &[u8]) -> CommitFiles {
    let text = |field: &[u8]| String::from_utf8_lossy(field).into_owned();
    let mut parts = byte_fields(output);
    let mut commits: CommitFiles = Vec::new();
    while let Some(field) = parts.next() {
        if let Some(sha) = field.strip_prefix(b"\x01") {
            commits.push((text(sha), Vec::new()));
            continue;
        }
        // A status; git puts a newline between a commit's sha and its first one.
        let status = field.strip_prefix(b"\n").unwrap_or(field);
        // `--no-renames` gives each status one path; should git still pair
        // paths, a rename counts at both ends and a copy at its new one.
        let (skip, keep) = match status.first() {
            Some(b'R') => (0, 2),
            Some(b'C') => (1, 1),
            _ => (0, 1),
        };
        let touched: Vec<String> = parts.by_ref().take(skip + keep).skip(skip).map(text).collect();
        if let Some((_, files)) = commits.last_mut() {
            files.extend(touched);
        }
    }
    commits
}

/// The text of a file at a commit, `None` when it does not exist there.
fn file_at(git: &Git, commit: &str, path: &str) -> Option<String> {
    let output = git.run(&["show", &format!("{commit}:{path}")]).ok()?;
    String::from_utf8(output).ok()
}

fn resolve(git: &Git, name: &str, role: &str) -> Result<String, Diagnostic> {
    if name.starts_with('-') {
        return Err(Diagnostic::new(format!("{role} `{name}` is not a commit")).hint("name a branch, tag or commit"));
    }
    if let Some(sha) = git.query(&["rev-parse", "--verify", "-q", &format!("{name}^{{commit}}")]) {
        return Ok(sha);
    }
    if git.is_shallow() {
        return Err(shallow_error(&format!("{role} `{name}` is not in this shallow clone's history")));
    }
    Err(Diagnostic::new(format!("{role} `{name}` is not a commit in this repository"))
        .hint("name a branch, tag or commit that exists here (`git log --oneline` lists commits)"))
}

fn shallow_error(message: &str) -> Diagnostic {
    Diagnostic::new(message.to_string()).hint(
        "this is a shallow clone: fetch more history with `git fetch --deepen=100` or `git fetch --unshallow` (or clone with `fetch-depth: 0`)",
    )
}

fn default_base(
    git: &Git,
    head: &str,
    head_name: &str,
    branch: Option<&str>,
) -> Result<(Option<String>, BaseOrigin), Diagnostic> {
    let branch = match branch {
        Some(branch) => branch.to_string(),
        None => default_branch(git).ok_or_else(|| {
            Diagnostic::new("cannot tell which branch is the default branch")
                .hint("pass `--base <commit>` (or set `LOKTAR_BASE`), or name it with `--default-branch <branch>`")
        })?,
    };
    let tip = resolve(git, &branch, "default branch")?;
    let Some(merge_base) = git.query(&["merge-base", &tip, head]) else {
        if git.is_shallow() {
            return Err(shallow_error(&format!(
                "cannot find where `{head_name}` left `{branch}`: the history is cut short"
            )));
        }
        return Err(Diagnostic::new(format!("`{head_name}` and `{branch}` share no history"))
            .hint("pass `--base <commit>` to compare with"));
    };
    if merge_base != head {
        return Ok((Some(merge_base), BaseOrigin::MergeBase { branch }));
    }
    // Head is on the default branch (or behind it): compare with its first parent.
    if let Some(parent) = git.query(&["rev-parse", "--verify", "-q", &format!("{head}^1^{{commit}}")]) {
        return Ok((Some(parent), BaseOrigin::Parent { branch }));
    }
    if git.is_shallow() {
        return Err(shallow_error(&format!("the parent of `{head_name}` is not in this shallow clone's history")));
    }
    Ok((None, BaseOrigin::RootCommit))
}

/// Where the work tree stands: the commit and branch of `HEAD`, and the default branch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The full hash of `HEAD`, `None` before the first commit.
    pub commit: Option<String>,
    /// The branch checked out, `None` when detached.
    pub branch: Option<String>,
    /// The default branch (`origin/HEAD`, else `main`, else `master`), when there is one.
    pub default_branch: Option<String>,
    /// When `HEAD` was committed (RFC 3339).
    pub commit_time: Option<String>,
    /// The URL of the `origin` remote, when there is one.
    pub origin_url: Option<String>,
    /// Who made `HEAD` (`Name <email>`).
    pub author: Option<String>,
}

/// Reads where the work tree stands; `default_branch` overrides the guess.
pub fn head(git: &Git, default_branch_name: Option<&str>) -> Head {
    let described = git.query(&["rev-parse", "HEAD", "--abbrev-ref", "HEAD"]).unwrap_or_default();
    let mut lines = described.lines();
    let commit = lines.next().filter(|sha| is_full_hash(sha)).map(str::to_string);
    let branch = lines.next().filter(|name| *name != "HEAD").map(str::to_string);
    let default_branch = default_branch_name.map(str::to_string).or_else(|| default_branch(git));
    let described = commit.as_ref().and_then(|_| git.query(&["show", "-s", "--format=%cI%n%an <%ae>", "HEAD"]));
    let mut described = described.as_deref().unwrap_or_default().lines().map(str::to_string);
    let (commit_time, author) = (described.next(), described.next());
    let origin_url = git.query(&["config", "--get", "remote.origin.url"]).filter(|url| !url.is_empty());
    Head { commit, branch, default_branch, commit_time, origin_url, author }
}

fn default_branch(git: &Git) -> Option<String> {
    let output = git.run(&[
        "for-each-ref",
        "--format=%(refname)%09%(symref)",
        "refs/remotes/origin/HEAD",
        "refs/heads/main",
        "refs/heads/master",
        "refs/remotes/origin/main",
        "refs/remotes/origin/master",
    ]);
    let output = String::from_utf8_lossy(&output.ok()?).into_owned();
    let refs: Vec<(&str, &str)> = output.lines().filter_map(|line| line.split_once('\t')).collect();
    if let Some((_, target)) =
        refs.iter().find(|(name, target)| *name == "refs/remotes/origin/HEAD" && !target.is_empty())
    {
        return Some(target.trim_start_matches("refs/remotes/").to_string());
    }
    ["refs/heads/main", "refs/heads/master", "refs/remotes/origin/main", "refs/remotes/origin/master"]
        .iter()
        .find(|wanted| refs.iter().any(|(name, _)| name == *wanted))
        .map(|name| name.trim_start_matches("refs/heads/").trim_start_matches("refs/remotes/").to_string())
}

fn worktree_changes(git: &Git) -> Result<ChangeSet, Diagnostic> {
    let head = git.query(&["rev-parse", "--verify", "-q", "HEAD^{commit}"]);
    let untracked = git.start(&["ls-files", "--others", "--exclude-standard", "-z"])?;
    let mut files = match &head {
        Some(head) => {
            let diff = git.start(&["diff", "--no-ext-diff", "--no-relative", "--name-status", "-z", "-M", head])?;
            parse_name_status(&diff.finish().map_err(Diagnostic::from)?)
        }
        // No commit yet: everything staged is new.
        None => {
            let staged = git.run(&["ls-files", "--cached", "-z"]).map_err(Diagnostic::from)?;
            fields(&staged).map(|path| ChangedFile { path, old_path: None, status: Status::Added }).collect()
        }
    };
    let untracked = untracked.finish().map_err(Diagnostic::from)?;
    files.extend(fields(&untracked).map(|path| ChangedFile { path, old_path: None, status: Status::Added }));
    Ok(ChangeSet { base: head, head: None, origin: BaseOrigin::Worktree, files, commits: Vec::new() })
}

/// Parses `git diff --name-status -z` output.
fn parse_name_status(output: &[u8]) -> Vec<ChangedFile> {
    let mut parts = byte_fields(output);
    let text = |field: &[u8]| String::from_utf8_lossy(field).into_owned();
    // At least two fields a file: sized once rather than grown.
    let mut files = Vec::with_capacity(memchr::memchr_iter(0, output).count() / 2);
    while let Some(code) = parts.next() {
        let status = match code.first() {
            Some(b'A') => Status::Added,
            Some(b'D') => Status::Deleted,
            Some(b'R') => Status::Renamed,
            Some(b'C') => Status::Copied,
            Some(b'T') => Status::TypeChanged,
            _ => Status::Modified,
        };
        let Some(first) = parts.next() else { break };
        let file = if matches!(status, Status::Renamed | Status::Copied) {
            let Some(second) = parts.next() else { break };
            ChangedFile { path: text(second), old_path: Some(text(first)), status }
        } else {
            ChangedFile { path: text(first), old_path: None, status }
        };
        files.push(file);
    }
    files
}

/// Parses `git log -z --format=%H%x00%B` output.
fn parse_log(output: &[u8]) -> Vec<Commit> {
    let mut parts = fields(output);
    let mut commits = Vec::new();
    while let (Some(sha), Some(message)) = (parts.next(), parts.next()) {
        commits.push(Commit { sha: sha.trim_start_matches('\n').to_string(), message: message.trim_end().to_string() });
    }
    commits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_renames_and_copies() {
        let files = parse_name_status(b"M\0a\0R087\0old name\0new name\0C100\0x\0y\0D\0gone\0");
        assert_eq!(files.len(), 4);
        assert_eq!(files[1].path, "new name");
        assert_eq!(files[1].paths().collect::<Vec<_>>(), ["new name", "old name"]);
        assert_eq!(files[2].paths().collect::<Vec<_>>(), ["y"]);
        assert_eq!(files[3].status, Status::Deleted);
    }

    #[test]
    fn paths_of_each_commit_are_read_by_position_whatever_they_hold() {
        // As `git log -z --format=%x01%H --name-status --no-renames` writes
        // it: an empty commit, then a commit with hostile names — one that
        // starts with a newline, one that looks like a commit of its own.
        let output = b"\x01aaa\0\x01bbb\0\nA\0\nrest_services/pet_api/x\0A\0\x01aaa\0M\0lib/a.py\0\
                       \x01ccc\0\nD\0\x1b[2J\0R100\0old\0new\0C100\0src\0copy\0";
        let commits = parse_commit_files(output);
        let expected: CommitFiles = vec![
            ("aaa".into(), vec![]),
            ("bbb".into(), vec!["\nrest_services/pet_api/x".into(), "\u{1}aaa".into(), "lib/a.py".into()]),
            ("ccc".into(), vec!["\u{1b}[2J".into(), "old".into(), "new".into(), "copy".into()]),
        ];
        assert_eq!(commits, expected);
    }

    #[test]
    fn parses_log_records() {
        let commits = parse_log(b"abc\0DOC: one\n\nbody\n\0def\0NOBUILD two\n\0");
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[0].subject(), "DOC: one");
        assert_eq!(commits[1].sha, "def");
    }
}
