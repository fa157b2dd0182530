//! The storage proxy: `GET /api/artifacts/{package}/{version}/{file}`
//! streams an artifact from the object store that keeps it, so people and
//! executors without the store's credentials can fetch it.
//!
//! The key is `<package>/<version>/<file>`, as the storage plugins lay
//! artifacts out. The stores looked in are the operator's `[stores]` as
//! the server read them when it started, in name order, for each
//! repository the server builds (in name order, or only
//! `?repository=owner/repo`): an `fs` store the configuration names
//! relative to the repository is that repository's folder in the data
//! folder; other stores (S3, absolute folders) are looked in once. The
//! first that has the key answers. One `Range` is honoured (several: the
//! whole object), and `ETag` with `If-None-Match` and `If-Range`. A part
//! of the path that would leave the store (`..`, an encoded slash) is 400.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Server;
use super::api::may_read;
use super::problem::Problem;
use crate::diagnostic::Diagnostic;
use crate::links::encode_component;
use crate::objects::{ObjectReader, ObjectStore, checked_key};
use crate::settings::{Settings, StoreSettings};

/// The query of `GET /api/artifacts/…`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArtifactQuery {
    /// Only this repository's stores.
    repository: Option<String>,
}

/// `GET /api/artifacts/{package}/{version}/{file}`.
pub(crate) async fn artifact(
    State(server): State<Arc<Server>>,
    method: Method,
    headers: HeaderMap,
    Path((package, version, file)): Path<(String, String, String)>,
    query: Result<Query<ArtifactQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    may_read(&server, &headers)?;
    let Query(query) = query.map_err(|e| Problem::bad_query(&e, "the only filter is `repository=owner/repo`"))?;
    for part in [&package, &version, &file] {
        check_part(part)?;
    }
    let key = format!("{package}/{version}/{file}");
    let repositories: Vec<String> = match query.repository {
        Some(repository) if server.settings.repositories.contains_key(&repository) => vec![repository],
        Some(repository) => {
            return Err(Problem::new(StatusCode::NOT_FOUND, format!("repository `{repository}` is not built here"))
                .hint("`repository` names one of the server's `[server.repositories]`"));
        }
        None => server.settings.repositories.keys().cloned().collect(),
    };
    let Some((store, reader)) = find(&server, repositories, &key).await? else {
        return Err(Problem::new(StatusCode::NOT_FOUND, format!("no store holds `{key}`"))
            .hint("the name and version are the package's, as `GET /api/runs/{id}` lists its stored artifacts"));
    };
    tracing::debug!(%key, %store, "serving an artifact");
    Ok(respond(reader, &headers, method == Method::HEAD).await)
}

/// A part of an artifact's path: one plain name, a key of its own.
fn check_part(part: &str) -> Result<(), Problem> {
    let plain = !part.contains(['/', '\\', '\0']) && checked_key(part).is_ok();
    if plain {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::BAD_REQUEST, format!("`{part}` leaves the store"))
            .hint("each of package, version and file is one plain name, without `..` or slashes"))
    }
}

/// The proxy's path for a stored artifact: when its location (`file://…`
/// or `s3://…`) ends in `<name>/<version>/<file>`, each part a plain name
/// that needs no escaping in a URL.
pub(crate) fn download_link(artifact: &crate::protocol::Artifact, repository: Option<&str>) -> Option<String> {
    let (scheme, path) = artifact.location.split_once("://")?;
    if scheme != "file" && scheme != "s3" {
        return None;
    }
    let mut parts = path.rsplit('/');
    let (file, version, name) = (parts.next()?, parts.next()?, parts.next()?);
    let url_safe = |part: &str| {
        check_part(part).is_ok() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~+-".contains(&b))
    };
    (name == artifact.name && version == artifact.version && [name, version, file].into_iter().all(url_safe)).then(
        || {
            // Its own repository's stores: another repository may keep a package of that name too.
            let query = repository.map(|r| format!("?repository={}", encode_component(r))).unwrap_or_default();
            format!("/api/artifacts/{name}/{version}/{file}{query}")
        },
    )
}

/// The first store, of `repositories`' stores, that holds `key`: its name and the object.
async fn find(
    server: &Arc<Server>,
    repositories: Vec<String>,
    key: &str,
) -> Result<Option<(String, ObjectReader)>, Problem> {
    let stores = server.artifact_stores.as_ref().map_err(|problem| Problem::internal(problem.clone()))?;
    let mut unreachable = None;
    for (name, store) in stores.of(&repositories) {
        match store.open_reader(key).await {
            Ok(Some(reader)) => return Ok(Some((name.clone(), reader))),
            Ok(None) => {}
            Err(problem) => {
                tracing::warn!("{problem}");
                unreachable.get_or_insert(name.clone());
            }
        }
    }
    match unreachable {
        // What is not found may be in the store that did not answer.
        Some(name) => Err(Problem::new(StatusCode::BAD_GATEWAY, format!("store `{name}` did not answer"))
            .hint("the server's log says why; try again once the store is reachable")),
        None => Ok(None),
    }
}

/// The stores the proxy looks in, opened once when the server starts (one
/// client per store, its connections kept): for each repository, the
/// operator's `[stores]` in name order as its runs see them — an `fs` store
/// named relative to the repository is that repository's folder in the
/// data folder; a store every repository sees alike is one and the same.
pub(crate) struct ArtifactStores {
    by_repository: BTreeMap<String, Vec<(String, Arc<ObjectStore>)>>,
    /// Each plugin's `stores` grant besides the store named after it, as the server's configuration says.
    granted: BTreeMap<String, Vec<String>>,
}

impl ArtifactStores {
    /// Opens the stores of `repositories` from the operator's configuration `config`.
    pub(crate) fn open<'a>(
        config: Option<&std::path::Path>,
        data_dir: &std::path::Path,
        repositories: impl Iterator<Item = &'a String>,
    ) -> Result<ArtifactStores, Diagnostic> {
        // A repository root no run has: only store folders named relative to the repository lie below it.
        let root = data_dir.join("work");
        let settings = Settings::load(config, &root)?;
        let secret = |name: &str| settings.secret_value(name);
        let mut opened: Vec<(String, StoreSettings, Arc<ObjectStore>)> = Vec::new();
        let mut by_repository = BTreeMap::new();
        for repository in repositories {
            let mut theirs = settings.clone();
            theirs.rebase_store_folders(&root, &super::store_root(data_dir, repository));
            let mut stores = Vec::new();
            for (name, store) in theirs.stores {
                let same = opened.iter().find(|(seen, settings, _)| *seen == name && *settings == store);
                let store = match same {
                    Some((_, _, same)) => same.clone(),
                    None => {
                        let new = Arc::new(ObjectStore::open(&name, &store, secret)?);
                        opened.push((name.clone(), store, new.clone()));
                        new
                    }
                };
                stores.push((name, store));
            }
            by_repository.insert(repository.clone(), stores);
        }
        let granted =
            settings.plugins.iter().map(|(name, plugin)| (name.clone(), plugin.stores.clone().unwrap_or_default()));
        Ok(ArtifactStores { by_repository, granted: granted.collect() })
    }

    /// Whether a job whose `store` stage calls `storage` may write to store
    /// `name`: the one named after one of those plugins, or one its `stores`
    /// grant in the server's configuration lists.
    pub(crate) fn may_write(&self, storage: &[String], name: &str) -> bool {
        storage.iter().any(|plugin| {
            plugin == name || self.granted.get(plugin).is_some_and(|stores| stores.iter().any(|store| store == name))
        })
    }

    /// `repository`'s store `name`, as its runs see it.
    pub(crate) fn store(&self, repository: &str, name: &str) -> Option<Arc<ObjectStore>> {
        let stores = self.by_repository.get(repository)?;
        stores.iter().find(|(store, _)| store == name).map(|(_, store)| store.clone())
    }

    /// The stores of `repositories`, in their order, each once.
    fn of(&self, repositories: &[String]) -> Vec<&(String, Arc<ObjectStore>)> {
        let mut stores: Vec<&(String, Arc<ObjectStore>)> = Vec::new();
        for store in repositories.iter().filter_map(|repository| self.by_repository.get(repository)).flatten() {
            if !stores.iter().any(|seen| Arc::ptr_eq(&seen.1, &store.1)) {
                stores.push(store);
            }
        }
        stores
    }
}

/// The object, or the part of it `Range` asks for, with its entity tag;
/// for `HEAD` (`headers_only`) the same answer without reading it.
async fn respond(reader: ObjectReader, headers: &HeaderMap, headers_only: bool) -> Response {
    // A store that gave no tag: no `ETag`, and nothing is answered `304`.
    let etag = (!reader.tag.is_empty()).then(|| format!("\"{}\"", reader.tag));
    let header_text = |name: header::HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
    if let (Some(etag), Some(tags)) = (&etag, header_text(header::IF_NONE_MATCH))
        && tags.split(',').map(|tag| tag.trim().trim_start_matches("W/")).any(|tag| tag == "*" || tag == etag)
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag.clone())]).into_response();
    }
    let size = reader.size;
    // A `Range` for another version of the object (`If-Range`) gets all of this one; an empty object has no range.
    let range = header_text(header::RANGE)
        .filter(|_| header_text(header::IF_RANGE).is_none_or(|tag| Some(tag) == etag.as_deref()))
        .filter(|_| size > 0)
        .map(|range| whole_for_a_longer_suffix(range, size));
    // A malformed `Range` is ignored, as HTTP says; one outside the object is 416.
    let ranges = range.and_then(|range| http_range_header::parse_range_header(&range).ok()).map(|r| r.validate(size));
    let (status, part) = match ranges {
        Some(Ok(ranges)) if ranges.len() == 1 => (StatusCode::PARTIAL_CONTENT, ranges.into_iter().next()),
        Some(Err(_)) => {
            let unsatisfied = format!("bytes */{size}");
            return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, unsatisfied)]).into_response();
        }
        _ => (StatusCode::OK, None),
    };
    let length = part.as_ref().map_or(size, |part| part.end() - part.start() + 1);
    let content_range = part.as_ref().map(|part| format!("bytes {}-{}/{size}", part.start(), part.end()));
    let body = if headers_only {
        Body::empty()
    } else {
        match reader.read(part).await {
            Ok(bytes) => Body::from_stream(tokio_util::io::ReaderStream::new(bytes)),
            Err(problem) => return Problem::internal(problem).into_response(),
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let fields = response.headers_mut();
    fields.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    fields.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    fields.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(Ok(tag)) = etag.map(|etag| HeaderValue::from_str(&etag)) {
        fields.insert(header::ETAG, tag);
    }
    if let Some(Ok(range)) = content_range.map(|range| HeaderValue::from_str(&range)) {
        fields.insert(header::CONTENT_RANGE, range);
    }
    response
}

/// `bytes=-N` asks for the last N bytes; an object shorter than N is sent
/// whole (`bytes=0-`), as HTTP says, rather than refused.
fn whole_for_a_longer_suffix(range: &str, size: u64) -> String {
    match range.trim().strip_prefix("bytes=-").and_then(|n| n.trim().parse::<u64>().ok()) {
        Some(suffix) if suffix >= size => "bytes=0-".to_string(),
        _ => range.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suffix_longer_than_the_object_asks_for_all_of_it() {
        assert_eq!(whole_for_a_longer_suffix("bytes=-500", 100), "bytes=0-");
        assert_eq!(whole_for_a_longer_suffix("bytes=-50", 100), "bytes=-50");
        assert_eq!(whole_for_a_longer_suffix("bytes=10-20", 100), "bytes=10-20");
    }

    #[test]
    fn only_plain_names_are_parts_of_an_artifact_path() {
        for plain in ["app", "1.2.0", "app-1.2.0.tar.gz", "..hidden"] {
            assert!(check_part(plain).is_ok(), "{plain}");
        }
        for leaving in ["", ".", "..", "a/b", "a\\b", "a\0b", "../etc"] {
            assert!(check_part(leaving).is_err(), "{leaving:?}");
        }
    }

    #[test]
    fn a_job_writes_to_the_stores_of_its_storage_plugins_only() {
        let granted = BTreeMap::from([("s3".to_string(), vec!["mirror".to_string()])]);
        let stores = ArtifactStores { by_repository: BTreeMap::new(), granted };
        let storage = ["s3".to_string()];
        assert!(stores.may_write(&storage, "s3"), "the store named after its plugin");
        assert!(stores.may_write(&storage, "mirror"), "one its grant lists");
        assert!(!stores.may_write(&storage, "releases"), "another");
        assert!(!stores.may_write(&[], "s3"), "a package that stores nothing");
    }
}
