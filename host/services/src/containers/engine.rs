//! The Docker Engine API through bollard: build an image from a context
//! folder, tag it, push it with a registry's credentials, inspect it.
//!
//! The engine is the one `[engine] host` names, else `DOCKER_HOST`, else the
//! local socket. It is connected (and the API version agreed) on first use,
//! so a configuration without docker services never needs an engine.

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use loktar_settings::EngineSettings;
use loktar_support::beneath::Folder;
use loktar_support::diagnostic::Diagnostic;

/// Where the engine is when nothing says otherwise.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How long one engine request may take (a build or a push is one request), in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 3600;

/// An image build, with the context already opened (link-free, below the package folder).
#[derive(Debug)]
pub struct BuildRequest {
    /// The context folder.
    pub context: Folder,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// The stage to build.
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// Local tags (`name:tag`).
    pub tags: Vec<String>,
}

/// A local image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// Its id (`sha256:…`).
    pub id: String,
    /// Its local tags.
    pub tags: Vec<String>,
    /// `repository@sha256:…` for each registry manifest it is known as.
    pub repo_digests: Vec<String>,
    /// Its labels.
    pub labels: Vec<(String, String)>,
}

/// The container engine of this host.
#[derive(Debug)]
pub struct Engine {
    address: String,
    docker: OnceCell<Docker>,
}

impl Engine {
    /// The engine `settings` (else `DOCKER_HOST`) point at, not yet connected.
    pub fn new(settings: &EngineSettings) -> Engine {
        let address = settings
            .host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|host| !host.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Engine { address, docker: OnceCell::new() }
    }

    /// The engine's address, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub(super) async fn docker(&self) -> Result<&Docker, Diagnostic> {
        self.docker
            .get_or_try_init(|| async {
                let docker = if let Some(path) = self.address.strip_prefix("unix://") {
                    Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                } else if self.address.starts_with("tcp://") || self.address.starts_with("http://") {
                    Docker::connect_with_http(&self.address, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                } else {
                    return Err(Diagnostic::new(format!(
                        "the container engine address `{}` is neither `unix://…` nor `tcp://…`",
                        self.address
                    ))
                    .hint("set `host` under `[engine]` in loktar.toml, or `DOCKER_HOST`"));
                };
                let docker = docker.map_err(|e| self.unreachable(&e))?;
                docker.negotiate_version().await.map_err(|e| self.unreachable(&e))
            })
            .await
    }

    fn unreachable(&self, error: &BollardError) -> Diagnostic {
        let reason = match error {
            BollardError::SocketNotFoundError(path) => format!("no socket at `{path}`"),
            other => other.to_string(),
        };
        Diagnostic::new(format!("cannot reach the container engine at `{}`: {reason}", self.address)).hint(
            "start the Docker Engine (`dockerd`), or point `DOCKER_HOST` or `host` under `[engine]` in loktar.toml at it",
        )
    }

    /// The engine's version and the API version Loktar speaks with it:
    /// whether it answers, for `loktar doctor`.
    pub async fn version(&self) -> Result<(String, String), Diagnostic> {
        let docker = self.docker().await?;
        let version = docker.version().await.map_err(|e| self.failed("asking the engine's version", e))?;
        Ok((version.version.unwrap_or_else(|| "unknown".to_string()), docker.client_version().to_string()))
    }

    /// An error from a call on a connected engine.
    pub(super) fn failed(&self, what: &str, error: BollardError) -> Diagnostic {
        match error {
            BollardError::DockerResponseServerError { message, .. }
            | BollardError::DockerStreamError { error: message } => {
                Diagnostic::new(format!("{what} failed: {}", message.trim()))
            }
            BollardError::HyperLegacyError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError => self.unreachable(&error),
            other => Diagnostic::new(format!("{what} failed: {other}")),
        }
    }

    /// Builds an image; each line of build output goes to `log`. Returns the image id.
    pub async fn build(&self, request: BuildRequest, log: &mut (dyn FnMut(&str) + Send)) -> Result<String, Diagnostic> {
        let docker = self.docker().await?;
        if request.context.open_file(Path::new(request.dockerfile.trim_start_matches("./"))).is_err() {
            let dockerfile = request.context.shown().join(&request.dockerfile);
            return Err(Diagnostic::new(format!("there is no Dockerfile at `{}`", dockerfile.display()))
                .hint("add one (a plain file, not a link), or name it with `build_info.dockerfile` in loktar.json"));
        }
        // Dropped with this future when the call's deadline passes or its run is cancelled.
        let archive = super::context::archive_to_memory(request.context, &request.dockerfile).await?;
        let build_args: HashMap<&str, &str> =
            request.build_args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let labels: HashMap<&str, &str> = request.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(&request.dockerfile)
            .rm(true)
            .forcerm(true)
            .buildargs(&build_args)
            .labels(&labels);
        if let Some(first) = request.tags.first() {
            options = options.t(first);
        }
        if let Some(target) = &request.target {
            options = options.target(target);
        }
        let mut stream = docker.build_image(options.build(), None, Some(bollard::body_full(archive.into())));
        let mut id = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.failed("the image build", e))?;
            for line in info.stream.iter().chain(info.status.iter()).flat_map(|text| text.lines()) {
                if !line.trim().is_empty() {
                    log(line.trim_end());
                }
            }
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_else(|| "unknown error".to_string());
                return Err(Diagnostic::new(format!("the image build failed: {}", message.trim())));
            }
            if let Some(found) = info.aux.and_then(|aux| aux.id) {
                id = Some(found);
            }
        }
        let id = match id {
            Some(id) => id,
            None => match request.tags.first() {
                Some(tag) => self.inspect(tag).await?.map(|image| image.id).unwrap_or_default(),
                None => String::new(),
            },
        };
        if id.is_empty() {
            return Err(Diagnostic::new("the image build ended without an image"));
        }
        for tag in request.tags.iter().skip(1) {
            self.tag(&id, tag).await?;
        }
        Ok(id)
    }

    /// Gives `image` the local tag `name:tag`.
    pub async fn tag(&self, image: &str, reference: &str) -> Result<(), Diagnostic> {
        let docker = self.docker().await?;
        let (repo, tag) = split_reference(reference);
        let options = TagImageOptionsBuilder::default().repo(repo).tag(tag).build();
        docker
            .tag_image(image, Some(options))
            .await
            .map_err(|e| self.failed(&format!("tagging `{image}` as `{reference}`"), e))
    }

    /// The local image `reference` (id or `name:tag`), `None` when there is none.
    pub async fn inspect(&self, reference: &str) -> Result<Option<ImageInfo>, Diagnostic> {
        let docker = self.docker().await?;
        match docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(ImageInfo {
                id: image.id.unwrap_or_default(),
                tags: image.repo_tags.unwrap_or_default(),
                repo_digests: image.repo_digests.unwrap_or_default(),
                labels: image
                    .config
                    .and_then(|config| config.labels)
                    .map(|labels| labels.into_iter().collect())
                    .unwrap_or_default(),
            })),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.failed(&format!("inspecting `{reference}`"), e)),
        }
    }

    /// The tags of local images named `repository`.
    pub async fn local_tags(&self, repository: &str) -> Result<Vec<String>, Diagnostic> {
        let docker = self.docker().await?;
        let filters = HashMap::from([("reference", vec![repository])]);
        let options = ListImagesOptionsBuilder::default().filters(&filters).build();
        let images = docker.list_images(Some(options)).await.map_err(|e| self.failed("listing images", e))?;
        let prefix = format!("{repository}:");
        let mut tags: Vec<String> = images
            .into_iter()
            .flat_map(|image| image.repo_tags)
            .filter_map(|reference| reference.strip_prefix(&prefix).map(str::to_string))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Tags `image` as `remote:tag` and pushes it with `credentials`; each
    /// progress line goes to `log`. Returns the manifest digest.
    pub async fn push(
        &self,
        image: &str,
        remote: &str,
        tag: &str,
        credentials: DockerCredentials,
        log: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, Diagnostic> {
        let reference = format!("{remote}:{tag}");
        self.tag(image, &reference).await?;
        let docker = self.docker().await?;
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = docker.push_image(remote, Some(options), Some(credentials));
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.failed(&format!("pushing `{reference}`"), e))?;
            let Some(status) = info.status else { continue };
            // Byte counts of every layer would drown the log; their start and end say enough.
            if status == "Pushing" || status == "Waiting" {
                continue;
            }
            if let Some(found) = status.split("digest: ").nth(1).and_then(|rest| rest.split_whitespace().next()) {
                digest = Some(found.to_string());
            }
            log(&status);
        }
        match digest {
            Some(digest) => Ok(digest),
            None => {
                let prefix = format!("{remote}@");
                let pushed = self.inspect(image).await?.and_then(|info| {
                    info.repo_digests.iter().find_map(|d| d.strip_prefix(&prefix).map(str::to_string))
                });
                pushed.ok_or_else(|| Diagnostic::new(format!("pushing `{reference}` reported no digest")))
            }
        }
    }
}

/// `name:tag` split at the tag's colon (a registry port's colon stays in the name).
fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(split_reference("app:1"), ("app", "1"));
        assert_eq!(split_reference("127.0.0.1:5000/ns/app:main"), ("127.0.0.1:5000/ns/app", "main"));
        assert_eq!(split_reference("127.0.0.1:5000/ns/app"), ("127.0.0.1:5000/ns/app", "latest"));
    }
}
