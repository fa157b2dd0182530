//! The `fs` storage, Loktar's embedded default: every artifact file goes to
//! `<package>/<version>/<file>` (EMR jars: `jars/prod|dev/…`, see
//! `loktar_sdk::storage_key`) in the store `[stores.fs]` names (by default
//! the repository's `.loktar/artifacts`).
//!
//! Storing is idempotent and versions are immutable: the same content at an
//! existing key is not copied again; different content there is an error,
//! never a silent overwrite. Artifacts that are not files (images) are
//! handed on unchanged.

use loktar_sdk::prelude::*;
use loktar_sdk::raw::object_store;
use sha2::{Digest, Sha256};

struct Fs;

/// The store this plugin writes to: the one named after it.
const STORE: &str = "fs";

impl Storage for Fs {
    fn describe() -> PluginInfo {
        PluginInfo::new("fs", env!("CARGO_PKG_VERSION"), Role::Storage)
            .with_capabilities(&[Capability::Log, Capability::ObjectStore])
    }

    fn store(context: RunContext, package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        let mut stored = Vec::with_capacity(artifacts.len());
        for artifact in artifacts {
            let Some(file) = artifact.location.strip_prefix("/artifacts/") else {
                log::info(&format!("`{}` is not a file; nothing to store", artifact.location));
                stored.push(artifact);
                continue;
            };
            let file_name = file.rsplit('/').next().unwrap_or(file);
            let key = loktar_sdk::storage_key(&context, &package, &artifact, file_name);
            let local = sha256_of(&artifact.location)?;
            let url = match object_store::head(STORE, &key)? {
                Some(existing) if existing.sha256.as_deref() == Some(local.as_str()) => {
                    log::info(&format!("`{key}` is already stored with the same content"));
                    existing.url
                }
                Some(_) => {
                    return Err(Error::new(format!(
                        "`{key}` is already stored with different content: version `{}` of `{}` was built before",
                        artifact.version, package.name
                    ))
                    .with_hint("a stored version is never overwritten: give the package a new version"));
                }
                None => {
                    let info = object_store::put(STORE, &key, &artifact.location)?;
                    log::info(&format!("stored `{key}` ({} bytes)", info.size));
                    info.url
                }
            };
            stored.push(Artifact { location: url, ..artifact });
        }
        Ok(stored)
    }
}

/// The SHA-256 of a file in the artifact folder, as lowercase hex.
fn sha256_of(path: &str) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::new(format!("cannot read artifact `{path}`: {e}")))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

loktar_sdk::export!(storage: Fs);
