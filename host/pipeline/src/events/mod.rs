//! What happens during a run, as one stream of [`RunEvent`]s, and the
//! subscribers that turn it into progress on the terminal, CI log lines, log
//! files and the run record.
//!
//! The pipeline only emits events; it knows nothing of who listens. One
//! thread delivers every event to every subscriber in order, so subscribers
//! are plain synchronous code and never slow down the jobs.
//!
//! Subscribers that write the run's own files (stage logs, the run record)
//! report what they could not write into the run's [`WriteHealth`]. Before
//! the pipeline decides how a stage or the run ended it waits at a
//! [`Checkpoint`] until those writes are done, and a write that failed (a
//! full disk) fails the stage and the run: a run is never `passed` with
//! logs or a record missing.

pub mod console;
pub mod journal;
pub mod logfiles;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

pub use loktar_protocol::{
    EventKind, PackageName, PackageOutcome, RunEvent, RunId, RunOutcome, SCHEMA_VERSION, StageOutcome, millis,
};
use time::OffsetDateTime;

pub use crate::plan::log_path;
use crate::plan::{RunPlan, artifacts_folder};
use crate::stage::Stage;

/// A run that has begun: its plan, its number and its folder.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Its number in its repository's run store: how people name it.
    pub number: i64,
    /// When it started.
    pub started: SystemTime,
    /// What it does.
    pub plan: RunPlan,
    /// The run's work folder: logs and artifacts.
    pub dir: PathBuf,
    /// The run's page, for notifiers to link to.
    pub url: Option<String>,
    /// Where executors elsewhere fetch its commit from; `None` for a run of a local work tree.
    pub source: Option<crate::handed::Source>,
    /// For a job an executor runs for a server elsewhere: the server's
    /// storage proxy, which keeps what goes to a store this machine lacks.
    pub store_proxy: Option<loktar_services::objects::StoreProxy>,
    /// Each package's name, by position in the plan, as events carry it.
    names: Vec<PackageName>,
    /// Each package's position, by name.
    positions: rustc_hash::FxHashMap<PackageName, usize>,
}

impl RunInfo {
    /// The run numbered `number` in its store, started at `started`, working in `dir`.
    pub fn new(number: i64, started: SystemTime, plan: RunPlan, dir: PathBuf, url: Option<String>) -> RunInfo {
        let names: Vec<PackageName> = plan.packages.iter().map(|package| PackageName::from(package.name())).collect();
        let positions = names.iter().enumerate().map(|(position, name)| (name.clone(), position)).collect();
        RunInfo { number, started, plan, dir, url, source: None, store_proxy: None, names, positions }
    }

    /// Its identity, unique across machines.
    pub fn id(&self) -> &RunId {
        &self.plan.id
    }

    /// The name of the package at `position`.
    pub fn package_name(&self, position: usize) -> &PackageName {
        &self.names[position]
    }

    /// The position of the package called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }

    /// Where the log of one stage of one package goes.
    pub fn log_path(&self, package: &str, stage: Stage) -> PathBuf {
        log_path(&self.dir, package, stage)
    }

    /// Where one package's artifacts go.
    pub fn artifacts_folder(&self, package: &str) -> PathBuf {
        artifacts_folder(&self.dir, package)
    }
}

/// Receives every event of a run, in order, on the delivery thread: a sink
/// of the run's event stream.
pub trait Subscriber: Send {
    /// Takes one event.
    fn on_event(&mut self, event: &RunEvent);

    /// Called about ten times a second while nothing happens (for live displays).
    fn tick(&mut self) {}

    /// Writes out what `at` depends on that it still holds (buffered log
    /// lines, an open transaction), reporting failures to the run's
    /// [`WriteHealth`]. Every event sent before the checkpoint has been delivered.
    fn checkpoint(&mut self, _at: Checkpoint) {}
}

/// A moment the pipeline is about to decide an outcome at, and waits for
/// what was written so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// A stage of a package has ended (its `StageFinished` is not sent yet).
    Stage {
        /// The package.
        package: PackageName,
        /// The stage.
        stage: Stage,
    },
    /// Every package has ended (`RunFinished` is not sent yet).
    Run,
}

/// A file of the run that could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteFailure {
    /// A stage's log file.
    #[error("cannot write the stage log `{}`: {error}", path.display())]
    StageLog {
        /// The package.
        package: PackageName,
        /// The stage.
        stage: Stage,
        /// The log file.
        path: PathBuf,
        /// The system's words, e.g. `No space left on device (os error 28)`.
        error: String,
        /// The disk (or the user's quota) is full.
        full: bool,
    },
    /// The run record in the run store.
    #[error("cannot write the run record: {message}")]
    Record {
        /// What the store said.
        message: String,
    },
}

impl WriteFailure {
    /// A stage log's failure, from the error of writing `path`.
    pub fn stage_log(package: PackageName, stage: Stage, path: PathBuf, error: &std::io::Error) -> WriteFailure {
        let full = matches!(error.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded);
        WriteFailure::StageLog { package, stage, path, error: error.to_string(), full }
    }

    /// Whether a full disk (or quota) caused it, as far as can be told: the
    /// error says so, or the disk that holds `dir` has next to no room left
    /// (SQLite sometimes says only "disk I/O error").
    pub fn is_disk_full(&self, dir: &Path) -> bool {
        let says_so = match self {
            WriteFailure::StageLog { full, .. } => *full,
            // SQLite's words for `SQLITE_FULL`, and the system's for `ENOSPC`.
            WriteFailure::Record { message } => {
                message.contains("disk is full") || message.contains("No space left on device")
            }
        };
        says_so || out_of_room(dir)
    }

    /// What to do about it, with `dir` the folder Loktar writes the run into.
    pub fn hint(&self, dir: &Path) -> String {
        if self.is_disk_full(dir) {
            format!("free space on the disk that holds `{}`, then run again", dir.display())
        } else {
            format!("check that `{}` can be written, then run again", dir.display())
        }
    }
}

/// Below this much free space, a failed write is put down to a full disk.
const LITTLE_ROOM: u64 = 1024 * 1024;

/// Whether the file system holding `dir` (or its nearest existing parent) has
/// less than [`LITTLE_ROOM`] left for ordinary users.
fn out_of_room(dir: &Path) -> bool {
    dir.ancestors()
        .find_map(|folder| rustix::fs::statvfs(folder).ok())
        .is_some_and(|fs| fs.f_bavail.saturating_mul(fs.f_frsize) < LITTLE_ROOM)
}

/// What the run could not write, shared by the subscribers that report into
/// it and the pipeline that consults it. It keeps one failure per stage log
/// and one for the run record, so a flood of failed writes stays small.
#[derive(Debug, Clone, Default)]
pub struct WriteHealth(Arc<Mutex<Vec<WriteFailure>>>);

impl WriteHealth {
    /// Nothing failed yet.
    pub fn new() -> WriteHealth {
        WriteHealth::default()
    }

    /// Notes `failure`, unless one for the same file is noted already.
    pub fn report(&self, failure: WriteFailure) {
        let mut failures = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let same_file = |noted: &WriteFailure| match (noted, &failure) {
            (WriteFailure::StageLog { path: a, .. }, WriteFailure::StageLog { path: b, .. }) => a == b,
            (WriteFailure::Record { .. }, WriteFailure::Record { .. }) => true,
            _ => false,
        };
        if !failures.iter().any(same_file) {
            failures.push(failure);
        }
    }

    /// Why the log of `stage` of `package` could not be written, if it could not.
    pub fn stage_failure(&self, package: &str, stage: Stage) -> Option<WriteFailure> {
        let failures = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        failures
            .iter()
            .find(
                |f| matches!(f, WriteFailure::StageLog { package: p, stage: s, .. } if &**p == package && *s == stage),
            )
            .cloned()
    }

    /// Every failure so far, in the order they happened.
    pub fn failures(&self) -> Vec<WriteFailure> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether everything could be written so far.
    pub fn is_healthy(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }
}

/// What goes to the delivery thread.
#[derive(Debug)]
enum Message {
    Event(Arc<RunEvent>),
    /// Call [`Subscriber::checkpoint`], then answer.
    Checkpoint(Checkpoint, tokio::sync::oneshot::Sender<()>),
}

/// Sends events to the subscribers; clone it into every job.
#[derive(Debug, Clone)]
pub struct Emitter {
    run_id: RunId,
    outbox: Arc<Mutex<Outbox>>,
    health: WriteHealth,
}

/// The way to the delivery thread, locked while an event is numbered and
/// sent, so that events arrive in the order of their `seq`.
#[derive(Debug)]
struct Outbox {
    next_seq: u64,
    sender: mpsc::Sender<Message>,
}

impl Emitter {
    /// Sends what happened, now, as the run's next event, and returns that
    /// event (notifiers are told the very same). Once delivery has stopped,
    /// events are dropped.
    pub fn emit(&self, kind: EventKind) -> Arc<RunEvent> {
        let at = OffsetDateTime::now_utc();
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = outbox.next_seq;
        outbox.next_seq += 1;
        let event = Arc::new(RunEvent { schema_version: SCHEMA_VERSION, run_id: self.run_id.clone(), seq, at, kind });
        let _ = outbox.sender.send(Message::Event(event.clone()));
        event
    }

    /// Waits until every event sent so far is delivered and the subscribers
    /// have written out what `at` depends on; then [`Emitter::health`] tells
    /// what could not be written. Returns at once when delivery has stopped.
    pub async fn checkpoint(&self, at: Checkpoint) {
        let (done, written) = tokio::sync::oneshot::channel();
        let sent =
            self.outbox.lock().unwrap_or_else(PoisonError::into_inner).sender.send(Message::Checkpoint(at, done));
        if sent.is_ok() {
            // An error means the delivery thread is gone: nothing more will be written.
            let _ = written.await;
        }
    }

    /// What the run could not write so far.
    pub fn health(&self) -> &WriteHealth {
        &self.health
    }
}

/// The delivery thread and its subscribers.
#[derive(Debug)]
pub struct EventBus {
    thread: std::thread::JoinHandle<()>,
}

/// How often live displays are refreshed.
const TICK: Duration = Duration::from_millis(100);

impl EventBus {
    /// Starts delivering the events of run `run_id` to `subscribers`, which
    /// report what they cannot write to `health`.
    pub fn start(
        run_id: RunId,
        mut subscribers: Vec<Box<dyn Subscriber>>,
        health: WriteHealth,
    ) -> std::io::Result<(EventBus, Emitter)> {
        let (sender, receiver) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new().name("loktar-events".into()).spawn(move || {
            loop {
                match receiver.recv_timeout(TICK) {
                    Ok(Message::Event(event)) => {
                        subscribers.iter_mut().for_each(|s| s.on_event(&event));
                        if matches!(event.kind, EventKind::RunFinished { .. }) {
                            break;
                        }
                    }
                    Ok(Message::Checkpoint(at, done)) => {
                        subscribers.iter_mut().for_each(|s| s.checkpoint(at.clone()));
                        let _ = done.send(());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => subscribers.iter_mut().for_each(|s| s.tick()),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })?;
        let outbox = Arc::new(Mutex::new(Outbox { next_seq: 0, sender }));
        let emitter = Emitter { run_id, outbox, health };
        Ok((EventBus { thread }, emitter))
    }

    /// Waits until every event up to [`EventKind::RunFinished`] is delivered.
    pub fn finish(self) {
        if self.thread.join().is_err() {
            tracing::error!("a run subscriber panicked; some output may be missing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_failure(package: &str, stage: Stage, error: &str) -> WriteFailure {
        let path = log_path(Path::new("/r/.loktar/runs/1"), "pet_api", stage);
        WriteFailure::StageLog { package: package.into(), stage, path, error: error.into(), full: true }
    }

    #[test]
    fn write_health_keeps_one_failure_per_file() {
        let health = WriteHealth::new();
        assert!(health.is_healthy());
        health.report(log_failure("pet_api", Stage::Test, "first"));
        health.report(log_failure("pet_api", Stage::Test, "again"));
        health.report(WriteFailure::Record { message: "database or disk is full".into() });
        health.report(WriteFailure::Record { message: "disk I/O error".into() });
        health.report(log_failure("pet_api", Stage::Build, "other file"));
        let failures = health.failures();
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert_eq!(health.stage_failure("pet_api", Stage::Test), Some(log_failure("pet_api", Stage::Test, "first")));
        assert!(health.stage_failure("other", Stage::Test).is_none());
        assert_eq!(
            failures[1].to_string(),
            "cannot write the run record: database or disk is full",
            "the first record failure is kept"
        );
        assert_eq!(failures[0].to_string(), "cannot write the stage log `/r/.loktar/runs/1/pet_api/test.log`: first");
    }

    /// Takes its time over each log line, then reports it could not write it.
    struct SlowFailingLog(WriteHealth);

    impl Subscriber for SlowFailingLog {
        fn on_event(&mut self, event: &RunEvent) {
            if let EventKind::Log { package, stage, .. } = &event.kind {
                std::thread::sleep(Duration::from_millis(50));
                self.0.report(log_failure(package, *stage, "no room"));
            }
        }
    }

    #[test]
    fn a_checkpoint_waits_for_what_was_sent_before_it() {
        let health = WriteHealth::new();
        let subscribers: Vec<Box<dyn Subscriber>> = vec![Box::new(SlowFailingLog(health.clone()))];
        let (bus, emitter) = EventBus::start(RunId::new("r"), subscribers, health.clone()).expect("a bus");
        let line = loktar_protocol::Line {
            source: loktar_protocol::Source::Program,
            level: loktar_protocol::Level::Info,
            text: "x".into(),
        };
        let package = PackageName::from("pet_api");
        let first = emitter.emit(EventKind::Log { package: package.clone(), stage: Stage::Test, line });
        assert_eq!((first.seq, first.run_id.as_str()), (0, "r"));
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        runtime.block_on(emitter.checkpoint(Checkpoint::Stage { package, stage: Stage::Test }));
        assert!(emitter.health().stage_failure("pet_api", Stage::Test).is_some(), "the checkpoint returned too early");
        let last = emitter.emit(EventKind::RunFinished {
            run_url: None,
            outcome: RunOutcome::Failed,
            duration_ms: 0,
            packages: Vec::new(),
            nothing_to_run: None,
            not_rebuilt: Vec::new(),
        });
        assert_eq!(last.seq, 1);
        bus.finish();
        // Delivery has stopped: a checkpoint returns at once instead of waiting forever.
        runtime.block_on(emitter.checkpoint(Checkpoint::Run));
    }

    #[test]
    fn log_paths_stay_inside_the_run_folder() {
        let run = Path::new("/r/.loktar/runs/7");
        assert_eq!(log_path(run, "pet_api", Stage::Test), Path::new("/r/.loktar/runs/7/pet_api/test.log"));
        assert_eq!(log_path(run, "../x/y", Stage::Build), Path::new("/r/.loktar/runs/7/%2E.%2Fx%2Fy/build.log"));
        assert_eq!(log_path(run, "..", Stage::Store), Path::new("/r/.loktar/runs/7/%2E./store.log"));
        // Names that once shared a folder, and names that look like an escape.
        let folders: std::collections::BTreeSet<PathBuf> = [".x", "_.x", "%2Ex", "a/b", "a%2Fb", "a_b"]
            .into_iter()
            .map(|name| log_path(run, name, Stage::Test))
            .collect();
        assert_eq!(folders.len(), 6, "{folders:?}");
    }
}
