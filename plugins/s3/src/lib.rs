//! The `s3` storage: every artifact file goes to `<package>/<version>/<file>`
//! (EMR jars: `jars/prod|dev/…`) in the bucket `[stores.s3]` names, on AWS
//! or any S3-compatible server; the host holds the credentials, the plugin
//! never sees them. Idempotent, and a stored version is never overwritten
//! (`loktar_sdk::store_artifacts`).

use loktar_sdk::prelude::*;

struct S3;

impl Storage for S3 {
    fn describe() -> PluginInfo {
        PluginInfo::new("s3", env!("CARGO_PKG_VERSION"), Role::Storage)
            .with_capabilities(&[Capability::Log, Capability::ObjectStore])
    }

    fn store(context: RunContext, package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        loktar_sdk::store_artifacts("s3", &context, &package, artifacts)
    }
}

loktar_sdk::export!(storage: S3);
