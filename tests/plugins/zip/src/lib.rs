//! A test builder: writes `<package>.txt` into `/artifacts` and returns it.
//! With the package setting `"link": "<target>"` it makes that file a link
//! to `<target>` instead — an attack on the host, which must not follow it.

use loktar_sdk::prelude::*;

struct Zip;

impl Builder for Zip {
    fn describe() -> PluginInfo {
        PluginInfo::new("zip", "0.1.0", Role::Builder).with_capabilities(&[Capability::Log])
    }

    fn build(context: RunContext, package: Package) -> Result<Vec<Artifact>, Error> {
        let file = format!("{}.txt", package.name);
        // A link comes with a digest, so that storage hands it to the host without reading it first.
        let digest = match setting(&package.settings, "link") {
            Some(target) => {
                symlink_in_artifacts(&target, &file)?;
                Some(format!("sha256:{}", "0".repeat(64)))
            }
            None => {
                let content = format!("built {} at {}", package.name, context.commit);
                std::fs::write(format!("/artifacts/{file}"), content)
                    .map_err(|e| Error::new(format!("cannot write the artifact: {e}")))?;
                None
            }
        };
        log::info(&format!("wrote {file}"));
        Ok(vec![Artifact {
            kind: "file".into(),
            name: package.name,
            version: "1".into(),
            location: format!("/artifacts/{file}"),
            digest,
        }])
    }
}

/// The string value of `key` in the package's settings (a JSON object).
fn setting(settings: &str, key: &str) -> Option<String> {
    settings.split(&format!("\"{key}\":\"")).nth(1).and_then(|rest| rest.split('"').next()).map(str::to_string)
}

/// Makes `/artifacts/<name>` a link to `target`, through the WASI preopen.
fn symlink_in_artifacts(target: &str, name: &str) -> Result<(), Error> {
    let artifacts = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/artifacts")
        .map(|(descriptor, _)| descriptor)
        .ok_or_else(|| Error::new("no /artifacts preopen"))?;
    artifacts.symlink_at(target, name).map_err(|e| Error::new(format!("cannot make the link: {e:?}")))
}

loktar_sdk::export!(builder: Zip);
