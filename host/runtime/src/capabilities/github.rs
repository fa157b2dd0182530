//! `github`: the GitHub REST API as `[github]` signs in, through
//! [`loktar_services::github`] (retries and pagination included).

use wasmtime::component::{HasSelf, Linker};

use super::{Grant, Grants};
use crate::bindings::host::loktar::plugin::github::{self, Request, Response};
use crate::bindings::host::loktar::plugin::types::Error;
use crate::state::StoreState;
use loktar_services::github::Github;
use loktar_settings::{Capability, PluginSettings, Settings};

/// GitHub, signed in as `[github]` says (on first use, then shared by the plugin's calls).
#[derive(Debug)]
pub(crate) struct GithubGrant {
    github: Github,
}

impl Grant for GithubGrant {
    const CAPABILITY: Capability = Capability::Github;

    fn from_settings(_: &str, _: &PluginSettings, settings: &Settings) -> GithubGrant {
        GithubGrant { github: Github::from_settings(settings) }
    }

    fn of(grants: &Grants) -> Option<&GithubGrant> {
        grants.github.as_ref()
    }
}

impl github::Host for StoreState {
    async fn call(&mut self, request: Request) -> Result<Response, Error> {
        let github = &self.grant::<GithubGrant>()?.github;
        let answer = github.call(&request.method, &request.path, request.body.as_deref()).await.map_err(Error::from)?;
        Ok(Response { status: answer.status, body: answer.body })
    }
}

/// Adds `github` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    github::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stage_log::StageLog;
    use crate::state::CallEnv;
    use loktar_settings::Limits;

    #[test]
    fn an_ungranted_plugin_cannot_call_github() {
        let log = StageLog::new(1024, "slack");
        let mut state =
            StoreState::new("slack", Arc::default(), &Limits::default(), log, &CallEnv::default()).expect("state");
        let request = Request { method: "GET".into(), path: "/user".into(), body: None };
        let tokio = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        let error = tokio.block_on(github::Host::call(&mut state, request)).expect_err("not granted");
        assert_eq!(error.message, "plugin `slack` was not granted capability `github`");
        assert_eq!(
            error.hint.as_deref(),
            Some("grant it: add `\"github\"` to `capabilities` under `[plugins.slack]` in loktar.toml")
        );
    }
}
