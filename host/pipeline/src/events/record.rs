//! Writes the run record: each stage and package outcome into the run
//! store as it happens, so an interrupted or crashed run still shows how far
//! it got, with secret values hidden from the messages it keeps. Writes are
//! grouped into a transaction committed at least every [`COMMIT_EVERY`]:
//! one commit per row would cost more than a small stage; the run's
//! [`Checkpoint`] commits at once, so that a record that cannot be written
//! (a full disk) is known before the run's outcome is decided. Such a
//! failure goes to the run's [`WriteHealth`], which fails the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet as HashSet;

use super::{
    Checkpoint, EventKind, PackageName, RunEvent, RunInfo, StageOutcome, Subscriber, WriteFailure, WriteHealth,
};
use crate::stage::Stage;
use loktar_runtime::stage_log::redact;
use loktar_store::RunStore;

/// The longest a recorded outcome waits for its commit.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// Records a run in the run store.
#[derive(Debug)]
pub struct Recorder {
    store: RunStore,
    run: Arc<RunInfo>,
    /// The stages that started (and so have a log).
    started: HashSet<(PackageName, Stage)>,
    /// When the open transaction began, if one is open.
    batch: Option<Instant>,
    health: WriteHealth,
}

impl Recorder {
    /// Records `run` into `store` (the run itself was begun there already);
    /// what cannot be written is reported to `health`.
    pub fn new(store: RunStore, run: Arc<RunInfo>, health: WriteHealth) -> Recorder {
        Recorder { store, run, started: HashSet::default(), batch: None, health }
    }

    /// Opens a transaction for the next writes, if none is open.
    fn batch(&mut self) {
        if self.batch.is_none() {
            let result = self.store.begin_batch();
            self.check(result);
            self.batch = Some(Instant::now());
        }
    }

    /// Commits the open transaction when `now` is set or it is old enough.
    fn commit(&mut self, now: bool) {
        if self.batch.is_some_and(|began| now || began.elapsed() >= COMMIT_EVERY) {
            self.batch = None;
            let result = self.store.commit();
            self.check(result);
        }
    }

    fn check(&mut self, result: Result<(), loktar_support::diagnostic::Diagnostic>) {
        if let Err(problem) = result {
            self.health.report(WriteFailure::Record { message: problem.message });
        }
    }
}

impl Subscriber for Recorder {
    fn on_event(&mut self, event: &RunEvent) {
        if matches!(event.kind, EventKind::StageFinished { .. } | EventKind::PackageFinished { .. }) {
            self.batch();
        }
        self.record(&event.kind);
        self.commit(matches!(event.kind, EventKind::RunFinished { .. }));
    }

    fn tick(&mut self) {
        self.commit(true);
    }

    fn checkpoint(&mut self, at: Checkpoint) {
        if at == Checkpoint::Run {
            self.commit(true);
        }
    }
}

impl Recorder {
    fn record(&mut self, event: &EventKind) {
        let run = &self.run;
        let result = match event {
            EventKind::StageStarted { package, stage } => {
                self.started.insert((package.clone(), *stage));
                Ok(())
            }
            EventKind::StageFinished { package, stage, outcome, duration_ms } => {
                let ran = self.started.remove(&(package.clone(), *stage));
                let log = ran.then(|| run.log_path(package, *stage));
                self.store.record_stage(
                    run.number,
                    position(run, package),
                    package,
                    *stage,
                    outcome.name(),
                    outcome_detail(outcome).as_deref(),
                    Duration::from_millis(*duration_ms),
                    log.as_deref(),
                )
            }
            EventKind::PackageFinished { package, outcome, .. } => self.store.record_package(
                run.number,
                position(run, package),
                package,
                outcome.name(),
                &outcome.detail(),
            ),
            EventKind::RunFinished { outcome, duration_ms, .. } => {
                self.store.finish_run(run.number, outcome.name(), Duration::from_millis(*duration_ms))
            }
            EventKind::RunStarted { .. } | EventKind::Log { .. } => Ok(()),
        };
        self.check(result);
    }
}

/// The message stored beside a stage: the failure with its hint, or the summary.
fn outcome_detail(outcome: &StageOutcome) -> Option<String> {
    let detail = match outcome {
        StageOutcome::Failed { message, hint: Some(hint), .. } => Some(format!("{message}\nhint: {hint}")),
        other => other.detail().map(str::to_string),
    };
    detail.map(|detail| redact(&detail).into_owned())
}

/// The package's position in the run, as the store keeps it.
fn position(run: &RunInfo, package: &str) -> i64 {
    run.position(package).and_then(|at| i64::try_from(at).ok()).unwrap_or(i64::MAX)
}
