//! A test builder: writes `<package>.txt` into `/artifacts` and returns it.

use loktar_sdk::prelude::*;

struct Zip;

impl Builder for Zip {
    fn describe() -> PluginInfo {
        PluginInfo::new("zip", "0.1.0", Role::Builder).with_capabilities(&[Capability::Log])
    }

    fn build(context: RunContext, package: Package) -> Result<Vec<Artifact>, Error> {
        let file = format!("{}.txt", package.name);
        std::fs::write(format!("/artifacts/{file}"), format!("built {} at {}", package.name, context.commit))
            .map_err(|e| Error::new(format!("cannot write the artifact: {e}")))?;
        log::info(&format!("wrote {file}"));
        Ok(vec![Artifact {
            kind: "file".into(),
            name: package.name,
            version: "1".into(),
            location: format!("/artifacts/{file}"),
            digest: None,
        }])
    }
}

loktar_sdk::export!(builder: Zip);
