//! `object-store`: objects in the store the host configuration names after
//! the plugin (`[stores.<plugin>]`). Files come from and go to the plugin's
//! artifact folder only; keys are relative paths that cannot climb out of
//! the store. Backend today: `fs`, a folder on this machine (the embedded
//! default keeps artifacts in `.loktar/artifacts`).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};

use super::not_granted;
use crate::runtime::bindings::host::loktar::plugin::object_store::{self, ObjectInfo};
use crate::runtime::bindings::host::loktar::plugin::types::Error;
use crate::runtime::state::{ARTIFACTS_MOUNT, StoreState};
use crate::settings::{Capability, StoreSettings};

impl object_store::Host for StoreState {
    async fn put(&mut self, store: String, key: String, path: String) -> Result<ObjectInfo, Error> {
        let folder = self.store_folder(&store)?;
        let source = self.artifact_file(&path)?;
        let target = folder.join(checked_key(&key)?);
        let failed = format!("store `{store}`: cannot put `{path}`");
        let info = blocking(move || {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Written beside, then renamed: a reader never sees half an object.
            let partial = target.with_extension("loktar-partial");
            std::fs::copy(&source, &partial)?;
            std::fs::rename(&partial, &target)?;
            describe(&target, &key)
        })
        .await
        .map_err(|e| error(format!("{failed}: {e}")))?;
        Ok(info)
    }

    async fn get(&mut self, store: String, key: String, path: String) -> Result<ObjectInfo, Error> {
        let folder = self.store_folder(&store)?;
        let target = self.artifact_file(&path)?;
        let source = folder.join(checked_key(&key)?);
        let failed = format!("store `{store}`: cannot get `{key}`");
        blocking(move || {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&source, &target)?;
            describe(&source, &key)
        })
        .await
        .map_err(|e| error(format!("{failed}: {e}")))
    }

    async fn head(&mut self, store: String, key: String) -> Result<Option<ObjectInfo>, Error> {
        let folder = self.store_folder(&store)?;
        let object = folder.join(checked_key(&key)?);
        let failed = format!("store `{store}`: cannot read `{key}`");
        blocking(move || if object.is_file() { describe(&object, &key).map(Some) } else { Ok(None) })
            .await
            .map_err(|e| error(format!("{failed}: {e}")))
    }

    async fn list(&mut self, store: String, prefix: String) -> Result<Vec<ObjectInfo>, Error> {
        let folder = self.store_folder(&store)?;
        let failed = format!("store `{store}`: cannot list `{prefix}`");
        blocking(move || {
            let mut found = Vec::new();
            let mut pending = vec![folder.clone()];
            while let Some(dir) = pending.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries {
                    let path = entry?.path();
                    if path.is_dir() {
                        pending.push(path);
                    } else if let Ok(relative) = path.strip_prefix(&folder) {
                        let key = relative.to_string_lossy().into_owned();
                        if key.starts_with(&prefix) && !key.ends_with(".loktar-partial") {
                            found.push(describe(&path, &key)?);
                        }
                    }
                }
            }
            found.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(found)
        })
        .await
        .map_err(|e| error(format!("{failed}: {e}")))
    }
}

impl StoreState {
    /// The folder of `store`, which must be the store granted to this plugin.
    fn store_folder(&self, store: &str) -> Result<PathBuf, Error> {
        if !self.grants.allows(Capability::ObjectStore) {
            return Err(not_granted(self, Capability::ObjectStore));
        }
        match &self.grants.store {
            Some((name, StoreSettings::Fs { dir })) if name == store => Ok(dir.clone()),
            _ => Err(Error {
                message: format!("plugin `{}` may not use store `{store}`", self.plugin),
                hint: Some(format!(
                    "a storage plugin uses the store named after it: configure `[stores.{}]` in loktar.toml",
                    self.plugin
                )),
            }),
        }
    }

    /// The host path of `/artifacts/…`, the only place objects come from and go to.
    fn artifact_file(&self, path: &str) -> Result<PathBuf, Error> {
        let outside = || error(format!("`{path}` is not a file under `{ARTIFACTS_MOUNT}`"));
        let relative = path.strip_prefix(ARTIFACTS_MOUNT).and_then(|p| p.strip_prefix('/')).ok_or_else(outside)?;
        let folder = self.artifacts_dir.as_ref().ok_or_else(outside)?;
        Ok(folder.join(checked_key(relative).map_err(|_| outside())?))
    }
}

/// A key as a relative path that stays inside the store.
fn checked_key(key: &str) -> Result<&Path, Error> {
    let path = Path::new(key);
    let plain = !key.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if plain { Ok(path) } else { Err(error(format!("`{key}` is not a valid key: use a relative path without `..`"))) }
}

/// Size, SHA-256 and URL of a stored file.
fn describe(path: &Path, key: &str) -> std::io::Result<ObjectInfo> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let absolute = std::path::absolute(path)?;
    Ok(ObjectInfo { key: key.to_string(), size, sha256: Some(sha256), url: format!("file://{}", absolute.display()) })
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

fn error(message: String) -> Error {
    Error { message, hint: None }
}

/// Adds `object-store` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    object_store::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}
