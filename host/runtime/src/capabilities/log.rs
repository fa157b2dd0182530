//! `log`: plugins write lines to their stage log.

use wasmtime::component::{HasSelf, Linker};

use super::{Grant, Grants};
use crate::bindings::host::loktar::plugin::log::{self, Level};
use crate::stage_log::{self, Source};
use crate::state::StoreState;
use loktar_settings::{Capability, PluginSettings, Settings};

/// `log` has nothing to configure: granted, the plugin writes to its stage log.
#[derive(Debug)]
pub(crate) struct LogGrant;

impl Grant for LogGrant {
    const CAPABILITY: Capability = Capability::Log;

    fn from_settings(_: &str, _: &PluginSettings, _: &Settings) -> LogGrant {
        LogGrant
    }

    fn of(grants: &Grants) -> Option<&LogGrant> {
        grants.log.as_ref()
    }
}

impl log::Host for StoreState {
    async fn write(&mut self, level: Level, message: String) {
        // `write` returns nothing: an ungranted plugin's lines are dropped.
        if self.grant::<LogGrant>().is_err() {
            return;
        }
        let level = match level {
            Level::Debug => stage_log::Level::Debug,
            Level::Info => stage_log::Level::Info,
            Level::Warn => stage_log::Level::Warn,
            Level::Error => stage_log::Level::Error,
        };
        // One call may carry several lines; each is a line of the log.
        for line in message.lines() {
            if !self.log.push(Source::Plugin, level, line) {
                break;
            }
        }
    }
}

/// Adds `log` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    log::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stage_log::StageLog;
    use crate::state::CallEnv;
    use loktar_settings::Limits;

    fn write(grants: Grants, message: &str) -> Vec<String> {
        let log = StageLog::new(1024, "make");
        let mut state = StoreState::new("make", Arc::new(grants), &Limits::default(), log.clone(), &CallEnv::default())
            .expect("state");
        let tokio = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        tokio.block_on(log::Host::write(&mut state, Level::Info, message.to_string()));
        log.lines().into_iter().map(|line| line.text).collect()
    }

    #[test]
    fn granted_lines_reach_the_log_and_others_are_dropped() {
        let granted = Grants { log: Some(LogGrant), ..Grants::default() };
        assert_eq!(write(granted, "one\ntwo"), ["one", "two"]);
        assert!(write(Grants::default(), "dropped").is_empty());
    }
}
