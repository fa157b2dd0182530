//! One run: every selected package through its stages (test → build →
//! publish → store → notify), scheduled over the dependency DAG, each stage
//! one plugin call, everything reported as `RunEvent`s.
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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::control::RunControl;
use super::executors::Executors;
use super::jobs::{Job, JobId, JobQueue};
use super::plan::RunPlan;
use super::scheduler::{self, JobOutcome, Status};
use super::stage::{Stage, StagePlan};
use crate::events::{
    Checkpoint, Emitter, EventKind, PackageOutcome, RunEvent, RunInfo, RunOutcome, StageOutcome, millis,
};
use loktar_protocol::Line;
use loktar_runtime::bindings::types::{Artifact, RunContext};
use loktar_runtime::stage_log::LineTap;
use loktar_runtime::{CallEnv, Mounts, PluginError, PluginSession};

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

/// Everything the jobs of a run share; executors find it by the run's id.
pub(crate) struct Shared {
    plugins: Arc<PluginSession>,
    control: Arc<RunControl>,
    pub(crate) info: Arc<RunInfo>,
    pub(crate) emitter: Emitter,
    /// Each package's report, by position, once it has one.
    pub(crate) reports: Mutex<Vec<ReportSlot>>,
}

/// Where a package's report goes, and which attempt at its job wrote it.
#[derive(Default)]
pub(crate) struct ReportSlot {
    pub(crate) report: Option<PackageReport>,
    /// Whether the package ended (`package_finished`); a report without it is of a job lost half-way.
    pub(crate) ended: bool,
    /// The attempt of an executor elsewhere that reported it; 0 in process.
    pub(crate) attempt: u32,
    /// The stage that attempt began and has not finished.
    pub(crate) running: Option<Stage>,
    /// The digest of that attempt's token for the server's storage proxy,
    /// while the attempt may use it.
    pub(crate) store_token: Option<[u8; 32]>,
}

impl Shared {
    pub(crate) fn new(
        plugins: Arc<PluginSession>,
        control: Arc<RunControl>,
        info: Arc<RunInfo>,
        emitter: Emitter,
    ) -> Shared {
        let count = info.plan.packages.len();
        let reports = Mutex::new(std::iter::repeat_with(ReportSlot::default).take(count).collect());
        Shared { plugins, control, info, emitter, reports }
    }
}

/// Runs the plan of `info`: each package becomes a job for `executors`
/// once the packages it depends on passed. Returns when every package has
/// an outcome. `control` stops it (programs stop, plugins clean up).
pub async fn execute(
    plugins: Arc<PluginSession>,
    info: Arc<RunInfo>,
    emitter: Emitter,
    control: &Arc<RunControl>,
    executors: &Executors,
) -> RunReport {
    let started = Instant::now();
    let plan = &info.plan;
    let run_started = emitter.emit(run_started(&info));
    let mut notify_failures = notify(&plugins, &plan.notifiers, &plan.context, &run_started, &CallEnv::default()).await;
    let dependencies = plan.dependencies();
    let count = plan.packages.len();
    let shared = Arc::new(Shared::new(plugins, control.clone(), info.clone(), emitter.clone()));
    let registered = executors.runs().register(shared.clone());
    let queue = executors.queue().clone();
    let run = info.clone();
    let statuses = scheduler::run(&dependencies, plan.options, control.token().clone(), move |position, cancel| {
        let package = run.package_name(position).clone();
        let on = run.plan.packages[position].queue.clone();
        let job = Job { id: JobId { run: run.id().clone(), package, attempt: 1 }, position, queue: on, work: None };
        let queue = queue.clone();
        async move { dispatch(&*queue, job, &cancel).await }
    })
    .await;
    drop(registered);

    let mut reports = std::mem::take(&mut *shared.reports.lock().unwrap_or_else(PoisonError::into_inner));
    let mut packages = Vec::with_capacity(count);
    for (position, status) in statuses.iter().enumerate() {
        let name = info.package_name(position).to_string();
        let slot = &mut reports[position];
        let (report, ended) = (slot.report.take(), slot.ended);
        // Never ended where it ran (never started, or its executor was lost half-way): it ends here.
        let report_missing = !ended;
        let (outcome, stages, artifacts) = match (status, report) {
            // Its executor lost after it ended, and never again taken: it has not passed.
            (Status::Ran(JobOutcome::Failed), Some(report)) if report.outcome == PackageOutcome::Passed => {
                (PackageOutcome::Failed { stage: None }, report.stages, report.artifacts)
            }
            // Lost half-way, then cancelled: what it did stays, and it is cancelled.
            (Status::Ran(JobOutcome::Cancelled), Some(report)) if !ended => {
                (shared.cancelled(), report.stages, report.artifacts)
            }
            (Status::Ran(_), Some(report)) => (report.outcome, report.stages, report.artifacts),
            (Status::Skipped { dependency }, _) => {
                let dependency = info.package_name(*dependency).to_string();
                (PackageOutcome::Skipped { dependency }, Vec::new(), Vec::new())
            }
            // A job that panicked before reporting.
            (Status::Ran(JobOutcome::Failed), None) => (PackageOutcome::Failed { stage: None }, Vec::new(), Vec::new()),
            // Never started: the run was cancelled first.
            (_, _) => (shared.cancelled(), Vec::new(), Vec::new()),
        };
        let report = PackageReport { name, outcome, stages, artifacts };
        if report_missing {
            let finished = emitter.emit(package_finished(&info, position, &report));
            // Never ran: its notifiers still hear how it ended, so nothing waits on it.
            let notifiers = notify_providers(&plan.packages[position].stages);
            notify_failures
                .extend(notify(&shared.plugins, notifiers, &plan.context, &finished, &CallEnv::default()).await);
        }
        packages.push(report);
    }
    // Logs and record rows written so far decide too: a run that could not write them has not passed.
    emitter.checkpoint(Checkpoint::Run).await;
    let outcome = if control.is_interrupted() {
        RunOutcome::Interrupted
    } else if packages.iter().all(|p| p.outcome == PackageOutcome::Passed) && emitter.health().is_healthy() {
        RunOutcome::Passed
    } else {
        RunOutcome::Failed
    };
    let duration = started.elapsed();
    let run_finished = emitter.emit(run_finished(info.url.as_deref(), outcome, duration, &packages, None, &[]));
    let env = CallEnv::default();
    notify_failures.extend(notify(&shared.plugins, &plan.notifiers, &plan.context, &run_finished, &env).await);
    RunReport { info, outcome, packages, duration, notify_failures }
}

impl Shared {
    /// The outcome of a package the run's cancellation stopped, with the reason it was given.
    pub(crate) fn cancelled(&self) -> PackageOutcome {
        PackageOutcome::Cancelled { reason: self.control.reason().map(str::to_string) }
    }
}

/// Hands `job` to an executor and waits for how it ended; cancelling the
/// run cancels the job.
async fn dispatch(queue: &dyn JobQueue, job: Job, cancel: &CancellationToken) -> JobOutcome {
    let id = job.id.clone();
    let mut ended = match queue.enqueue(job).await {
        Ok(ended) => ended,
        Err(problem) => {
            tracing::error!(job = %id, "cannot hand the job to an executor: {problem}");
            return JobOutcome::Failed;
        }
    };
    tokio::select! {
        outcome = &mut ended => return outcome.unwrap_or_else(|_| lost(&id)),
        _ = cancel.cancelled() => {}
    }
    queue.cancel(&id).await;
    ended.await.unwrap_or_else(|_| lost(&id))
}

/// The outcome of a job whose executor went away without finishing it.
fn lost(job: &JobId) -> JobOutcome {
    tracing::error!(%job, "the executor of the job was lost");
    JobOutcome::Failed
}

/// Runs one package's stages in order; records its report and emits its
/// events. With `attempt`, its notifiers hear of it only while the attempt
/// is still its job's: a job run again elsewhere is told of once.
pub(crate) async fn run_package(
    shared: &Shared,
    position: usize,
    cancel: CancellationToken,
    attempt: Option<&dyn crate::handed::Attempt>,
) -> JobOutcome {
    let plans = &shared.info.plan.packages[position].stages;
    let package = shared.info.package_name(position);
    let mut report = PackageReport {
        name: package.to_string(),
        outcome: PackageOutcome::Passed,
        stages: Vec::new(),
        artifacts: Vec::new(),
    };
    let mut job = JobOutcome::Succeeded;
    for plan in plans.iter().filter(|plan| plan.stage != Stage::Notify) {
        if plan.is_skipped() {
            let outcome = StageOutcome::Skipped { reason: format!("no `{}`", plan.stage.field()) };
            shared.emitter.emit(EventKind::StageFinished {
                package: package.clone(),
                stage: plan.stage,
                outcome: outcome.clone(),
                duration_ms: 0,
            });
            report.stages.push(StageReport { stage: plan.stage, outcome, duration: Duration::ZERO, log: None });
            continue;
        }
        if cancel.is_cancelled() {
            job = JobOutcome::Cancelled;
            break;
        }
        shared.emitter.emit(EventKind::StageStarted { package: package.clone(), stage: plan.stage });
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
            Err(error) => StageOutcome::Failed {
                message: error.problem.message,
                hint: error.problem.hint,
                internal: error.internal,
            },
        };
        let outcome = with_its_log(shared, position, plan.stage, outcome).await;
        shared.emitter.emit(EventKind::StageFinished {
            package: package.clone(),
            stage: plan.stage,
            outcome: outcome.clone(),
            duration_ms: millis(duration),
        });
        let log = Some(shared.info.log_path(package, plan.stage));
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
        report.outcome = shared.cancelled();
    }
    let finished = shared.emitter.emit(package_finished(&shared.info, position, &report));
    // However the package ended, its notifiers hear of it in its notify
    // stage, which comes after: they are told of that very event. It never fails the package.
    let notify = plans.iter().find(|plan| plan.stage == Stage::Notify);
    let superseded = match (notify, attempt) {
        (Some(plan), Some(attempt)) if !plan.is_skipped() => !attempt.is_current().await,
        _ => false,
    };
    match notify {
        Some(_) if superseded => {
            tracing::warn!(package = %package, "another attempt holds the job: its notifiers are not told of this one");
        }
        Some(plan) if !plan.is_skipped() => {
            notify_package(shared, position, plan, &finished, &mut report, &cancel).await
        }
        Some(plan) if job == JobOutcome::Succeeded => {
            let outcome = StageOutcome::Skipped { reason: format!("no `{}`", plan.stage.field()) };
            let stage = Stage::Notify;
            shared.emitter.emit(EventKind::StageFinished {
                package: package.clone(),
                stage,
                outcome: outcome.clone(),
                duration_ms: 0,
            });
            report.stages.push(StageReport { stage, outcome, duration: Duration::ZERO, log: None });
        }
        _ => {}
    }
    let mut reports = shared.reports.lock().unwrap_or_else(PoisonError::into_inner);
    reports[position] = ReportSlot { report: Some(report), ended: true, attempt: 0, running: None, store_token: None };
    job
}

/// The notify stage of a package that ended: each notifier hears of its `package_finished`.
async fn notify_package(
    shared: &Shared,
    position: usize,
    plan: &StagePlan,
    finished: &RunEvent,
    report: &mut PackageReport,
    cancel: &CancellationToken,
) {
    let package = shared.info.package_name(position);
    shared.emitter.emit(EventKind::StageStarted { package: package.clone(), stage: Stage::Notify });
    let started = Instant::now();
    // A cancelled run is told too: the calls are not cancelled.
    let env = CallEnv { cancel: None, ..call_env(shared, position, Stage::Notify, cancel) };
    let failures = notify(&shared.plugins, &plan.providers, &shared.info.plan.context, finished, &env).await;
    let outcome = if failures.is_empty() {
        StageOutcome::Passed { summary: None }
    } else {
        StageOutcome::Failed { message: failures.join("; "), hint: None, internal: false }
    };
    let outcome = with_its_log(shared, position, Stage::Notify, outcome).await;
    let duration = started.elapsed();
    shared.emitter.emit(EventKind::StageFinished {
        package: package.clone(),
        stage: Stage::Notify,
        outcome: outcome.clone(),
        duration_ms: millis(duration),
    });
    let log = Some(shared.info.log_path(package, Stage::Notify));
    report.stages.push(StageReport { stage: Stage::Notify, outcome, duration, log });
}

/// How a stage that ended with `outcome` is reported: failed, naming the
/// file and the system's error, when its log could not be written.
async fn with_its_log(shared: &Shared, position: usize, stage: Stage, outcome: StageOutcome) -> StageOutcome {
    let package = shared.info.package_name(position);
    shared.emitter.checkpoint(Checkpoint::Stage { package: package.clone(), stage }).await;
    let Some(failure) = shared.emitter.health().stage_failure(package, stage) else { return outcome };
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

/// Runs one stage: a call of each of its providers.
async fn run_stage(
    shared: &Shared,
    position: usize,
    plan: &StagePlan,
    artifacts: &[Artifact],
    cancel: &CancellationToken,
) -> Result<StageDone, PluginError> {
    let package = &shared.info.plan.packages[position].package;
    for provider in &plan.providers {
        if !shared.plugins.has_plugin(provider) {
            return Err(missing_plugin(plan.stage, provider));
        }
    }
    let env = call_env(shared, position, plan.stage, cancel);
    let context = &shared.info.plan.context;
    let plugins = &shared.plugins;
    match plan.stage {
        Stage::Test => {
            let provider = &plan.providers[0];
            let report = plugins.test(provider, context, package, &env).await?.value;
            if report.passed {
                Ok(StageDone { summary: Some(report.summary), artifacts: None })
            } else {
                // The package failed its tests: not Loktar's or the plugin's fault.
                Err(PluginError { internal: false, ..PluginError::new(report.summary) })
            }
        }
        Stage::Build => {
            let built = plugins.build(&plan.providers[0], context, package, &env).await?.value;
            Ok(StageDone { summary: Some(describe_artifacts(&built)), artifacts: Some(built) })
        }
        Stage::Publish => {
            let published = plugins.publish(&plan.providers[0], context, package, artifacts, &env).await?.value;
            Ok(StageDone { summary: Some(describe_artifacts(&published)), artifacts: Some(published) })
        }
        Stage::Store => {
            let stored = plugins.store(&plan.providers[0], context, package, artifacts, &env).await?.value;
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
    let name = shared.info.package_name(position).clone();
    let artifacts =
        matches!(stage, Stage::Build | Stage::Publish | Stage::Store).then(|| shared.info.artifacts_folder(&name));
    let emitter = shared.emitter.clone();
    let tap: LineTap = Arc::new(move |line: &Line| {
        emitter.emit(EventKind::Log { package: name.clone(), stage, line: line.clone() });
    });
    CallEnv {
        mounts: Some(Mounts { root: shared.info.plan.root.clone(), package: package.dir.clone(), artifacts }),
        cancel: Some(cancel.clone()),
        tap: Some(tap),
        programs: Some(shared.control.programs().clone()),
        store_proxy: shared.info.store_proxy.clone(),
    }
}

fn missing_plugin(stage: Stage, provider: &str) -> PluginError {
    let role = stage.role();
    PluginError::new(format!("no plugin for {} `{provider}`", stage.field())).hint(format!(
        "this build of Loktar has no `{provider}` {role}; configure one under `[plugins.{provider}]` in \
         loktar.toml (`path` and `role = \"{role}\"`), or stop before this stage with `--stage`"
    ))
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
    plugins: &PluginSession,
    notifiers: &[String],
    context: &RunContext,
    event: &RunEvent,
    env: &CallEnv,
) -> Vec<String> {
    if notifiers.is_empty() {
        return Vec::new();
    }
    let event = match serde_json::to_string(event) {
        Ok(json) => json,
        Err(error) => return vec![format!("cannot write the event for notifiers: {error}")],
    };
    let mut failures = Vec::new();
    for notifier in notifiers {
        if !plugins.has_plugin(notifier) {
            failures.push(format!("no notifier plugin `{notifier}`"));
            continue;
        }
        if let Err(error) = plugins.notify(notifier, context, &event, env).await {
            failures.push(error.problem.message);
        }
    }
    failures
}

/// `run_started`: every package, the stages it will go through and what it waits for.
fn run_started(info: &RunInfo) -> EventKind {
    let plan = &info.plan;
    let packages = plan
        .packages
        .iter()
        .enumerate()
        .map(|(position, package)| loktar_protocol::PlannedPackage {
            name: info.package_name(position).clone(),
            planned: package.planned_stages(),
            depends_on: package.dependencies.iter().map(|&at| info.package_name(at).clone()).collect(),
            changed_files: package.why.changed_files.clone(),
            because_of: package.why.because_of.iter().map(|name| name.as_str().into()).collect(),
        })
        .collect();
    EventKind::RunStarted { run_url: info.url.clone(), packages, not_rebuilt: plan.not_rebuilt.clone() }
}

/// `package_finished`: how the package at `position` ended, each stage, and its artifacts.
fn package_finished(info: &RunInfo, position: usize, report: &PackageReport) -> EventKind {
    let stages = report
        .stages
        .iter()
        .map(|stage| loktar_protocol::StageResult {
            stage: stage.stage,
            outcome: stage.outcome.clone(),
            duration_ms: millis(stage.duration),
        })
        .collect();
    EventKind::PackageFinished {
        run_url: info.url.clone(),
        package: info.package_name(position).clone(),
        outcome: report.outcome.clone(),
        planned: info.plan.packages[position].planned_stages(),
        stages,
        artifacts: report.artifacts.iter().map(artifact).collect(),
    }
}

/// An artifact as events describe it.
fn artifact(artifact: &Artifact) -> loktar_protocol::Artifact {
    loktar_protocol::Artifact {
        kind: artifact.kind.clone(),
        name: artifact.name.clone(),
        version: artifact.version.clone(),
        location: artifact.location.clone(),
        digest: artifact.digest.clone(),
    }
}

/// `run_finished`: how the run and each package ended; with `nothing_to_run`,
/// why no package ran and which were `not_rebuilt`.
fn run_finished(
    run_url: Option<&str>,
    outcome: RunOutcome,
    duration: Duration,
    packages: &[PackageReport],
    nothing_to_run: Option<&str>,
    not_rebuilt: &[loktar_protocol::NotRebuilt],
) -> EventKind {
    let packages = packages
        .iter()
        .map(|package| loktar_protocol::PackageResult {
            name: package.name.as_str().into(),
            outcome: package.outcome.clone(),
            duration_ms: millis(package.stages.iter().map(|stage| stage.duration).sum()),
        })
        .collect();
    EventKind::RunFinished {
        run_url: run_url.map(str::to_string),
        outcome,
        duration_ms: millis(duration),
        packages,
        nothing_to_run: nothing_to_run.map(str::to_string),
        not_rebuilt: not_rebuilt.to_vec(),
    }
}

/// Tells `plan`'s notifiers that a run found nothing to do, and why; returns
/// what failed. The run has no event stream: this is its only event.
pub async fn notify_nothing_to_run(plugins: &PluginSession, plan: &RunPlan, reason: &str) -> Vec<String> {
    let kind = run_finished(None, RunOutcome::Passed, Duration::ZERO, &[], Some(reason), &plan.not_rebuilt);
    let event = RunEvent {
        schema_version: loktar_protocol::SCHEMA_VERSION,
        run_id: plan.id.clone(),
        seq: 0,
        at: time::OffsetDateTime::now_utc(),
        kind,
    };
    notify(plugins, &plan.notifiers, &plan.context, &event, &CallEnv::default()).await
}
