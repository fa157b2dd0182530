//! `container-engine`: images built from the package folder, tagged, pushed
//! to the registries of the host configuration and inspected, through
//! [`loktar_services::containers`]. Build and push output goes to the stage log; a
//! cancelled run stops a build, push or context archiving in flight.

use std::path::{Component, Path};

use wasmtime::component::{HasSelf, Linker};

use super::object_store::Access;
use super::{Grant, Grants};
use crate::bindings::host::loktar::plugin::container_engine::{
    self, ApiRequest, ApiResponse, BuildRequest, ImageInfo, RegistryInfo,
};
use crate::bindings::host::loktar::plugin::types::Error;
use crate::stage_log::{Level, Source};
use crate::state::StoreState;
use loktar_services::containers::{self, Containers};
use loktar_settings::{Capability, PluginSettings, Settings};
use loktar_support::beneath::Folder;
use loktar_support::diagnostic::Diagnostic;
use tokio_util::sync::CancellationToken;

/// The container engine and the registries of the host configuration, with
/// their credentials (read from their secrets when the plugin loads).
#[derive(Debug)]
pub(crate) struct ContainerGrant {
    containers: Containers,
}

impl Grant for ContainerGrant {
    const CAPABILITY: Capability = Capability::ContainerEngine;

    fn from_settings(_: &str, _: &PluginSettings, settings: &Settings) -> ContainerGrant {
        ContainerGrant { containers: Containers::from_settings(settings) }
    }

    fn of(grants: &Grants) -> Option<&ContainerGrant> {
        grants.container_engine.as_ref()
    }
}

impl container_engine::Host for StoreState {
    async fn build(&mut self, request: BuildRequest) -> Result<String, Error> {
        let containers = self.containers()?;
        let context = self.package_path(&request.context)?;
        let request = containers::BuildRequest {
            context,
            dockerfile: request.dockerfile,
            target: request.target,
            build_args: request.build_args,
            labels: request.labels,
            tags: request.tags,
        };
        let log = self.log.clone();
        let mut write = |line: &str| {
            log.push(Source::Program, Level::Info, line);
        };
        unless_cancelled(self.cancel.clone(), "the image build", containers.engine.build(request, &mut write)).await
    }

    async fn archive_context(&mut self, context: String, dockerfile: String, path: String) -> Result<u64, Error> {
        self.containers()?;
        let context = self.package_path(&context)?;
        let file = self.artifact_file(&path, Access::Create)?;
        // Dropping the archiving stops it: here when the run is cancelled, and with
        // the whole call when the plugin's deadline passes.
        let archive = containers::context::archive_to_file(context, &dockerfile, file);
        unless_cancelled(self.cancel.clone(), "archiving the build context", archive).await
    }

    async fn tag(&mut self, image: String, tag: String) -> Result<(), Error> {
        self.containers()?.engine.tag(&image, &tag).await.map_err(Error::from)
    }

    async fn inspect(&mut self, reference: String) -> Result<Option<ImageInfo>, Error> {
        let found = self.containers()?.engine.inspect(&reference).await.map_err(Error::from)?;
        Ok(found.map(|image| ImageInfo {
            id: image.id,
            tags: image.tags,
            repo_digests: image.repo_digests,
            labels: image.labels,
        }))
    }

    async fn local_tags(&mut self, repository: String) -> Result<Vec<String>, Error> {
        self.containers()?.engine.local_tags(&repository).await.map_err(Error::from)
    }

    async fn registry(&mut self, name: String) -> Result<RegistryInfo, Error> {
        let containers = self.containers()?;
        let registry = containers.registry(&name).map_err(Error::from)?;
        Ok(RegistryInfo {
            prefix: registry.prefix(),
            namespace: registry.namespace().to_string(),
            has_api: registry.has_api(),
        })
    }

    async fn registry_api(&mut self, registry: String, request: ApiRequest) -> Result<ApiResponse, Error> {
        let containers = self.containers()?;
        let registry = containers.registry(&registry).map_err(Error::from)?;
        let (status, body) = registry.api(&request.method, &request.path, request.body).await.map_err(Error::from)?;
        Ok(ApiResponse { status, body })
    }

    async fn remote_tags(&mut self, registry: String, repository: String) -> Result<Vec<String>, Error> {
        let containers = self.containers()?;
        containers.registry(&registry).map_err(Error::from)?.tags(&repository).await.map_err(Error::from)
    }

    async fn remote_digest(
        &mut self,
        registry: String,
        repository: String,
        tag: String,
    ) -> Result<Option<String>, Error> {
        let containers = self.containers()?;
        containers.registry(&registry).map_err(Error::from)?.digest(&repository, &tag).await.map_err(Error::from)
    }

    async fn push(
        &mut self,
        image: String,
        registry: String,
        repository: String,
        tag: String,
    ) -> Result<String, Error> {
        let containers = self.containers()?;
        let target = containers.registry(&registry).map_err(Error::from)?;
        let log = self.log.clone();
        let mut write = |line: &str| {
            log.push(Source::Program, Level::Info, line);
        };
        let push = async {
            containers
                .engine
                .push(&image, &target.remote(&repository), &tag, target.credentials(), &mut write)
                .await
                .map_err(|e| target.explain_push_failure(e))
        };
        unless_cancelled(self.cancel.clone(), "the push", push).await
    }
}

impl StoreState {
    /// The engine and registries, when the plugin was granted them.
    fn containers(&self) -> Result<&Containers, Error> {
        Ok(&self.grant::<ContainerGrant>()?.containers)
    }

    /// A folder below the package folder, opened with no link on its way.
    fn package_path(&self, relative: &str) -> Result<Folder, Error> {
        let path = Path::new(relative);
        if path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(Error {
                message: format!("`{relative}` is not a folder inside the package"),
                hint: Some("name the build context relative to the package folder, without `..`".to_string()),
            });
        }
        let package = self
            .package_dir
            .as_ref()
            .ok_or_else(|| Error { message: "this call has no package folder".to_string(), hint: None })?;
        package.folder(path).map_err(|e| Error {
            message: format!("cannot use `{relative}` as the build context: {e}"),
            hint: Some("name a real folder inside the package, with no link on its path".to_string()),
        })
    }
}

/// Runs `work` unless the run is cancelled first; a cancelled build or
/// push is dropped, which closes its connection and stops it.
async fn unless_cancelled<T>(
    cancel: Option<CancellationToken>,
    what: &str,
    work: impl Future<Output = Result<T, Diagnostic>>,
) -> Result<T, Error> {
    let cancel = cancel.filter(|cancel| !cancel.is_cancelled());
    let cancelled = async {
        match &cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = work => result.map_err(Error::from),
        () = cancelled => Err(Error { message: format!("{what} was stopped: the run was cancelled"), hint: None }),
    }
}

/// Adds `container-engine` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    container_engine::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stage_log::StageLog;
    use crate::state::CallEnv;
    use loktar_settings::Limits;

    #[test]
    fn an_ungranted_plugin_reaches_no_engine_and_no_registry() {
        let log = StageLog::new(1024, "quay");
        let mut state =
            StoreState::new("quay", Arc::default(), &Limits::default(), log, &CallEnv::default()).expect("state");
        let tokio = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        let error = tokio.block_on(container_engine::Host::registry(&mut state, "quay".into())).expect_err("refused");
        assert_eq!(error.message, "plugin `quay` was not granted capability `container-engine`");
        let error =
            tokio.block_on(container_engine::Host::tag(&mut state, "a".into(), "b".into())).expect_err("refused");
        assert_eq!(error.message, "plugin `quay` was not granted capability `container-engine`");
    }
}
