//! What happens during a run, as one stream of [`Event`]s, and the
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
pub mod logfiles;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

pub use crate::pipeline::plan::log_path;
use crate::pipeline::plan::{RunPlan, artifacts_folder};
use crate::pipeline::stage::Stage;
use crate::runtime::stage_log::Line;

/// A run that has begun: its plan, its number and its folder.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run's number in the run store.
    pub id: i64,
    /// When it started.
    pub started: SystemTime,
    /// What it does; events refer to its packages by position.
    pub plan: RunPlan,
    /// The run's folder: `.loktar/runs/<id>`.
    pub dir: PathBuf,
    /// The run's page, for notifiers to link to.
    pub url: Option<String>,
}

impl RunInfo {
    /// The name of the package at `position`.
    pub fn package_name(&self, position: usize) -> &str {
        self.plan.packages[position].name()
    }

    /// Where the log of one stage of one package goes.
    pub fn log_path(&self, package: usize, stage: Stage) -> PathBuf {
        log_path(&self.dir, self.package_name(package), stage)
    }

    /// Where one package's artifacts go.
    pub fn artifacts_folder(&self, package: usize) -> PathBuf {
        artifacts_folder(&self.dir, self.package_name(package))
    }
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageOutcome {
    /// It did its work; `summary` is the plugin's one-line report, if any.
    Passed {
        /// One line for the summary.
        summary: Option<String>,
    },
    /// It failed.
    Failed {
        /// What went wrong, naming the plugin.
        message: String,
        /// The obvious fix, if any.
        hint: Option<String>,
        /// Loktar or the plugin itself broke, rather than the package (see
        /// [`PluginError::internal`](crate::runtime::PluginError::internal)).
        internal: bool,
    },
    /// The run was cancelled while it ran.
    Cancelled,
    /// The package does not configure it.
    Skipped {
        /// Why, e.g. "no `pkg_type`".
        reason: String,
    },
}

impl StageOutcome {
    /// Its name in output and the run store.
    pub fn name(&self) -> &'static str {
        match self {
            StageOutcome::Passed { .. } => "passed",
            StageOutcome::Failed { .. } => "failed",
            StageOutcome::Cancelled => "cancelled",
            StageOutcome::Skipped { .. } => "skipped",
        }
    }

    /// The message to show beside it, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            StageOutcome::Passed { summary } => summary.as_deref(),
            StageOutcome::Failed { message, .. } => Some(message),
            StageOutcome::Skipped { reason } => Some(reason),
            StageOutcome::Cancelled => None,
        }
    }
}

/// How a package ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageOutcome {
    /// Every stage it has passed.
    Passed,
    /// A stage failed.
    Failed {
        /// The stage that failed; `None` when Loktar itself failed.
        stage: Option<Stage>,
    },
    /// Not started: a package it depends on failed.
    Skipped {
        /// The failed dependency.
        dependency: String,
    },
    /// Cancelled while running, or never started because the run was cancelled.
    Cancelled,
}

impl PackageOutcome {
    /// Its name in output and the run store.
    pub fn name(&self) -> &'static str {
        match self {
            PackageOutcome::Passed => "passed",
            PackageOutcome::Failed { .. } => "failed",
            PackageOutcome::Skipped { .. } => "skipped",
            PackageOutcome::Cancelled => "cancelled",
        }
    }

    /// Why, in words.
    pub fn detail(&self) -> String {
        match self {
            PackageOutcome::Passed => String::new(),
            PackageOutcome::Failed { stage: Some(stage) } => format!("{stage} failed"),
            PackageOutcome::Failed { stage: None } => "loktar failed while running it".to_string(),
            PackageOutcome::Skipped { dependency } => format!("dependency `{dependency}` failed"),
            PackageOutcome::Cancelled => "the run was cancelled".to_string(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every package passed.
    Passed,
    /// Something failed.
    Failed,
    /// Interrupted by a signal.
    Interrupted,
}

impl RunOutcome {
    /// Its name in output and the run store.
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Passed => "passed",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
        }
    }
}

/// Something that happened in a run. Packages are positions in [`RunInfo::packages`].
#[derive(Debug, Clone)]
pub enum Event {
    /// The run begins.
    RunStarted(Arc<RunInfo>),
    /// A stage of a package begins.
    StageStarted {
        /// The package.
        package: usize,
        /// The stage.
        stage: Stage,
    },
    /// A stage wrote a log line.
    Log {
        /// The package.
        package: usize,
        /// The stage.
        stage: Stage,
        /// The line.
        line: Line,
    },
    /// A stage ended (or was skipped, with no `StageStarted` before it).
    StageFinished {
        /// The package.
        package: usize,
        /// The stage.
        stage: Stage,
        /// How it ended.
        outcome: StageOutcome,
        /// How long it ran.
        duration: Duration,
    },
    /// A package is done, or will never start.
    PackageFinished {
        /// The package.
        package: usize,
        /// How it ended.
        outcome: PackageOutcome,
    },
    /// The run is over.
    RunFinished {
        /// How it ended.
        outcome: RunOutcome,
        /// How long it took.
        duration: Duration,
    },
}

/// Receives every event of a run, in order, on the delivery thread.
pub trait Subscriber: Send {
    /// Takes one event.
    fn on_event(&mut self, event: &Event);

    /// Called about ten times a second while nothing happens (for live displays).
    fn tick(&mut self) {}

    /// Writes out what `at` depends on that it still holds (buffered log
    /// lines, an open transaction), reporting failures to the run's
    /// [`WriteHealth`]. Every event sent before the checkpoint has been delivered.
    fn checkpoint(&mut self, _at: Checkpoint) {}
}

/// A moment the pipeline is about to decide an outcome at, and waits for
/// what was written so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// A stage of a package has ended (its `StageFinished` is not sent yet).
    Stage {
        /// The package.
        package: usize,
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
        package: usize,
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
    pub fn stage_log(package: usize, stage: Stage, path: PathBuf, error: &std::io::Error) -> WriteFailure {
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
    pub fn stage_failure(&self, package: usize, stage: Stage) -> Option<WriteFailure> {
        let failures = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        failures
            .iter()
            .find(|f| matches!(f, WriteFailure::StageLog { package: p, stage: s, .. } if *p == package && *s == stage))
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
    Event(Event),
    /// Call [`Subscriber::checkpoint`], then answer.
    Checkpoint(Checkpoint, tokio::sync::oneshot::Sender<()>),
}

/// Sends events to the subscribers; clone it into every job.
#[derive(Debug, Clone)]
pub struct Emitter {
    sender: mpsc::Sender<Message>,
    health: WriteHealth,
}

impl Emitter {
    /// Sends one event. Once delivery has stopped, events are dropped.
    pub fn emit(&self, event: Event) {
        let _ = self.sender.send(Message::Event(event));
    }

    /// Waits until every event sent so far is delivered and the subscribers
    /// have written out what `at` depends on; then [`Emitter::health`] tells
    /// what could not be written. Returns at once when delivery has stopped.
    pub async fn checkpoint(&self, at: Checkpoint) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.sender.send(Message::Checkpoint(at, done)).is_ok() {
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
    /// Starts delivering to `subscribers`, which report what they cannot write to `health`.
    pub fn start(
        mut subscribers: Vec<Box<dyn Subscriber>>,
        health: WriteHealth,
    ) -> std::io::Result<(EventBus, Emitter)> {
        let (sender, receiver) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new().name("loktar-events".into()).spawn(move || {
            loop {
                match receiver.recv_timeout(TICK) {
                    Ok(Message::Event(event)) => {
                        subscribers.iter_mut().for_each(|s| s.on_event(&event));
                        if matches!(event, Event::RunFinished { .. }) {
                            break;
                        }
                    }
                    Ok(Message::Checkpoint(at, done)) => {
                        subscribers.iter_mut().for_each(|s| s.checkpoint(at));
                        let _ = done.send(());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => subscribers.iter_mut().for_each(|s| s.tick()),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })?;
        Ok((EventBus { thread }, Emitter { sender, health }))
    }

    /// Waits until every event up to [`Event::RunFinished`] is delivered.
    pub fn finish(self) {
        if self.thread.join().is_err() {
            tracing::error!("a run subscriber panicked; some output may be missing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_failure(package: usize, stage: Stage, error: &str) -> WriteFailure {
        let path = log_path(Path::new("/r/.loktar/runs/1"), "pet_api", stage);
        WriteFailure::StageLog { package, stage, path, error: error.into(), full: true }
    }

    #[test]
    fn write_health_keeps_one_failure_per_file() {
        let health = WriteHealth::new();
        assert!(health.is_healthy());
        health.report(log_failure(0, Stage::Test, "first"));
        health.report(log_failure(0, Stage::Test, "again"));
        health.report(WriteFailure::Record { message: "database or disk is full".into() });
        health.report(WriteFailure::Record { message: "disk I/O error".into() });
        health.report(log_failure(0, Stage::Build, "other file"));
        let failures = health.failures();
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert_eq!(health.stage_failure(0, Stage::Test), Some(log_failure(0, Stage::Test, "first")));
        assert!(health.stage_failure(1, Stage::Test).is_none());
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
        fn on_event(&mut self, event: &Event) {
            if let Event::Log { package, stage, .. } = event {
                std::thread::sleep(Duration::from_millis(50));
                self.0.report(log_failure(*package, *stage, "no room"));
            }
        }
    }

    #[test]
    fn a_checkpoint_waits_for_what_was_sent_before_it() {
        let health = WriteHealth::new();
        let (bus, emitter) =
            EventBus::start(vec![Box::new(SlowFailingLog(health.clone()))], health.clone()).expect("a bus");
        let line = Line {
            source: crate::runtime::stage_log::Source::Program,
            level: crate::runtime::stage_log::Level::Info,
            text: "x".into(),
        };
        emitter.emit(Event::Log { package: 0, stage: Stage::Test, line });
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        runtime.block_on(emitter.checkpoint(Checkpoint::Stage { package: 0, stage: Stage::Test }));
        assert!(emitter.health().stage_failure(0, Stage::Test).is_some(), "the checkpoint returned too early");
        emitter.emit(Event::RunFinished { outcome: RunOutcome::Failed, duration: Duration::ZERO });
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
