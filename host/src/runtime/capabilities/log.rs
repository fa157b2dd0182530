//! `log`: plugins write lines to their stage log.

use wasmtime::component::{HasSelf, Linker};

use crate::runtime::bindings::host::loktar::plugin::log::{self, Level};
use crate::runtime::stage_log::{self, Source};
use crate::runtime::state::StoreState;
use crate::settings::Capability;

impl log::Host for StoreState {
    async fn write(&mut self, level: Level, message: String) {
        if !self.grants.allows(Capability::Log) {
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
