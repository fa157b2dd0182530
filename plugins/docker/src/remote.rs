//! `build_type: "url"`, Loktar's remote build: the registry builds the
//! image. The package folder is archived (`.tar.gz`), kept in the package's
//! store (`storage_type`, an S3 store the registry can fetch from), and the
//! registry's REST API — Quay's build API — is asked to build from a
//! presigned URL of it. The build is followed until it ends, its log
//! streamed into the stage log.
//!
//! - `build_info.build_timeout_secs` (default 3600): how long to follow it.
//! - `build_info.poll_interval_ms` (default 5000): how often to ask.

use loktar_sdk::prelude::*;
use loktar_sdk::raw::{container_engine, object_store};
use loktar_sdk::registry_api;

/// Where the archive is made, inside the artifact folder.
const ARCHIVE: &str = "/artifacts/build-context.tar.gz";
/// How long the registry may take to start fetching the archive, in seconds.
const URL_LIFETIME_SECS: u32 = 3600;
/// Phases in which a Quay build has ended.
const FINAL_PHASES: &[&str] = &["complete", "error", "internalerror", "cancelled", "expired"];

/// Has the registry build the package as `name` with `tags`; returns the images.
pub fn build(
    context: &RunContext,
    package: &Package,
    settings: &serde_json::Value,
    name: &str,
    tags: &[String],
    dockerfile: &str,
) -> Result<Vec<Artifact>, Error> {
    let registry = package.registry_type.as_deref().ok_or_else(|| {
        Error::new(format!(
            "package `{}` is built by its registry (`build_type: \"url\"`) but names none",
            package.name
        ))
        .with_hint("set `build_info.registry_type`, or build locally: `\"build_type\": \"local\"`")
    })?;
    for unsupported in ["build_args", "target"] {
        if settings.get(unsupported).is_some() {
            return Err(Error::new(format!(
                "the registry builds `{}` (`build_type: \"url\"`) and takes no `{unsupported}`",
                package.name
            ))
            .with_hint(format!("remove `build_info.{unsupported}`, or build locally: `\"build_type\": \"local\"`")));
        }
    }
    let info = container_engine::registry(registry)?;
    if !info.has_api {
        return Err(Error::new(format!(
            "registry `{registry}` has no REST API in the host configuration: it cannot build `{}`",
            package.name
        ))
        .with_hint(format!("set `api_url` and `api_token_secret` under `[registries.{registry}]` in loktar.toml")));
    }
    let store = package.storage_type.as_deref().ok_or_else(|| {
        Error::new(format!(
            "package `{}` is built by its registry, which fetches the build context from the package's storage, and it has none",
            package.name
        ))
        .with_hint("set `build_info.storage_type` to an S3 store, such as `\"s3\"`")
    })?;

    let size = container_engine::archive_context("", dockerfile, ARCHIVE)?;
    let revision = if context.commit.is_empty() { "worktree".to_string() } else { context.commit.clone() };
    let key = format!("build-contexts/{}/{revision}.tar.gz", package.name);
    object_store::put(store, &key, ARCHIVE)?;
    let _ = std::fs::remove_file(ARCHIVE);
    let url = object_store::presign(store, &key, URL_LIFETIME_SECS)?;
    log::info(&format!("build context: {size} bytes, kept as `{key}` in store `{store}`"));

    let visibility = settings["visibility"].as_str().unwrap_or("private");
    registry_api::ensure_quay_repository(registry, &info.namespace, name, visibility)?;
    let builds = format!("/repository/{}/{name}/build/", info.namespace);
    let request = serde_json::json!({
        "archive_url": url,
        "docker_tags": tags,
        "dockerfile_path": format!("/{dockerfile}"),
        "context": "/",
    });
    let started = registry_api::call_ok(registry, "to start a build", "POST", &builds, Some(&request))?;
    let id = started["id"]
        .as_str()
        .ok_or_else(|| Error::new(format!("registry `{registry}` started a build without saying its id")))?
        .to_string();
    log::info(&format!("registry `{registry}` is building `{}/{name}` as build {id}", info.prefix));
    follow(registry, &format!("{builds}{id}"), settings)?;

    tags.iter()
        .map(|tag| {
            Ok(Artifact {
                kind: "image".to_string(),
                name: name.to_string(),
                version: tag.clone(),
                location: format!("{}/{name}:{tag}", info.prefix),
                digest: None,
            })
        })
        .collect()
}

/// Follows the build at `path` until it ends, streaming its log; an error unless it completed.
fn follow(registry: &str, path: &str, settings: &serde_json::Value) -> Result<(), Error> {
    let timeout = std::time::Duration::from_secs(settings["build_timeout_secs"].as_u64().unwrap_or(3600));
    let interval = std::time::Duration::from_millis(settings["poll_interval_ms"].as_u64().unwrap_or(5000));
    let started = std::time::Instant::now();
    let mut seen = 0;
    loop {
        seen = stream_logs(registry, path, seen)?;
        let status =
            registry_api::call_ok(registry, "to say how the build goes", "GET", &format!("{path}/status"), None)?;
        let phase = status["phase"].as_str().unwrap_or("unknown");
        if FINAL_PHASES.contains(&phase) {
            stream_logs(registry, path, seen)?;
            if phase == "complete" {
                log::info("the registry's build completed");
                return Ok(());
            }
            let why = status["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            return Err(Error::new(format!("the registry's build ended in phase `{phase}`{why}"))
                .with_hint("its log is in the stage log above"));
        }
        if started.elapsed() >= timeout {
            return Err(Error::new(format!(
                "the registry's build did not finish within {} s (last phase `{phase}`)",
                timeout.as_secs()
            ))
            .with_hint("raise `build_info.build_timeout_secs` if it needs longer"));
        }
        std::thread::sleep(interval);
    }
}

/// Writes the build's log lines from `start` on; returns how many there are now.
fn stream_logs(registry: &str, path: &str, start: u64) -> Result<u64, Error> {
    let logs =
        registry_api::call_ok(registry, "to send the build log", "GET", &format!("{path}/logs?start={start}"), None)?;
    let mut seen = start;
    for entry in logs["logs"].as_array().into_iter().flatten() {
        if let Some(message) = entry["message"].as_str() {
            log::info(message);
        }
        seen += 1;
    }
    Ok(logs["total"].as_u64().unwrap_or(seen).max(seen))
}
