//! `POST /hooks/github`: GitHub's webhooks, verified before anything else
//! (`401` and nothing done when the signature is missing or wrong),
//! recorded before they are answered, and answered at once — the run is
//! planned and executed in the background ([`super::runner`]).
//!
//! A delivery (`X-GitHub-Delivery`) starts at most one run however often
//! GitHub sends it: the run store keeps each delivery's id.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::problem::Problem;
use super::runner::{self, Accepted};
use super::{Active, Server, signature};
use crate::diagnostic::Diagnostic;
use crate::events::RunId;
use crate::store::{Delivery, Queued, QueuedRun, RunStore};
use crate::timefmt;

/// A branch that does not exist before a push, or no longer after it.
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// A `push` event, as much of it as Loktar reads.
#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: String,
    before: String,
    after: String,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    repository: Repository,
}

/// The repository an event is about.
#[derive(Debug, Deserialize)]
struct Repository {
    full_name: String,
    default_branch: Option<String>,
}

pub(crate) async fn github(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 25 MB, more than GitHub ever sends")
                .into_response();
        }
        Err(rejection) => {
            return Problem::new(rejection.status(), format!("the body cannot be read: {}", rejection.body_text()))
                .into_response();
        }
    };
    match handle(server, &headers, &body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn handle(server: Arc<Server>, headers: &HeaderMap, body: &[u8]) -> Result<Response, Problem> {
    let Some(secret) = &server.webhook_secret else {
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "webhooks are refused: the server has no webhook secret")
            .hint("set `webhook_secret` under `[server]` in the server's loktar.toml"));
    };
    let Some(signed) = header(headers, "x-hub-signature-256") else {
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "the request has no `X-Hub-Signature-256` header")
            .hint("give the webhook a secret in GitHub, the same as the server's `webhook_secret`"));
    };
    if !signature::verify(secret.as_bytes(), body, signed) {
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "`X-Hub-Signature-256` does not sign this body")
            .hint("the webhook's secret in GitHub must be the server's `webhook_secret`"));
    }
    let event = header(headers, "x-github-event")
        .ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "the request has no `X-GitHub-Event` header"))?;
    let delivery = header(headers, "x-github-delivery")
        .filter(|id| !id.is_empty() && id.len() <= 100)
        .ok_or_else(|| Problem::new(StatusCode::BAD_REQUEST, "the request has no `X-GitHub-Delivery` header"))?;
    let delivery = Delivery {
        id: delivery.to_string(),
        event: event.to_string(),
        received_ms: timefmt::unix_millis(std::time::SystemTime::now()),
    };
    match event {
        "ping" => {
            record(&server, delivery).await?;
            Ok((StatusCode::OK, Json(json!({ "message": "pong" }))).into_response())
        }
        "push" => push(server, delivery, parse(event, body)?).await,
        _ => Ok((StatusCode::NO_CONTENT, ()).into_response()),
    }
}

/// A push to a branch runs the range it pushed; a deleted branch's runs
/// are cancelled; tags are not built.
async fn push(server: Arc<Server>, delivery: Delivery, push: Push) -> Result<Response, Problem> {
    let repository = push.repository.full_name.clone();
    let Some(configured) = server.settings.repositories.get(&repository) else {
        return Err(not_configured(&repository));
    };
    let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
        record(&server, delivery).await?;
        let reason = format!("`{}` is not a branch: only pushes to branches are built", push.reference);
        return Ok((StatusCode::OK, Json(json!({ "ignored": reason }))).into_response());
    };
    if push.deleted {
        if !record(&server, delivery).await? {
            return Ok(duplicate(None));
        }
        let reason = format!("branch `{branch}` was deleted");
        let cancelled = supersede(&server, &repository, branch, i64::MAX, None, &reason).await?;
        return Ok((StatusCode::OK, Json(json!({ "cancelled": cancelled }))).into_response());
    }
    for (field, commit) in [("after", &push.after), ("before", &push.before)] {
        if !crate::scm::is_full_hash(commit) {
            return Err(Problem::new(StatusCode::BAD_REQUEST, format!("`{field}` is not a commit hash: `{commit}`")));
        }
    }
    // A new branch is compared with the default branch, from where they part.
    let base = (!push.created && push.before != NO_COMMIT).then(|| push.before.clone());
    let id = RunId::new(uuid::Uuid::now_v7().to_string());
    let queued = QueuedRun {
        id: id.clone(),
        received_ms: delivery.received_ms,
        selection: "changes".to_string(),
        repository: repository.clone(),
        trigger: "push".to_string(),
        branch: Some(branch.to_string()),
        pull_request: None,
        head: Some(push.after.clone()),
        base: base.clone(),
        delivery: Some(delivery),
    };
    let accepted = Accepted {
        number: 0,
        id: id.clone(),
        repository,
        clone_url: configured.clone_url.clone(),
        branch: Some(branch.to_string()),
        head: push.after,
        base,
        default_branch: push.repository.default_branch,
        cancel: CancellationToken::new(),
    };
    // Recorded and handed to the background in a task of its own: a caller
    // that hangs up half-way cannot leave a recorded run that never starts.
    let accepting = tokio::spawn(accept(server, queued, accepted));
    match accepting.await {
        Ok(Ok(number)) => Ok((StatusCode::ACCEPTED, Json(json!({ "run": number, "id": id.as_str() }))).into_response()),
        Ok(Err(answer)) => answer,
        Err(e) => Err(Problem::internal(Diagnostic::new(format!("internal error: accepting the run failed: {e}")))),
    }
}

/// Records the run and starts it in the background; `Err` with the answer
/// when it is not started (a delivery received before).
async fn accept(
    server: Arc<Server>,
    queued: QueuedRun,
    mut accepted: Accepted,
) -> Result<i64, Result<Response, Problem>> {
    let number = match store_call(&server, move |store| store.queue_run(&queued)).await.map_err(Err)? {
        Queued::Duplicate { run } => return Err(Ok(duplicate(run))),
        Queued::New { run } => run,
    };
    accepted.number = number;
    if let Some(branch) = accepted.branch.clone() {
        let short = accepted.head.get(..10).unwrap_or(&accepted.head).to_string();
        let reason = format!("superseded by `{short}`");
        let active = Active {
            repository: accepted.repository.clone(),
            branch: Some(branch.clone()),
            cancel: accepted.cancel.clone(),
        };
        supersede(&server, &accepted.repository.clone(), &branch, number, Some(active), &reason).await.map_err(Err)?;
    }
    server.tasks.spawn(runner::run(server.clone(), accepted));
    Ok(number)
}

/// Under one lock: cancels the unfinished runs of a branch numbered below
/// `number` (when `[server] cancel_superseded`, or always for `number` =
/// `i64::MAX`: a deleted branch) and registers `newer` as running; then
/// records why the older ones end. Returns the cancelled runs' numbers.
async fn supersede(
    server: &Arc<Server>,
    repository: &str,
    branch: &str,
    number: i64,
    newer: Option<Active>,
    reason: &str,
) -> Result<Vec<i64>, Problem> {
    let cancelled: Vec<i64> = {
        let mut active = server.active();
        let cancelling = newer.is_none() || server.settings.cancel_superseded;
        let older: Vec<i64> = active
            .iter()
            .filter(|(other, run)| {
                cancelling && **other < number && run.repository == repository && run.branch.as_deref() == Some(branch)
            })
            .map(|(other, run)| {
                run.cancel.cancel();
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
fn duplicate(run: Option<i64>) -> Response {
    (StatusCode::OK, Json(json!({ "duplicate": true, "run": run }))).into_response()
}

/// Records a delivery that starts no run; whether it is new.
async fn record(server: &Arc<Server>, delivery: Delivery) -> Result<bool, Problem> {
    store_call(server, move |store| store.record_delivery(&delivery)).await
}

/// Runs `call` on the run store; its failure is the server's.
async fn store_call<T: Send + 'static>(
    server: &Arc<Server>,
    call: impl FnOnce(&RunStore) -> Result<T, Diagnostic> + Send + 'static,
) -> Result<T, Problem> {
    server.with_store(call).await.map_err(Problem::internal)
}

fn parse<T: serde::de::DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, format!("the body is not a `{event}` event: {e}"))
            .hint("send the payload as `application/json` (the webhook's content type in GitHub)")
    })
}

fn not_configured(repository: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("repository `{repository}` is not built by this server"))
        .hint(format!("add `[server.repositories.\"{repository}\"]` with its `clone_url` to the server's loktar.toml"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
