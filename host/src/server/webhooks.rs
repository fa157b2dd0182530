//! `POST /hooks/github`: GitHub's webhooks, verified before anything else
//! (`401` and nothing done when the signature is missing or wrong),
//! recorded before they are answered, and answered at once — the run is
//! planned and executed in the background ([`super::runner`]).
//!
//! A delivery (`X-GitHub-Delivery`) starts at most one run however often
//! GitHub sends it: the run store keeps each delivery's id. Pushes to
//! branches and pull requests opened, pushed to or reopened start runs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::intake::{self, Subject, Wanted};
use super::problem::Problem;
use super::{Server, collisions, metrics, signature};
use crate::app::RunSelection;
use crate::store::Delivery;
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

/// A `pull_request` event, as much of it as Loktar reads.
#[derive(Debug, Deserialize)]
struct PullRequestEvent {
    action: String,
    number: u64,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct PullRequest {
    head: GitRef,
    base: GitRef,
    /// When it was opened (RFC 3339).
    created_at: Option<String>,
}

/// A branch and the commit it points at.
#[derive(Debug, Deserialize)]
struct GitRef {
    sha: String,
    #[serde(rename = "ref")]
    reference: String,
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
            metrics::count_delivery(&server.deliveries, StatusCode::PAYLOAD_TOO_LARGE);
            return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 25 MB, more than GitHub ever sends")
                .into_response();
        }
        Err(rejection) => {
            return Problem::new(rejection.status(), format!("the body cannot be read: {}", rejection.body_text()))
                .into_response();
        }
    };
    let response = match handle(server.clone(), &headers, &body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    };
    metrics::count_delivery(&server.deliveries, response.status());
    response
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
        "pull_request" => pull_request(server, delivery, parse(event, body)?).await,
        _ => Ok((StatusCode::NO_CONTENT, ()).into_response()),
    }
}

/// A push to a branch runs the range it pushed; a deleted branch's runs
/// are cancelled; tags are not built.
async fn push(server: Arc<Server>, delivery: Delivery, push: Push) -> Result<Response, Problem> {
    let repository = push.repository.full_name.clone();
    if !server.settings.repositories.contains_key(&repository) {
        return Err(not_configured(&repository));
    }
    let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
        record(&server, delivery).await?;
        let reason = format!("`{}` is not a branch: only pushes to branches are built", push.reference);
        return Ok((StatusCode::OK, Json(json!({ "ignored": reason }))).into_response());
    };
    let subject = Subject::Branch(branch.to_string());
    if push.deleted {
        if !record(&server, delivery).await? {
            return Ok(intake::duplicate(None));
        }
        let reason = format!("branch `{branch}` was deleted");
        let cancelled = intake::cancel_older(&server, &repository, &subject, i64::MAX, None, &reason).await?;
        return Ok((StatusCode::OK, Json(json!({ "cancelled": cancelled }))).into_response());
    }
    commit_hash("after", &push.after)?;
    commit_hash("before", &push.before)?;
    // A new branch is compared with the default branch, from where they part.
    let base = (!push.created && push.before != NO_COMMIT).then(|| push.before.clone());
    let wanted = Wanted {
        repository,
        branch: Some(branch.to_string()),
        pull_request: None,
        head: push.after,
        base,
        default_branch: push.repository.default_branch,
        selection: RunSelection::Changes,
    };
    intake::start(&server, "push", wanted, Some(delivery), subject).await
}

/// A pull request opened, pushed to or reopened runs its change set, as
/// `loktar run --github-pr` reads it; a closed one's runs are cancelled.
async fn pull_request(server: Arc<Server>, delivery: Delivery, event: PullRequestEvent) -> Result<Response, Problem> {
    let repository = event.repository.full_name.clone();
    if !server.settings.repositories.contains_key(&repository) {
        return Err(not_configured(&repository));
    }
    let number = event.number;
    let subject = Subject::PullRequest(number);
    match event.action.as_str() {
        "opened" | "synchronize" | "reopened" => {}
        "closed" => {
            if !record(&server, delivery).await? {
                return Ok(intake::duplicate(None));
            }
            collisions::closed(&server, &repository, number).await;
            let reason = format!("pull request #{number} was closed");
            let cancelled = intake::cancel_older(&server, &repository, &subject, i64::MAX, None, &reason).await?;
            return Ok((StatusCode::OK, Json(json!({ "cancelled": cancelled }))).into_response());
        }
        other => {
            record(&server, delivery).await?;
            let reason = format!("pull request action `{other}` starts no run");
            return Ok((StatusCode::OK, Json(json!({ "ignored": reason }))).into_response());
        }
    }
    let (head, base) = (&event.pull_request.head, &event.pull_request.base);
    commit_hash("pull_request.head.sha", &head.sha)?;
    commit_hash("pull_request.base.sha", &base.sha)?;
    collisions::opened(&server, &repository, number, &head.sha, event.pull_request.created_at.as_deref()).await;
    let wanted = Wanted {
        repository,
        branch: Some(head.reference.clone()),
        pull_request: Some(number),
        head: head.sha.clone(),
        base: Some(base.sha.clone()),
        default_branch: Some(base.reference.clone()),
        selection: RunSelection::Changes,
    };
    intake::start(&server, "pull_request", wanted, Some(delivery), subject).await
}

/// Refuses a value that is not a full commit hash (nothing else reaches git).
fn commit_hash(field: &str, value: &str) -> Result<(), Problem> {
    if crate::scm::is_full_hash(value) {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::BAD_REQUEST, format!("`{field}` is not a commit hash: `{value}`")))
    }
}

/// Records a delivery that starts no run; whether it is new.
async fn record(server: &Arc<Server>, delivery: Delivery) -> Result<bool, Problem> {
    intake::store_call(server, move |store| store.record_delivery(&delivery)).await
}

fn parse<T: serde::de::DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, format!("the body is not a `{event}` event: {e}"))
            .hint("send the payload as `application/json` (the webhook's content type in GitHub)")
    })
}

pub(crate) fn not_configured(repository: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("repository `{repository}` is not built by this server"))
        .hint(format!("add `[server.repositories.\"{repository}\"]` with its `clone_url` to the server's loktar.toml"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}
