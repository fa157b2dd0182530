//! The host capabilities plugins import. Each module has the same shape:
//! the generated `Host` trait implemented on the call's [`StoreState`],
//! checking the plugin's grants, and an `add_to_linker`.
//!
//! [`StoreState`]: super::state::StoreState

pub mod container_engine;
pub mod github;
pub mod http;
pub mod log;
pub mod object_store;
pub mod process;
pub mod secrets;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::host::loktar::plugin::types;
use super::state::StoreState;
use crate::settings::Capability;

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

/// A host service's failure, as the plugin sees it.
impl From<crate::failure::Failure> for types::Error {
    fn from(failure: crate::failure::Failure) -> Self {
        types::Error { message: failure.message, hint: failure.hint }
    }
}

/// The error a capability returns to a plugin that was not granted it.
/// Loading already refuses such plugins; this guards the call path too.
fn not_granted(state: &StoreState, capability: Capability) -> types::Error {
    types::Error {
        message: format!("plugin `{}` was not granted capability `{}`", state.plugin, capability.name()),
        hint: Some(format!(
            "grant it in loktar.toml: `capabilities = [\"{}\"]` under `[plugins.{}]`",
            capability.name(),
            state.plugin
        )),
    }
}
