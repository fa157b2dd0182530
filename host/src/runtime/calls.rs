//! The calls the host makes into plugins, one per role function.

use super::bindings::{discovery, tester, types};
use super::{Mounts, Outcome, PluginError, Runtime};
use crate::config::{Package, PackageKind};
use crate::settings::Role;

impl Runtime {
    /// Runs a tester plugin on a package.
    pub async fn test(
        &self,
        provider: &str,
        context: &types::RunContext,
        package: &Package,
        mounts: &Mounts,
    ) -> Result<Outcome<types::TestReport>, PluginError> {
        let plugin = self.plugin(provider, Role::Tester).await?;
        let package = wit_package(package);
        let outcome = self
            .call(&plugin, Some(mounts), async |store, pre| {
                let tester = tester::TesterPre::new(pre.clone())?.instantiate_async(&mut *store).await?;
                tester.call_test(&mut *store, context, &package).await
            })
            .await?;
        plugin_result(provider, outcome)
    }

    /// Runs a discovery plugin on a package.
    pub async fn discover(
        &self,
        provider: &str,
        package: &Package,
        mounts: &Mounts,
    ) -> Result<Outcome<Vec<types::FoundDependency>>, PluginError> {
        let plugin = self.plugin(provider, Role::Discovery).await?;
        let package = wit_package(package);
        let outcome = self
            .call(&plugin, Some(mounts), async |store, pre| {
                let discovery = discovery::DiscoveryPre::new(pre.clone())?.instantiate_async(&mut *store).await?;
                discovery.call_discover(&mut *store, &package).await
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
            message: format!("plugin `{provider}`: {}", error.message),
            hint: error.hint,
            log: outcome.log,
        }),
    }
}

/// The WIT view of a package.
pub fn wit_package(package: &Package) -> types::Package {
    types::Package {
        name: package.name.clone(),
        dir: package.dir.clone(),
        pkg_type: package.pkg_type.clone(),
        kind: package.kind.map(|kind| match kind {
            PackageKind::Service => "service".to_string(),
            PackageKind::Library => "library".to_string(),
        }),
        settings: serde_json::Value::Object(package.build_info.settings.clone()).to_string(),
    }
}
