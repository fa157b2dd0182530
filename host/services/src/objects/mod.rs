//! Object stores: where storage plugins put artifacts, named in the host
//! configuration (`[stores.<name>]`). Two backends: `fs`, a folder on this
//! machine (the embedded default), and `s3`, any S3-compatible server; and,
//! for an executor elsewhere without a store's credentials, the server's
//! store of that name through its storage proxy.
//!
//! Keys are relative paths that cannot climb out of the store; every object
//! carries its SHA-256, so storing the same content twice is detected and a
//! different content under a stored key is never mistaken for it.

mod fs;
mod proxy;
mod s3;

use std::fs::File;
use std::path::{Component, Path};

pub use proxy::{ProxyStore, StoreProxy};
pub use s3::S3Store;

use loktar_settings::StoreSettings;
use loktar_support::diagnostic::Diagnostic;

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key in the store.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex, when known.
    pub sha256: Option<String>,
    /// Where it is: `file://…` or `s3://bucket/key`.
    pub url: String,
}

/// One configured store, ready for use.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    /// A folder on this machine.
    Fs(fs::FsStore),
    /// An S3-compatible server.
    S3(S3Store),
    /// A server's store, through its storage proxy (boxed: an HTTP client is large).
    Proxy(Box<ProxyStore>),
}

impl ObjectStore {
    /// Opens the store `name`; `secret` reads a named secret's value.
    pub fn open(
        name: &str,
        settings: &StoreSettings,
        secret: impl Fn(&str) -> Option<String>,
    ) -> Result<ObjectStore, Diagnostic> {
        match settings {
            StoreSettings::Fs { dir } => Ok(ObjectStore::Fs(fs::FsStore::new(name, dir))),
            StoreSettings::S3(s3) => S3Store::new(name, s3, secret).map(ObjectStore::S3),
        }
    }

    /// The server's store `name`, through the storage proxy `proxy`.
    pub fn proxied(name: &str, proxy: &StoreProxy) -> Result<ObjectStore, Diagnostic> {
        ProxyStore::new(name, proxy).map(|store| ObjectStore::Proxy(Box::new(store)))
    }

    /// Uploads the content of `file` (opened for reading) to `key`.
    pub async fn put(&self, key: &str, file: File) -> Result<ObjectInfo, Diagnostic> {
        let key = checked_key(key)?;
        match self {
            ObjectStore::Fs(store) => store.put(key, file).await,
            ObjectStore::S3(store) => store.put(key, file).await,
            ObjectStore::Proxy(store) => store.put(key, file).await,
        }
    }

    /// Downloads `key` into `file` (a new file, opened for writing).
    pub async fn get(&self, key: &str, file: File) -> Result<ObjectInfo, Diagnostic> {
        let key = checked_key(key)?;
        match self {
            ObjectStore::Fs(store) => store.get(key, file).await,
            ObjectStore::S3(store) => store.get(key, file).await,
            ObjectStore::Proxy(store) => Err(through_proxy(store, "read objects")),
        }
    }

    /// The metadata of `key`, or `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, Diagnostic> {
        let key = checked_key(key)?;
        match self {
            ObjectStore::Fs(store) => store.head(key).await,
            ObjectStore::S3(store) => store.head(key).await,
            ObjectStore::Proxy(store) => store.head(key).await,
        }
    }

    /// A URL anyone holding it can GET `key` from, for `expires` — for
    /// services outside this machine (a remote build fetching its context).
    pub async fn presign(&self, key: &str, expires: std::time::Duration) -> Result<String, Diagnostic> {
        let key = checked_key(key)?;
        match self {
            ObjectStore::Fs(store) => Err(Diagnostic::new(format!(
                "store `{}` is a folder on this machine: no other machine can fetch `{key}` from it",
                store.name()
            ))
            .hint("keep the package in an S3 store: `\"storage_type\": \"s3\"` and `[stores.s3]` in loktar.toml")),
            ObjectStore::S3(store) => store.presign(key, expires).await,
            ObjectStore::Proxy(store) => Ok(store.download_url(key)),
        }
    }

    /// Opens `key` for reading, or `None` when there is no such object.
    /// Cheap: nothing of the content is read until [`ObjectReader::read`].
    pub async fn open_reader(&self, key: &str) -> Result<Option<ObjectReader>, Diagnostic> {
        let key = checked_key(key)?;
        match self {
            ObjectStore::Fs(store) => store.open_reader(key).await,
            ObjectStore::S3(store) => store.open_reader(key).await,
            ObjectStore::Proxy(store) => Err(through_proxy(store, "read objects")),
        }
    }

    /// Whether the store can be used, without changing it: an S3 bucket
    /// exists and takes the credentials (`HeadBucket`), a folder exists or
    /// can be made. Says where the store is.
    pub async fn check(&self) -> Result<String, Diagnostic> {
        match self {
            ObjectStore::Fs(store) => store.check(),
            ObjectStore::S3(store) => store.check_bucket().await.map(|()| store.described_place()),
            ObjectStore::Proxy(store) => Err(through_proxy(store, "be checked")),
        }
    }

    /// Objects whose keys start with `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Diagnostic> {
        match self {
            ObjectStore::Fs(store) => store.list(prefix).await,
            ObjectStore::S3(store) => store.list(prefix).await,
            ObjectStore::Proxy(store) => Err(through_proxy(store, "list objects")),
        }
    }
}

/// What a store reached through a server's proxy cannot do: it writes and
/// says what is there, nothing more.
fn through_proxy(store: &ProxyStore, what: &str) -> Diagnostic {
    Diagnostic::new(format!(
        "store `{}` is the server's, reached through its storage proxy, which cannot {what}",
        store.name()
    ))
    .hint(format!("configure `[stores.{}]` in this executor's loktar.toml, with its credentials", store.name()))
}

/// An object opened for reading all or part of it.
#[derive(Debug)]
pub struct ObjectReader {
    /// The whole object's size in bytes.
    pub size: u64,
    /// Changes whenever the content does (an HTTP entity tag without its
    /// quotes): the SHA-256 when the store keeps one, else the file's size
    /// and modification time — objects are renamed into place, never rewritten.
    pub tag: String,
    source: ReaderSource,
}

#[derive(Debug)]
enum ReaderSource {
    Fs(File),
    /// `etag`: the server's own tag of the object described, which the read must still be.
    S3 {
        store: S3Store,
        key: String,
        etag: Option<String>,
    },
}

/// Bytes of an object, as they arrive.
pub type ObjectBytes = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

impl ObjectReader {
    /// The bytes `range` (offsets, both included; the whole object without),
    /// which must lie inside the object.
    pub async fn read(self, range: Option<std::ops::RangeInclusive<u64>>) -> Result<ObjectBytes, Diagnostic> {
        match self.source {
            ReaderSource::Fs(file) => fs::read(file, range).await,
            ReaderSource::S3 { store, key, etag } => store.read(&key, etag, range).await,
        }
    }
}

/// A key as a relative path that stays inside the store.
pub fn checked_key(key: &str) -> Result<&str, Diagnostic> {
    let plain = !key.is_empty() && Path::new(key).components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(key)
    } else {
        Err(Diagnostic::new(format!("`{key}` is not a valid key")).hint("use a relative path without `..`"))
    }
}

/// The SHA-256 of an open file's content, lowercase hex, and its size. It
/// reads by offset, so the file's own position is left where it was.
pub(crate) async fn sha256_of(file: &File) -> std::io::Result<(String, u64)> {
    let file = file.try_clone()?;
    tokio::task::spawn_blocking(move || {
        use sha2::{Digest, Sha256};
        use std::os::unix::fs::FileExt;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let read = file.read_at(&mut buffer, size)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            size += read as u64;
        }
        Ok((format!("{:x}", hasher.finalize()), size))
    })
    .await
    .map_err(std::io::Error::other)?
}
