//! The plugin engine: what one process shares between every repository and
//! run — the wasmtime [`Engine`] (pooling allocator, epoch interruption),
//! the [`Linker`] with every host capability, the verified compile cache
//! on disk (see [`compiled`](super::compiled)), the epoch ticker, and the
//! components compiled so far, keyed by the SHA-256 of their bytes.
//!
//! It holds no host configuration, grant or secret: those belong to a
//! [`PluginSession`](super::PluginSession), one per repository and run. Two
//! sessions, or two packages of one run, asking for the same component at
//! once compile it once: the first compiles, the others wait for it. A
//! component refused for what it is — it imports what Loktar does not
//! provide ([`imports`](super::imports)), it cannot be linked, it imports a
//! capability it does not declare — is remembered as refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::state::StoreState;
use super::{PluginError, capabilities, compiled, imports};

/// Plugin instances alive at once (one per running stage).
const POOL_INSTANCES: u32 = 64;
/// The most memory any plugin may be configured to use (`limits.memory_mib` is capped here).
const MAX_PLUGIN_MEMORY: usize = 4 << 30;

/// Refusals remembered at most; past that, they are forgotten and found again.
const REMEMBERED_REFUSALS: usize = 256;

/// How often the engine's epoch advances; deadlines are counted in these ticks.
pub(super) const TICK: Duration = Duration::from_millis(10);

/// A component being compiled, or compiled, for whoever asks first.
type Compiling = Arc<OnceCell<Component>>;

/// The SHA-256 of a component's bytes.
pub(super) type Digest32 = [u8; 32];

/// A component, and the digest of its bytes.
pub(super) struct Made {
    pub component: Component,
    pub digest: Digest32,
}

impl std::fmt::Debug for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Made").field("digest", &self.digest).finish_non_exhaustive()
    }
}

/// The plugin engine of this process, shared by every [`PluginSession`](super::PluginSession).
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<StoreState>,
    /// The compile cache, when there is a safe one.
    cache: Option<Arc<compiled::Cache>>,
    /// Components by the SHA-256 of their bytes.
    components: Mutex<HashMap<[u8; 32], Compiling>>,
    /// How many components were made from bytes (compiled or read from the cache).
    made: AtomicU64,
    /// Why components were refused, by digest and plugin name (at most [`REMEMBERED_REFUSALS`]).
    refused: Mutex<HashMap<(Digest32, String), PluginError>>,
    /// How many components had their imports checked.
    imports_checked: AtomicU64,
    _ticker: Ticker,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine").field("cache", &self.cache).finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Starts the engine with the compile cache in `cache_dir`.
    pub fn new(cache_dir: Option<&Path>) -> Result<PluginEngine, PluginError> {
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
        Ok(PluginEngine {
            engine,
            linker,
            cache,
            components: Mutex::new(HashMap::new()),
            made: AtomicU64::new(0),
            refused: Mutex::new(HashMap::new()),
            imports_checked: AtomicU64::new(0),
            _ticker: ticker,
        })
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

    /// How many components this engine has made from bytes (compiled, or
    /// read from the compile cache): once per distinct component, however
    /// many sessions and packages load it, at once or one after another.
    pub fn components_made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// The wasmtime engine.
    pub(super) fn wasmtime(&self) -> &Engine {
        &self.engine
    }

    /// The linker with every host capability.
    pub(super) fn linker(&self) -> &Linker<StoreState> {
        &self.linker
    }

    /// The component of `bytes`, for plugin `name`: made once per process,
    /// from the compile cache when it holds it, after its imports are
    /// checked. A refusal is remembered; a failure to compile is not: the
    /// next to ask tries again.
    pub(super) async fn component(&self, name: &str, bytes: Vec<u8>) -> Result<Made, PluginError> {
        let digest: Digest32 = Sha256::digest(&bytes).into();
        if let Some(refusal) = self.refused().get(&(digest, name.to_string())) {
            return Err(refusal.clone());
        }
        let compiling =
            self.components.lock().unwrap_or_else(PoisonError::into_inner).entry(digest).or_default().clone();
        let component = compiling
            .get_or_try_init(|| async {
                self.imports_checked.fetch_add(1, Ordering::Relaxed);
                if let Err(refusal) = imports::check(name, &bytes) {
                    self.refuse(name, digest, &refusal);
                    return Err(refusal);
                }
                let (engine, cache) = (self.engine.clone(), self.cache.clone());
                let (component, _) =
                    tokio::task::spawn_blocking(move || compiled::component(cache.as_deref(), &engine, &bytes))
                        .await
                        .map_err(|e| PluginError::new(format!("compiling plugin `{name}` failed: {e}")))?
                        .map_err(|e| {
                            PluginError::new(format!("plugin `{name}` is not a valid WebAssembly component: {e:#}"))
                        })?;
                self.made.fetch_add(1, Ordering::Relaxed);
                Ok::<_, PluginError>(component)
            })
            .await?;
        Ok(Made { component: component.clone(), digest })
    }

    /// Remembers that the component of `digest` is refused as plugin `name`,
    /// for `refusal`, and lets go of the component itself.
    pub(super) fn refuse(&self, name: &str, digest: Digest32, refusal: &PluginError) {
        self.components.lock().unwrap_or_else(PoisonError::into_inner).remove(&digest);
        let mut refused = self.refused();
        // A long-lived server meets many components: past the bound, refusals are forgotten and found again.
        if refused.len() >= REMEMBERED_REFUSALS {
            refused.clear();
        }
        refused.insert((digest, name.to_string()), refusal.clone());
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<(Digest32, String), PluginError>> {
        self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

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

/// Advances the engine's epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("loktar-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
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
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: a header and nothing else.
    const EMPTY: &[u8] = b"\0asm\x0d\x00\x01\x00";
    /// Another component: the empty one with a custom section.
    const OTHER: &[u8] = b"\0asm\x0d\x00\x01\x00\x00\x04\x01xyz";

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().expect("tokio").block_on(future)
    }

    #[test]
    fn the_same_bytes_are_compiled_once_however_many_ask_at_once() {
        let engine = PluginEngine::new(None).expect("engine");
        block_on(async {
            let (first, second) =
                tokio::join!(engine.component("a", EMPTY.to_vec()), engine.component("b", EMPTY.to_vec()));
            first.expect("compiled");
            second.expect("compiled");
            assert_eq!(engine.components_made(), 1, "asked twice at once, compiled once");
            engine.component("c", EMPTY.to_vec()).await.expect("kept");
            assert_eq!(engine.components_made(), 1, "asked again later, not compiled again");
            engine.component("d", OTHER.to_vec()).await.expect("compiled");
            assert_eq!(engine.components_made(), 2, "other bytes, another component");
        });
    }

    #[test]
    fn a_component_importing_what_loktar_lacks_is_refused_before_any_compile_and_remembered() {
        use wasm_encoder::{Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType};
        let mut component = Component::new();
        let mut types = ComponentTypeSection::new();
        // Type 0: an instance with a function to call; type 1: one with nothing to call.
        let mut callable = InstanceType::new();
        callable.ty().function().params([("path", wasm_encoder::PrimitiveValType::String)]).result(None);
        callable.export("read", ComponentTypeRef::Func(0));
        types.instance(&callable);
        types.instance(&InstanceType::new());
        component.section(&types);
        let mut imports = ComponentImportSection::new();
        imports.import("wasi:cli/environment@0.2.0", ComponentTypeRef::Instance(0));
        imports.import("jco:node/fs", ComponentTypeRef::Instance(0));
        imports.import("wasi:keyvalue/store@0.2.0", ComponentTypeRef::Instance(0));
        // Types only: wasmtime lets such an import go unlinked.
        imports.import("acme:common/types@1.0.0", ComponentTypeRef::Instance(1));
        component.section(&imports);
        let bytes = component.finish();
        let engine = PluginEngine::new(None).expect("engine");
        block_on(async {
            let error = engine.component("js", bytes.clone()).await.expect_err("refused");
            assert_eq!(
                error.problem.message,
                "plugin `js` imports what Loktar does not provide: `jco:node/fs`, `wasi:keyvalue/store@0.2.0`"
            );
            assert_eq!(engine.components_made(), 0, "refused before any compile");
            let again = engine.component("js", bytes).await.expect_err("still refused");
            assert_eq!(again, error);
            assert_eq!(engine.imports_checked.load(Ordering::Relaxed), 1, "remembered, not checked again");
            assert!(engine.components.lock().expect("components").is_empty(), "nothing kept of it but the refusal");
        });
    }

    #[test]
    fn a_component_that_does_not_compile_names_its_plugin_and_is_tried_again() {
        let engine = PluginEngine::new(None).expect("engine");
        let broken = b"\0asm\x0d\x00\x01\x00\x7f".to_vec();
        block_on(async {
            let error = engine.component("broken", broken.clone()).await.expect_err("not a component");
            assert!(
                error.problem.message.starts_with("plugin `broken` is not a valid WebAssembly component: "),
                "{}",
                error.problem.message
            );
            let again = engine.component("other", broken).await.expect_err("still not a component");
            assert!(again.problem.message.starts_with("plugin `other` "), "{}", again.problem.message);
            assert_eq!(engine.components_made(), 0);
        });
    }
}
