//! A test registry: "publishes" each artifact by giving it a digest.

use loktar_sdk::prelude::*;

struct Shelf;

impl Registry for Shelf {
    fn describe() -> PluginInfo {
        PluginInfo::new("shelf", "0.1.0", Role::Registry).with_capabilities(&[Capability::Log])
    }

    fn publish(_context: RunContext, _package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        Ok(artifacts
            .into_iter()
            .map(|artifact| {
                log::info(&format!("published {} {}", artifact.name, artifact.location));
                Artifact { digest: Some(format!("sha256:{}", artifact.name.len())), ..artifact }
            })
            .collect())
    }
}

loktar_sdk::export!(registry: Shelf);
