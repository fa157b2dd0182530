//! `object-store`: the stores the host configuration grants the plugin
//! (`[stores.<plugin>]`, and those its `stores` grant lists), through
//! [`crate::objects`]. Files come from and go
//! to the plugin's artifact folder only.

use std::path::{Path, PathBuf};

use wasmtime::component::{HasSelf, Linker};

use super::not_granted;
use crate::objects::{self, ObjectStore};
use crate::runtime::bindings::host::loktar::plugin::object_store::{self, ObjectInfo};
use crate::runtime::bindings::host::loktar::plugin::types::Error;
use crate::runtime::state::{ARTIFACTS_MOUNT, StoreState};
use crate::settings::Capability;

impl object_store::Host for StoreState {
    async fn put(&mut self, store: String, key: String, path: String) -> Result<ObjectInfo, Error> {
        let file = self.artifact_file(&path)?;
        let info = self.store(&store)?.put(&key, &file).await.map_err(Error::from)?;
        Ok(wit_info(info))
    }

    async fn get(&mut self, store: String, key: String, path: String) -> Result<ObjectInfo, Error> {
        let file = self.artifact_file(&path)?;
        let info = self.store(&store)?.get(&key, &file).await.map_err(Error::from)?;
        Ok(wit_info(info))
    }

    async fn head(&mut self, store: String, key: String) -> Result<Option<ObjectInfo>, Error> {
        let info = self.store(&store)?.head(&key).await.map_err(Error::from)?;
        Ok(info.map(wit_info))
    }

    async fn list(&mut self, store: String, prefix: String) -> Result<Vec<ObjectInfo>, Error> {
        let found = self.store(&store)?.list(&prefix).await.map_err(Error::from)?;
        Ok(found.into_iter().map(wit_info).collect())
    }

    async fn presign(&mut self, store: String, key: String, expires_secs: u32) -> Result<String, Error> {
        let expires = std::time::Duration::from_secs(u64::from(expires_secs));
        self.store(&store)?.presign(&key, expires).await.map_err(Error::from)
    }
}

impl StoreState {
    /// The store `store`, which must be the one granted to this plugin.
    fn store(&self, store: &str) -> Result<ObjectStore, Error> {
        if !self.grants.allows(Capability::ObjectStore) {
            return Err(not_granted(self, Capability::ObjectStore));
        }
        match self.grants.stores.iter().find(|(name, _)| name == store) {
            Some((_, opened)) => opened.clone().map_err(Error::from),
            None => Err(Error {
                message: format!("plugin `{}` may not use store `{store}`", self.plugin),
                hint: Some(format!(
                    "a plugin uses the store named after it and those its `stores` grant lists; \
                     configure `[stores.{store}]` in loktar.toml, and `stores = [\"{store}\"]` under `[plugins.{}]` \
                     unless the store is named after the plugin",
                    self.plugin
                )),
            }),
        }
    }

    /// The host path of `/artifacts/…`, the only place objects come from and go to.
    pub(super) fn artifact_file(&self, path: &str) -> Result<PathBuf, Error> {
        let outside = || Error { message: format!("`{path}` is not a file under `{ARTIFACTS_MOUNT}`"), hint: None };
        let relative = path.strip_prefix(ARTIFACTS_MOUNT).and_then(|p| p.strip_prefix('/')).ok_or_else(outside)?;
        let folder = self.artifacts_dir.as_ref().ok_or_else(outside)?;
        let relative = objects::checked_key(relative).map_err(|_| outside())?;
        Ok(folder.join(Path::new(relative)))
    }
}

fn wit_info(info: objects::ObjectInfo) -> ObjectInfo {
    ObjectInfo { key: info.key, size: info.size, sha256: info.sha256, url: info.url }
}

/// Adds `object-store` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    object_store::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}
