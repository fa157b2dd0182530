//! Conveniences over the generated bindings: constructors for the records
//! and short functions for the stage log and for running programs.

use crate::role::bindings::types::{Capability, Error, PluginInfo, Role, RunContext};

impl PluginInfo {
    /// A plugin playing `role` that needs no capability yet.
    pub fn new(name: &str, version: &str, role: Role) -> Self {
        PluginInfo { name: name.to_string(), version: version.to_string(), roles: vec![role], capabilities: Vec::new() }
    }

    /// Declares the capabilities the plugin imports.
    pub fn with_capabilities(mut self, capabilities: &[Capability]) -> Self {
        self.capabilities.extend_from_slice(capabilities);
        self
    }
}

impl Error {
    /// An error with a message (lowercase, values in backticks).
    pub fn new(message: impl Into<String>) -> Self {
        Error { message: message.into(), hint: None }
    }

    /// Adds the obvious fix.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl RunContext {
    /// `owner/repo` of the run's repository — the one the host
    /// configuration's `[github] repository` names, else the `origin`
    /// remote — read exactly as the host reads it, when there is one.
    pub fn repository_slug(&self) -> Option<String> {
        loktar_protocol::repository_slug(self.repository_url.as_deref()?)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::new(error.to_string())
    }
}

/// Writing to the stage log.
pub mod log {
    use crate::role::bindings::raw::log::{Level, write};

    /// A line for `RUST_LOG=debug`.
    pub fn debug(message: &str) {
        write(Level::Debug, message);
    }

    /// A line of normal progress.
    pub fn info(message: &str) {
        write(Level::Info, message);
    }

    /// A line the user should look at.
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }

    /// A line about something that failed.
    pub fn error(message: &str) {
        write(Level::Error, message);
    }
}

/// Running allow-listed programs in the package folder.
#[cfg(any(feature = "tester", feature = "builder"))]
pub mod process {
    pub use crate::role::bindings::raw::process::{Command, ExitStatus, HostFolders};
    use crate::role::bindings::types::Error;

    impl Command {
        /// Runs `program` (looked up in the host's `PATH`) in the package folder.
        pub fn new(program: &str) -> Self {
            Command { program: program.to_string(), args: Vec::new(), env: Vec::new(), cwd: None, timeout_ms: None }
        }

        /// Adds an argument.
        pub fn arg(mut self, arg: &str) -> Self {
            self.args.push(arg.to_string());
            self
        }

        /// Sets an environment variable.
        pub fn env(mut self, key: &str, value: &str) -> Self {
            self.env.push((key.to_string(), value.to_string()));
            self
        }

        /// Runs in a subfolder of the package folder.
        pub fn cwd(mut self, folder: &str) -> Self {
            self.cwd = Some(folder.to_string());
            self
        }

        /// Stops the program after `milliseconds`.
        pub fn timeout_ms(mut self, milliseconds: u64) -> Self {
            self.timeout_ms = Some(milliseconds);
            self
        }
    }

    impl ExitStatus {
        /// Whether the program exited with code 0.
        pub fn success(&self) -> bool {
            self.code == Some(0)
        }
    }

    /// Runs a program to completion; its output goes to the stage log.
    pub fn run(command: &Command) -> Result<ExitStatus, Error> {
        crate::role::bindings::raw::process::run(command)
    }

    /// Runs a program that must succeed; otherwise an error saying that
    /// `what` failed, how the program ended, and that its output is in the log.
    pub fn run_checked(command: &Command, what: &str) -> Result<(), Error> {
        let status = run(command)?;
        if status.success() {
            return Ok(());
        }
        let how = status.code.map_or_else(|| "was stopped".to_string(), |code| format!("exited with {code}"));
        Err(Error::new(format!("{what} failed: `{}` {how}", command.program))
            .with_hint("its output is in the stage log above"))
    }

    /// The host paths of `/package` and `/artifacts`, to name them in a program's arguments.
    pub fn folders() -> Result<HostFolders, Error> {
        crate::role::bindings::raw::process::folders()
    }
}

/// A registry's REST API, as the host configuration gives it
/// (`[registries.<name>] api_url`; the host adds the token).
#[cfg(any(feature = "builder", feature = "registry"))]
pub mod registry_api {
    use crate::role::bindings::raw::container_engine::{self, ApiRequest, ApiResponse};
    use crate::role::bindings::types::Error;

    /// Calls `method path` with an optional JSON body; the answer whatever its status.
    pub fn call(
        registry: &str,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<ApiResponse, Error> {
        container_engine::registry_api(
            registry,
            &ApiRequest { method: method.to_string(), path: path.to_string(), body: body.map(|b| b.to_string()) },
        )
    }

    /// Calls `method path` and expects a 2xx answer with a JSON body; any
    /// other answer is an error saying what `what` was and what the registry said.
    pub fn call_ok(
        registry: &str,
        what: &str,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, Error> {
        let answer = call(registry, method, path, body)?;
        let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or(serde_json::Value::Null);
        if (200..300).contains(&answer.status) {
            return Ok(json);
        }
        let said = ["error_message", "detail", "message", "error"]
            .iter()
            .find_map(|key| json[key].as_str())
            .map(|text| format!(": {text}"))
            .unwrap_or_default();
        Err(Error::new(format!("registry `{registry}` refused {what} (HTTP {}){said}", answer.status)))
    }

    /// Makes sure the Quay repository `namespace/repository` exists, creating
    /// it with `visibility` (`private` or `public`) when it does not; returns
    /// whether it was created.
    pub fn ensure_quay_repository(
        registry: &str,
        namespace: &str,
        repository: &str,
        visibility: &str,
    ) -> Result<bool, Error> {
        let path = format!("/repository/{namespace}/{repository}");
        let found = call(registry, "GET", &path, None)?;
        match found.status {
            200 => return Ok(false),
            404 => {}
            status => {
                return Err(Error::new(format!(
                    "registry `{registry}` answered HTTP {status} when asked for repository `{namespace}/{repository}`"
                )));
            }
        }
        let body = serde_json::json!({
            "namespace": namespace,
            "repository": repository,
            "visibility": visibility,
            "description": "Built and published by Loktar.",
            "repo_kind": "image",
        });
        call_ok(
            registry,
            &format!("to create repository `{namespace}/{repository}`"),
            "POST",
            "/repository",
            Some(&body),
        )?;
        super::log::info(&format!("created repository `{namespace}/{repository}` ({visibility})"));
        Ok(true)
    }
}

/// Loktar's version rule for what builders make: `None` on the default
/// branch (a release keeps the package's own version), else a label made of
/// the branch and the commit — lowercase letters and digits joined by dots,
/// `feature.loud.1a2b3c4d` — to append to the version
/// (`1.2.0+feature.loud.1a2b3c4d`), so a branch build never takes a
/// release's version.
#[cfg(feature = "builder")]
pub fn branch_label(context: &crate::role::bindings::types::RunContext) -> Option<String> {
    if context.on_default_branch {
        return None;
    }
    let branch = context.branch.as_deref().unwrap_or("detached");
    let commit: String = context.commit.chars().take(8).collect();
    let raw = format!("{branch}.{commit}").to_lowercase();
    Some(raw.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join("."))
}

/// The artifact for `file`, which a builder made in `/artifacts`: its
/// location there and its SHA-256 as the digest (storage plugins trust it).
#[cfg(feature = "builder")]
pub fn file_artifact(
    kind: &str,
    name: &str,
    version: &str,
    file: &str,
) -> Result<crate::role::bindings::types::Artifact, crate::role::bindings::types::Error> {
    use crate::role::bindings::types::{Artifact, Error};
    use sha2::{Digest, Sha256};

    let location = format!("/artifacts/{file}");
    let bytes = std::fs::read(&location).map_err(|e| Error::new(format!("cannot read `{file}`: {e}")))?;
    let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    log::info(&format!("built {file} ({} bytes)", bytes.len()));
    Ok(Artifact {
        kind: kind.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        location,
        digest: Some(format!("sha256:{digest}")),
    })
}

/// Where a storage plugin keeps an artifact file named `file`:
/// `<package>/<version>/<file>`. Jars of a package with `build_info.emr:
/// true` follow Loktar's Elastic MapReduce layout instead:
/// `jars/prod/<package>/<file>` on the default branch and
/// `jars/dev/<package>/<branch>/<file>` on others.
#[cfg(feature = "storage")]
pub fn storage_key(
    context: &crate::role::bindings::types::RunContext,
    package: &crate::role::bindings::types::Package,
    artifact: &crate::role::bindings::types::Artifact,
    file: &str,
) -> String {
    let settings: serde_json::Value = serde_json::from_str(&package.settings).unwrap_or_default();
    let emr = artifact.kind == "jar" && settings["emr"].as_bool() == Some(true);
    match (emr, context.on_default_branch) {
        (false, _) => format!("{}/{}/{file}", package.name, artifact.version),
        (true, true) => format!("jars/prod/{}/{file}", package.name),
        (true, false) => {
            let branch = context.branch.as_deref().unwrap_or("detached");
            format!("jars/dev/{}/{branch}/{file}", package.name)
        }
    }
}

/// What a storage plugin does with a package's artifacts, in the store
/// `store` (the one named after the plugin): each artifact file goes to its
/// [`storage_key`]; the same content already there is not sent again;
/// different content there is an error — a stored version is never
/// overwritten. Artifacts that are not files (images) are handed on
/// unchanged. Returns the artifacts with their stored locations.
#[cfg(feature = "storage")]
pub fn store_artifacts(
    store: &str,
    context: &crate::role::bindings::types::RunContext,
    package: &crate::role::bindings::types::Package,
    artifacts: Vec<crate::role::bindings::types::Artifact>,
) -> Result<Vec<crate::role::bindings::types::Artifact>, crate::role::bindings::types::Error> {
    use crate::role::bindings::raw::object_store;
    use crate::role::bindings::types::{Artifact, Error};
    use sha2::{Digest, Sha256};

    let mut stored = Vec::with_capacity(artifacts.len());
    for artifact in artifacts {
        let Some(file) = artifact.location.strip_prefix("/artifacts/") else {
            log::info(&format!("`{}` is not a file; nothing to store", artifact.location));
            stored.push(artifact);
            continue;
        };
        let file_name = file.rsplit('/').next().unwrap_or(file);
        let key = storage_key(context, package, &artifact, file_name);
        // Builders report the SHA-256 of what they made; hash the file only when one did not.
        let local = match artifact.digest.as_deref().and_then(|d| d.strip_prefix("sha256:")) {
            Some(digest) => digest.to_string(),
            None => {
                let bytes = std::fs::read(&artifact.location)
                    .map_err(|e| Error::new(format!("cannot read artifact `{}`: {e}", artifact.location)))?;
                Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
            }
        };
        let url = match object_store::head(store, &key)? {
            Some(existing) if existing.sha256.as_deref() == Some(local.as_str()) => {
                log::info(&format!("`{key}` is already stored with the same content"));
                existing.url
            }
            Some(_) => {
                return Err(Error::new(format!(
                    "`{key}` is already stored with different content: version `{}` of `{}` was built before",
                    artifact.version, package.name
                ))
                .with_hint("a stored version is never overwritten: give the package a new version"));
            }
            None => {
                let info = object_store::put(store, &key, &artifact.location)?;
                log::info(&format!("stored `{key}` ({} bytes) at {}", info.size, info.url));
                info.url
            }
        };
        stored.push(Artifact { location: url, ..artifact });
    }
    Ok(stored)
}

/// The base name of an image reference, as discovery plugins match it
/// against package names: `registry:5000/org/pet_api:3@sha256:…` → `pet_api`.
#[cfg(feature = "discovery")]
pub fn image_base_name(reference: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last).to_ascii_lowercase()
}
