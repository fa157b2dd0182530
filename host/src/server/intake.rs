//! How a run comes in, whoever asks for it (a webhook, the API): recorded
//! as queued (with the delivery that asked for it: one run per delivery),
//! the older runs it supersedes cancelled, and handed to the background
//! ([`super::runner`]) — in a task of its own, so that a caller hanging up
//! half-way cannot leave a recorded run that never starts.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::problem::Problem;
use super::runner::{self, Accepted};
use super::{Active, Server};
use crate::app::RunSelection;
use crate::diagnostic::Diagnostic;
use crate::events::RunId;
use crate::pipeline::control::RunControl;
use crate::store::{Delivery, Queued, QueuedRun, RunStore};

/// What a run builds, as far as superseding goes: a newer run of the same
/// branch or pull request cancels the older one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// The head of a branch (a push).
    Branch(String),
    /// The head of a pull request.
    PullRequest(u64),
    /// Asked for by someone (the API): never superseded.
    Manual,
}

/// What a run is asked to build; kept with the run in the store, so that
/// a server that stopped before the run ended can start it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Wanted {
    /// The repository (`owner/repo`), one of `[server.repositories]`.
    pub repository: String,
    /// The branch, when known.
    pub branch: Option<String>,
    /// The pull request whose change set it runs, if any.
    pub pull_request: Option<u64>,
    /// The commit to build, or a branch's ref (`refs/heads/main`).
    pub head: String,
    /// The commit to compare with; `None`: the merge base with the default branch.
    pub base: Option<String>,
    /// The repository's default branch, when the event says.
    pub default_branch: Option<String>,
    /// Which packages run.
    pub selection: RunSelection,
}

impl Wanted {
    /// The ref that holds what it builds: the one it names, its pull
    /// request's head, or its branch; `None` for a bare commit of no branch.
    pub(crate) fn reference(&self) -> Option<String> {
        if self.head.starts_with("refs/") {
            return Some(self.head.clone());
        }
        match (self.pull_request, &self.branch) {
            (Some(number), _) => Some(format!("refs/pull/{number}/head")),
            (None, Some(branch)) => Some(format!("refs/heads/{branch}")),
            (None, None) => None,
        }
    }
}

/// Records a new run of `wanted`, asked for by `trigger` (`push`,
/// `pull_request`, `api`, `rerun`) with `delivery` if a webhook asked;
/// cancels what it supersedes and starts it in the background. Answers
/// `202` with its number, or `200` for a delivery received before.
pub(crate) async fn start(
    server: &Arc<Server>,
    trigger: &str,
    wanted: Wanted,
    delivery: Option<Delivery>,
    subject: Subject,
) -> Result<Response, Problem> {
    let id = RunId::new(uuid::Uuid::now_v7().to_string());
    let request = serde_json::to_string(&wanted).map_err(|e| {
        Problem::internal(Diagnostic::new(format!("internal error: cannot keep the run's request: {e}")))
    })?;
    let queued = QueuedRun {
        id: id.clone(),
        received_ms: delivery
            .as_ref()
            .map_or_else(|| crate::timefmt::unix_millis(std::time::SystemTime::now()), |delivery| delivery.received_ms),
        selection: wanted.selection.kind().to_string(),
        repository: wanted.repository.clone(),
        trigger: trigger.to_string(),
        branch: wanted.branch.clone(),
        pull_request: wanted.pull_request,
        head: crate::scm::is_full_hash(&wanted.head).then(|| wanted.head.clone()),
        base: wanted.base.clone(),
        delivery,
        request,
    };
    let accepted = Accepted { number: 0, id: id.clone(), wanted, control: Arc::new(RunControl::new()) };
    match tokio::spawn(accept(server.clone(), queued, accepted, subject)).await {
        Ok(Ok(number)) => Ok((StatusCode::ACCEPTED, Json(json!({ "run": number, "id": id.as_str() }))).into_response()),
        Ok(Err(Answer::Duplicate(run))) => Ok(duplicate(run)),
        Ok(Err(Answer::Refused(problem))) => Err(problem),
        Err(e) => Err(Problem::internal(Diagnostic::new(format!("internal error: accepting the run failed: {e}")))),
    }
}

/// Why a run was not started.
enum Answer {
    /// Its delivery was received before, and started this run, if any.
    Duplicate(Option<i64>),
    /// It could not be recorded.
    Refused(Problem),
}

async fn accept(
    server: Arc<Server>,
    queued: QueuedRun,
    mut accepted: Accepted,
    subject: Subject,
) -> Result<i64, Answer> {
    let number = match store_call(&server, move |store| store.queue_run(&queued)).await.map_err(Answer::Refused)? {
        Queued::Duplicate { run } => return Err(Answer::Duplicate(run)),
        Queued::New { run } => run,
    };
    accepted.number = number;
    tracing::debug!(run = number, "accepted");
    let head = &accepted.wanted.head;
    let short = head.get(..10).unwrap_or(head).to_string();
    let repository = accepted.wanted.repository.clone();
    let newer = Active { repository: repository.clone(), subject: subject.clone(), control: accepted.control.clone() };
    cancel_older(&server, &repository, &subject, number, Some(newer), &format!("superseded by `{short}`"))
        .await
        .map_err(Answer::Refused)?;
    server.tasks.spawn(runner::run(server.clone(), accepted));
    Ok(number)
}

/// Under one lock: cancels the unfinished runs of `subject` numbered below
/// `number` — when `[server] cancel_superseded`, or always without a
/// `newer` run (a deleted branch, a closed pull request) — and registers
/// `newer` as running; then records why the older ones end. Returns the
/// cancelled runs' numbers.
pub(crate) async fn cancel_older(
    server: &Arc<Server>,
    repository: &str,
    subject: &Subject,
    number: i64,
    newer: Option<Active>,
    reason: &str,
) -> Result<Vec<i64>, Problem> {
    let cancelled: Vec<i64> = {
        let mut active = server.active();
        let cancelling = *subject != Subject::Manual && (newer.is_none() || server.settings.cancel_superseded);
        let older: Vec<i64> = active
            .iter()
            .filter(|(other, run)| {
                cancelling && **other < number && run.repository == repository && run.subject == *subject
            })
            .map(|(other, run)| {
                run.control.interrupt(Some(reason));
                *other
            })
            .collect();
        if let Some(newer) = newer {
            active.insert(number, newer);
        }
        older
    };
    let (reason, recorded) = (reason.to_string(), cancelled.clone());
    store_call(server, move |store| recorded.iter().try_for_each(|&number| store.set_reason(number, &reason))).await?;
    Ok(cancelled)
}

/// The answer to a delivery received before.
pub(crate) fn duplicate(run: Option<i64>) -> Response {
    (StatusCode::OK, Json(json!({ "duplicate": true, "run": run }))).into_response()
}

/// Runs `call` on the run store; its failure is the server's.
pub(crate) async fn store_call<T: Send + 'static>(
    server: &Arc<Server>,
    call: impl FnOnce(&RunStore) -> Result<T, Diagnostic> + Send + 'static,
) -> Result<T, Problem> {
    server.with_store(call).await.map_err(Problem::internal)
}
