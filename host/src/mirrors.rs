//! Copies of the repositories a server builds, or an executor runs jobs
//! of: one bare mirror per repository in a data folder, fetched when a run
//! needs it, and for each run (or job) a checkout of its own (a detached
//! work tree of the mirror), removed when it ends — two runs never share a work tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use crate::diagnostic::Diagnostic;

/// The mirrors under one folder.
#[derive(Debug)]
pub(crate) struct Mirrors {
    dir: PathBuf,
    /// One lock per repository: git never works on a mirror twice at once
    /// (a fetch beside a work tree being added or removed can fail half-way).
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Mirrors {
    pub(crate) fn new(dir: PathBuf) -> Mirrors {
        Mirrors { dir, locks: Mutex::default() }
    }

    /// Brings the mirror of `repository` (`owner/repo`) up to date with
    /// `clone_url` for the commit `head` (or the ref it names) that
    /// `reference` holds, cloning it the first time; returns its folder.
    /// Only what the run needs is fetched: the one ref (its branch, its
    /// pull request's head: the origin advertises only that ref), or for a
    /// bare commit nothing when the mirror has it;
    /// everything (pruned) when that is not enough — the origin has no such
    /// ref, or the commit is still missing. With a `token` (from `[github]`),
    /// git sends it to `clone_url` alone, in a header given through its
    /// environment: never in an argument, a URL, the mirror's configuration
    /// or a message. Blocking.
    pub(crate) fn fetch(
        &self,
        repository: &str,
        clone_url: &str,
        token: Option<&str>,
        head: &str,
        reference: Option<&str>,
    ) -> Result<PathBuf, Diagnostic> {
        let lock = self.lock(repository);
        let _fetching = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mirror = self.mirror(repository);
        let credentials = token.map(|token| credentials(clone_url, token)).unwrap_or_default();
        if mirror.join("HEAD").is_file() {
            let git_dir = shown(&mirror);
            let has_head = || {
                crate::scm::is_full_hash(head)
                    && git(&["--git-dir", &git_dir, "cat-file", "-e", &format!("{head}^{{commit}}")]).is_ok()
            };
            let fetched_ref = match reference {
                Some(name) => {
                    let refspec = format!("+{name}:{name}");
                    git_with(&["--git-dir", &git_dir, "fetch", "--quiet", "origin", &refspec], &credentials).is_ok()
                        && (!crate::scm::is_full_hash(head) || has_head())
                }
                None => has_head(),
            };
            if !fetched_ref {
                git_with(&["--git-dir", &git_dir, "fetch", "--prune", "--quiet", "origin"], &credentials)
                    .map_err(|e| cannot_fetch(repository, &e))?;
            }
        } else {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| Diagnostic::new(format!("cannot create `{}`: {e}", self.dir.display())))?;
            // Cloned beside, then renamed: a clone cut short is never taken for a mirror.
            let partial = self.dir.join(format!(".{}.partial", repository.replace('/', "+")));
            let _ = std::fs::remove_dir_all(&partial);
            git_with(&["clone", "--mirror", "--quiet", clone_url, &shown(&partial)], &credentials)
                .map_err(|e| cannot_fetch(repository, &e))?;
            std::fs::rename(&partial, &mirror)
                .map_err(|e| Diagnostic::new(format!("cannot move the mirror into `{}`: {e}", mirror.display())))?;
        }
        Ok(mirror)
    }

    /// Whether the mirror of `repository` has the commit `commit` (a full hash) already.
    pub(crate) fn has_commit(&self, repository: &str, commit: &str) -> bool {
        let mirror = self.mirror(repository);
        crate::scm::is_full_hash(commit)
            && mirror.join("HEAD").is_file()
            && git(&["--git-dir", &shown(&mirror), "cat-file", "-e", &format!("{commit}^{{commit}}")]).is_ok()
    }

    /// Forgets the work trees of every mirror whose folders are gone (a
    /// process killed before it removed them). Blocking.
    pub(crate) fn prune_work_trees(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for mirror in entries.flatten().map(|entry| entry.path()).filter(|path| path.join("HEAD").is_file()) {
            let _ = git(&["--git-dir", &shown(&mirror), "worktree", "prune"]);
        }
    }

    /// The branch the mirrored repository's `HEAD` names: its default branch.
    pub(crate) fn default_branch(mirror: &Path) -> Option<String> {
        git(&["--git-dir", &shown(mirror), "symbolic-ref", "--short", "HEAD"]).ok().filter(|name| !name.is_empty())
    }

    /// Checks `commit` out of the mirror of `repository` into `dir`, detached.
    pub(crate) fn checkout(&self, repository: &str, commit: &str, dir: &Path) -> Result<Checkout, Diagnostic> {
        let lock = self.lock(repository);
        let _adding = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mirror = self.mirror(repository);
        if dir.exists() {
            // Left by a server that was killed: the run starts again from a clean tree.
            remove_work_tree(&mirror, dir);
        }
        git(&["--git-dir", &shown(&mirror), "worktree", "add", "--detach", "--quiet", &shown(dir), commit])
            .map_err(|e| Diagnostic::new(format!("cannot check out `{commit}`: {e}")))?;
        Ok(Checkout { mirror, dir: dir.to_path_buf(), lock: lock.clone() })
    }

    /// The folder of the mirror of `repository`.
    fn mirror(&self, repository: &str) -> PathBuf {
        self.dir.join(format!("{}.git", repository.replace('/', "+")))
    }

    /// The lock of the mirror of `repository`.
    fn lock(&self, repository: &str) -> Arc<Mutex<()>> {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner).entry(repository.to_string()).or_default().clone()
    }
}

/// A run's work tree; removed when dropped.
#[derive(Debug)]
pub(crate) struct Checkout {
    mirror: PathBuf,
    dir: PathBuf,
    /// Its mirror's lock.
    lock: Arc<Mutex<()>>,
}

impl Checkout {
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let _removing = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        remove_work_tree(&self.mirror, &self.dir);
    }
}

/// Removes the work tree `dir` of `mirror`, whatever state it is in; the
/// caller holds the mirror's lock.
fn remove_work_tree(mirror: &Path, dir: &Path) {
    let removed = git(&["--git-dir", &shown(mirror), "worktree", "remove", "--force", &shown(dir)]);
    if let Err(error) = removed {
        tracing::warn!("cannot remove the work tree `{}`: {error}", dir.display());
        let _ = std::fs::remove_dir_all(dir);
        let _ = git(&["--git-dir", &shown(mirror), "worktree", "prune"]);
    }
}

fn cannot_fetch(repository: &str, error: &str) -> Diagnostic {
    Diagnostic::new(format!("cannot fetch `{repository}`: {error}")).hint(
        "check `clone_url` under `[server.repositories]`: the server and its executors must be able to fetch it \
         without a prompt, and a repository that moved (a redirect) is not followed: give its new address",
    )
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// The environment that has git send `token` to `clone_url` (and below it)
/// as GitHub takes it over HTTPS — `Authorization: Basic x-access-token:<token>`
/// — and follow no redirect, which would take the header elsewhere.
fn credentials(clone_url: &str, token: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let settings = [
        (format!("http.{clone_url}.extraHeader"), format!("Authorization: Basic {basic}")),
        ("http.followRedirects".to_string(), "false".to_string()),
    ];
    let mut environment = vec![("GIT_CONFIG_COUNT".to_string(), settings.len().to_string())];
    for (at, (key, value)) in settings.into_iter().enumerate() {
        environment.push((format!("GIT_CONFIG_KEY_{at}"), key));
        environment.push((format!("GIT_CONFIG_VALUE_{at}"), value));
    }
    environment
}

/// Whether `clone_url` is on GitHub's own host — the scheme, host and port
/// of `api_url`, less its `api.` (`api.github.com` serves `github.com`) — where
/// `[github]`'s credentials may go.
pub(crate) fn on_github(clone_url: &str, api_url: &str) -> bool {
    let origin = |url: &str| -> Option<(String, String, Option<u16>)> {
        let uri: axum::http::Uri = url.parse().ok()?;
        let host = uri.host()?.to_ascii_lowercase();
        // `api.github.com` serves `github.com`, `api.<name>.ghe.com` serves `<name>.ghe.com`.
        let host = host.strip_prefix("api.").map_or(host.clone(), str::to_string);
        Some((uri.scheme_str()?.to_ascii_lowercase(), host, uri.port_u16()))
    };
    match (origin(clone_url), origin(api_url)) {
        (Some(clone), Some(api)) => clone == api,
        _ => false,
    }
}

/// Runs git without a terminal to ask for credentials: what it printed, or
/// the last line of its error output when it fails.
fn git(args: &[&str]) -> Result<String, String> {
    git_with(args, &[])
}

/// [`git`] with `environment` added.
fn git_with(args: &[&str], environment: &[(String, String)]) -> Result<String, String> {
    let output = Command::new("git")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(stderr.trim().lines().last().unwrap_or("git failed").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_github_s_own_host_alone() {
        let github = "https://api.github.com";
        assert!(on_github("https://github.com/acme/shop.git", github));
        assert!(on_github("https://GitHub.com/acme/shop", github));
        for elsewhere in [
            "http://github.com/acme/shop.git",
            "https://gitea.example.com/acme/shop.git",
            "/srv/git/shop.git",
            "git@github.com:acme/shop.git",
            "https://github.com.evil.example/acme/shop.git",
        ] {
            assert!(!on_github(elsewhere, github), "{elsewhere}");
        }
        assert!(on_github("https://octocorp.ghe.com/acme/shop.git", "https://api.octocorp.ghe.com"));
        let enterprise = "https://ghe.example.com/api/v3";
        assert!(on_github("https://ghe.example.com/acme/shop.git", enterprise));
        assert!(!on_github("https://ghe.example.com:8443/acme/shop.git", enterprise));
        assert!(!on_github("https://github.com/acme/shop.git", enterprise));
    }
}
