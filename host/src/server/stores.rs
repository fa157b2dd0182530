//! The storage proxy's side for executors elsewhere: `PUT
//! /api/stores/{store}/{*key}` writes the body as an object into the
//! server's store `store` of the job's repository, and `GET` on the same
//! path describes the object there (404: none) — what a storage plugin on
//! an executor without that store's credentials does through it. Each
//! request carries the job's own token (`Authorization: Bearer`), handed to
//! an executor when it claimed the job: good only while that attempt is
//! the job's current one and the job has not ended, and only for the
//! stores of the job's repository. Answers as JSON: `key`, `size`,
//! `sha256`, `url`. An object is written once: the same content again is
//! taken as it is, another content under its key is refused (`409`). A job
//! writes only to the stores its `store` stage's plugins use, as the
//! server's configuration grants them.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

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
    let key = plain_key(&key)?;
    let too_large = || {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the object is larger than 2 GiB")
            .hint("keep such artifacts in a store the executor has credentials for")
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|length: u64| length > MAX_OBJECT) {
        return Err(too_large());
    }
    // A few at once: each spools to the disk of the data folder.
    let _turn =
        server.uploads.acquire().await.map_err(|_| Problem::internal(Diagnostic::new("the server is stopping")))?;
    let spooled = spool(&server, body, too_large).await?;
    // The job may have ended, or another attempt taken over, while it sent.
    if job_store(&server, &headers, store.0.as_str())
        .map(|(again, _)| again.run != job.run || again.package != job.package)?
    {
        return Err(Problem::new(StatusCode::FORBIDDEN, "the job ended while its object was sent"));
    }
    if let Some(existing) = store.1.head(&key).await.map_err(Problem::internal)? {
        return if existing.sha256.as_deref() == Some(spooled.sha256.as_str()) {
            Ok(described(&existing).into_response())
        } else {
            Err(Problem::new(StatusCode::CONFLICT, format!("`{key}` is already stored with other content"))
                .hint("a stored object is never overwritten: give the package a new version"))
        };
    }
    let info = store.1.put(&key, spooled.file).await.map_err(Problem::internal)?;
    tracing::info!(run = %job.run, package = %job.package, key = %info.key, size = info.size, "stored through the proxy");
    Ok((StatusCode::CREATED, described(&info)).into_response())
}

/// An upload kept in a file of the data folder (gone once closed), and its SHA-256.
struct Spooled {
    file: std::fs::File,
    sha256: String,
}

/// Spools `body`: the stores take a file, and a body cut short never reaches them.
async fn spool(server: &Server, body: Body, too_large: impl Fn() -> Problem) -> Result<Spooled, Problem> {
    let failed = |e: std::io::Error| Problem::internal(Diagnostic::new(format!("cannot spool the upload: {e}")));
    let file = tempfile::tempfile_in(server.data_dir()).map_err(failed)?;
    let mut writer = std::io::BufWriter::new(file);
    let mut digest = Sha256::new();
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")))?;
        written += chunk.len() as u64;
        if written > MAX_OBJECT {
            return Err(too_large());
        }
        digest.update(&chunk);
        // Small writes into a buffer: the disk is met a buffer at a time.
        writer.write_all(&chunk).map_err(failed)?;
    }
    let mut file = writer.into_inner().map_err(|e| failed(e.into_error()))?;
    std::io::Seek::rewind(&mut file).map_err(failed)?;
    Ok(Spooled { file, sha256: hex::encode(digest.finalize()) })
}

/// `GET /api/stores/{store}/{*key}`: the object's description, or 404.
pub(crate) async fn describe(
    State(server): State<Arc<Server>>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (_, (_, store)) = job_store(&server, &headers, &store)?;
    let key = plain_key(&key)?;
    match store.head(&key).await.map_err(Problem::internal)? {
        Some(info) => Ok(described(&info).into_response()),
        None => Err(Problem::new(StatusCode::NOT_FOUND, format!("no object `{key}`"))),
    }
}

/// `key`, when it stays in the store (else 400, not the store's own refusal).
fn plain_key(key: &str) -> Result<String, Problem> {
    checked_key(key).map(str::to_string).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.message))
}

fn described(info: &ObjectInfo) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "key": info.key, "size": info.size, "sha256": info.sha256, "url": info.url }))
}

/// The job the request's token was given to, and its repository's store `name`.
fn job_store(
    server: &Server,
    headers: &HeaderMap,
    name: &str,
) -> Result<(StoreJob, (String, Arc<ObjectStore>)), Problem> {
    let token = bearer(headers).ok_or_else(|| {
        Problem::new(StatusCode::UNAUTHORIZED, "this route needs a job's token")
            .hint("it is for executors: the token comes with the job they claimed")
    })?;
    let job = server.runs.store_job(token).ok_or_else(|| {
        Problem::new(StatusCode::FORBIDDEN, "the token is not that of a running job's current attempt")
            .hint("a job's token ends with its attempt: the job ended, or another executor took it over")
    })?;
    let stores = server.artifact_stores.as_ref().map_err(|problem| Problem::internal(problem.clone()))?;
    if !stores.may_write(&job.storage, name) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!("package `{}` does not store into `{name}`", job.package),
        )
        .hint("a job writes only to the stores of its `store` stage's plugins"));
    }
    let store = stores.store(&job.repository, name).ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, format!("the server has no store `{name}`"))
            .hint(format!("configure `[stores.{name}]` in the server's loktar.toml, or in the executor's"))
    })?;
    Ok((job, (name.to_string(), store)))
}
