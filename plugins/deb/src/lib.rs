//! The `deb` builder: a Debian binary package from an install tree in the
//! package folder, built by `dpkg-deb` through the `process` capability.
//!
//! - `build_info.install_tree` (default `root`): the folder whose contents
//!   are installed at `/`; modes are kept, owners become root.
//! - The control file: `<install_tree>/DEBIAN/control`, or the fields of
//!   `build_info.control` (an object of strings) — one of the two.
//! - Versions follow Loktar's rule: the control file's version on the
//!   default branch; on other branches `<version>+<branch>.<commit>`, so a
//!   branch build never takes a release's version.
//!
//! Builds are reproducible: file times are clamped to a fixed date.

mod control;

use control::Control;
use loktar_sdk::prelude::*;
use loktar_sdk::process::{self, Command};

struct Deb;

/// Where the install tree is put together inside the artifact folder.
const STAGING: &str = "deb-staging";

impl Builder for Deb {
    fn describe() -> PluginInfo {
        PluginInfo::new("deb", env!("CARGO_PKG_VERSION"), Role::Builder)
            .with_capabilities(&[Capability::Log, Capability::Process])
    }

    fn build(context: RunContext, package: Package) -> Result<Vec<Artifact>, Error> {
        let settings: serde_json::Value = serde_json::from_str(&package.settings).unwrap_or_default();
        let tree = settings["install_tree"].as_str().unwrap_or("root").trim_matches('/').to_string();
        let guest_tree = format!("/package/{tree}");
        if tree.is_empty() || tree.contains("..") || !std::path::Path::new(&guest_tree).is_dir() {
            return Err(Error::new(format!("package `{}` has no install tree `{tree}`", package.name)).with_hint(
                "put the files to install under `root/` (as they lie under `/`), or name the folder in `build_info.install_tree`",
            ));
        }
        let mut control = read_control(&settings, &tree)?;
        if let Some(label) = loktar_sdk::branch_label(&context) {
            let version = format!("{}+{label}", control.get("Version").unwrap_or_default());
            control.set("Version", &version);
        }
        let (name, version, architecture) =
            (field(&control, "Package"), field(&control, "Version"), field(&control, "Architecture"));
        log::info(&format!("building {name} {version} ({architecture}) from `{tree}/`"));

        let folders = process::folders()?;
        let artifacts =
            folders.artifacts.ok_or_else(|| Error::new("the host gave the `deb` builder no artifact folder"))?;
        let staging = format!("/artifacts/{STAGING}");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| Error::new(format!("cannot make `{staging}`: {e}")))?;
        // `cp -a` on the host keeps the modes, which WASI cannot set.
        process::run_checked(
            &Command::new("cp")
                .arg("-a")
                .arg(&format!("{}/{tree}/.", folders.package))
                .arg(&format!("{artifacts}/{STAGING}")),
            "copying the install tree",
        )?;
        std::fs::create_dir_all(format!("{staging}/DEBIAN"))
            .and_then(|()| std::fs::write(format!("{staging}/DEBIAN/control"), control.render()))
            .map_err(|e| Error::new(format!("cannot write the control file: {e}")))?;
        let file =
            format!("{name}_{}_{architecture}.deb", version.split_once(':').map_or(version.as_str(), |(_, v)| v));
        let built = process::run_checked(
            &Command::new("dpkg-deb")
                .arg("--root-owner-group")
                .arg("-Zgzip")
                .arg("--build")
                .arg(&format!("{artifacts}/{STAGING}"))
                .arg(&format!("{artifacts}/{file}"))
                .env("SOURCE_DATE_EPOCH", "315532800"),
            "dpkg-deb",
        );
        let _ = std::fs::remove_dir_all(&staging);
        built?;
        Ok(vec![loktar_sdk::file_artifact("deb", &name, &version, &file)?])
    }
}

/// The control file: from the install tree, or from `build_info.control`, not both.
fn read_control(settings: &serde_json::Value, tree: &str) -> Result<Control, Error> {
    let file = format!("{tree}/DEBIAN/control");
    let written = std::fs::read_to_string(format!("/package/{file}")).ok();
    match (written, settings.get("control")) {
        (Some(_), Some(_)) => Err(Error::new(format!("both `{file}` and `build_info.control` are given"))
            .with_hint("keep one of the two")),
        (Some(text), None) => Control::parse(&text, &file),
        (None, Some(serde_json::Value::Object(fields))) => Control::from_settings(fields),
        (None, Some(_)) => Err(Error::new("`build_info.control` must be an object of control fields")),
        (None, None) => Err(Error::new(format!("no control file: neither `{file}` nor `build_info.control`"))
            .with_hint("write `DEBIAN/control` in the install tree, or set Package, Version, Architecture, Maintainer and Description in `build_info.control`")),
    }
}

fn field(control: &Control, name: &str) -> String {
    control.get(name).unwrap_or_default().to_string()
}

loktar_sdk::export!(builder: Deb);
