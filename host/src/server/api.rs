//! The REST API's read routes (JSON): the server's health, its runs
//! (newest first, filtered and paginated), one run with its packages'
//! stages, a run's events (server-sent events) and a stage's log.
//! Readable without a token unless `[server] public_read = false`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::Server;
use super::follow::{self, Until};
use super::intake::store_call;
use super::problem::Problem;
use crate::events::journal::JOURNAL;
use crate::events::{EventKind, RunEvent};
use crate::pipeline::plan::log_path;
use crate::pipeline::stage::Stage;
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
    let Query(query) = query
        .map_err(|e| Problem::bad_query(&e, "filters: repository, branch, pull_request, status, limit, before"))?;
    let limit = query.limit.unwrap_or(20).clamp(1, MAX_PAGE);
    let filter = RunFilter {
        repository: query.repository,
        branch: query.branch,
        pull_request: query.pull_request.map(u64::from),
        status: query.status,
        before: query.before,
        limit,
    };
    let rows = store_call(&server, move |store| store.find_runs(&filter)).await?;
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
    let number = run.id;
    let outcomes = store_call(&server, move |store| store.package_outcomes(number)).await?;
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
    // A package's outcome is what its record says once it has one; until then it runs.
    let running = run.is_unfinished();
    for package in &mut packages {
        if package.get("status").is_some() {
            continue;
        }
        let recorded =
            outcomes.iter().find(|(name, _)| package["name"] == name.as_str()).map(|(_, status)| status.clone());
        package["status"] = match recorded {
            Some(status) => status,
            None if running => "running".to_string(),
            None => package_status(&package["stages"]),
        }
        .into();
    }
    // Packages whose job waits for an executor, and why.
    if running && let Some(uuid) = &run.uuid {
        for waiting in server.executors.queue().waiting(&crate::events::RunId::new(uuid)).await {
            let name = &*waiting.job.package;
            let at = match packages.iter().position(|p| p["name"] == name) {
                Some(at) => at,
                None => {
                    packages.push(json!({ "name": name, "stages": [] }));
                    packages.len() - 1
                }
            };
            // What it stored before (a resumed run) stays.
            packages[at]["status"] = json!("waiting");
            packages[at]["detail"] = json!(waiting.reason);
            packages[at]["queue"] = json!(waiting.queue);
        }
    }
    // What the plan said of each package and what each stored, from the run's journal.
    if let Ok(dir) = run_dir(&server, &run) {
        let journal = tokio::fs::read_to_string(dir.join(JOURNAL)).await.unwrap_or_default();
        add_from_journal(&mut packages, &journal, run.repository.as_deref());
    }
    Ok(Json(json!({ "run": run_json(&run), "packages": packages })).into_response())
}

/// Adds to each package what the run's journal says of it: why it is in
/// the run and what it waited for (`run_started`), and its artifacts
/// (its last `package_finished`: a resumed run appends), each with a link
/// through the storage proxy when it was stored.
fn add_from_journal(packages: &mut [Value], journal: &str, repository: Option<&str>) {
    let events = journal.lines().filter_map(|line| serde_json::from_str::<RunEvent>(line).ok());
    for event in events {
        match event.kind {
            EventKind::RunStarted { packages: planned, .. } => {
                for plan in planned {
                    if let Some(package) = packages.iter_mut().find(|p| p["name"] == *plan.name) {
                        package["depends_on"] = json!(plan.depends_on);
                        package["changed_files"] = json!(plan.changed_files);
                        package["because_of"] = json!(plan.because_of);
                    }
                }
            }
            EventKind::PackageFinished { package: name, artifacts, .. } => {
                if let Some(package) = packages.iter_mut().find(|p| p["name"] == *name) {
                    let shown: Vec<Value> = artifacts
                        .iter()
                        .map(|artifact| {
                            let mut shown = json!(artifact);
                            shown["download"] = json!(super::artifacts::download_link(artifact, repository));
                            shown
                        })
                        .collect();
                    package["artifacts"] = json!(shown);
                }
            }
            _ => {}
        }
    }
}

/// The query of a stage's log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    /// Stream the log as it is written, until the stage ends.
    #[serde(default)]
    follow: bool,
}

/// `GET /api/runs/{id}/packages/{package}/stages/{stage}/log`: the log as
/// plain text — with `Range`, or with `?follow=true` as it is written.
pub(crate) async fn log(
    State(server): State<Arc<Server>>,
    Path((id, package, stage)): Path<(String, String, String)>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, Problem> {
    may_read(&server, request.headers())?;
    let Query(query) = query.map_err(|e| Problem::bad_query(&e, "`?follow=true`"))?;
    let Some(stage) = Stage::from_name(&stage) else {
        return Err(Problem::new(StatusCode::NOT_FOUND, format!("`{stage}` is not a stage"))
            .hint("stages: test, build, publish, store, notify"));
    };
    let (run, _) = find_run(&server, &id).await?;
    // The same path the run wrote: one folder below the run's, whatever the name holds.
    let path = log_path(&run_dir(&server, &run)?, &package, stage);
    let exists = tokio::fs::try_exists(&path).await.unwrap_or(false);
    if query.follow {
        let until = Until::StageEnds(run.id, package.clone(), stage);
        if !exists && until.reached(&server).await {
            return Err(no_log(run.id, &package, stage));
        }
        let body =
            Body::from_stream(follow::chunks(server.clone(), path, until).map(Ok::<_, std::convert::Infallible>));
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
    }
    if !exists {
        return Err(
            no_log(run.id, &package, stage).hint("a stage has a log once it has started; `?follow=true` waits for it")
        );
    }
    // `Range`, `If-Modified-Since` and `HEAD` as the HTTP specification says.
    let mut response = ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(|e| {
            Problem::internal(crate::diagnostic::Diagnostic::new(format!("cannot serve `{}`: {e}", path.display())))
        })?
        .map(Body::new);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}

/// `GET /api/runs/{id}/events`: the run's events as server-sent events,
/// from the beginning or after `Last-Event-ID`, live until the run ends.
pub(crate) async fn events(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    may_read(&server, &headers)?;
    let after: Option<u64> =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    let (run, _) = find_run(&server, &id).await?;
    let path = run_dir(&server, &run)?.join(JOURNAL);
    // Each event's id is its line in the journal, which only grows (a resumed run appends to it).
    let events = follow::lines(server.clone(), path, Until::RunEnds(run.id)).filter_map(move |(index, line)| {
        let event =
            after.is_none_or(|after| index > after).then(|| serde_json::from_str::<Value>(&line).ok()).flatten().map(
                |event| {
                    let kind = event["event"].as_str().unwrap_or("event").to_string();
                    Ok::<_, std::convert::Infallible>(SseEvent::default().id(index.to_string()).event(kind).data(line))
                },
            );
        std::future::ready(event)
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

fn no_log(run: i64, package: &str, stage: Stage) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("run {run} has no log of `{package}` `{}`", stage.name()))
}

/// The folder of a run: its logs and its events.
fn run_dir(server: &Server, run: &RunRow) -> Result<std::path::PathBuf, Problem> {
    let uuid = run
        .uuid
        .as_deref()
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("run {} has no folder", run.id)))?;
    Ok(server.data_dir().join("runs").join(uuid))
}

/// The run numbered `id`, with its rows; `404` when there is none.
pub(crate) async fn find_run(server: &Arc<Server>, id: &str) -> Result<(RunRow, Vec<StageRow>), Problem> {
    let number: i64 = id.parse().map_err(|_| {
        Problem::new(StatusCode::BAD_REQUEST, format!("`{id}` is not a run number")).hint("`GET /api/runs` lists them")
    })?;
    store_call(server, move |store| store.run(number)).await?.ok_or_else(|| {
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
        "selection": run.selection,
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
pub(crate) fn may_read(server: &Server, headers: &HeaderMap) -> Result<(), Problem> {
    if server.settings.public_read {
        return Ok(());
    }
    authorized(server, headers)
}

/// The token of `Authorization: Bearer <token>`, if the request has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok())?.strip_prefix("Bearer ")
}

/// Refuses a request without `Authorization: Bearer <one of the API tokens>`.
pub(crate) fn authorized(server: &Server, headers: &HeaderMap) -> Result<(), Problem> {
    let given = bearer(headers).ok_or_else(|| {
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
