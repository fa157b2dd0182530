//! The `fs` storage, Loktar's embedded default: every artifact file goes to
//! `<package>/<version>/<file>` (EMR jars: `jars/prod|dev/…`) in the store
//! `[stores.fs]` names — by default the repository's `.loktar/artifacts`.
//! Idempotent, and a stored version is never overwritten
//! (`loktar_sdk::store_artifacts`).

use loktar_sdk::prelude::*;

struct Fs;

impl Storage for Fs {
    fn describe() -> PluginInfo {
        PluginInfo::new("fs", env!("CARGO_PKG_VERSION"), Role::Storage)
            .with_capabilities(&[Capability::Log, Capability::ObjectStore])
    }

    fn store(context: RunContext, package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        loktar_sdk::store_artifacts("fs", &context, &package, artifacts)
    }
}

loktar_sdk::export!(storage: Fs);
