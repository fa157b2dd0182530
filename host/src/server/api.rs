//! The REST API's read routes (JSON): the server's health, its runs
//! (newest first, filtered and paginated), one run with its packages'
//! stages, and a stage's log. Readable without a token unless `[server]
//! public_read = false`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Server;
use super::problem::Problem;
use crate::store::{RunFilter, RunRow, StageRow};

/// The most runs one page lists.
const MAX_PAGE: usize = 200;

/// `GET /api/health`.
pub(crate) async fn health(State(server): State<Arc<Server>>) -> Response {
    let active = server.active().len();
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "active_runs": active })).into_response()
}

/// The query of `GET /api/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    repository: Option<String>,
    branch: Option<String>,
    pull_request: Option<u32>,
    status: Option<String>,
    limit: Option<usize>,
    before: Option<i64>,
}

/// `GET /api/runs`: `{"runs": [...], "next": <before of the next page>}`.
pub(crate) async fn runs(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    may_read(&server, &headers)?;
    let Query(query) = query.map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, format!("bad query: {}", e.body_text()))
            .hint("filters: repository, branch, pull_request, status, limit, before")
    })?;
    let limit = query.limit.unwrap_or(20).clamp(1, MAX_PAGE);
    let filter = RunFilter {
        repository: query.repository,
        branch: query.branch,
        pull_request: query.pull_request.map(u64::from),
        status: query.status,
        before: query.before,
        limit,
    };
    let rows = server.with_store(move |store| store.find_runs(&filter)).await.map_err(Problem::internal)?;
    let next = if rows.len() == limit { rows.last().map(|run| run.id) } else { None };
    Ok(Json(json!({ "runs": rows.iter().map(run_json).collect::<Vec<_>>(), "next": next })).into_response())
}

/// `GET /api/runs/{id}`: the run and, per package, its stages.
pub(crate) async fn run(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    may_read(&server, &headers)?;
    let (run, rows) = find_run(&server, &id).await?;
    let mut packages: Vec<Value> = Vec::new();
    for row in &rows {
        if packages.last().is_none_or(|last| last["name"] != row.package.as_str()) {
            packages.push(json!({ "name": row.package, "stages": [] }));
        }
        let Some(stages) = packages.last_mut().and_then(|last| last["stages"].as_array_mut()) else { continue };
        match &row.stage {
            Some(stage) => stages.push(json!({
                "stage": stage,
                "status": row.status,
                "detail": row.detail,
                "duration_ms": row.duration_ms,
                "log": row.log.as_ref().map(|_| format!("/api/runs/{}/packages/{}/stages/{stage}/log", run.id, row.package)),
            })),
            // A package that never ran a stage: its outcome is the package's.
            None => {
                if let Some(last) = packages.last_mut() {
                    last["status"] = row.status.clone().into();
                    last["detail"] = row.detail.clone().into();
                }
            }
        }
    }
    for package in &mut packages {
        if package.get("status").is_none() {
            package["status"] = package_status(&package["stages"]).into();
        }
    }
    Ok(Json(json!({ "run": run_json(&run), "packages": packages })).into_response())
}

/// `GET /api/runs/{id}/packages/{package}/stages/{stage}/log`: the log as plain text.
pub(crate) async fn log(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path((id, package, stage)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    may_read(&server, &headers)?;
    let (run, rows) = find_run(&server, &id).await?;
    // Only a path the store recorded for this very stage is ever read.
    let path = rows
        .iter()
        .find(|row| row.package == package && row.stage.as_deref() == Some(stage.as_str()))
        .and_then(|row| row.log.clone())
        .ok_or_else(|| {
            Problem::new(StatusCode::NOT_FOUND, format!("run {} has no log of stage `{stage}` of `{package}`", run.id))
        })?;
    let text = tokio::fs::read(&path).await.map_err(|e| {
        Problem::new(StatusCode::NOT_FOUND, format!("the log of `{package}` `{stage}` cannot be read: {e}"))
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The run numbered `id`, with its rows; `404` when there is none.
async fn find_run(server: &Arc<Server>, id: &str) -> Result<(RunRow, Vec<StageRow>), Problem> {
    let number: i64 = id.parse().map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, format!("`{id}` is not a run number")).hint("`GET /api/runs` lists them")
    })?;
    server.with_store(move |store| store.run(number)).await.map_err(Problem::internal)?.ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, format!("no run {number}")).hint("`GET /api/runs` lists them")
    })
}

/// A run as the API shows it.
fn run_json(run: &RunRow) -> Value {
    json!({
        "id": run.id,
        "uuid": run.uuid,
        "repository": run.repository,
        "trigger": run.trigger,
        "branch": run.branch,
        "pull_request": run.pull_request,
        "head": run.head,
        "base": run.base,
        "status": run.status,
        "reason": run.reason,
        "started_ms": run.started_ms,
        "duration_ms": run.duration_ms,
        "packages": run.packages,
        "failed": run.failed,
    })
}

/// A package's outcome from its stages: the first that did not pass or skip, else `passed`.
fn package_status(stages: &Value) -> String {
    let statuses = stages.as_array().into_iter().flatten().filter_map(|stage| stage["status"].as_str());
    statuses
        .map(str::to_string)
        .find(|status| status != "passed" && status != "skipped")
        .unwrap_or_else(|| "passed".to_string())
}

/// Refuses a read without a valid token when `public_read = false`.
fn may_read(server: &Server, headers: &HeaderMap) -> Result<(), Problem> {
    if server.settings.public_read {
        return Ok(());
    }
    authorized(server, headers)
}

/// Refuses a request without `Authorization: Bearer <one of the API tokens>`.
pub(crate) fn authorized(server: &Server, headers: &HeaderMap) -> Result<(), Problem> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem::new(StatusCode::UNAUTHORIZED, "this route needs an API token")
                .hint("send `Authorization: Bearer <token>`, a token of `api_tokens` under `[server]`")
        })?;
    // Digests compared, so that the time taken says nothing about the tokens.
    let digest = Sha256::digest(given.as_bytes());
    if server.api_tokens.iter().any(|token| Sha256::digest(token.as_bytes()) == digest) {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::UNAUTHORIZED, "the API token is not valid")
            .hint("use a token of `api_tokens` under `[server]`"))
    }
}
