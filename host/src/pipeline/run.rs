//! One run: every selected package through its stages (test → build →
//! publish → store → notify), scheduled over the dependency DAG, each stage
//! one plugin call, everything reported as [`Event`]s.
//!
//! A stage the package does not configure is skipped; a failed stage ends
//! its package (its dependents are skipped by the scheduler); a cancelled
//! run stops running programs, lets plugins clean up, and reports what was
//! running as cancelled — never as passed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::scheduler::{self, Cancel, Canceller, JobOutcome, Status};
use super::stage::{Stage, StagePlan};
use crate::config::Package;
use crate::events::{Emitter, Event, PackageOutcome, RunInfo, RunOutcome, StageOutcome};
use crate::runtime::bindings::types::{Artifact, RunContext};
use crate::runtime::stage_log::{Line, LineTap};
use crate::runtime::{CallEnv, Mounts, PluginError, Runtime};

/// What to run.
#[derive(Debug)]
pub struct RunSpec {
    /// The repository root.
    pub root: PathBuf,
    /// The packages, in dependency order (the order of [`RunInfo::packages`]).
    pub packages: Vec<Package>,
    /// For each package, the positions of the packages it depends on.
    pub dependencies: Vec<Vec<usize>>,
    /// Where and why the run happens, as plugins see it.
    pub context: RunContext,
    /// Concurrency and fail-fast.
    pub options: scheduler::Options,
}

/// How one stage of one package went.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The stage.
    pub stage: Stage,
    /// How it ended.
    pub outcome: StageOutcome,
    /// How long it ran.
    pub duration: Duration,
    /// Its log file, when it ran.
    pub log: Option<PathBuf>,
}

/// How one package went.
#[derive(Debug, Clone)]
pub struct PackageReport {
    /// The package's name.
    pub name: String,
    /// How it ended.
    pub outcome: PackageOutcome,
    /// Its stages that ran or were skipped.
    pub stages: Vec<StageReport>,
    /// What its build produced, as published and stored.
    pub artifacts: Vec<Artifact>,
}

/// How the run went.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// What it was.
    pub info: Arc<RunInfo>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Each package, in run order.
    pub packages: Vec<PackageReport>,
    /// How long it took.
    pub duration: Duration,
}

/// Everything the jobs share.
struct Shared {
    runtime: Arc<Runtime>,
    spec: RunSpec,
    info: Arc<RunInfo>,
    emitter: Emitter,
    reports: Mutex<Vec<Option<PackageReport>>>,
}

/// Runs `spec`; `info` must describe the same packages. Returns when every
/// package has an outcome. `interrupted` says whether a signal cancelled it.
pub async fn execute(
    runtime: Arc<Runtime>,
    spec: RunSpec,
    info: Arc<RunInfo>,
    emitter: Emitter,
    canceller: &Canceller,
    interrupted: &AtomicBool,
) -> RunReport {
    let started = Instant::now();
    emitter.emit(Event::RunStarted(info.clone()));
    let dependencies = spec.dependencies.clone();
    let options = spec.options;
    let count = spec.packages.len();
    let shared =
        Arc::new(Shared { runtime, spec, info: info.clone(), emitter: emitter.clone(), reports: Mutex::default() });
    shared.reports.lock().unwrap_or_else(PoisonError::into_inner).resize(count, None);
    let jobs = shared.clone();
    let statuses = scheduler::run(&dependencies, options, canceller, canceller.token(), move |position, cancel| {
        let shared = jobs.clone();
        async move { run_package(&shared, position, cancel).await }
    })
    .await;

    let mut reports = std::mem::take(&mut *shared.reports.lock().unwrap_or_else(PoisonError::into_inner));
    let mut packages = Vec::with_capacity(count);
    for (position, status) in statuses.iter().enumerate() {
        let name = info.packages[position].name.clone();
        let report = reports[position].take();
        let report_missing = report.is_none();
        let (outcome, stages, artifacts) = match (status, report) {
            (Status::Ran(_), Some(report)) => (report.outcome, report.stages, report.artifacts),
            (Status::Skipped { dependency }, _) => {
                let dependency = info.packages[*dependency].name.clone();
                (PackageOutcome::Skipped { dependency }, Vec::new(), Vec::new())
            }
            // A job that panicked before reporting.
            (Status::Ran(JobOutcome::Failed), None) => (PackageOutcome::Failed { stage: None }, Vec::new(), Vec::new()),
            // Never started: the run was cancelled first.
            (_, _) => (PackageOutcome::Cancelled, Vec::new(), Vec::new()),
        };
        if report_missing {
            emitter.emit(Event::PackageFinished { package: position, outcome: outcome.clone() });
        }
        packages.push(PackageReport { name, outcome, stages, artifacts });
    }
    let outcome = if interrupted.load(Ordering::SeqCst) {
        RunOutcome::Interrupted
    } else if packages.iter().all(|p| p.outcome == PackageOutcome::Passed) {
        RunOutcome::Passed
    } else {
        RunOutcome::Failed
    };
    let duration = started.elapsed();
    emitter.emit(Event::RunFinished { outcome, duration });
    RunReport { info, outcome, packages, duration }
}

/// Runs one package's stages in order; records its report and emits its events.
async fn run_package(shared: &Shared, position: usize, cancel: Cancel) -> JobOutcome {
    let plans = shared.info.packages[position].stages.clone();
    let mut report = PackageReport {
        name: shared.info.packages[position].name.clone(),
        outcome: PackageOutcome::Passed,
        stages: Vec::new(),
        artifacts: Vec::new(),
    };
    let mut job = JobOutcome::Succeeded;
    for plan in &plans {
        if plan.is_skipped() {
            let outcome = StageOutcome::Skipped { reason: format!("no `{}`", plan.stage.field()) };
            shared.emitter.emit(Event::StageFinished {
                package: position,
                stage: plan.stage,
                outcome: outcome.clone(),
                duration: Duration::ZERO,
            });
            report.stages.push(StageReport { stage: plan.stage, outcome, duration: Duration::ZERO, log: None });
            continue;
        }
        if cancel.is_cancelled() {
            job = JobOutcome::Cancelled;
            break;
        }
        shared.emitter.emit(Event::StageStarted { package: position, stage: plan.stage });
        let started = Instant::now();
        let result = run_stage(shared, position, plan, &report.artifacts, &cancel).await;
        let duration = started.elapsed();
        // A stage the cancellation reached is cancelled, whatever the plugin said.
        let outcome = match result {
            _ if cancel.is_cancelled() => StageOutcome::Cancelled,
            Ok(done) => {
                if let Some(artifacts) = done.artifacts {
                    report.artifacts = artifacts;
                }
                StageOutcome::Passed { summary: done.summary }
            }
            Err(error) => StageOutcome::Failed { message: error.message, hint: error.hint },
        };
        shared.emitter.emit(Event::StageFinished {
            package: position,
            stage: plan.stage,
            outcome: outcome.clone(),
            duration,
        });
        let log = Some(shared.info.log_path(position, plan.stage));
        report.stages.push(StageReport { stage: plan.stage, outcome: outcome.clone(), duration, log });
        match outcome {
            StageOutcome::Cancelled => {
                job = JobOutcome::Cancelled;
                break;
            }
            // Telling people how it went never fails the package.
            StageOutcome::Failed { .. } if plan.stage != Stage::Notify => {
                job = JobOutcome::Failed;
                report.outcome = PackageOutcome::Failed { stage: Some(plan.stage) };
                break;
            }
            _ => {}
        }
    }
    if job == JobOutcome::Cancelled {
        report.outcome = PackageOutcome::Cancelled;
    }
    shared.emitter.emit(Event::PackageFinished { package: position, outcome: report.outcome.clone() });
    shared.reports.lock().unwrap_or_else(PoisonError::into_inner)[position] = Some(report);
    job
}

/// What a stage that succeeded produced.
struct StageDone {
    summary: Option<String>,
    /// The package's artifacts from now on, when the stage changed them.
    artifacts: Option<Vec<Artifact>>,
}

/// Why a stage failed.
struct StageError {
    message: String,
    hint: Option<String>,
}

impl From<PluginError> for StageError {
    fn from(error: PluginError) -> Self {
        StageError { message: error.message, hint: error.hint }
    }
}

/// Runs one stage: a call of each of its providers.
async fn run_stage(
    shared: &Shared,
    position: usize,
    plan: &StagePlan,
    artifacts: &[Artifact],
    cancel: &Cancel,
) -> Result<StageDone, StageError> {
    let package = &shared.spec.packages[position];
    for provider in &plan.providers {
        if !shared.runtime.has_plugin(provider) {
            return Err(missing_plugin(plan.stage, provider));
        }
    }
    let env = call_env(shared, position, plan.stage, cancel);
    let context = &shared.spec.context;
    let runtime = &shared.runtime;
    match plan.stage {
        Stage::Test => {
            let provider = &plan.providers[0];
            let report = runtime.test(provider, context, package, &env).await?.value;
            if report.passed {
                Ok(StageDone { summary: Some(report.summary), artifacts: None })
            } else {
                Err(StageError { message: report.summary, hint: None })
            }
        }
        Stage::Build => {
            let built = runtime.build(&plan.providers[0], context, package, &env).await?.value;
            Ok(StageDone { summary: Some(describe_artifacts(&built)), artifacts: Some(built) })
        }
        Stage::Publish => {
            let published = runtime.publish(&plan.providers[0], context, package, artifacts, &env).await?.value;
            Ok(StageDone { summary: Some(describe_artifacts(&published)), artifacts: Some(published) })
        }
        Stage::Store => {
            let stored = runtime.store(&plan.providers[0], context, package, artifacts, &env).await?.value;
            Ok(StageDone { summary: Some(describe_artifacts(&stored)), artifacts: Some(stored) })
        }
        Stage::Notify => {
            let event = notify_event(&shared.info.packages[position].name, artifacts);
            let mut failures = Vec::new();
            for provider in &plan.providers {
                if let Err(error) = runtime.notify(provider, context, &event, &env).await {
                    failures.push(error.message);
                }
            }
            if failures.is_empty() {
                Ok(StageDone { summary: None, artifacts: None })
            } else {
                Err(StageError { message: failures.join("; "), hint: None })
            }
        }
    }
}

/// The call environment of one stage: the package folder, the artifact
/// folder, the run's cancel token and a tap sending log lines as events.
fn call_env(shared: &Shared, position: usize, stage: Stage, cancel: &Cancel) -> CallEnv {
    let package = &shared.spec.packages[position];
    // Testers and notifiers have no artifact folder.
    let artifacts = matches!(stage, Stage::Build | Stage::Publish | Stage::Store)
        .then(|| shared.info.log_path(position, stage).parent().map(|folder| folder.join("artifacts")))
        .flatten();
    let emitter = shared.emitter.clone();
    let tap: LineTap =
        Arc::new(move |line: &Line| emitter.emit(Event::Log { package: position, stage, line: line.clone() }));
    CallEnv {
        mounts: Some(Mounts { package: shared.spec.root.join(&package.dir), artifacts }),
        cancel: Some(cancel.clone()),
        tap: Some(tap),
    }
}

fn missing_plugin(stage: Stage, provider: &str) -> StageError {
    let role = match stage {
        Stage::Test => "tester",
        Stage::Build => "builder",
        Stage::Publish => "registry",
        Stage::Store => "storage",
        Stage::Notify => "notifier",
    };
    StageError {
        message: format!("no plugin for {} `{provider}`", stage.field()),
        hint: Some(format!(
            "this build of Loktar has no `{provider}` {role}; configure one under `[plugins.{provider}]` in \
             loktar.toml (`path` and `role = \"{role}\"`), or stop before this stage with `--stage`"
        )),
    }
}

/// `image pet_api:42, wheel awesome_lib 1.2.0` for the summary.
fn describe_artifacts(artifacts: &[Artifact]) -> String {
    if artifacts.is_empty() {
        return "no artifacts".to_string();
    }
    artifacts.iter().map(|a| format!("{} {} {}", a.kind, a.name, a.version)).collect::<Vec<_>>().join(", ")
}

/// The JSON a notifier receives about a package that went through its stages.
fn notify_event(package: &str, artifacts: &[Artifact]) -> String {
    let artifacts: Vec<serde_json::Value> = artifacts
        .iter()
        .map(|a| {
            serde_json::json!({
                "kind": a.kind, "name": a.name, "version": a.version, "location": a.location, "digest": a.digest,
            })
        })
        .collect();
    serde_json::json!({ "event": "package_finished", "package": package, "outcome": "passed", "artifacts": artifacts })
        .to_string()
}
