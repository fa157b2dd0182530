//! The calls the host makes into plugins, one per role function. Each
//! instantiates the plugin's role world in a fresh store and turns the
//! plugin's own `error` into a [`PluginError`] naming it.

use super::bindings::{builder, discovery, notifier, registry, storage, tester, types};
use super::state::StoreState;
use super::{CallEnv, Outcome, PluginError, PluginSession};
use loktar_config::{Package, PackageKind};
use loktar_settings::Role;
use loktar_support::diagnostic::Diagnostic;

impl PluginSession {
    /// Runs a tester plugin on a package.
    pub async fn test(
        &self,
        provider: &str,
        context: &types::RunContext,
        package: &Package,
        env: &CallEnv,
    ) -> Result<Outcome<types::TestReport>, PluginError> {
        let context = &self.plugin_context(provider, context);
        let package = wit_package(package);
        self.role_call(provider, Role::Tester, env, async |store, pre| {
            let tester = tester::TesterPre::new(pre.clone())?.instantiate_async(&mut *store).await?;
            tester.call_test(&mut *store, context, &package).await
        })
        .await
    }

    /// Runs a builder plugin on a package; returns what it built.
    pub async fn build(
        &self,
        provider: &str,
        context: &types::RunContext,
        package: &Package,
        env: &CallEnv,
    ) -> Result<Outcome<Vec<types::Artifact>>, PluginError> {
        let context = &self.plugin_context(provider, context);
        let package = wit_package(package);
        self.role_call(provider, Role::Builder, env, async |store, pre| {
            let builder = builder::BuilderPre::new(pre.clone())?.instantiate_async(&mut *store).await?;
            builder.call_build(&mut *store, context, &package).await
        })
        .await
    }

    /// Runs a registry plugin on a package's artifacts; returns them as published.
    pub async fn publish(
        &self,
        provider: &str,
        context: &types::RunContext,
        package: &Package,
        artifacts: &[types::Artifact],
        env: &CallEnv,
    ) -> Result<Outcome<Vec<types::Artifact>>, PluginError> {
        let context = &self.plugin_context(provider, context);
        let package = wit_package(package);
        self.role_call(provider, Role::Registry, env, async |store, pre| {
            let registry = registry::RegistryPre::new(pre.clone())?.instantiate_async(&mut *store).await?;
            registry.call_publish(&mut *store, context, &package, artifacts).await
        })
        .await
    }

    /// Runs a storage plugin on a package's artifacts; returns them as stored.
    pub async fn store(
        &self,
        provider: &str,
        context: &types::RunContext,
        package: &Package,
        artifacts: &[types::Artifact],
        env: &CallEnv,
    ) -> Result<Outcome<Vec<types::Artifact>>, PluginError> {
        let context = &self.plugin_context(provider, context);
        let package = wit_package(package);
        self.role_call(provider, Role::Storage, env, async |store, pre| {
            let storage = storage::StoragePre::new(pre.clone())?.instantiate_async(&mut *store).await?;
            storage.call_store(&mut *store, context, &package, artifacts).await
        })
        .await
    }

    /// Hands a notifier plugin one event, as JSON.
    pub async fn notify(
        &self,
        provider: &str,
        context: &types::RunContext,
        event: &str,
        env: &CallEnv,
    ) -> Result<Outcome<()>, PluginError> {
        let context = &self.plugin_context(provider, context);
        self.role_call(provider, Role::Notifier, env, async |store, pre| {
            let notifier = notifier::NotifierPre::new(pre.clone())?.instantiate_async(&mut *store).await?;
            notifier.call_notify(&mut *store, context, event).await
        })
        .await
    }

    /// Runs a discovery plugin on a package.
    pub async fn discover(
        &self,
        provider: &str,
        package: &Package,
        env: &CallEnv,
    ) -> Result<Outcome<Vec<types::FoundDependency>>, PluginError> {
        let package = wit_package(package);
        self.role_call(provider, Role::Discovery, env, async |store, pre| {
            let discovery = discovery::DiscoveryPre::new(pre.clone())?.instantiate_async(&mut *store).await?;
            discovery.call_discover(&mut *store, &package).await
        })
        .await
    }

    /// The run context as `provider` sees it: with its own settings.
    fn plugin_context(&self, provider: &str, context: &types::RunContext) -> types::RunContext {
        let settings = self.settings().plugins.get(provider).and_then(|plugin| plugin.settings.as_ref());
        let settings = settings.and_then(|table| serde_json::to_string(table).ok()).unwrap_or_else(|| "{}".into());
        types::RunContext { settings, ..context.clone() }
    }

    /// Loads the plugin answering to `provider` as a `role`, and makes one call in a fresh store.
    async fn role_call<T, F>(
        &self,
        provider: &str,
        role: Role,
        env: &CallEnv,
        call: F,
    ) -> Result<Outcome<T>, PluginError>
    where
        F: AsyncFnOnce(
            &mut wasmtime::Store<StoreState>,
            &wasmtime::component::InstancePre<StoreState>,
        ) -> wasmtime::Result<Result<T, types::Error>>,
    {
        let plugin = self.plugin(provider, role).await?;
        let outcome = self
            .call(&plugin, env, async |store, pre| {
                let mut result = call(&mut *store, pre).await;
                // Secrets the plugin read never reach a message.
                if let Ok(Err(error)) = &mut result {
                    let log = &store.data().log;
                    error.message = log.redact(&error.message);
                    error.hint = error.hint.as_deref().map(|hint| log.redact(hint));
                }
                result
            })
            .await?;
        plugin_result(provider, outcome)
    }
}

/// A plugin's own `error` becomes a [`PluginError`] naming it.
fn plugin_result<T>(provider: &str, outcome: Outcome<Result<T, types::Error>>) -> Result<Outcome<T>, PluginError> {
    match outcome.value {
        Ok(value) => Ok(Outcome { value, log: outcome.log }),
        Err(error) => Err(PluginError {
            problem: Diagnostic::new(format!("plugin `{provider}`: {}", error.message)).maybe_hint(error.hint),
            log: outcome.log,
            internal: false,
        }),
    }
}

/// The WIT view of a package.
fn wit_package(package: &Package) -> types::Package {
    types::Package {
        name: package.name.clone(),
        dir: package.dir.clone(),
        pkg_type: package.pkg_type.clone(),
        kind: package.kind.map(|kind| match kind {
            PackageKind::Service => "service".to_string(),
            PackageKind::Library => "library".to_string(),
        }),
        build_type: package.build_info.build_type.clone(),
        registry_type: package.build_info.registry_type.clone(),
        storage_type: package.build_info.storage_type.clone(),
        settings: serde_json::Value::Object(package.build_info.settings.clone()).to_string(),
    }
}
