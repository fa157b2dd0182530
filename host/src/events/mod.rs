//! What happens during a run, as one stream of [`Event`]s, and the
//! subscribers that turn it into progress on the terminal, CI log lines, log
//! files and the run record.
//!
//! The pipeline only emits events; it knows nothing of who listens. One
//! thread delivers every event to every subscriber in order, so subscribers
//! are plain synchronous code and never slow down the jobs.

pub mod console;
pub mod logfiles;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::pipeline::stage::{Stage, StagePlan};
use crate::runtime::stage_log::Line;

/// One package of a run, as planned.
#[derive(Debug, Clone)]
pub struct RunPackage {
    /// Its name.
    pub name: String,
    /// Its stages, skipped ones included.
    pub stages: Vec<StagePlan>,
}

/// What a run is about to do.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run's number in the run store.
    pub id: i64,
    /// When it started.
    pub started: SystemTime,
    /// The packages, in dependency order; events refer to them by position.
    pub packages: Vec<RunPackage>,
    /// Jobs at once.
    pub concurrency: usize,
    /// The run's folder: `.loktar/runs/<id>`.
    pub dir: PathBuf,
}

impl RunInfo {
    /// Where the log of one stage of one package goes.
    pub fn log_path(&self, package: usize, stage: Stage) -> PathBuf {
        log_path(&self.dir, &self.packages[package].name, stage)
    }
}

/// `<run dir>/<package>/<stage>.log`, with the package name made safe as a
/// file name: `%`, `/`, `\`, NUL and a leading `.` are written `%XX`, so
/// that two names never share a folder (`.x` and `_.x` once did).
pub fn log_path(run_dir: &Path, package: &str, stage: Stage) -> PathBuf {
    let mut safe = String::with_capacity(package.len());
    for (index, c) in package.char_indices() {
        match c {
            '%' | '/' | '\\' | '\0' => safe.push_str(&format!("%{:02X}", c as u32)),
            '.' if index == 0 => safe.push_str("%2E"),
            c => safe.push(c),
        }
    }
    run_dir.join(safe).join(format!("{}.log", stage.name()))
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
}

/// Sends events to the subscribers; clone it into every job.
#[derive(Debug, Clone)]
pub struct Emitter(mpsc::Sender<Event>);

impl Emitter {
    /// Sends one event. Once delivery has stopped, events are dropped.
    pub fn emit(&self, event: Event) {
        let _ = self.0.send(event);
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
    /// Starts delivering to `subscribers`.
    pub fn start(mut subscribers: Vec<Box<dyn Subscriber>>) -> std::io::Result<(EventBus, Emitter)> {
        let (sender, receiver) = mpsc::channel::<Event>();
        let thread = std::thread::Builder::new().name("loktar-events".into()).spawn(move || {
            loop {
                match receiver.recv_timeout(TICK) {
                    Ok(event) => {
                        subscribers.iter_mut().for_each(|s| s.on_event(&event));
                        if matches!(event, Event::RunFinished { .. }) {
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => subscribers.iter_mut().for_each(|s| s.tick()),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })?;
        Ok((EventBus { thread }, Emitter(sender)))
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
