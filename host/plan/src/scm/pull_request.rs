//! A GitHub pull request's change set, read from the REST API instead of
//! local git (`--github-pr N`): what a CI checkout that lacks the history —
//! or a server that has no clone at all — can still know.
//!
//! - Files: `GET /repos/{repo}/pulls/{n}/files`, every page. GitHub lists at
//!   most 3000 files there; when the pull request reports more, the files
//!   of each commit (`GET /repos/{repo}/commits/{sha}`, every page) are
//!   joined instead.
//! - Commits: `GET /repos/{repo}/pulls/{n}/commits`, every page; past
//!   GitHub's cap of 250, the comparison of base and head
//!   (`GET /repos/{repo}/compare/{base}...{head}`, every page).
//! - Merge commits are left out, as `git log --no-merges` does: their
//!   messages never turn a run off.
//!
//! With `[github] pr_changes = "git"` only the pull request's base and head
//! come from the API; the range is read by local git.

use std::sync::Mutex;

use serde_json::Value;

use super::{BaseOrigin, ChangeSet, ChangedFile, Commit, CommitFiles, Git, History, Status};
use loktar_services::github::Github;
use loktar_support::diagnostic::Diagnostic;

/// A pull request as GitHub describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `owner/repo`.
    pub repository: String,
    /// Its number.
    pub number: u64,
    /// The base branch's commit it is compared with.
    pub base: String,
    /// The base branch.
    pub base_ref: String,
    /// Its head commit.
    pub head: String,
    /// How many commits GitHub counts (merges included).
    commits: u64,
    /// How many files GitHub counts.
    changed_files: u64,
}

/// Reads pull requests and what their commits touched through the API.
#[derive(Debug)]
pub struct PullRequestReader {
    github: Github,
    /// `owner/repo`.
    repository: String,
    git: Git,
    /// Each commit's files, once asked for.
    commit_files: Mutex<Option<CommitFiles>>,
}

impl PullRequestReader {
    /// A reader of `repository` (`owner/repo`) calling `github`; `git`
    /// answers what the local clone already has.
    pub fn new(github: Github, git: Git, repository: &str) -> Result<PullRequestReader, Diagnostic> {
        let repository = repository.to_string();
        Ok(PullRequestReader { github, git, repository, commit_files: Mutex::new(None) })
    }

    /// The pull request `number`.
    pub fn pull_request(&self, number: u64) -> Result<PullRequest, Diagnostic> {
        let repository = &self.repository;
        let path = format!("/repos/{repository}/pulls/{number}");
        let page = self
            .first_page(&path)
            .map_err(|failure| failure.context(format!("cannot read pull request #{number} of `{repository}`")))?;
        let text = |pointer: &str| page.pointer(pointer).and_then(Value::as_str).map(str::to_string);
        let (Some(base), Some(head)) = (text("/base/sha"), text("/head/sha")) else {
            return Err(Diagnostic::new(format!(
                "GitHub's answer for pull request #{number} of `{repository}` has no base or head commit"
            )));
        };
        Ok(PullRequest {
            repository: repository.to_string(),
            number,
            base,
            base_ref: text("/base/ref").unwrap_or_default(),
            head,
            commits: page["commits"].as_u64().unwrap_or(0),
            changed_files: page["changed_files"].as_u64().unwrap_or(0),
        })
    }

    /// The pull request's files and commit messages, from the API.
    pub fn changes(&self, pull: &PullRequest) -> Result<ChangeSet, Diagnostic> {
        let context = format!("cannot read the changes of pull request #{} of `{}`", pull.number, pull.repository);
        let commits = self.commits(pull).map_err(|f| f.context(&context))?;
        let mut files = self.files(pull).map_err(|f| f.context(&context))?;
        if (files.len() as u64) < pull.changed_files {
            tracing::debug!(listed = files.len(), counted = pull.changed_files, "past GitHub's file cap: by commit");
            files = self.files_of_commits(&commits).map_err(|f| f.context(&context))?;
        }
        let origin = BaseOrigin::PullRequest { number: pull.number, branch: pull.base_ref.clone() };
        Ok(ChangeSet { base: Some(pull.base.clone()), head: Some(pull.head.clone()), origin, files, commits })
    }

    /// The commits that are not merges, newest first.
    fn commits(&self, pull: &PullRequest) -> Result<Vec<Commit>, Diagnostic> {
        let path = format!("/repos/{}/pulls/{}/commits?per_page=100", pull.repository, pull.number);
        let mut listed: Vec<Value> = self.list(&path, None)?;
        if (listed.len() as u64) < pull.commits {
            tracing::debug!(listed = listed.len(), counted = pull.commits, "past GitHub's commit cap: comparing");
            let path = format!("/repos/{}/compare/{}...{}?per_page=100", pull.repository, pull.base, pull.head);
            listed = self.list(&path, Some("commits"))?;
        }
        let mut commits: Vec<Commit> = listed
            .iter()
            .filter(|commit| commit["parents"].as_array().is_none_or(|parents| parents.len() < 2))
            .filter_map(|commit| {
                let sha = commit["sha"].as_str()?.to_string();
                let message = commit.pointer("/commit/message").and_then(Value::as_str).unwrap_or_default();
                Some(Commit { sha, message: message.trim_end().to_string() })
            })
            .collect();
        // GitHub lists oldest first; a change set holds newest first.
        commits.reverse();
        Ok(commits)
    }

    fn files(&self, pull: &PullRequest) -> Result<Vec<ChangedFile>, Diagnostic> {
        let path = format!("/repos/{}/pulls/{}/files?per_page=100", pull.repository, pull.number);
        Ok(self.list(&path, None)?.iter().filter_map(changed_file).collect())
    }

    /// Every file any of `commits` touched, each once (the last change wins).
    fn files_of_commits(&self, commits: &[Commit]) -> Result<Vec<ChangedFile>, Diagnostic> {
        let mut files: Vec<ChangedFile> = Vec::new();
        for commit in commits.iter().rev() {
            for file in self.commit(&commit.sha)? {
                match files.iter_mut().find(|known| known.path == file.path) {
                    Some(known) => *known = file,
                    None => files.push(file),
                }
            }
        }
        Ok(files)
    }

    /// The files one commit touched, every page.
    fn commit(&self, sha: &str) -> Result<Vec<ChangedFile>, Diagnostic> {
        let path = format!("/repos/{}/commits/{sha}?per_page=100", self.repository);
        Ok(self.list(&path, Some("files"))?.iter().filter_map(changed_file).collect())
    }

    /// The items of every page: each page is the list, or holds it under `key`.
    fn list(&self, path: &str, key: Option<&str>) -> Result<Vec<Value>, Diagnostic> {
        let pages = loktar_support::blocking::wait_for(self.github.pages(path))??;
        let mut items = Vec::new();
        for page in pages {
            let list = match key {
                Some(key) => page.get(key).cloned().unwrap_or(Value::Array(Vec::new())),
                None => page,
            };
            match list {
                Value::Array(list) => items.extend(list),
                _ => return Err(Diagnostic::new(format!("GitHub's answer to `GET {path}` is not a list"))),
            }
        }
        Ok(items)
    }

    fn first_page(&self, path: &str) -> Result<Value, Diagnostic> {
        let pages = loktar_support::blocking::wait_for(self.github.pages(path))??;
        Ok(pages.into_iter().next().unwrap_or_default())
    }
}

impl History for PullRequestReader {
    fn files_by_commit(&self, changes: &ChangeSet) -> Result<CommitFiles, Diagnostic> {
        let mut known = self.commit_files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = known.as_ref() {
            return Ok(known.clone());
        }
        let mut by_commit = Vec::new();
        for commit in &changes.commits {
            let files = self
                .commit(&commit.sha)
                .map_err(|f| f.context(format!("cannot read the files of commit `{}`", commit.sha)))?;
            let paths = files.iter().flat_map(|file| file.paths().map(str::to_string)).collect();
            by_commit.push((commit.sha.clone(), paths));
        }
        *known = Some(by_commit.clone());
        Ok(by_commit)
    }

    fn file_at(&self, commit: &str, path: &str) -> Option<String> {
        if let Some(text) = self.git.file_at(commit, path) {
            return Some(text);
        }
        let page = self.first_page(&format!("/repos/{}/contents/{path}?ref={commit}", self.repository)).ok()?;
        let encoded: String = page["content"].as_str()?.split_whitespace().collect();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// A file entry of GitHub's API as a changed file.
fn changed_file(entry: &Value) -> Option<ChangedFile> {
    let path = entry["filename"].as_str()?.to_string();
    let old_path = entry["previous_filename"].as_str().map(str::to_string);
    let status = match entry["status"].as_str()? {
        "added" => Status::Added,
        "removed" => Status::Deleted,
        "renamed" => Status::Renamed,
        "copied" => Status::Copied,
        "unchanged" => return None,
        _ => Status::Modified,
    };
    Some(ChangedFile { path, old_path, status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_file_entries_become_changed_files() {
        let renamed = json!({"filename": "b/new.py", "previous_filename": "a/old.py", "status": "renamed"});
        let file = changed_file(&renamed).expect("a file");
        assert_eq!(file.paths().collect::<Vec<_>>(), ["b/new.py", "a/old.py"]);
        assert_eq!(
            changed_file(&json!({"filename": "x", "status": "removed"})).map(|f| f.status),
            Some(Status::Deleted)
        );
        assert_eq!(
            changed_file(&json!({"filename": "x", "status": "changed"})).map(|f| f.status),
            Some(Status::Modified)
        );
        assert_eq!(changed_file(&json!({"filename": "x", "status": "unchanged"})), None);
    }
}
