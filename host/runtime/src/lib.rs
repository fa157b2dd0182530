//! The plugin host: WebAssembly components run by wasmtime, sandboxed.
//!
//! Two parts, by lifetime. The [`PluginEngine`] is the process's: one
//! wasmtime `Engine` and one `Linker`, the compile cache, and every
//! component compiled so far, shared by every repository and run. A
//! [`PluginSession`] is one repository's run (or command) on it: the host
//! configuration in force, the plugins it loaded with what each is granted,
//! and the calls into them (see `calls`), each in a fresh `Store`.
//!
//! Every call runs under a wall-clock deadline (epoch interruption), a
//! memory cap and a log cap; a plugin that traps, loops or exhausts memory
//! fails its call with a message naming the plugin and what happened, and
//! the host goes on. Compiled components are cached on disk, keyed by
//! content and engine settings, and verified before use (see `compiled`).
//! Each host capability is a module of `capabilities` with its own grant,
//! built only when the host configuration grants it.

pub mod bindings;
mod calls;
mod capabilities;
mod check;
mod compiled;
mod engine;
mod imports;
pub mod isolation;
mod load;
mod session;
pub mod stage_log;
pub mod state;

pub use capabilities::Grants;
pub use capabilities::process::RunningPrograms;
pub use check::{ComponentReport, Described, Import, ImportUse, check_component};
pub use engine::PluginEngine;
pub use load::{LoadedPlugin, Origin, PluginListing, builtin_names};
use loktar_support::diagnostic::Diagnostic;
pub use session::PluginSession;
pub use state::{CallEnv, Mounts};

/// Why a plugin could not be used or a call failed: the problem, with the
/// call's log and whose fault it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What happened, naming the plugin, and the obvious fix.
    pub problem: Diagnostic,
    /// The call's log, when the call ran.
    pub log: Vec<stage_log::Line>,
    /// Whether Loktar or the plugin itself broke (it could not load, crashed,
    /// ran out of time or memory) rather than the plugin reporting that the
    /// package failed.
    pub internal: bool,
}

impl PluginError {
    /// Loktar or the plugin broke, saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        PluginError { problem: Diagnostic::new(message), log: Vec::new(), internal: true }
    }

    /// Adds the obvious fix.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.problem = self.problem.hint(hint);
        self
    }
}

impl From<PluginError> for Diagnostic {
    fn from(error: PluginError) -> Self {
        error.problem
    }
}

/// A successful call's result and its log.
#[derive(Debug)]
pub struct Outcome<T> {
    /// What the plugin returned.
    pub value: T,
    /// What it logged.
    pub log: Vec<stage_log::Line>,
}
