//! The plugin host: WebAssembly components run by wasmtime, sandboxed.
//!
//! One [`Engine`] and one [`Linker`] per process, an `InstancePre` per
//! plugin, and a fresh `Store` per call. Every call runs under a wall-clock
//! deadline (epoch interruption), a memory cap and a log cap; a plugin that
//! traps, loops or exhausts memory fails its call with a message naming the
//! plugin and what happened, and the host goes on. Compiled components are
//! cached on disk, keyed by content and engine settings, and verified before
//! use (see [`compiled`]).

pub mod bindings;
mod calls;
mod capabilities;
mod compiled;
pub mod isolation;
mod load;
pub mod stage_log;
pub mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Engine, Store};

pub use calls::wit_package;
pub use capabilities::process::RunningPrograms;
pub use load::{LoadedPlugin, Origin, PluginListing, builtin_names};
use stage_log::{Source, StageLog};
use state::StoreState;
pub use state::{CallEnv, Mounts};

use crate::settings::{Role, Settings};

/// Plugin instances alive at once (one per running stage).
const POOL_INSTANCES: u32 = 64;
/// The most memory any plugin may be configured to use (`limits.memory_mib` is capped here).
const MAX_PLUGIN_MEMORY: usize = 4 << 30;

/// How long a cancelled call may go on cleaning up before it is stopped.
const CANCEL_GRACE: Duration = Duration::from_secs(30);

/// Whether the compile cache folder `dir` (made if missing, for this user
/// alone) is safe to load compiled code from: a compiled plugin is run as
/// it is found, so a folder that another user, or a program of a build,
/// could write to would let them run code inside Loktar. Programs that
/// plugins run never see it when isolated; across users, the folder and
/// its parents up to the user's own folder must be writable by its owner
/// alone. An unsafe folder is not used (plugins are then compiled on every
/// start), with a warning.
fn private_cache(dir: &Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let me = rustix::process::geteuid().as_raw();
    let unsafe_folder = dir.ancestors().take(3).find(|folder| {
        std::fs::metadata(folder).is_ok_and(|m| {
            // Sticky shared folders such as `/tmp` keep each entry to its owner.
            let others_write = m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0;
            (m.uid() != me && m.uid() != 0) || others_write
        })
    });
    match unsafe_folder {
        Some(folder) => {
            tracing::warn!(
                "not using the plugin cache `{}`: `{}` can be changed by others than you, and compiled plugins \
                 are run as they are found\nhint: make it yours alone (`chmod go-w`), or set `LOKTAR_CACHE_DIR`",
                dir.display(),
                folder.display()
            );
            false
        }
        None => true,
    }
}

/// How often the engine's epoch advances; deadlines are counted in these ticks.
const TICK: Duration = Duration::from_millis(10);

/// Why a plugin could not be used or a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// What happened, naming the plugin.
    pub message: String,
    /// The obvious fix, if any.
    pub hint: Option<String>,
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
        PluginError { message: message.into(), hint: None, log: Vec::new(), internal: true }
    }

    /// Adds the obvious fix.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<PluginError> for crate::diagnostic::Diagnostic {
    fn from(error: PluginError) -> Self {
        crate::diagnostic::Diagnostic::new(error.message).maybe_hint(error.hint)
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

/// The plugin host of this process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    /// The compile cache, when there is a safe one.
    cache: Option<Arc<compiled::Cache>>,
    settings: Settings,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    _ticker: Ticker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts the engine with the compile cache in `cache_dir`.
    pub fn new(settings: Settings, cache_dir: Option<&Path>) -> Result<Runtime, PluginError> {
        // Before any plugin or program runs: whatever prints a configured secret, it is hidden.
        stage_log::hide_configured_secrets(&settings);
        if settings.isolation.mode == crate::settings::IsolationMode::None {
            tracing::warn!(
                "program isolation is off (`mode = \"none\"` under `[isolation]`): tests and builds run with \
                 Loktar's own rights and can read its secrets and configuration"
            );
        }
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true).wasm_component_model(true);
        // Loktar does not use component-model async; leaving it off makes every call cheaper.
        config.concurrency_support(false);
        // Instances come from a pre-reserved pool: a fresh instance per stage costs microseconds.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_memory_size(MAX_PLUGIN_MEMORY);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let cache = cache_dir.filter(|dir| private_cache(dir)).and_then(compiled::Cache::open).map(Arc::new);
        let engine =
            Engine::new(&config).map_err(|e| PluginError::new(format!("cannot start the plugin engine: {e}")))?;
        let mut linker = Linker::new(&engine);
        capabilities::add_to_linker(&mut linker)
            .map_err(|e| PluginError::new(format!("cannot link the host capabilities: {e}")))?;
        let ticker = Ticker::start(&engine);
        Ok(Runtime { engine, linker, cache, settings, loaded: Mutex::new(HashMap::new()), _ticker: ticker })
    }

    /// The default compile cache folder: `$LOKTAR_CACHE_DIR`, else `~/.cache/loktar/plugins`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("LOKTAR_CACHE_DIR") {
            return Some(PathBuf::from(dir).join("plugins"));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("loktar").join("plugins"))
    }

    /// The host configuration in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether any plugin answers to provider `name`.
    pub fn has_plugin(&self, name: &str) -> bool {
        load::exists(self, name)
    }

    /// The plugin answering to provider `name`, compiled and checked once per process.
    pub async fn load(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let cached = self.loaded.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
        if let Some(plugin) = cached {
            return Ok(plugin);
        }
        let plugin = Arc::new(load::load(self, name).await?);
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// The plugin answering to provider `name`, which must play `role`.
    pub async fn plugin(&self, name: &str, role: Role) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugin = self.load(name).await?;
        if !plugin.roles.contains(&role) {
            return Err(PluginError::new(format!(
                "plugin `{name}` is not a {} plugin (it plays: {})",
                role_name(role),
                plugin.roles.iter().map(|r| role_name(*r)).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(plugin)
    }

    /// Runs `call` in a fresh store for `plugin`, under the deadline, memory and log caps.
    async fn call<T, F>(&self, plugin: &LoadedPlugin, env: &CallEnv, call: F) -> Result<Outcome<T>, PluginError>
    where
        F: AsyncFnOnce(&mut Store<StoreState>, &wasmtime::component::InstancePre<StoreState>) -> wasmtime::Result<T>,
    {
        let limits = &self.settings.limits;
        let log_cap = usize::try_from(limits.log_kib.saturating_mul(1024)).unwrap_or(usize::MAX);
        let log = StageLog::new(log_cap, &plugin.name).with_tap(env.tap.clone());
        let state = StoreState::new(&plugin.name, plugin.grants.clone(), limits, log.clone(), env)
            .map_err(|e| PluginError::new(format!("plugin `{}`: {e}", plugin.name)))?;
        let mut store = Store::new(&self.engine, state);
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

/// The name of a role in messages.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Tester => "tester",
        Role::Builder => "builder",
        Role::Registry => "registry",
        Role::Storage => "storage",
        Role::Notifier => "notifier",
        Role::Discovery => "discovery",
    }
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("loktar-epoch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::warn!("no epoch ticker, plugin deadlines only by timer: {e}"));
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
