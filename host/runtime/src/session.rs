//! A plugin session: the shared [`PluginEngine`] under one repository's host
//! configuration, for one run or command. It loads the plugins that
//! configuration provides, each with its own grants, and makes every call
//! in a fresh `Store` under the wall-clock deadline, the memory cap and the
//! log cap of that configuration's `[limits]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;
use wasmtime::Store;

use super::engine::{PluginEngine, TICK};
use super::load::{self, LoadedPlugin};
use super::stage_log::{self, Source, StageLog};
use super::state::{CallEnv, StoreState};
use super::{Outcome, PluginError};
use loktar_settings::{IsolationMode, Role, Settings};

/// How long a cancelled call may go on cleaning up before it is stopped.
const CANCEL_GRACE: Duration = Duration::from_secs(30);

/// A plugin being loaded, or loaded, for whoever asks first.
type Loading = Arc<OnceCell<Arc<LoadedPlugin>>>;

/// The plugins of one repository's host configuration, on the process's engine.
pub struct PluginSession {
    engine: Arc<PluginEngine>,
    settings: Settings,
    /// Plugins by provider name, loaded once per session.
    loaded: Mutex<HashMap<String, Loading>>,
}

impl std::fmt::Debug for PluginSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSession").finish_non_exhaustive()
    }
}

impl PluginSession {
    /// A session on `engine` under the host configuration `settings`.
    pub fn new(engine: Arc<PluginEngine>, settings: Settings) -> PluginSession {
        // Before any plugin or program runs: whatever prints a configured secret, it is hidden.
        stage_log::hide_configured_secrets(&settings);
        if settings.isolation.mode == IsolationMode::None {
            tracing::warn!(
                "program isolation is off (`mode = \"none\"` under `[isolation]`): tests and builds run with \
                 Loktar's own rights and can read its secrets and configuration"
            );
        }
        PluginSession { engine, settings, loaded: Mutex::new(HashMap::new()) }
    }

    /// The engine it runs on.
    pub fn engine(&self) -> &Arc<PluginEngine> {
        &self.engine
    }

    /// The host configuration in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether any plugin answers to provider `name`.
    pub fn has_plugin(&self, name: &str) -> bool {
        load::exists(&self.settings, name)
    }

    /// The plugin answering to provider `name`, loaded and checked once per
    /// session (and compiled once per engine). A failure is not kept.
    pub async fn load(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let loading =
            self.loaded.lock().unwrap_or_else(PoisonError::into_inner).entry(name.to_string()).or_default().clone();
        let plugin = loading.get_or_try_init(|| async { load::load(self, name).await.map(Arc::new) }).await?;
        Ok(plugin.clone())
    }

    /// The plugin answering to provider `name`, which must play `role`.
    pub async fn plugin(&self, name: &str, role: Role) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugin = self.load(name).await?;
        if !plugin.roles.contains(&role) {
            return Err(PluginError::new(format!(
                "plugin `{name}` is not a {} plugin (it plays: {})",
                role.name(),
                plugin.roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(plugin)
    }

    /// Runs `call` in a fresh store for `plugin`, under the deadline, memory and log caps.
    pub(super) async fn call<T, F>(
        &self,
        plugin: &LoadedPlugin,
        env: &CallEnv,
        call: F,
    ) -> Result<Outcome<T>, PluginError>
    where
        F: AsyncFnOnce(&mut Store<StoreState>, &wasmtime::component::InstancePre<StoreState>) -> wasmtime::Result<T>,
    {
        let limits = &self.settings.limits;
        let log_cap = usize::try_from(limits.log_kib.saturating_mul(1024)).unwrap_or(usize::MAX);
        let log = StageLog::new(log_cap, &plugin.name).with_tap(env.tap.clone());
        let state = StoreState::new(&plugin.name, plugin.grants.clone(), limits, log.clone(), env)
            .map_err(|e| PluginError::new(format!("plugin `{}`: {e}", plugin.name)))?;
        let mut store = Store::new(self.engine.wasmtime(), state);
        store.limiter(|state| &mut state.limits);
        let deadline = Duration::from_secs(limits.timeout_secs);
        store.set_epoch_deadline(ticks(deadline));
        store.epoch_deadline_trap();
        // The epoch stops wasm code; the timer also stops a plugin waiting in a host call.
        let cancel = env.cancel.clone();
        let grace_over = async {
            match &cancel {
                Some(cancel) => {
                    cancel.cancelled().await;
                    tokio::time::sleep(CANCEL_GRACE).await;
                }
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = tokio::time::timeout(deadline + TICK * 10, call(&mut store, &plugin.pre)) => result,
            () = grace_over => {
                return Err(PluginError::new(format!(
                    "plugin `{}` was still cleaning up {} s after the run was cancelled and was stopped",
                    plugin.name,
                    CANCEL_GRACE.as_secs()
                )));
            }
        };
        let failure = |message: String| {
            let mut error = PluginError::new(message);
            error.log = log.lines();
            error
        };
        let name = &plugin.name;
        if log.overflowed() {
            return Err(failure(format!(
                "plugin `{name}` wrote more than {} KiB of log output and was stopped",
                limits.log_kib
            ))
            .hint("raise `log_kib` under `[limits]` in loktar.toml if the output is expected"));
        }
        match result {
            Ok(Ok(value)) => Ok(Outcome { value, log: log.lines() }),
            Ok(Err(error)) => Err(failure(describe_trap(name, &error, deadline, limits.memory_mib, &log))),
            Err(_) => {
                Err(failure(format!("plugin `{name}` did not finish within {} s and was stopped", deadline.as_secs()))
                    .hint("raise `timeout_secs` under `[limits]` in loktar.toml if it needs longer"))
            }
        }
    }
}

/// Turns a trap into a sentence naming the plugin and what happened.
fn describe_trap(plugin: &str, error: &wasmtime::Error, deadline: Duration, memory_mib: u64, log: &StageLog) -> String {
    let reason = match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            format!("did not finish within {} s and was stopped", deadline.as_secs())
        }
        Some(wasmtime::Trap::StackOverflow) => "overflowed its stack (runaway recursion)".to_string(),
        // Rust and C keep their call stack in linear memory: running off its end is
        // an out-of-bounds access rather than a wasm stack overflow.
        Some(wasmtime::Trap::MemoryOutOfBounds) => {
            "accessed memory out of bounds (runaway recursion overflowing its stack does this)".to_string()
        }
        Some(wasmtime::Trap::UnreachableCodeReached) => "crashed (it panicked or aborted)".to_string(),
        Some(trap) => format!("crashed: {trap}"),
        None if format!("{error:?}").contains("memory") => {
            format!("tried to use more than {memory_mib} MiB of memory and was stopped")
        }
        None => format!("failed: {error}"),
    };
    let stderr = log.tail(Source::Stderr, 3);
    if stderr.is_empty() {
        format!("plugin `{plugin}` {reason}")
    } else {
        format!("plugin `{plugin}` {reason}; its last output: {}", stderr.join(" / "))
    }
}

fn ticks(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis() / TICK.as_millis()).unwrap_or(u64::MAX).max(1)
}
