//! What a server finds when it starts again after it stopped or was
//! killed: runs that nothing will finish — queued ones, and running ones
//! whose process is gone. Each starts again under its own number, from
//! the request kept with it: a run that had begun runs again only its
//! packages that had not passed (those that passed stay passed, with their
//! record and statuses), on the commit it was building; a run that had not
//! begun runs as it was asked. Their statuses end settled either way.

use std::path::Path;
use std::sync::Arc;

use crate::pipeline::control::RunControl;

use super::intake::{Subject, Wanted};
use super::runner::{self, Accepted};
use super::{Active, Server};
use crate::app::RunSelection;
use crate::diagnostic::Diagnostic;
use crate::events::journal::JOURNAL;
use crate::events::{EventKind, RunEvent, RunId, RunOutcome};
use crate::store::RunRow;

/// Why a run was started again, as its record says.
const RESUMED: &str = "resumed after the server stopped";

/// Starts again every run nothing will finish; returns how many.
pub(crate) async fn resume(server: &Arc<Server>) -> Result<usize, Diagnostic> {
    let orphans = server.with_store(|store| store.orphans()).await?;
    let count = orphans.len();
    for run in orphans {
        let number = run.id;
        if let Err(problem) = resume_one(server, run).await {
            tracing::error!(run = number, "cannot resume the run: {problem}");
            let reason = format!("the server stopped, and could not resume it: {}", problem.message);
            server
                .with_store(move |store| {
                    store.set_reason(number, &reason)?;
                    store.finish_run(number, RunOutcome::Interrupted.name(), std::time::Duration::ZERO)
                })
                .await?;
        }
    }
    Ok(count)
}

async fn resume_one(server: &Arc<Server>, run: RunRow) -> Result<(), Diagnostic> {
    let number = run.id;
    let (request, outcomes) =
        server.with_store(move |store| Ok((store.request(number)?, store.package_outcomes(number)?))).await?;
    let request = request.ok_or_else(|| Diagnostic::new("the run was not accepted by a server"))?;
    let mut wanted: Wanted = serde_json::from_str(&request)
        .map_err(|e| Diagnostic::new(format!("the run's kept request cannot be read: {e}")))?;
    let uuid = run.uuid.clone().ok_or_else(|| Diagnostic::new("the run has no identity"))?;
    let journal = server.data_dir().join("runs").join(&uuid).join(JOURNAL);
    if let Some(planned) = planned_packages(&journal) {
        // Passed: its whole pipeline did, as its package row says.
        let passed = |name: &String| outcomes.iter().any(|(package, status)| package == name && status == "passed");
        let remaining: Vec<String> = planned.into_iter().filter(|name| !passed(name)).collect();
        if remaining.is_empty() {
            server
                .with_store(move |store| {
                    store.requeue(number, RESUMED)?;
                    store.finish_run(number, RunOutcome::Passed.name(), std::time::Duration::ZERO)
                })
                .await?;
            return Ok(());
        }
        let rerun = remaining.clone();
        server.with_store(move |store| store.prepare_resume(number, &rerun)).await?;
        wanted.selection = RunSelection::Packages { names: remaining, with_dependencies: false };
        // The commit it was building, even if its branch has moved on since.
        if let Some(head) = &run.head {
            wanted.head = head.clone();
        }
    }
    server.with_store(move |store| store.requeue(number, RESUMED)).await?;
    let subject = match (run.trigger.as_deref(), &wanted.branch, wanted.pull_request) {
        (Some("push"), Some(branch), _) => Subject::Branch(branch.clone()),
        (Some("pull_request"), _, Some(pull_request)) => Subject::PullRequest(pull_request),
        _ => Subject::Manual,
    };
    let control = Arc::new(RunControl::new());
    let active = Active { repository: wanted.repository.clone(), subject, control: control.clone() };
    server.active().insert(number, active);
    tracing::warn!(run = number, "{RESUMED}: running it again");
    let accepted = Accepted { number, id: RunId::new(uuid), wanted, control };
    server.tasks.spawn(runner::run(server.clone(), accepted));
    Ok(())
}

/// The packages a run planned, from the first event of its journal; `None`
/// when it never got that far.
fn planned_packages(journal: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(journal).ok()?;
    let first: RunEvent = serde_json::from_str(text.lines().next()?).ok()?;
    match first.kind {
        EventKind::RunStarted { packages, .. } => Some(packages.into_iter().map(|p| p.name.to_string()).collect()),
        _ => None,
    }
}
