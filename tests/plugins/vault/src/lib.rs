//! A test storage: reads each artifact file and returns where it "stored" it.

use loktar_sdk::prelude::*;

struct Vault;

impl Storage for Vault {
    fn describe() -> PluginInfo {
        PluginInfo::new("vault", "0.1.0", Role::Storage).with_capabilities(&[Capability::Log])
    }

    fn store(_context: RunContext, package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        let mut stored = Vec::new();
        for artifact in artifacts {
            let content = std::fs::read_to_string(&artifact.location)
                .map_err(|e| Error::new(format!("cannot read `{}`: {e}", artifact.location)))?;
            log::info(&format!("stored: {content}"));
            stored.push(Artifact { location: format!("vault://{}/{}", package.name, artifact.name), ..artifact });
        }
        Ok(stored)
    }
}

loktar_sdk::export!(storage: Vault);
