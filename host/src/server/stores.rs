//! The storage proxy's side for executors elsewhere: `PUT
//! /api/stores/{store}/{*key}` writes the body as an object into the
//! server's store `store` of the job's repository, and `GET` on the same
//! path describes the object there (404: none) — what a storage plugin on
//! an executor without that store's credentials does through it. Each
//! request carries the job's own token (`Authorization: Bearer`), handed to
//! an executor when it claimed the job: good only while that attempt is
//! the job's current one and the job has not ended, and only for the
//! stores of the job's repository. Answers as JSON: `key`, `size`,
//! `sha256`, `url`.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::Server;
use super::api::bearer;
use super::problem::Problem;
use crate::diagnostic::Diagnostic;
use crate::objects::{ObjectInfo, ObjectStore, checked_key};
use crate::pipeline::handed::StoreJob;

/// The largest object an executor may send through the proxy.
const MAX_OBJECT: u64 = 2 * 1024 * 1024 * 1024;

/// `PUT /api/stores/{store}/{*key}`: keeps the body as `key` in `store`.
pub(crate) async fn put(
    State(server): State<Arc<Server>>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let (job, store) = job_store(&server, &headers, &store)?;
    let key = checked_key(&key).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.message))?.to_string();
    // Spooled to a file of the data folder first (gone when closed): the stores
    // take a file, and a body cut short never reaches them.
    let spool = tempfile::tempfile_in(server.data_dir())
        .map_err(|e| Problem::internal(Diagnostic::new(format!("cannot spool the upload: {e}"))))?;
    let mut writer = std::io::BufWriter::new(spool);
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")))?;
        written += chunk.len() as u64;
        if written > MAX_OBJECT {
            return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the object is larger than 2 GiB")
                .hint("keep such artifacts in a store the executor has credentials for"));
        }
        writer
            .write_all(&chunk)
            .map_err(|e| Problem::internal(Diagnostic::new(format!("cannot spool the upload: {e}"))))?;
    }
    let mut file =
        writer.into_inner().map_err(|e| Problem::internal(Diagnostic::new(format!("cannot spool the upload: {e}"))))?;
    std::io::Seek::rewind(&mut file)
        .map_err(|e| Problem::internal(Diagnostic::new(format!("cannot spool the upload: {e}"))))?;
    let info = store.put(&key, file).await.map_err(Problem::internal)?;
    tracing::info!(run = %job.run, package = %job.package, key = %info.key, size = info.size, "stored through the proxy");
    Ok((StatusCode::CREATED, described(&info)).into_response())
}

/// `GET /api/stores/{store}/{*key}`: the object's description, or 404.
pub(crate) async fn describe(
    State(server): State<Arc<Server>>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (_, store) = job_store(&server, &headers, &store)?;
    let key = checked_key(&key).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.message))?.to_string();
    match store.head(&key).await.map_err(Problem::internal)? {
        Some(info) => Ok(described(&info).into_response()),
        None => Err(Problem::new(StatusCode::NOT_FOUND, format!("no object `{key}`"))),
    }
}

fn described(info: &ObjectInfo) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "key": info.key, "size": info.size, "sha256": info.sha256, "url": info.url }))
}

/// The job the request's token was given to, and its repository's store `name`.
fn job_store(server: &Server, headers: &HeaderMap, name: &str) -> Result<(StoreJob, Arc<ObjectStore>), Problem> {
    let token = bearer(headers).ok_or_else(|| {
        Problem::new(StatusCode::UNAUTHORIZED, "this route needs a job's token")
            .hint("it is for executors: the token comes with the job they claimed")
    })?;
    let job = server.runs.store_job(token).ok_or_else(|| {
        Problem::new(StatusCode::FORBIDDEN, "the token is not that of a running job's current attempt")
            .hint("a job's token ends with its attempt: the job ended, or another executor took it over")
    })?;
    let stores = server.artifact_stores.as_ref().map_err(|problem| Problem::internal(problem.clone()))?;
    let store = stores.store(&job.repository, name).ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, format!("the server has no store `{name}`"))
            .hint(format!("configure `[stores.{name}]` in the server's loktar.toml, or in the executor's"))
    })?;
    Ok((job, store))
}
