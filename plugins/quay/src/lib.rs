//! The `quay` registry: pushes the images a builder made to the registry
//! the host configuration names after `build_info.registry_type`
//! (`[registries.quay]`: `url`, `namespace`, robot `username`, token secret).
//! Any distribution v2 registry works; the host signs in.
//!
//! - With the registry's REST API configured (`api_url`, Quay's `/api/v1`),
//!   a missing repository is created first (`build_info.visibility`:
//!   `private`, the default, or `public`); registries without one create
//!   repositories on the first push.
//! - Publishing is idempotent: a tag the registry already holds with the
//!   very manifest this image was pushed as is not pushed again, and its
//!   digest is reported as it is.
//! - Images the registry built itself (`build_type: "url"`) are already
//!   there: their digests are read back and reported.

use loktar_sdk::prelude::*;
use loktar_sdk::raw::container_engine::{self, RegistryInfo};
use loktar_sdk::registry_api;

struct Quay;

impl Registry for Quay {
    fn describe() -> PluginInfo {
        PluginInfo::new("quay", env!("CARGO_PKG_VERSION"), Role::Registry)
            .with_capabilities(&[Capability::Log, Capability::ContainerEngine])
    }

    fn publish(_context: RunContext, package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        let registry = package.registry_type.clone().unwrap_or_else(|| "quay".to_string());
        let info = container_engine::registry(&registry)?;
        if info.has_api {
            let settings: serde_json::Value = serde_json::from_str(&package.settings).unwrap_or_default();
            let visibility = settings["visibility"].as_str().unwrap_or("private");
            let mut names: Vec<&str> = artifacts.iter().map(|a| a.name.as_str()).collect();
            names.dedup();
            for name in names {
                registry_api::ensure_quay_repository(&registry, &info.namespace, name, visibility)?;
            }
        }
        artifacts.into_iter().map(|artifact| publish_image(&registry, &info, &package, artifact)).collect()
    }
}

/// Pushes one image tag, unless the registry already has it.
fn publish_image(
    registry: &str,
    info: &RegistryInfo,
    package: &Package,
    artifact: Artifact,
) -> Result<Artifact, Error> {
    if artifact.kind != "image" {
        return Err(Error::new(format!(
            "the `quay` registry publishes images, and `{}` of package `{}` is a {}",
            artifact.name, package.name, artifact.kind
        ))
        .with_hint("remove `registry_type` from the package's `build_info`, or build it with `pkg_type: \"docker\"`"));
    }
    let (name, tag) = (&artifact.name, &artifact.version);
    let repository = format!("{}/{name}", info.prefix);
    let reference = format!("{repository}:{tag}");
    let remote = container_engine::remote_digest(registry, name, tag)?;
    if artifact.location == reference {
        // Built by the registry itself: nothing local to push.
        let digest = remote.ok_or_else(|| {
            Error::new(format!("the registry built `{reference}`, but does not have it"))
                .with_hint("look at the registry's build log")
        })?;
        log::info(&format!("`{reference}` was built by the registry as {digest}"));
        return Ok(Artifact { digest: Some(digest), ..artifact });
    }
    let local = container_engine::inspect(&artifact.location)?.ok_or_else(|| {
        Error::new(format!("there is no local image `{}` to publish", artifact.location))
            .with_hint("the build stage makes it: run the package's build first")
    })?;
    let digest = match remote {
        Some(remote) if local.repo_digests.iter().any(|d| *d == format!("{repository}@{remote}")) => {
            log::info(&format!("`{reference}` is already published as {remote}; nothing pushed"));
            remote
        }
        _ => {
            let digest = container_engine::push(&artifact.location, registry, name, tag)?;
            log::info(&format!("pushed `{reference}` as {digest}"));
            digest
        }
    };
    Ok(Artifact { location: reference, digest: Some(digest), ..artifact })
}

loktar_sdk::export!(registry: Quay);
