//! What one plugin call's `Store` holds: its WASI context (filesystem
//! preopens, stdout and stderr into the stage log), its resource limits, and
//! the capabilities it was granted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, ResourceTable, WasiCtx, WasiCtxView, WasiView};

use super::capabilities::Grants;
use super::capabilities::http::Outbound;
use super::capabilities::process::RunningPrograms;
use super::stage_log::{LineTap, PluginOutput, Source, StageLog};
use loktar_services::objects::StoreProxy;
use loktar_settings::Limits;
use loktar_support::beneath::Folder;
use tokio_util::sync::CancellationToken;

/// Where the package folder appears inside the plugin.
pub const PACKAGE_MOUNT: &str = "/package";
/// Where the artifact folder appears inside the plugin.
pub const ARTIFACTS_MOUNT: &str = "/artifacts";

/// The folders one call works in.
#[derive(Debug, Clone)]
pub struct Mounts {
    /// The repository's root folder on the host.
    pub root: PathBuf,
    /// The package folder, relative to the root, mounted read-only: it must
    /// be a real folder inside the repository, with no link on its path.
    pub package: String,
    /// The artifact folder on the host, mounted read-write, if the role has
    /// one (a folder Loktar makes; what the plugin puts in it is reached
    /// only through its handle).
    pub artifacts: Option<PathBuf>,
}

/// What one call works with: its folders, the run's cancel token, and where
/// its log lines go as they are written.
#[derive(Clone, Default)]
pub struct CallEnv {
    /// The folders it sees; `None`: no filesystem at all.
    pub mounts: Option<Mounts>,
    /// Fires when the run is cancelled: running programs stop, clean-up gets a grace period.
    pub cancel: Option<CancellationToken>,
    /// Receives each log line as it is written.
    pub tap: Option<LineTap>,
    /// The run's running programs, which the programs of this call join.
    pub programs: Option<RunningPrograms>,
    /// For a job an executor runs for a server elsewhere: the server's
    /// storage proxy, which keeps the objects of a granted store this
    /// machine has no configuration for.
    pub store_proxy: Option<StoreProxy>,
}

impl std::fmt::Debug for CallEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallEnv").field("mounts", &self.mounts).finish_non_exhaustive()
    }
}

impl CallEnv {
    /// A call seeing `mounts`, not cancellable, logging to tracing.
    pub fn with_mounts(mounts: Mounts) -> CallEnv {
        CallEnv { mounts: Some(mounts), ..CallEnv::default() }
    }
}

/// The data of one plugin call's `Store`.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// The plugin's provider name, for messages.
    pub(crate) plugin: String,
    /// What it may do: the grant of each capability granted.
    pub(crate) grants: Arc<Grants>,
    /// Its log.
    pub(crate) log: StageLog,
    /// The package folder, where programs run; `None` for a call without folders.
    pub(crate) package_dir: Option<Folder>,
    /// The artifact folder, when the call has one.
    pub(crate) artifacts_dir: Option<Folder>,
    /// Limits, for the process timeout.
    pub(crate) process_timeout: std::time::Duration,
    /// The run's cancel token, if the call belongs to a run.
    pub(crate) cancel: Option<CancellationToken>,
    /// The run's running programs, if the call belongs to a run.
    pub(crate) programs: Option<RunningPrograms>,
    /// The server's storage proxy, for a job run for a server elsewhere.
    pub(crate) store_proxy: Option<StoreProxy>,
    /// Where `wasi:http` requests may go.
    outbound: Outbound,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState").field("plugin", &self.plugin).finish_non_exhaustive()
    }
}

impl StoreState {
    /// A store for one call of `plugin`, seeing only `mounts`.
    pub fn new(
        plugin: &str,
        grants: Arc<Grants>,
        limits: &Limits,
        log: StageLog,
        env: &CallEnv,
    ) -> Result<StoreState, std::io::Error> {
        let mut wasi = WasiCtx::builder();
        // Plugins read a few small files: doing that on the calling thread is
        // cheaper than a hop to tokio's blocking pool for every operation.
        wasi.allow_blocking_current_thread(true);
        wasi.stdout(PluginOutput::new(&log, Source::Stdout)).stderr(PluginOutput::new(&log, Source::Stderr));
        // No network: the `wasi:sockets` a plugin imports stay closed — no TCP, no UDP,
        // no name lookup, no address (outbound HTTP goes through the `http` capability).
        wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        let mut package_dir = None;
        let mut artifacts_dir = None;
        if let Some(mounts) = &env.mounts {
            let package = open_package(&mounts.root, &mounts.package)?;
            preopen(&mut wasi, &package, PACKAGE_MOUNT, false)?;
            if let Some(artifacts) = &mounts.artifacts {
                let made = match artifacts.strip_prefix(&mounts.root) {
                    // Inside the repository (`.loktar/runs/…`): no link on the way, whatever it committed.
                    Ok(relative) => Folder::open(&mounts.root)
                        .map_err(|e| e.to_string())
                        .and_then(|root| root.create_folder(relative).map_err(|e| e.to_string())),
                    Err(_) => Folder::create(artifacts).map_err(|e| e.to_string()),
                };
                let artifacts = made.map_err(|e| {
                    std::io::Error::other(format!("cannot make the artifact folder `{}`: {e}", artifacts.display()))
                })?;
                preopen(&mut wasi, &artifacts, ARTIFACTS_MOUNT, true)?;
                artifacts_dir = Some(artifacts);
            }
            package_dir = Some(package);
        }
        let memory = usize::try_from(limits.memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let outbound = Outbound::new(plugin, grants.clone(), log.clone());
        Ok(StoreState {
            outbound,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(memory).instances(16).trap_on_grow_failure(true).build(),
            plugin: plugin.to_string(),
            grants,
            log,
            package_dir,
            artifacts_dir,
            process_timeout: std::time::Duration::from_secs(limits.process_timeout_secs),
            cancel: env.cancel.clone(),
            programs: env.programs.clone(),
            store_proxy: env.store_proxy.clone(),
        })
    }
}

impl StoreState {
    /// The resource table and the outbound HTTP rules, borrowed together for `wasi:http`.
    pub(crate) fn http_parts(&mut self) -> (&mut ResourceTable, &mut Outbound) {
        (&mut self.table, &mut self.outbound)
    }
}

/// The package folder `dir` of the repository at `root`, opened with no
/// link on its way: a repository could otherwise make `/package` any
/// folder of this machine.
fn open_package(root: &Path, dir: &str) -> std::io::Result<Folder> {
    let shown = loktar_config::show_dir(dir);
    let root = Folder::open(root)
        .map_err(|e| std::io::Error::other(format!("cannot open the repository folder `{}`: {e}", root.display())))?;
    root.folder(Path::new(shown))
        .map_err(|e| std::io::Error::other(format!("cannot open the package folder `{shown}`: {e}")))
}

/// Mounts `folder` at `guest`, through its handle: the mount is the folder
/// that was checked, whatever its name points at now.
fn preopen(
    wasi: &mut wasmtime_wasi::WasiCtxBuilder,
    folder: &Folder,
    guest: &str,
    writable: bool,
) -> std::io::Result<()> {
    let perms = if writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
    wasi.preopened_dir(folder.handle_path(), guest, perms)
        .map(|_| ())
        .map_err(|e| std::io::Error::other(format!("cannot mount `{}` at `{guest}`: {e}", folder.shown().display())))
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
