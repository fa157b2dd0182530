//! The `docker` builder: the package folder built into an image by the
//! host's container engine.
//!
//! - `build_info.dockerfile` (default `Dockerfile`, relative to the package
//!   folder), `build_info.target` (a multi-stage build's stage),
//!   `build_info.build_args` (an object of `--build-arg` values).
//! - The image is named after the package and labelled with the OCI
//!   annotations: `org.opencontainers.image.source` (the repository's URL),
//!   `.revision` (the commit) and `.created` (the commit's time, so the same
//!   commit builds the same image).
//! - Tags, Loktar's scheme: always the short commit; on a branch, the branch
//!   name made tag-safe (`feature/Loud` → `feature-loud`); on the default
//!   branch the next integer — one more than the highest numeric tag in the
//!   registry of `build_info.registry_type` (or among local images without
//!   one) — and `latest`. Building a commit that already has its number
//!   keeps that number.
//!
//! - `build_type: "url"`: the registry builds the image instead (see [`remote`]).
//!
//! Each tag is returned as an `image` artifact (`location` = `name:tag`,
//! `digest` = the image id) for the registry plugin to push.

mod remote;

use loktar_sdk::prelude::*;
use loktar_sdk::raw::container_engine::{self, BuildRequest};

struct Docker;

/// Characters of the commit in its tag (git's short form).
const SHORT_COMMIT: usize = 7;
/// How many numeric tags are compared with the commit's image before a new number is taken.
const NUMBERS_CHECKED: usize = 5;

impl Builder for Docker {
    fn describe() -> PluginInfo {
        PluginInfo::new("docker", env!("CARGO_PKG_VERSION"), Role::Builder).with_capabilities(&[
            Capability::Log,
            Capability::ContainerEngine,
            Capability::ObjectStore,
        ])
    }

    fn build(context: RunContext, package: Package) -> Result<Vec<Artifact>, Error> {
        let settings: serde_json::Value = serde_json::from_str(&package.settings).unwrap_or_default();
        let name = image_name(&package.name);
        let dockerfile = settings["dockerfile"].as_str().unwrap_or("Dockerfile").to_string();
        if !std::path::Path::new(&format!("/package/{dockerfile}")).is_file() {
            let folder =
                if package.dir.is_empty() { "the repository root".to_string() } else { format!("`{}`", package.dir) };
            return Err(Error::new(format!("package `{}` has no `{dockerfile}` in {folder}", package.name))
                .with_hint("add a Dockerfile to the package folder, or name it with `build_info.dockerfile`"));
        }
        let tags = tags(&context, &package, &name)?;
        match package.build_type.as_deref() {
            None | Some("local") => {}
            Some("url") => return remote::build(&context, &package, &settings, &name, &tags, &dockerfile),
            Some(other) => {
                return Err(Error::new(format!(
                    "package `{}` has `build_type` `{other}`, which the `docker` builder does not know",
                    package.name
                ))
                .with_hint("use `local` (the host's engine builds it) or `url` (the registry builds it)"));
            }
        }
        let request = BuildRequest {
            context: String::new(),
            dockerfile,
            target: settings["target"].as_str().map(str::to_string),
            build_args: build_args(&package, &settings)?,
            labels: labels(&context, &package),
            tags: tags.iter().map(|tag| format!("{name}:{tag}")).collect(),
        };
        log::info(&format!("building image `{name}` with tags {}", tags.join(", ")));
        let id = container_engine::build(&request)?;
        log::info(&format!("built `{name}` as {id}"));
        Ok(tags
            .into_iter()
            .map(|tag| Artifact {
                kind: "image".to_string(),
                name: name.clone(),
                location: format!("{name}:{tag}"),
                version: tag,
                digest: Some(id.clone()),
            })
            .collect())
    }
}

/// `text` in lowercase with every character image names and tags do not allow made `-`.
fn image_safe(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect()
}

/// The image name for a package: lowercase, only what image names allow.
fn image_name(package: &str) -> String {
    image_safe(package).trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// A branch name as an image tag: `[a-z0-9_.-]`, not starting with `.` or `-`, at most 128 characters.
fn branch_tag(branch: &str) -> String {
    let tag: String = image_safe(branch).trim_start_matches(['.', '-']).chars().take(128).collect();
    if tag.is_empty() { "branch".to_string() } else { tag }
}

/// The tags of this build, by Loktar's scheme.
fn tags(context: &RunContext, package: &Package, name: &str) -> Result<Vec<String>, Error> {
    let commit: String = context.commit.chars().take(SHORT_COMMIT).collect();
    let mut tags = Vec::new();
    if context.on_default_branch {
        tags.push(release_number(package, name, &commit)?.to_string());
        tags.push("latest".to_string());
    } else if let Some(branch) = &context.branch {
        tags.push(branch_tag(branch));
    }
    if !commit.is_empty() && !tags.contains(&commit) {
        tags.push(commit);
    }
    if tags.is_empty() {
        tags.push("latest".to_string());
    }
    Ok(tags)
}

/// The number a release tag stands for. A short commit can be all digits
/// (`5791752`): digits as long as a short commit are a commit, not a
/// release — releases stop below 1,000,000 — and so are leading zeros.
fn release_tag(tag: &str) -> Option<u64> {
    let number: u64 = tag.parse().ok()?;
    (tag.len() < SHORT_COMMIT && number.to_string() == tag).then_some(number)
}

/// The number of a release: the one the commit already has, else one more than the highest.
fn release_number(package: &Package, name: &str, commit: &str) -> Result<u64, Error> {
    let registry = package.registry_type.as_deref();
    let existing = match registry {
        Some(registry) => container_engine::remote_tags(registry, name)?,
        None => container_engine::local_tags(name)?,
    };
    let mut numbers: Vec<u64> = existing.iter().filter_map(|tag| release_tag(tag)).collect();
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    if !commit.is_empty() && existing.iter().any(|tag| tag == commit) {
        let identity = |tag: &str| -> Result<Option<String>, Error> {
            Ok(match registry {
                Some(registry) => container_engine::remote_digest(registry, name, tag)?,
                None => container_engine::inspect(&format!("{name}:{tag}"))?.map(|image| image.id),
            })
        };
        if let Some(this) = identity(commit)? {
            for &number in numbers.iter().take(NUMBERS_CHECKED) {
                if identity(&number.to_string())?.as_deref() == Some(this.as_str()) {
                    log::info(&format!("commit {commit} is already release {number}; keeping its number"));
                    return Ok(number);
                }
            }
        }
    }
    let next = numbers.first().map_or(1, |highest| highest + 1);
    let source = registry.map_or("local images".to_string(), |r| format!("registry `{r}`"));
    log::info(&format!(
        "release {next} (highest numeric tag in {source}: {})",
        numbers.first().map_or("none".to_string(), u64::to_string)
    ));
    Ok(next)
}

fn build_args(package: &Package, settings: &serde_json::Value) -> Result<Vec<(String, String)>, Error> {
    let Some(args) = settings.get("build_args") else { return Ok(Vec::new()) };
    let Some(args) = args.as_object() else {
        return Err(Error::new(format!("`build_info.build_args` of package `{}` is not an object", package.name))
            .with_hint("write it as `\"build_args\": {\"NAME\": \"value\"}`"));
    };
    args.iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => Ok((key.clone(), text.clone())),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok((key.clone(), value.to_string())),
            _ => Err(Error::new(format!(
                "`build_info.build_args.{key}` of package `{}` is not a string, number or boolean",
                package.name
            ))),
        })
        .collect()
}

fn labels(context: &RunContext, package: &Package) -> Vec<(String, String)> {
    let mut labels = vec![("io.loktar.package".to_string(), package.name.clone())];
    if let Some(url) = &context.repository_url {
        labels.push(("org.opencontainers.image.source".to_string(), url.clone()));
    }
    if !context.commit.is_empty() {
        labels.push(("org.opencontainers.image.revision".to_string(), context.commit.clone()));
    }
    if let Some(time) = &context.commit_time {
        labels.push(("org.opencontainers.image.created".to_string(), time.clone()));
    }
    labels
}

loktar_sdk::export!(builder: Docker);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_all_digit_short_commit_is_not_a_release_number() {
        assert_eq!(release_tag("1"), Some(1));
        assert_eq!(release_tag("999999"), Some(999_999));
        assert_eq!(release_tag("5791752"), None, "a short commit");
        assert_eq!(release_tag("007"), None);
        assert_eq!(release_tag("latest"), None);
        assert_eq!(release_tag("-1"), None);
    }

    #[test]
    fn branch_names_become_valid_tags() {
        assert_eq!(branch_tag("feature/Loud"), "feature-loud");
        assert_eq!(branch_tag("-.hotfix"), "hotfix");
        assert_eq!(branch_tag("ünïcode"), "n-code");
        assert_eq!(branch_tag(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn image_names_are_lowercase() {
        assert_eq!(image_name("Pet_API"), "pet_api");
        assert_eq!(image_name("web front"), "web-front");
    }
}
