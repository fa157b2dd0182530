//! `loktar run --rebuild`: Loktar's "do not touch". A package that is
//! already green is not run again.
//!
//! Walking from the head commit back through the range, the first commit
//! carrying any of a package's Loktar statuses (`<pkg> - test`,
//! `<pkg> - artifact`, `<pkg> - Not rebuilt`) decides: when every one of
//! them is `success` there, the package is green — unless a commit after
//! that one touched the package or anything it depends on, which the walk
//! meets first and which sends the package to be rebuilt. A commit whose
//! files are unknown (a merge) counts as touching everything.

use std::collections::HashMap;

use crate::graph::DependencyGraph;
use loktar_config::{MANIFEST, Workspace};
use loktar_services::github::Github;
use loktar_support::diagnostic::Diagnostic;

/// A package that is not run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Green {
    /// Its index in the workspace.
    pub package: usize,
    /// The commit whose statuses say it is green.
    pub commit: String,
}

/// A package that could be skipped, and the status contexts its run would settle.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its index in the workspace.
    pub package: usize,
    /// `<pkg> - test`, `<pkg> - artifact`: what a run would post.
    pub contexts: Vec<String>,
}

use loktar_protocol::status::not_rebuilt_context;

/// The commits to walk, newest first, each with the files it touched (`None`: unknown).
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// `(sha, files)`, the head first.
    pub commits: Vec<(String, Option<Vec<String>>)>,
}

/// Which of `candidates` are already green on GitHub (`repository` is `owner/repo`).
pub async fn already_green(
    github: &Github,
    repository: &str,
    workspace: &Workspace,
    graph: &DependencyGraph,
    candidates: &[Candidate],
    walk: &Walk,
) -> Result<Vec<Green>, Diagnostic> {
    let owners = workspace.owners();
    let mut statuses: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut green = Vec::new();
    for candidate in candidates.iter().filter(|c| !c.contexts.is_empty()) {
        let name = &workspace.packages[candidate.package].name;
        let relevant = graph.with_dependencies([candidate.package]);
        let mut contexts = candidate.contexts.clone();
        contexts.push(not_rebuilt_context(name));
        for (sha, files) in &walk.commits {
            if !statuses.contains_key(sha) {
                statuses.insert(sha.clone(), latest_states(github, repository, sha).await?);
            }
            let states = &statuses[sha];
            let found: Vec<&String> = contexts.iter().filter_map(|context| states.get(context)).collect();
            if !found.is_empty() {
                let complete = candidate.contexts.iter().all(|c| states.contains_key(c))
                    || states.contains_key(&not_rebuilt_context(name));
                if complete && found.iter().all(|state| *state == "success") {
                    green.push(Green { package: candidate.package, commit: sha.clone() });
                }
                break;
            }
            let touched = match files {
                None => true,
                Some(files) => {
                    files.iter().any(|file| file == MANIFEST || owners.owner(file).is_some_and(|owner| relevant[owner]))
                }
            };
            if touched {
                break;
            }
        }
    }
    Ok(green)
}

/// The latest state of each status context on a commit (GitHub lists the newest first).
async fn latest_states(github: &Github, repository: &str, sha: &str) -> Result<HashMap<String, String>, Diagnostic> {
    let path = format!("/repos/{repository}/commits/{sha}/statuses?per_page=100");
    let pages = github
        .pages(&path)
        .await
        .map_err(|failure| failure.context(format!("cannot read the statuses of commit `{sha}` for `--rebuild`")))?;
    let mut states = HashMap::new();
    for status in pages.iter().filter_map(serde_json::Value::as_array).flatten() {
        if let (Some(context), Some(state)) = (status["context"].as_str(), status["state"].as_str()) {
            states.entry(context.to_string()).or_insert_with(|| state.to_string());
        }
    }
    Ok(states)
}
