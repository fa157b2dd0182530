//! `secrets`: a plugin reads the named secrets the host configuration grants
//! it, from the environment variables `[secrets]` names. Never logged: a
//! value read is hidden from every log line and message of the process from
//! then on, not only from the reading call's (see
//! [`stage_log::hide_everywhere`](crate::stage_log::hide_everywhere)).

use wasmtime::component::{HasSelf, Linker};

use super::{Grant, Grants};
use crate::bindings::host::loktar::plugin::secrets;
use crate::bindings::host::loktar::plugin::types::Error;
use crate::state::StoreState;
use loktar_settings::{Capability, PluginSettings, Settings};

/// The secrets a plugin may read.
#[derive(Debug)]
pub(crate) struct SecretsGrant {
    /// Each secret's name and the host environment variable holding it:
    /// those its `secrets` grant lists that `[secrets]` configures.
    secrets: Vec<(String, String)>,
}

impl Grant for SecretsGrant {
    const CAPABILITY: Capability = Capability::Secrets;

    fn from_settings(_: &str, plugin: &PluginSettings, settings: &Settings) -> SecretsGrant {
        let secrets = plugin
            .secrets
            .iter()
            .flatten()
            .filter_map(|name| settings.secrets.get(name).map(|secret| (name.clone(), secret.env.clone())))
            .collect();
        SecretsGrant { secrets }
    }

    fn of(grants: &Grants) -> Option<&SecretsGrant> {
        grants.secrets.as_ref()
    }
}

impl secrets::Host for StoreState {
    async fn get(&mut self, name: String) -> Result<String, Error> {
        let grant = self.grant::<SecretsGrant>()?;
        let Some((_, variable)) = grant.secrets.iter().find(|(granted, _)| *granted == name) else {
            return Err(Error {
                message: format!("plugin `{}` was not granted secret `{name}`", self.plugin),
                hint: Some(format!("add \"{name}\" to `secrets` under `[plugins.{}]` in loktar.toml", self.plugin)),
            });
        };
        match loktar_settings::vault::value(variable) {
            Some(value) if !value.is_empty() => {
                // Before the plugin has it: nothing it passes on may show it.
                self.log.hide(&value);
                Ok(value)
            }
            _ => Err(Error {
                message: format!("secret `{name}` is not set: the environment variable `{variable}` is empty"),
                hint: Some(format!("set `{variable}` in the environment Loktar runs in")),
            }),
        }
    }
}

/// Adds `secrets` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    secrets::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stage_log::{Level, Source, StageLog};
    use crate::state::CallEnv;
    use loktar_settings::Limits;

    fn state(granted: bool, secrets: &[(&str, &str)]) -> StoreState {
        let secrets = secrets.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let grants = Grants { secrets: granted.then_some(SecretsGrant { secrets }), ..Grants::default() };
        StoreState::new("quay", Arc::new(grants), &Limits::default(), StageLog::new(1024, "quay"), &CallEnv::default())
            .expect("state")
    }

    fn get(state: &mut StoreState, name: &str) -> Result<String, Error> {
        let tokio = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        tokio.block_on(secrets::Host::get(state, name.to_string()))
    }

    #[test]
    fn reads_only_granted_secrets_from_their_variables() {
        // Cargo sets it for test runs; read as a secret it is hidden process-wide, so
        // it must be a value no other test logs.
        let description = std::env::var("CARGO_PKG_DESCRIPTION").expect("cargo sets it for tests");
        let mut granted = state(true, &[("token", "CARGO_PKG_DESCRIPTION"), ("missing", "LOKTAR_TEST_UNSET_VARIABLE")]);
        assert_eq!(get(&mut granted, "token").ok(), Some(description.clone()));
        let other = get(&mut granted, "other").expect_err("not granted");
        assert_eq!(other.message, "plugin `quay` was not granted secret `other`");
        let unset = get(&mut granted, "missing").expect_err("unset");
        assert!(unset.message.contains("`LOKTAR_TEST_UNSET_VARIABLE` is empty"), "{}", unset.message);
        let mut ungranted = state(false, &[("token", "CARGO_PKG_DESCRIPTION")]);
        let error = get(&mut ungranted, "token").expect_err("capability not granted");
        assert_eq!(error.message, "plugin `quay` was not granted capability `secrets`");
        // Read by one call, hidden from every other call's log too.
        let other_call = StageLog::new(1024, "other");
        other_call.push(Source::Program, Level::Info, &format!("echo: {description}"));
        assert_eq!(other_call.lines()[0].text, "echo: [secret]");
    }
}
