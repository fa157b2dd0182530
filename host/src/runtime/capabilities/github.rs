//! `github`: the GitHub REST API as `[github]` signs in, through
//! [`crate::github`] (retries and pagination included).

use wasmtime::component::{HasSelf, Linker};

use super::not_granted;
use crate::runtime::bindings::host::loktar::plugin::github::{self, Request, Response};
use crate::runtime::bindings::host::loktar::plugin::types::Error;
use crate::runtime::state::StoreState;
use crate::settings::Capability;

impl github::Host for StoreState {
    async fn call(&mut self, request: Request) -> Result<Response, Error> {
        let client = match &self.grants.github {
            Some(client) if self.grants.allows(Capability::Github) => client.clone(),
            _ => return Err(not_granted(self, Capability::Github)),
        };
        let answer = client.call(&request.method, &request.path, request.body.as_deref()).await.map_err(Error::from)?;
        Ok(Response { status: answer.status, body: answer.body })
    }
}

/// Adds `github` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    github::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}
