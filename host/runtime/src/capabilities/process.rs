//! `process`: run an allow-listed program in the package folder, with a
//! scrubbed environment, output streamed to the stage log, and a timeout
//! that stops the whole process group.
//!
//! When the run is cancelled, programs already running are stopped and the
//! plugin is told they did not finish; programs it starts afterwards (its
//! clean-up) run normally, bounded by the call's grace period.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use wasmtime::component::{HasSelf, Linker};

use super::{Grant, Grants};
use crate::bindings::host::loktar::plugin::process::{self, Command, ExitStatus, HostFolders};
use crate::bindings::host::loktar::plugin::types::Error;
use crate::isolation::{self, Prepared};
use crate::stage_log::{Level, Source, StageLog};
use crate::state::StoreState;
use loktar_services::containers::{Engine, RunningContainer};
use loktar_settings::{Capability, IsolationMode, IsolationSettings, PluginSettings, Settings};

/// Standard output handed back to the plugin is cut here (it is all in the log).
const STDOUT_RETURNED: usize = 1024 * 1024;

/// The programs a plugin may run, and how they run.
#[derive(Debug)]
pub(crate) struct ProcessGrant {
    /// Programs it may run, by name.
    programs: Vec<String>,
    /// Host environment variables passed to them.
    env: Vec<String>,
    /// How they are isolated (`[isolation]`).
    isolation: IsolationSettings,
    /// The engine they run on, with `mode = "container"`.
    engine: Option<Engine>,
}

impl Grant for ProcessGrant {
    const CAPABILITY: Capability = Capability::Process;

    fn from_settings(_: &str, plugin: &PluginSettings, settings: &Settings) -> ProcessGrant {
        ProcessGrant {
            programs: plugin.programs.clone().unwrap_or_default(),
            env: plugin.env.clone().unwrap_or_default(),
            isolation: settings.isolation.clone(),
            engine: (settings.isolation.mode == IsolationMode::Container).then(|| Engine::new(&settings.engine)),
        }
    }

    fn of(grants: &Grants) -> Option<&ProcessGrant> {
        grants.process.as_ref()
    }
}

impl process::Host for StoreState {
    async fn folders(&mut self) -> Result<HostFolders, Error> {
        self.grant::<ProcessGrant>()?;
        Ok(HostFolders {
            package: self.package_dir.as_ref().map(|dir| dir.shown().display().to_string()).unwrap_or_default(),
            artifacts: self.artifacts_dir.as_ref().map(|dir| dir.shown().display().to_string()),
        })
    }

    async fn run(&mut self, command: Command) -> Result<ExitStatus, Error> {
        let grant = self.grant::<ProcessGrant>()?;
        let program = &command.program;
        if !grant.programs.iter().any(|allowed| allowed == program) {
            return Err(Error {
                message: format!("plugin `{}` may not run `{program}`", self.plugin),
                hint: Some(format!(
                    "allow it in loktar.toml: add \"{program}\" to `programs` under `[plugins.{}]`",
                    self.plugin
                )),
            });
        }
        if program.contains('/') {
            return Err(error(format!("`{program}` must be a program name, not a path")));
        }
        // The working folder is opened link-free below the package folder and
        // entered through its handle, so no name can turn it into another folder.
        let package = self.package_dir.as_ref().ok_or_else(|| error("this call has no package folder".into()))?;
        let cwd = package
            .folder(Path::new(command.cwd.as_deref().unwrap_or(".")))
            .map_err(|e| error(format!("cannot run `{program}` there: {e}")))?;
        let limit = self.process_timeout;
        let timeout = command.timeout_ms.map_or(limit, |ms| Duration::from_millis(ms).min(limit));

        let Some(path) = isolation::find_program(&grant.isolation, program) else {
            let isolated = grant.isolation.mode != IsolationMode::None;
            return Err(Error {
                message: if isolated {
                    format!(
                        "`{program}` is not installed where isolated programs see it: not in a folder of the `PATH` of loktar under `/usr`, `/opt` or `read_only` of `[isolation]`"
                    )
                } else {
                    format!("`{program}` is not installed: it is not in the `PATH` of loktar")
                },
                hint: Some(if isolated {
                    format!(
                        "install `{program}` on this machine (under `/usr` or `/opt`), or add its folder to `read_only` under `[isolation]` in the host configuration"
                    )
                } else {
                    format!("install `{program}` on this machine, or add its folder to `PATH`")
                }),
            });
        };
        if let Some((name, _)) = command.env.iter().find(|(name, _)| isolation::is_loader_variable(name)) {
            return Err(Error {
                message: format!("plugin `{}` may not set `{name}` for `{program}`", self.plugin),
                hint: Some("loader variables (`LD_*` and the like) would let it run code of its choosing".to_string()),
            });
        }
        let mut env: Vec<(OsString, OsString)> = Vec::new();
        for name in ["PATH", "HOME"].iter().copied().chain(grant.env.iter().map(String::as_str)) {
            // A granted variable may hold a secret, which then lives in Loktar's memory, not its environment.
            if let Some(value) =
                std::env::var_os(name).or_else(|| loktar_settings::vault::value(name).map(OsString::from))
            {
                env.push((name.into(), value));
            }
        }
        env.extend(command.env.iter().map(|(key, value)| (key.into(), value.into())));
        let launch = isolation::Launch {
            program: &path,
            args: &command.args,
            env,
            package,
            artifacts: self.artifacts_dir.as_ref(),
            cwd: &cwd,
        };
        let prepared = isolation::prepare(&grant.isolation, launch)
            .map_err(|e| Error { message: format!("cannot run `{program}`: {e}"), hint: e.hint() })?;
        // Started before the cancellation: stop it when it comes. Started after: it is clean-up.
        let cancel = self.cancel.clone().filter(|cancel| !cancel.is_cancelled());
        let mut running = match prepared {
            Prepared::Process(command) => Running::spawn(command, self.programs.as_ref())
                .map_err(|e| error(format!("cannot run `{program}`: {e}")))?,
            Prepared::Container(container) => {
                let engine = grant.engine.as_ref().ok_or_else(|| error("no container engine".into()))?;
                Running::Container(engine.start_program(container).await.map_err(Error::from)?)
            }
        };
        let (stdout, stderr) = running.take_output();
        let output = async {
            let (stdout, ()) = tokio::join!(forward(stdout, &self.log, Level::Info, true), async {
                forward(stderr, &self.log, Level::Warn, false).await;
            });
            stdout
        };
        let cancelled = async {
            match &cancel {
                Some(cancel) => cancel.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let finished = tokio::select! {
            finished = tokio::time::timeout(timeout, async { tokio::join!(output, running.exited()) }) => finished,
            () = cancelled => {
                running.stop().await;
                self.log.push(Source::Program, Level::Warn, &format!("`{program}` stopped: the run was cancelled"));
                return Ok(ExitStatus { code: None, timed_out: false, stdout: String::new() });
            }
        };
        match finished {
            Ok((stdout, Ok(code))) => Ok(ExitStatus { code, timed_out: false, stdout }),
            Ok((_, Err(e))) => Err(error(format!("waiting for `{program}` failed: {e}"))),
            Err(_) => {
                running.stop().await;
                let seconds = timeout.as_secs_f64();
                self.log.push(Source::Program, Level::Error, &format!("`{program}` stopped after {seconds:.1} s"));
                Ok(ExitStatus { code: None, timed_out: true, stdout: String::new() })
            }
        }
    }
}

/// A started program: a local process in its own process group, or a container.
enum Running {
    Process { child: tokio::process::Child, group: Option<rustix::process::Pid>, _listed: Option<RunningGroup> },
    Container(RunningContainer),
}

/// A program's output pipe.
type Pipe = Pin<Box<dyn AsyncRead + Send>>;

impl Running {
    fn spawn(mut command: tokio::process::Command, programs: Option<&RunningPrograms>) -> std::io::Result<Running> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a timeout stops what it started too.
            .process_group(0);
        let child = command.spawn()?;
        let group = child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw);
        let listed = group.zip(programs).map(|(group, programs)| programs.register(group));
        Ok(Running::Process { child, group, _listed: listed })
    }

    fn take_output(&mut self) -> (Option<Pipe>, Option<Pipe>) {
        match self {
            Running::Process { child, .. } => (
                child.stdout.take().map(|pipe| Box::pin(pipe) as Pipe),
                child.stderr.take().map(|pipe| Box::pin(pipe) as Pipe),
            ),
            Running::Container(container) => (
                container.stdout.take().map(|pipe| Box::pin(pipe) as Pipe),
                container.stderr.take().map(|pipe| Box::pin(pipe) as Pipe),
            ),
        }
    }

    /// Waits for the program to exit; its exit code (none if a signal ended it).
    /// Once it has exited, what it left running goes too (isolated, its
    /// namespace or container is already gone), so no child outlives the
    /// stage or holds its output open.
    async fn exited(&mut self) -> Result<Option<i32>, String> {
        match self {
            Running::Process { child, group, .. } => {
                let status = child.wait().await;
                if let Some(group) = group {
                    let _ = rustix::process::kill_process_group(*group, rustix::process::Signal::KILL);
                }
                status.map(|status| status.code()).map_err(|e| e.to_string())
            }
            Running::Container(container) => container.wait().await,
        }
    }

    /// Kills the program and everything it started.
    async fn stop(&mut self) {
        match self {
            Running::Process { child, group, .. } => {
                if let Some(group) = group {
                    let _ = rustix::process::kill_process_group(*group, rustix::process::Signal::KILL);
                }
                let _ = child.kill().await;
            }
            Running::Container(container) => container.stop().await,
        }
    }
}

/// The process groups of the programs one run's plugins are running now,
/// so that a run abandoned at once (a second Ctrl-C) can stop them: each
/// run has its own, so stopping one run touches no other.
#[derive(Debug, Clone, Default)]
pub struct RunningPrograms(Arc<Mutex<BTreeSet<i32>>>);

impl RunningPrograms {
    /// Kills every program of the run, and what each started.
    pub fn kill_all(&self) {
        let groups = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        for group in groups.into_iter().filter_map(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }

    fn register(&self, group: rustix::process::Pid) -> RunningGroup {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(group.as_raw_nonzero().get());
        RunningGroup { group, programs: self.clone() }
    }
}

/// A running program's process group, listed in its run's [`RunningPrograms`] while alive.
struct RunningGroup {
    group: rustix::process::Pid,
    programs: RunningPrograms,
}

impl Drop for RunningGroup {
    fn drop(&mut self) {
        self.programs.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.group.as_raw_nonzero().get());
    }
}

/// Bytes read from a program's pipe at once (a Linux pipe holds 64 KiB).
const READ_SIZE: usize = 64 * 1024;

/// Streams a pipe into the log line by line; returns what it read when `keep` is set.
/// The pipe is read to its end even once the log is full, so the program never
/// blocks on it; what the log cannot take is counted and dropped, not kept.
async fn forward(pipe: Option<Pipe>, log: &StageLog, level: Level, keep: bool) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut writer = log.writer(Source::Program, level);
    let mut kept = Vec::new();
    let mut buffer = vec![0u8; READ_SIZE];
    while let Ok(read) = pipe.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let bytes = &buffer[..read];
        writer.accept(bytes);
        if keep && kept.len() < STDOUT_RETURNED {
            kept.extend_from_slice(&bytes[..read.min(STDOUT_RETURNED - kept.len())]);
        }
    }
    writer.flush_partial();
    String::from_utf8_lossy(&kept).into_owned()
}

fn error(message: String) -> Error {
    Error { message, hint: None }
}

/// Adds `process` to the linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    process::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::CallEnv;
    use loktar_settings::Limits;

    fn state(grant: Option<ProcessGrant>) -> StoreState {
        let grants = Arc::new(Grants { process: grant, ..Grants::default() });
        StoreState::new("make", grants, &Limits::default(), StageLog::new(1024, "make"), &CallEnv::default())
            .expect("state")
    }

    fn run(state: &mut StoreState, program: &str) -> Result<ExitStatus, Error> {
        let command =
            Command { program: program.into(), args: Vec::new(), env: Vec::new(), cwd: None, timeout_ms: None };
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
        tokio.block_on(process::Host::run(state, command))
    }

    #[test]
    fn only_a_granted_plugin_runs_only_its_listed_programs() {
        let error = run(&mut state(None), "make").expect_err("not granted");
        assert_eq!(error.message, "plugin `make` was not granted capability `process`");
        let plugin = PluginSettings { programs: Some(vec!["make".into()]), ..PluginSettings::default() };
        let grant = ProcessGrant::from_settings("make", &plugin, &Settings::builtin());
        let error = run(&mut state(Some(grant)), "rm").expect_err("not listed");
        assert_eq!(error.message, "plugin `make` may not run `rm`");
        assert_eq!(
            error.hint.as_deref(),
            Some("allow it in loktar.toml: add \"rm\" to `programs` under `[plugins.make]`")
        );
    }
}
