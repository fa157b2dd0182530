//! The host capabilities plugins import. Each module has the same shape:
//!
//! - its grant (`ProcessGrant`, `SecretsGrant`, …): what the host
//!   configuration lets one plugin do with the capability, built from the
//!   operator's settings when the plugin loads, and only when the capability
//!   is granted: a plugin without `process` has no program list and no
//!   engine client, one without `secrets` no secret names;
//! - the generated `Host` trait implemented on the call's [`StoreState`],
//!   each method taking its grant from [`StoreState::grant`], the one place
//!   a grant is checked (`http` has no `Host` trait of its own: `wasi:http`
//!   hands each request to its allow-list, which holds its grant);
//! - `add_to_linker`, and its tests.
//!
//! As in `wasmtime-wasi-config` and spin's factors, a capability's state
//! exists only where it is granted. [`Grants`] holds one plugin's, one
//! optional grant per capability.
//!
//! [`StoreState`]: super::state::StoreState

pub mod container_engine;
pub mod github;
pub mod http;
pub mod log;
pub mod object_store;
pub mod process;
pub mod secrets;

use std::collections::BTreeSet;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::host::loktar::plugin::types;
use super::state::StoreState;
use loktar_settings::{Capability, PluginSettings, Settings};

/// One capability's grant: what the host configuration lets a plugin do with it.
pub(crate) trait Grant: Sized {
    /// The capability it grants.
    const CAPABILITY: Capability;

    /// The grant of plugin `name`, whose section of the host configuration
    /// `settings` is `plugin`; made only when the capability is granted.
    fn from_settings(name: &str, plugin: &PluginSettings, settings: &Settings) -> Self;

    /// Its grant among one plugin's `grants`, if it has one.
    fn of(grants: &Grants) -> Option<&Self>;
}

/// What the host configuration lets one plugin do: each capability's grant,
/// when it is granted. Deny by default: [`Grants::default`] grants nothing.
#[derive(Debug, Default)]
pub struct Grants {
    pub(crate) log: Option<log::LogGrant>,
    pub(crate) process: Option<process::ProcessGrant>,
    pub(crate) container_engine: Option<container_engine::ContainerGrant>,
    pub(crate) object_store: Option<object_store::StoresGrant>,
    pub(crate) github: Option<github::GithubGrant>,
    pub(crate) http: Option<http::HttpGrant>,
    pub(crate) secrets: Option<secrets::SecretsGrant>,
}

impl Grants {
    /// The grants written in the host configuration for plugin `name`.
    pub fn from_settings(name: &str, plugin: &PluginSettings, settings: &Settings) -> Grants {
        let granted: BTreeSet<Capability> = plugin.capabilities.iter().flatten().copied().collect();
        Grants {
            log: grant(&granted, name, plugin, settings),
            process: grant(&granted, name, plugin, settings),
            container_engine: grant(&granted, name, plugin, settings),
            object_store: grant(&granted, name, plugin, settings),
            github: grant(&granted, name, plugin, settings),
            http: grant(&granted, name, plugin, settings),
            secrets: grant(&granted, name, plugin, settings),
        }
    }

    /// The capabilities granted.
    pub fn capabilities(&self) -> BTreeSet<Capability> {
        [
            self.has::<log::LogGrant>(),
            self.has::<process::ProcessGrant>(),
            self.has::<container_engine::ContainerGrant>(),
            self.has::<object_store::StoresGrant>(),
            self.has::<github::GithubGrant>(),
            self.has::<http::HttpGrant>(),
            self.has::<secrets::SecretsGrant>(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn has<G: Grant>(&self) -> Option<Capability> {
        G::of(self).map(|_| G::CAPABILITY)
    }
}

/// The grant of `G` for plugin `name`, made only when `granted` lists its capability.
fn grant<G: Grant>(
    granted: &BTreeSet<Capability>,
    name: &str,
    plugin: &PluginSettings,
    settings: &Settings,
) -> Option<G> {
    granted.contains(&G::CAPABILITY).then(|| G::from_settings(name, plugin, settings))
}

impl StoreState {
    /// The calling plugin's grant of capability `G`, or the error a plugin
    /// that was not granted it gets. Loading already refuses such plugins;
    /// this guards every call too.
    pub(crate) fn grant<G: Grant>(&self) -> Result<&G, types::Error> {
        G::of(&self.grants).ok_or_else(|| {
            let capability = G::CAPABILITY.name();
            types::Error {
                message: format!("plugin `{}` was not granted capability `{capability}`", self.plugin),
                hint: Some(format!(
                    "grant it: add `\"{capability}\"` to `capabilities` under `[plugins.{}]` in loktar.toml",
                    self.plugin
                )),
            }
        })
    }
}

/// Links every capability (and WASI) into the process's one linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    types::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)?;
    container_engine::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    process::add_to_linker(linker)?;
    object_store::add_to_linker(linker)?;
    secrets::add_to_linker(linker)?;
    github::add_to_linker(linker)?;
    http::add_to_linker(linker)?;
    Ok(())
}

impl types::Host for StoreState {}

/// A host service's problem, as the plugin sees it.
impl From<loktar_support::diagnostic::Diagnostic> for types::Error {
    fn from(problem: loktar_support::diagnostic::Diagnostic) -> Self {
        types::Error { message: problem.message, hint: problem.hint }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granting(capabilities: &[Capability]) -> Grants {
        let plugin = PluginSettings { capabilities: Some(capabilities.to_vec()), ..PluginSettings::default() };
        Grants::from_settings("some-plugin", &plugin, &Settings::builtin())
    }

    #[test]
    fn each_capability_is_granted_alone_and_only_when_written() {
        let all = Capability::ALL;
        for capability in all {
            assert_eq!(granting(&[capability]).capabilities(), BTreeSet::from([capability]));
        }
        assert_eq!(granting(&all).capabilities(), BTreeSet::from(all));
        assert!(granting(&[]).capabilities().is_empty());
        assert!(Grants::default().capabilities().is_empty());
        let log_only = granting(&[Capability::Log]);
        assert!(log_only.process.is_none() && log_only.secrets.is_none() && log_only.object_store.is_none());
    }
}
