//! `object-store`: the stores the host configuration grants the plugin
//! (`[stores.<plugin>]`, and those its `stores` grant lists), through
//! [`loktar_services::objects`]. Files come from and go
//! to the plugin's artifact folder only.

use std::path::Path;

use wasmtime::component::{HasSelf, Linker};

use super::{Grant, Grants};
use crate::bindings::host::loktar::plugin::object_store::{self, ObjectInfo};
use crate::bindings::host::loktar::plugin::types::Error;
use crate::state::{ARTIFACTS_MOUNT, StoreState};
use loktar_services::objects::{self, ObjectStore};
use loktar_settings::{Capability, PluginSettings, Settings};
use loktar_support::diagnostic::Diagnostic;

/// The object stores a plugin may use, opened once when it loads.
#[derive(Debug)]
pub(crate) struct StoresGrant {
    /// The store with its own provider name and those its `stores` grant
    /// lists: each opened when configured under `[stores]` (a store that
    /// could not be opened says why when used), else `None` — the server's
    /// store of that name through its proxy, for a job run for a server elsewhere.
    stores: Vec<(String, Option<Result<ObjectStore, Diagnostic>>)>,
}

impl Grant for StoresGrant {
    const CAPABILITY: Capability = Capability::ObjectStore;

    fn from_settings(name: &str, plugin: &PluginSettings, settings: &Settings) -> StoresGrant {
        let secret = |secret: &str| settings.secret_value(secret);
        // A repository's plugin does not get the store named after it: only those the operator lists for it.
        let stores = std::iter::once(name)
            .filter(|_| plugin.declared_in.is_none())
            .chain(plugin.stores.iter().flatten().map(String::as_str).filter(|store| *store != name))
            .map(|store| {
                let opened = settings.stores.get(store).map(|config| ObjectStore::open(store, config, secret));
                (store.to_string(), opened)
            })
            .collect();
        StoresGrant { stores }
    }

    fn of(grants: &Grants) -> Option<&StoresGrant> {
        grants.object_store.as_ref()
    }
}

impl object_store::Host for StoreState {
    async fn put(&mut self, store: String, key: String, path: String) -> Result<ObjectInfo, Error> {
        let store = self.store(&store)?;
        let file = self.artifact_file(&path, Access::Read)?;
        let info = store.put(&key, file).await.map_err(Error::from)?;
        Ok(wit_info(info))
    }

    async fn get(&mut self, store: String, key: String, path: String) -> Result<ObjectInfo, Error> {
        let store = self.store(&store)?;
        let file = self.artifact_file(&path, Access::Create)?;
        let info = store.get(&key, file).await.map_err(Error::from)?;
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
        match self.grant::<StoresGrant>()?.stores.iter().find(|(name, _)| name == store) {
            Some((_, Some(opened))) => opened.clone().map_err(Error::from),
            Some((_, None)) => match &self.store_proxy {
                Some(proxy) => ObjectStore::proxied(store, proxy).map_err(Error::from),
                None => Err(Error {
                    message: format!("store `{store}` is not configured"),
                    hint: Some(format!("configure `[stores.{store}]` in loktar.toml")),
                }),
            },
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

    /// Opens `/artifacts/…`, the only place objects come from and go to,
    /// through the artifact folder's handle: a link the plugin made there
    /// (or a file with other names) is refused, never followed.
    pub(super) fn artifact_file(&self, path: &str, access: Access) -> Result<std::fs::File, Error> {
        let outside = || Error { message: format!("`{path}` is not a file under `{ARTIFACTS_MOUNT}`"), hint: None };
        let relative = path.strip_prefix(ARTIFACTS_MOUNT).and_then(|p| p.strip_prefix('/')).ok_or_else(outside)?;
        let folder = self.artifacts_dir.as_ref().ok_or_else(outside)?;
        let relative = Path::new(objects::checked_key(relative).map_err(|_| outside())?);
        let opened = match access {
            Access::Read => folder.open_file(relative),
            Access::Create => folder.create_file(relative),
        };
        opened.map_err(|e| Error {
            message: format!("plugin `{}`: cannot use `{path}`: {e}", self.plugin),
            hint: Some(format!("write a plain file under `{ARTIFACTS_MOUNT}`, not a link or a special file")),
        })
    }
}

/// What a capability does with a file under `/artifacts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads an existing plain file.
    Read,
    /// Makes a new file (replacing one of that name).
    Create,
}

fn wit_info(info: objects::ObjectInfo) -> ObjectInfo {
    ObjectInfo { key: info.key, size: info.size, sha256: info.sha256, url: info.url }
}

/// Adds `object-store` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    object_store::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loktar_settings::StoreSettings;

    fn granted(plugin: &PluginSettings) -> Vec<String> {
        let mut settings = Settings::builtin();
        for store in ["fs", "shared", "unlisted"] {
            settings.stores.insert(store.into(), StoreSettings::Fs { dir: store.into() });
        }
        let grant = StoresGrant::from_settings("fs", plugin, &settings);
        grant.stores.into_iter().filter(|(_, opened)| opened.is_some()).map(|(name, _)| name).collect()
    }

    #[test]
    fn a_plugin_gets_its_own_store_and_those_listed_for_it() {
        let listed = PluginSettings { stores: Some(vec!["shared".into(), "missing".into()]), ..Default::default() };
        assert_eq!(granted(&listed), ["fs", "shared"]);
        // A repository's plugin does not get the store named after it.
        let declared = PluginSettings { declared_in: Some("/repo".into()), ..listed };
        assert_eq!(granted(&declared), ["shared"]);
    }
}
