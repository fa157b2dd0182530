//! What a front end asks for, as plain data (serde): which changes to look
//! at, and which packages to run through which stages, how.

use serde::{Deserialize, Serialize};

use crate::pipeline::stage::Stage;

/// Which changes to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// The older end; `None`: the merge base with the default branch (or
    /// head's parent on the default branch).
    pub base: Option<String>,
    /// The newer end (`HEAD` on the command line).
    pub head: String,
    /// The default branch; `None`: `origin/HEAD`, then `main`, then `master`.
    pub default_branch: Option<String>,
    /// The uncommitted changes instead of a range.
    pub worktree: bool,
    /// A GitHub pull request's changes instead of local git.
    pub github_pr: Option<u64>,
    /// The branch `head` is on, when the checkout cannot say (a server's
    /// detached work tree): what plugins are told.
    pub branch: Option<String>,
}

/// A run to plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The changes, when the packages are chosen by what they affect.
    pub range: Range,
    /// Which packages run.
    pub selection: RunSelection,
    /// The last stage each package goes through.
    pub last_stage: Stage,
    /// Packages at once (at least 1).
    pub concurrency: usize,
    /// At the first failure, start nothing new and cancel what runs.
    pub fail_fast: bool,
    /// Leave out packages that are already green on GitHub.
    pub rebuild: bool,
}

/// Which packages a run takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RunSelection {
    /// Those the changes of the range affect.
    Changes,
    /// Every package.
    All,
    /// The packages named, and with `with_dependencies` what they depend on.
    Packages {
        /// Their names.
        names: Vec<String>,
        /// Whether the packages they depend on (transitively) run too, first.
        with_dependencies: bool,
    },
}

impl RunSelection {
    /// What chose the packages, for the run record: `changes`, `all` or `packages`.
    pub fn kind(&self) -> &'static str {
        match self {
            RunSelection::Changes => "changes",
            RunSelection::All => "all",
            RunSelection::Packages { .. } => "packages",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_json() {
        let request = RunRequest {
            range: Range { base: Some("main".into()), head: "HEAD".into(), ..Range::default() },
            selection: RunSelection::Packages { names: vec!["pet_api".into()], with_dependencies: true },
            last_stage: Stage::Build,
            concurrency: 4,
            fail_fast: true,
            rebuild: false,
        };
        let json = serde_json::to_string(&request).expect("serialize");
        assert!(json.contains(r#""selection":{"kind":"packages","names":["pet_api"],"with_dependencies":true}"#));
        assert!(json.contains(r#""last_stage":"build""#), "{json}");
        assert_eq!(serde_json::from_str::<RunRequest>(&json).expect("deserialize"), request);
    }
}
