//! The API's write routes — start a run, cancel one, run one again — each
//! refused without `Authorization: Bearer <token>`, a token of `[server]
//! api_tokens`. A run started here is never superseded by a push.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Server;
use super::api::{authorized, find_run};
use super::intake::{self, Subject, Wanted};
use super::problem::Problem;
use super::webhooks::not_configured;
use crate::app::RunSelection;

/// The body of `POST /api/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trigger {
    /// `owner/repo`, one of `[server.repositories]`.
    repository: String,
    /// The branch whose head runs…
    branch: Option<String>,
    /// …or a commit (full hash).
    commit: Option<String>,
    /// `"all"`, or package names; without it, the packages the head's changes affect.
    packages: Option<Value>,
}

/// `POST /api/runs`: a run of a branch's head or of a commit.
pub(crate) async fn trigger(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Result<Json<Trigger>, JsonRejection>,
) -> Result<Response, Problem> {
    authorized(&server, &headers)?;
    let Json(trigger) = body.map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, format!("the body is not a run to start: {}", e.body_text()))
            .hint(r#"send JSON: {"repository": "owner/repo", "branch": "main"} (or "commit"; optionally "packages")"#)
    })?;
    let head = match (&trigger.branch, &trigger.commit) {
        (Some(branch), None) if is_branch_name(branch) => format!("refs/heads/{branch}"),
        (None, Some(commit)) if crate::scm::is_full_hash(commit) => commit.clone(),
        (Some(branch), None) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, format!("`{branch}` is not a branch name")));
        }
        (None, Some(commit)) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, format!("`{commit}` is not a full commit hash")));
        }
        _ => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "give either `branch` or `commit`")
                .hint(r#"{"repository": "owner/repo", "branch": "main"}"#));
        }
    };
    let selection = match &trigger.packages {
        None => RunSelection::Changes,
        Some(Value::String(all)) if all == "all" => RunSelection::All,
        Some(Value::Array(names)) if !names.is_empty() && names.iter().all(Value::is_string) => {
            let names = names.iter().filter_map(Value::as_str).map(str::to_string).collect();
            RunSelection::Packages { names, with_dependencies: false }
        }
        Some(other) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, format!("`packages` is `{other}`"))
                .hint(r#"give `"all"` or a list of package names: ["pet_api", "webfront"]"#));
        }
    };
    let wanted = Wanted {
        repository: trigger.repository,
        branch: trigger.branch,
        pull_request: None,
        head,
        base: None,
        default_branch: None,
        selection,
    };
    start_manual(&server, "api", wanted).await
}

/// The body of `POST /api/runs/{id}/rerun`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rerun {
    /// `failed` (default): the packages that did not pass; `all`: every package of the run.
    packages: Option<String>,
}

/// `POST /api/runs/{id}/rerun`: the same commit again, its failed packages or all of them.
pub(crate) async fn rerun(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    authorized(&server, &headers)?;
    let rerun: Rerun = if body.iter().all(u8::is_ascii_whitespace) {
        Rerun::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST, format!("the body is not a rerun: {e}"))
                .hint(r#"send nothing, or {"packages": "failed"} or {"packages": "all"}"#)
        })?
    };
    let which = rerun.packages.unwrap_or_else(|| "failed".to_string());
    let (run, _) = find_run(&server, &id).await?;
    if run.is_unfinished() {
        return Err(Problem::new(StatusCode::CONFLICT, format!("run {} has not ended", run.id))
            .hint(format!("cancel it first: `POST /api/runs/{}/cancel`", run.id)));
    }
    let (Some(repository), Some(head)) = (run.repository.clone(), run.head.clone()) else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("run {} has no repository and commit to run again", run.id),
        ));
    };
    let all = match which.as_str() {
        "all" => true,
        "failed" => false,
        other => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, format!("`packages` is `{other}`"))
                .hint("give `failed` or `all`"));
        }
    };
    let number = run.id;
    let outcomes = intake::store_call(&server, move |store| store.package_outcomes(number)).await?;
    let names: Vec<String> =
        outcomes.into_iter().filter(|(_, status)| all || status != "passed").map(|(name, _)| name).collect();
    if names.is_empty() {
        return Err(Problem::new(StatusCode::CONFLICT, format!("run {} has no package to run again", run.id))
            .hint("`{\"packages\": \"all\"}` runs every package of it again"));
    }
    let wanted = Wanted {
        repository,
        branch: run.branch,
        pull_request: run.pull_request.and_then(|n| u64::try_from(n).ok()),
        head,
        base: None,
        default_branch: None,
        selection: RunSelection::Packages { names, with_dependencies: false },
    };
    start_manual(&server, "rerun", wanted).await
}

/// Why a run cancelled through the API ended.
const REASON: &str = "cancelled through the API";

/// `POST /api/runs/{id}/cancel`: cancels a run that has not ended (its clean-up still runs).
pub(crate) async fn cancel(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    authorized(&server, &headers)?;
    let (run, _) = find_run(&server, &id).await?;
    // The record says first whether it has ended: the run leaves the active ones a moment later.
    let running = run.is_unfinished();
    let control = server.active().get(&run.id).filter(|_| running).map(|active| active.control.clone());
    let Some(control) = control else {
        return Err(Problem::new(StatusCode::CONFLICT, format!("run {} has ended: {}", run.id, run.status)));
    };
    let number = run.id;
    intake::store_call(&server, move |store| store.set_reason(number, REASON)).await?;
    control.interrupt(Some(REASON));
    Ok((StatusCode::ACCEPTED, Json(json!({ "cancelled": number }))).into_response())
}

/// Starts a run someone asked for.
async fn start_manual(server: &Arc<Server>, trigger: &str, wanted: Wanted) -> Result<Response, Problem> {
    if !server.settings.repositories.contains_key(&wanted.repository) {
        return Err(not_configured(&wanted.repository));
    }
    intake::start(server, trigger, wanted, None, Subject::Manual).await
}

/// Whether `name` can be a branch: no option to git, no range, no control characters.
fn is_branch_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '/'])
        && !name.contains("..")
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
}
