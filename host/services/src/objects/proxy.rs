//! A store an executor elsewhere has no credentials for, reached through
//! the storage proxy of the server whose job it runs: `PUT
//! /api/stores/{store}/{key}` writes an object into the server's store of
//! that name, `GET` the same path says whether one is there (and its
//! SHA-256), each with the job's own token, which the server takes only
//! from the job's current attempt. An object is sent whole (artifacts are
//! packages, not images: those go to registries).

use std::fs::File;
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::ObjectInfo;
use crate::links::encode_component;
use crate::loktar_server::LoktarServer;
use loktar_support::diagnostic::Diagnostic;

/// The largest object the proxy takes (as the server says).
const MAX_OBJECT: u64 = 2 * 1024 * 1024 * 1024;

/// Where and how a job reaches its server's storage proxy.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreProxy {
    /// The server's address (`http://…`), without a trailing slash.
    pub url: String,
    /// The job's token: good for its current attempt only, never logged.
    pub token: String,
}

impl std::fmt::Debug for StoreProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreProxy").field("url", &self.url).field("token", &"<hidden>").finish()
    }
}

/// A store of the server, through its proxy.
#[derive(Debug, Clone)]
pub struct ProxyStore {
    name: String,
    server: LoktarServer,
}

impl ProxyStore {
    /// The server's store `name`, through `proxy`.
    pub fn new(name: &str, proxy: &StoreProxy) -> Result<ProxyStore, Diagnostic> {
        Ok(ProxyStore { name: name.to_string(), server: LoktarServer::new(&proxy.url, Some(proxy.token.clone()))? })
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self, key: &str) -> String {
        format!("/api/stores/{}/{}", encode_component(&self.name), encoded(key))
    }

    pub(super) async fn put(&self, key: &str, mut file: File) -> Result<ObjectInfo, Diagnostic> {
        let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        if size > MAX_OBJECT {
            return Err(Diagnostic::new(format!(
                "store `{}` through the server's storage proxy: `{key}` is {size} bytes, over the proxy's 2 GiB",
                self.name
            ))
            .hint(format!("configure `[stores.{}]` in this executor's loktar.toml, with its credentials", self.name)));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|e| Diagnostic::new(format!("cannot read the file for `{key}`: {e}")))?;
        let answer = self.server.put_bytes(&self.path(key), bytes.into()).await.map_err(|e| self.failed(e))?;
        self.info(answer)
    }

    pub(super) async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Diagnostic> {
        let answer = self.server.get_json_if_found(&self.path(key)).await.map_err(|e| self.failed(e))?;
        answer.map(|answer| self.info(answer)).transpose()
    }

    /// The server's download link: its storage proxy serves the object to
    /// whoever may read its API.
    pub(super) fn download_url(&self, key: &str) -> String {
        format!("{}/api/artifacts/{}", self.server.url(), encoded(key))
    }

    fn info(&self, answer: serde_json::Value) -> Result<ObjectInfo, Diagnostic> {
        let text = |field: &str| answer[field].as_str().map(str::to_string);
        match (text("key"), answer["size"].as_u64(), text("url")) {
            (Some(key), Some(size), Some(url)) => Ok(ObjectInfo { key, size, sha256: text("sha256"), url }),
            _ => Err(Diagnostic::new(format!(
                "store `{}` through {}: the server's answer is not an object's description: {answer}",
                self.name,
                self.server.url()
            ))),
        }
    }

    fn failed(&self, problem: Diagnostic) -> Diagnostic {
        Diagnostic {
            message: format!("store `{}` through the server's storage proxy: {}", self.name, problem.message),
            ..problem
        }
    }
}

/// A key as a URL path: each of its parts encoded, the slashes between kept.
fn encoded(key: &str) -> String {
    key.split('/').map(encode_component).collect::<Vec<_>>().join("/")
}
