//! Running `git` and reading its machine-readable output.
//!
//! Loktar asks the real `git` rather than reimplementing it: rename
//! detection, shallow clones and every repository format behave exactly as
//! the user's own `git` does. Output is always read in `-z` form, so paths
//! with spaces, quotes, newlines or unicode come through untouched.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use loktar_support::diagnostic::Diagnostic;

/// A repository's root and the `git` program to ask about it.
#[derive(Debug, Clone)]
pub struct Git {
    root: PathBuf,
}

/// A `git` process started but not yet waited for, so that several can run at once.
#[derive(Debug)]
pub struct Pending {
    child: Child,
    args: String,
}

impl Git {
    /// A handle on the repository whose work tree starts at `root`.
    pub fn new(root: &Path) -> Git {
        Git { root: root.to_path_buf() }
    }

    /// The work tree root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(git_program());
        command
            .arg("-C")
            .arg(&self.root)
            .args(["-c", "core.quotepath=off", "-c", "color.ui=never"])
            // A repository's own configuration must not make git run programs of its choosing.
            .args(["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"])
            .args(args)
            // Reading must never take the index lock away from a concurrent git.
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts `git args…` without waiting for it.
    pub fn start(&self, args: &[&str]) -> Result<Pending, Diagnostic> {
        let child = self.command(args).spawn().map_err(|error| {
            let hint = if error.kind() == std::io::ErrorKind::NotFound {
                "install git (`apt-get install git`)"
            } else {
                "check that git runs in this environment"
            };
            Diagnostic::new(format!("cannot run `git`: {error}")).hint(hint)
        })?;
        Ok(Pending { child, args: args.join(" ") })
    }

    /// Runs `git args…` and returns its standard output.
    pub fn run(&self, args: &[&str]) -> Result<Vec<u8>, GitFailure> {
        self.start(args).map_err(GitFailure::Spawn)?.finish()
    }

    /// Runs `git args…` and returns its output as trimmed text, or `None` when it fails.
    pub fn query(&self, args: &[&str]) -> Option<String> {
        let output = self.run(args).ok()?;
        Some(String::from_utf8_lossy(&output).trim().to_string())
    }

    /// Whether the repository is a shallow clone.
    pub fn is_shallow(&self) -> bool {
        self.query(&["rev-parse", "--is-shallow-repository"]).as_deref() == Some("true")
    }
}

/// Why a `git` command did not succeed.
#[derive(Debug)]
pub enum GitFailure {
    /// `git` could not be started at all.
    Spawn(Diagnostic),
    /// `git` ran and failed; its arguments and standard error.
    Failed {
        /// The arguments, for the message.
        args: String,
        /// What git printed on standard error.
        stderr: String,
    },
}

impl From<GitFailure> for Diagnostic {
    fn from(failure: GitFailure) -> Self {
        match failure {
            GitFailure::Spawn(diagnostic) => diagnostic,
            GitFailure::Failed { args, stderr } => Diagnostic::new(format!("`git {args}` failed: {}", stderr.trim())),
        }
    }
}

impl Pending {
    /// Waits for the process and returns its standard output.
    pub fn finish(self) -> Result<Vec<u8>, GitFailure> {
        let output = self
            .child
            .wait_with_output()
            .map_err(|error| GitFailure::Failed { args: self.args.clone(), stderr: error.to_string() })?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(GitFailure::Failed { args: self.args, stderr: String::from_utf8_lossy(&output.stderr).into_owned() })
        }
    }
}

/// The `git` program, found in `PATH` once per process: every spawn would
/// otherwise try each `PATH` entry in turn (shims and all) before finding it.
fn git_program() -> PathBuf {
    loktar_support::programs::find("git").unwrap_or_else(|| PathBuf::from("git"))
}

/// Splits `-z` output into its NUL-terminated fields.
pub fn fields(output: &[u8]) -> impl Iterator<Item = String> + '_ {
    byte_fields(output).map(|field| String::from_utf8_lossy(field).into_owned())
}

/// Splits `-z` output into its NUL-terminated fields, as bytes.
pub fn byte_fields(output: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let body = output.strip_suffix(b"\0").unwrap_or(output);
    body.split(|b| *b == 0).filter(move |_| !body.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_nul_terminated_fields() {
        let parsed: Vec<String> = fields(b"M\0a b\0R100\0x\0y\0").collect();
        assert_eq!(parsed, ["M", "a b", "R100", "x", "y"]);
        assert_eq!(fields(b"").count(), 0);
    }
}
