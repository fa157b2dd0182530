//! Capabilities whose implementations arrive with later features
//! (`github`). They are part of the
//! interface already; calling them returns a clear error.

use wasmtime::component::{HasSelf, Linker};

use crate::runtime::bindings::host::loktar::plugin::{github, types};
use crate::runtime::state::StoreState;

fn unavailable(capability: &str) -> types::Error {
    types::Error {
        message: format!("capability `{capability}` is not available in this build of Loktar"),
        hint: Some("upgrade Loktar, or use a plugin that does not need it".to_string()),
    }
}

impl github::Host for StoreState {
    async fn call(&mut self, _: github::Request) -> Result<github::Response, types::Error> {
        Err(unavailable("github"))
    }
}

/// Adds the not-yet-available capabilities to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    github::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)?;
    Ok(())
}
