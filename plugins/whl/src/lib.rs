//! The `whl` builder: a Python wheel from `pyproject.toml` or `setup.py`,
//! built offline by the host's `python3 -m pip wheel` with the build backend
//! installed on the machine (no network at build time).
//!
//! Versions follow Loktar's rule: on the default branch the package's own
//! version; on any other branch a PEP 440 local version derived from the
//! branch and the commit (`1.2.0+feature.greeting.1a2b3c4d`), so a branch
//! build never collides with a release.

use loktar_sdk::prelude::*;
use loktar_sdk::process::{self, Command};

struct Whl;

/// Copies the package, builds it with pip, relabels the version (see the file).
const BUILD_WHEEL: &str = include_str!("build_wheel.py");

impl Builder for Whl {
    fn describe() -> PluginInfo {
        PluginInfo::new("whl", env!("CARGO_PKG_VERSION"), Role::Builder)
            .with_capabilities(&[Capability::Log, Capability::Process])
    }

    fn build(context: RunContext, package: Package) -> Result<Vec<Artifact>, Error> {
        let has_project =
            ["pyproject.toml", "setup.py"].iter().any(|f| std::path::Path::new("/package").join(f).is_file());
        if !has_project {
            return Err(Error::new(format!("package `{}` has no `pyproject.toml` or `setup.py`", package.name))
                .with_hint("a `whl` package needs a Python project file in its folder; or change its `pkg_type`"));
        }
        let folders = process::folders()?;
        let Some(artifacts) = folders.artifacts else {
            return Err(Error::new("the host gave the `whl` builder no artifact folder"));
        };
        let label = loktar_sdk::branch_label(&context).unwrap_or_default();
        if label.is_empty() {
            log::info("building the wheel with the package's own version (default branch)");
        } else {
            log::info(&format!("building the wheel with local version label `{label}` (branch build)"));
        }
        let built = process::run(
            &Command::new("python3")
                .arg("-c")
                .arg(BUILD_WHEEL)
                .arg(&folders.package)
                .arg(&artifacts)
                .arg(&label)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                // Fixed timestamps: the same source always makes the same wheel, byte for byte,
                // so storing a rebuilt version finds it unchanged.
                .env("SOURCE_DATE_EPOCH", "315532800"),
        )?;
        if !built.success() {
            let how = built.code.map_or_else(|| "was stopped".to_string(), |code| format!("exited with {code}"));
            return Err(Error::new(format!("building the wheel of `{}` failed: pip {how}", package.name))
                .with_hint("pip's output is in the stage log above"));
        }
        let result = built.stdout.lines().last().unwrap_or_default();
        let wheel: serde_json::Value = serde_json::from_str(result)
            .map_err(|e| Error::new(format!("the wheel build printed no result ({e}): `{result}`")))?;
        let field = |key: &str| wheel[key].as_str().unwrap_or_default().to_string();
        log::info(&format!("built {}", field("file")));
        Ok(vec![Artifact {
            kind: "wheel".into(),
            name: field("name"),
            version: field("version"),
            location: format!("/artifacts/{}", field("file")),
            digest: Some(format!("sha256:{}", field("sha256"))),
        }])
    }
}

loktar_sdk::export!(builder: Whl);
