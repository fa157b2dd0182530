//! One run: every selected package through its stages (test → build →
//! publish → store → notify), scheduled over the dependency DAG, each stage
//! one plugin call, everything reported as [`Event`]s.
//!
//! A stage the package does not configure is skipped; a failed stage ends
//! its package (its dependents are skipped by the scheduler); a cancelled
//! run stops running programs, lets plugins clean up, and reports what was
//! running as cancelled — never as passed.
//!
//! Notifiers hear of the run's start, of each package however it ended
//! (also one that never started), and of the run's end; what they say back
//! never changes an outcome.
//!
//! What the run could not write (a stage log, the run record: a full
//! disk) does change outcomes: a stage whose log could not be written
//! fails, naming the file and the system's error, and a run with any such
//! failure is `failed`, never `passed`. Each outcome is decided after a
//! [`Checkpoint`], once the subscribers have written what came before it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::plan::RunPlan;
use super::scheduler::{self, JobOutcome, Status};
use super::stage::{Stage, StagePlan};
use crate::events::{Checkpoint, Emitter, Event, PackageOutcome, RunInfo, RunOutcome, StageOutcome};
use crate::runtime::bindings::types::{Artifact, RunContext};
use crate::runtime::stage_log::{Line, LineTap};
use crate::runtime::{CallEnv, Mounts, PluginError, RunningPrograms, Runtime};

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
    /// Notifiers that failed to hear of the run's start or end; never a failure of the run.
    pub notify_failures: Vec<String>,
}

/// Everything the jobs share.
struct Shared {
    runtime: Arc<Runtime>,
    programs: RunningPrograms,
    info: Arc<RunInfo>,
    emitter: Emitter,
    reports: Mutex<Vec<Option<PackageReport>>>,
}

/// Runs the plan of `info`. Returns when every package has an outcome.
/// `cancel` cancels it (programs stop, plugins clean up); `programs` lists
/// the programs it runs, for a caller that must stop them at once;
/// `interrupted` says whether a signal cancelled it.
pub async fn execute(
    runtime: Arc<Runtime>,
    info: Arc<RunInfo>,
    emitter: Emitter,
    cancel: &CancellationToken,
    programs: &RunningPrograms,
    interrupted: &AtomicBool,
) -> RunReport {
    let started = Instant::now();
    emitter.emit(Event::RunStarted(info.clone()));
    let mut notify_failures = Vec::new();
    let plan = &info.plan;
    if !plan.notifiers.is_empty() {
        let event = run_started_event(&info);
        notify_failures.extend(notify(&runtime, &plan.notifiers, &plan.context, &event, &CallEnv::default()).await);
    }
    let dependencies = plan.dependencies();
    let count = plan.packages.len();
    let shared = Arc::new(Shared {
        runtime,
        programs: programs.clone(),
        info: info.clone(),
        emitter: emitter.clone(),
        reports: Mutex::default(),
    });
    shared.reports.lock().unwrap_or_else(PoisonError::into_inner).resize(count, None);
    let jobs = shared.clone();
    let statuses = scheduler::run(&dependencies, plan.options, cancel.clone(), move |position, cancel| {
        let shared = jobs.clone();
        async move { run_package(&shared, position, cancel).await }
    })
    .await;

    let mut reports = std::mem::take(&mut *shared.reports.lock().unwrap_or_else(PoisonError::into_inner));
    let mut packages = Vec::with_capacity(count);
    for (position, status) in statuses.iter().enumerate() {
        let name = info.package_name(position).to_string();
        let report = reports[position].take();
        let report_missing = report.is_none();
        let (outcome, stages, artifacts) = match (status, report) {
            (Status::Ran(_), Some(report)) => (report.outcome, report.stages, report.artifacts),
            (Status::Skipped { dependency }, _) => {
                let dependency = info.package_name(*dependency).to_string();
                (PackageOutcome::Skipped { dependency }, Vec::new(), Vec::new())
            }
            // A job that panicked before reporting.
            (Status::Ran(JobOutcome::Failed), None) => (PackageOutcome::Failed { stage: None }, Vec::new(), Vec::new()),
            // Never started: the run was cancelled first.
            (_, _) => (PackageOutcome::Cancelled, Vec::new(), Vec::new()),
        };
        let report = PackageReport { name, outcome, stages, artifacts };
        if report_missing {
            emitter.emit(Event::PackageFinished { package: position, outcome: report.outcome.clone() });
            // Never ran: its notifiers still hear how it ended, so nothing waits on it.
            let stages = &plan.packages[position].stages;
            let notifiers = notify_providers(stages);
            if !notifiers.is_empty() {
                let event = package_event(&info, stages, &report);
                notify_failures
                    .extend(notify(&shared.runtime, notifiers, &plan.context, &event, &CallEnv::default()).await);
            }
        }
        packages.push(report);
    }
    // Logs and record rows written so far decide too: a run that could not write them has not passed.
    emitter.checkpoint(Checkpoint::Run).await;
    let outcome = if interrupted.load(Ordering::SeqCst) {
        RunOutcome::Interrupted
    } else if packages.iter().all(|p| p.outcome == PackageOutcome::Passed) && emitter.health().is_healthy() {
        RunOutcome::Passed
    } else {
        RunOutcome::Failed
    };
    let duration = started.elapsed();
    if !plan.notifiers.is_empty() {
        let event = run_finished_event(plan, info.url.as_deref(), outcome, duration, &packages, None);
        notify_failures
            .extend(notify(&shared.runtime, &plan.notifiers, &plan.context, &event, &CallEnv::default()).await);
    }
    emitter.emit(Event::RunFinished { outcome, duration });
    RunReport { info, outcome, packages, duration, notify_failures }
}

/// Runs one package's stages in order; records its report and emits its events.
async fn run_package(shared: &Shared, position: usize, cancel: CancellationToken) -> JobOutcome {
    let plans = &shared.info.plan.packages[position].stages;
    let mut report = PackageReport {
        name: shared.info.package_name(position).to_string(),
        outcome: PackageOutcome::Passed,
        stages: Vec::new(),
        artifacts: Vec::new(),
    };
    let mut job = JobOutcome::Succeeded;
    for plan in plans.iter().filter(|plan| plan.stage != Stage::Notify) {
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
            Err(error) => StageOutcome::Failed { message: error.message, hint: error.hint, internal: error.internal },
        };
        let outcome = with_its_log(shared, position, plan.stage, outcome).await;
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
            StageOutcome::Failed { .. } => {
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
    // However the package ended, its notifiers hear of it; that never fails it.
    match plans.iter().find(|plan| plan.stage == Stage::Notify) {
        Some(plan) if !plan.is_skipped() => notify_package(shared, position, plan, plans, &mut report, &cancel).await,
        Some(plan) if job == JobOutcome::Succeeded => {
            let outcome = StageOutcome::Skipped { reason: format!("no `{}`", plan.stage.field()) };
            let duration = Duration::ZERO;
            let finished =
                Event::StageFinished { package: position, stage: Stage::Notify, outcome: outcome.clone(), duration };
            shared.emitter.emit(finished);
            report.stages.push(StageReport { stage: Stage::Notify, outcome, duration, log: None });
        }
        _ => {}
    }
    shared.emitter.emit(Event::PackageFinished { package: position, outcome: report.outcome.clone() });
    shared.reports.lock().unwrap_or_else(PoisonError::into_inner)[position] = Some(report);
    job
}

/// The notify stage of a package that ended: each notifier hears how it went.
async fn notify_package(
    shared: &Shared,
    position: usize,
    plan: &StagePlan,
    plans: &[StagePlan],
    report: &mut PackageReport,
    cancel: &CancellationToken,
) {
    shared.emitter.emit(Event::StageStarted { package: position, stage: Stage::Notify });
    let started = Instant::now();
    let event = package_event(&shared.info, plans, report);
    // A cancelled run is told too: the calls are not cancelled.
    let env = CallEnv { cancel: None, ..call_env(shared, position, Stage::Notify, cancel) };
    let failures = notify(&shared.runtime, &plan.providers, &shared.info.plan.context, &event, &env).await;
    let outcome = if failures.is_empty() {
        StageOutcome::Passed { summary: None }
    } else {
        StageOutcome::Failed { message: failures.join("; "), hint: None, internal: false }
    };
    let outcome = with_its_log(shared, position, Stage::Notify, outcome).await;
    let duration = started.elapsed();
    let finished = Event::StageFinished { package: position, stage: Stage::Notify, outcome: outcome.clone(), duration };
    shared.emitter.emit(finished);
    let log = Some(shared.info.log_path(position, Stage::Notify));
    report.stages.push(StageReport { stage: Stage::Notify, outcome, duration, log });
}

/// How a stage that ended with `outcome` is reported: failed, naming the
/// file and the system's error, when its log could not be written.
async fn with_its_log(shared: &Shared, position: usize, stage: Stage, outcome: StageOutcome) -> StageOutcome {
    shared.emitter.checkpoint(Checkpoint::Stage { package: position, stage }).await;
    let Some(failure) = shared.emitter.health().stage_failure(position, stage) else { return outcome };
    let hint = failure.hint(&shared.info.dir);
    match outcome {
        // Its log is missing, not its work undone: a cancelled stage stays cancelled.
        StageOutcome::Cancelled | StageOutcome::Skipped { .. } => outcome,
        StageOutcome::Passed { .. } => {
            StageOutcome::Failed { message: failure.to_string(), hint: Some(hint), internal: true }
        }
        StageOutcome::Failed { message, hint: own_hint, internal } => StageOutcome::Failed {
            message: format!("{message}; and {failure}"),
            hint: Some(own_hint.unwrap_or(hint)),
            internal,
        },
    }
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
    /// Loktar or the plugin broke, not the package.
    internal: bool,
}

impl From<PluginError> for StageError {
    fn from(error: PluginError) -> Self {
        StageError { message: error.message, hint: error.hint, internal: error.internal }
    }
}

/// Runs one stage: a call of each of its providers.
async fn run_stage(
    shared: &Shared,
    position: usize,
    plan: &StagePlan,
    artifacts: &[Artifact],
    cancel: &CancellationToken,
) -> Result<StageDone, StageError> {
    let package = &shared.info.plan.packages[position].package;
    for provider in &plan.providers {
        if !shared.runtime.has_plugin(provider) {
            return Err(missing_plugin(plan.stage, provider));
        }
    }
    let env = call_env(shared, position, plan.stage, cancel);
    let context = &shared.info.plan.context;
    let runtime = &shared.runtime;
    match plan.stage {
        Stage::Test => {
            let provider = &plan.providers[0];
            let report = runtime.test(provider, context, package, &env).await?.value;
            if report.passed {
                Ok(StageDone { summary: Some(report.summary), artifacts: None })
            } else {
                Err(StageError { message: report.summary, hint: None, internal: false })
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
        // Notifiers are called by `run_package` once the package has ended.
        Stage::Notify => Ok(StageDone { summary: None, artifacts: None }),
    }
}

/// The call environment of one stage: the package folder, the artifact
/// folder, the run's cancel token and a tap sending log lines as events.
fn call_env(shared: &Shared, position: usize, stage: Stage, cancel: &CancellationToken) -> CallEnv {
    let package = &shared.info.plan.packages[position].package;
    // Testers and notifiers have no artifact folder.
    let artifacts =
        matches!(stage, Stage::Build | Stage::Publish | Stage::Store).then(|| shared.info.artifacts_folder(position));
    let emitter = shared.emitter.clone();
    let tap: LineTap =
        Arc::new(move |line: &Line| emitter.emit(Event::Log { package: position, stage, line: line.clone() }));
    CallEnv {
        mounts: Some(Mounts { root: shared.info.plan.root.clone(), package: package.dir.clone(), artifacts }),
        cancel: Some(cancel.clone()),
        tap: Some(tap),
        programs: Some(shared.programs.clone()),
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
        internal: true,
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

/// The notifiers of a package's notify stage (none when it has none).
fn notify_providers(plans: &[StagePlan]) -> &[String] {
    plans.iter().find(|plan| plan.stage == Stage::Notify).map_or(&[], |plan| plan.providers.as_slice())
}

/// Tells each notifier `event` in `env`; returns what failed, naming the plugin.
async fn notify(
    runtime: &Runtime,
    notifiers: &[String],
    context: &RunContext,
    event: &str,
    env: &CallEnv,
) -> Vec<String> {
    let mut failures = Vec::new();
    for notifier in notifiers {
        if !runtime.has_plugin(notifier) {
            failures.push(format!("no notifier plugin `{notifier}`"));
            continue;
        }
        if let Err(error) = runtime.notify(notifier, context, event, env).await {
            failures.push(error.message);
        }
    }
    failures
}

/// The names of the stages a package goes through (those its configuration does not skip).
fn planned_stages(plans: &[StagePlan]) -> Vec<&'static str> {
    plans
        .iter()
        .filter(|plan| !plan.is_skipped() && plan.stage != Stage::Notify)
        .map(|plan| plan.stage.name())
        .collect()
}

/// `run_started`: every package and the stages it will go through.
fn run_started_event(info: &RunInfo) -> String {
    let plan = &info.plan;
    let packages: Vec<serde_json::Value> = plan
        .packages
        .iter()
        .map(|package| serde_json::json!({ "name": package.name(), "planned": planned_stages(&package.stages) }))
        .collect();
    serde_json::json!({
        "event": "run_started", "run": plan.context.run_id, "run_url": info.url, "packages": packages,
        "not_rebuilt": plan.not_rebuilt,
    })
    .to_string()
}

/// `package_finished`: how a package ended, each stage, and its artifacts.
fn package_event(info: &RunInfo, plans: &[StagePlan], report: &PackageReport) -> String {
    let stages: Vec<serde_json::Value> = report
        .stages
        .iter()
        .map(|stage| {
            let message = match &stage.outcome {
                StageOutcome::Failed { message, .. } => Some(message.clone()),
                other => other.detail().map(str::to_string),
            };
            let internal = matches!(stage.outcome, StageOutcome::Failed { internal: true, .. });
            serde_json::json!({
                "stage": stage.stage.name(), "outcome": stage.outcome.name(), "message": message, "internal": internal,
                "duration_ms": u64::try_from(stage.duration.as_millis()).unwrap_or(u64::MAX),
            })
        })
        .collect();
    let artifacts: Vec<serde_json::Value> = report
        .artifacts
        .iter()
        .map(|a| {
            serde_json::json!({
                "kind": a.kind, "name": a.name, "version": a.version, "location": a.location, "digest": a.digest,
            })
        })
        .collect();
    let detail = report.outcome.detail();
    serde_json::json!({
        "event": "package_finished", "run": info.plan.context.run_id, "run_url": info.url,
        "package": report.name, "outcome": report.outcome.name(),
        "detail": if detail.is_empty() { None } else { Some(detail) },
        "planned": planned_stages(plans), "stages": stages, "artifacts": artifacts,
    })
    .to_string()
}

/// `run_finished`: how the run and each package ended; with `nothing_to_run`, why no package ran.
pub fn run_finished_event(
    plan: &RunPlan,
    run_url: Option<&str>,
    outcome: RunOutcome,
    duration: Duration,
    packages: &[PackageReport],
    nothing_to_run: Option<&str>,
) -> String {
    let packages: Vec<serde_json::Value> = packages
        .iter()
        .map(|package| {
            let duration: Duration = package.stages.iter().map(|stage| stage.duration).sum();
            serde_json::json!({
                "name": package.name, "outcome": package.outcome.name(),
                "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            })
        })
        .collect();
    serde_json::json!({
        "event": "run_finished", "run": plan.context.run_id, "run_url": run_url,
        "outcome": outcome.name(), "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        "packages": packages, "nothing_to_run": nothing_to_run,
        // Told at the start of a run; a run that starts nothing tells them here.
        "not_rebuilt": if nothing_to_run.is_some() { plan.not_rebuilt.as_slice() } else { &[] },
    })
    .to_string()
}

/// Tells `plan`'s notifiers that a run found nothing to do, and why; returns what failed.
pub async fn notify_nothing_to_run(runtime: &Runtime, plan: &RunPlan, reason: &str) -> Vec<String> {
    let event = run_finished_event(plan, None, RunOutcome::Passed, Duration::ZERO, &[], Some(reason));
    notify(runtime, &plan.notifiers, &plan.context, &event, &CallEnv::default()).await
}
