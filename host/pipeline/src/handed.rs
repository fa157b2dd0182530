//! Package jobs handed to executors on other machines.
//!
//! An executor elsewhere knows nothing of the run a job belongs to. When
//! it claims the job, the queue asks the runs of the enqueuing process
//! ([`RemoteRuns`], which [`Runs`] is) for the job's [`Work`]: where to
//! fetch the commit from, the package, the stages and their providers,
//! and the run's context. The executor checks the commit out itself,
//! reads the package from its `loktar.json`, and runs it with
//! [`run_handed`] — the same stages as in process, through its own
//! plugins and sandbox — sending the events back. The queue hands those
//! events, from the job's current attempt only, to [`RemoteRuns::report`]:
//! they go into the run's own event stream (log files, record, the API's
//! live events) and make up the package's report, as if it had run here.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use crate::control::RunControl;
use crate::events::{Emitter, EventKind, PackageOutcome, RunInfo, StageOutcome};
use crate::executors::Runs;
use crate::jobs::JobId;
use crate::plan::{PlannedPackage, RunPlan, Why};
use crate::run::{PackageReport, ReportSlot, Shared, StageReport, run_package};
use crate::scheduler::{self, JobOutcome};
use crate::stage::{Stage, StagePlan};
use loktar_config::Package;
use loktar_runtime::PluginSession;
use loktar_runtime::bindings::types::{Artifact, RunContext};
use loktar_services::objects::StoreProxy;

/// Where an executor elsewhere fetches a run's commit from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The repository, `owner/repo`: the name of the executor's mirror.
    pub repository: String,
    /// Where git fetches it from.
    pub clone_url: String,
    /// The commit to check out (full hash).
    pub commit: String,
    /// The ref that holds it (`refs/heads/main`, `refs/pull/7/head`), fetched alone when given.
    pub reference: Option<String>,
    /// A short-lived token git sends to `clone_url` (GitHub's), never logged.
    pub token: Option<String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("repository", &self.repository)
            .field("clone_url", &self.clone_url)
            .field("commit", &self.commit)
            .field("reference", &self.reference)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// What an executor elsewhere needs to run one package job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    /// The run's number in the server's store.
    pub number: i64,
    /// The run's page, for notifiers.
    pub url: Option<String>,
    /// The commit to run.
    pub source: Source,
    /// The package's name in `loktar.json`.
    pub package: String,
    /// Its stages, each with its providers (none: skipped).
    pub stages: Vec<StagePlan>,
    /// Where and why the run happens, as plugins see it.
    pub context: Context,
    /// The server's storage proxy and this attempt's token, for the
    /// stores the executor has no configuration for; `None` when the
    /// server has no address to give.
    pub store_proxy: Option<StoreProxy>,
}

/// A run's context as it travels: the fields of the plugins' `run-context`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub run_id: String,
    pub commit: String,
    pub branch: Option<String>,
    pub base: Option<String>,
    pub default_branch: String,
    pub on_default_branch: bool,
    pub commit_time: Option<String>,
    pub repository_url: Option<String>,
    pub author: Option<String>,
}

impl From<&RunContext> for Context {
    fn from(context: &RunContext) -> Context {
        Context {
            run_id: context.run_id.clone(),
            commit: context.commit.clone(),
            branch: context.branch.clone(),
            base: context.base.clone(),
            default_branch: context.default_branch.clone(),
            on_default_branch: context.on_default_branch,
            commit_time: context.commit_time.clone(),
            repository_url: context.repository_url.clone(),
            author: context.author.clone(),
        }
    }
}

impl From<Context> for RunContext {
    fn from(context: Context) -> RunContext {
        RunContext {
            run_id: context.run_id,
            commit: context.commit,
            branch: context.branch,
            base: context.base,
            default_branch: context.default_branch,
            on_default_branch: context.on_default_branch,
            commit_time: context.commit_time,
            repository_url: context.repository_url,
            author: context.author,
            // Each plugin call gets its own section.
            settings: "{}".to_string(),
        }
    }
}

/// The runs of a process, as a queue across machines sees them.
pub trait RemoteRuns: Send + Sync {
    /// An attempt at `job` starts on an executor elsewhere: what it needs to
    /// run it (`None` when its run is not executing here, or was not fetched
    /// from a repository). The package's report starts afresh with it.
    fn start(&self, job: &JobId) -> Option<Work>;

    /// `events` an executor elsewhere reports from `job`'s current attempt.
    fn report(&self, job: &JobId, events: Vec<EventKind>);

    /// `job` will never end on an executor (they were lost, `reason` says
    /// how): the stage it was in fails with that reason. The queue fails the job.
    fn lost(&self, job: &JobId, reason: &str);
}

impl RemoteRuns for Runs {
    fn start(&self, job: &JobId) -> Option<Work> {
        let run = self.get(&job.run)?;
        let info = &run.info;
        let source = info.source.clone()?;
        let position = info.position(&job.package)?;
        // A token of this attempt's own: the one before is good no more.
        let store_proxy = self.store_proxy_url().map(|url| StoreProxy { url, token: new_token() });
        if let Some(slot) = run.reports.lock().unwrap_or_else(PoisonError::into_inner).get_mut(position) {
            *slot = ReportSlot {
                report: None,
                ended: false,
                attempt: job.attempt,
                running: None,
                store_token: store_proxy.as_ref().map(|proxy| token_digest(&proxy.token)),
            };
        }
        Some(Work {
            number: info.number,
            url: info.url.clone(),
            source,
            package: job.package.to_string(),
            stages: info.plan.packages[position].stages.clone(),
            context: Context::from(&info.plan.context),
            store_proxy,
        })
    }

    fn report(&self, job: &JobId, events: Vec<EventKind>) {
        let Some(run) = self.get(&job.run) else { return };
        let Some(position) = run.info.position(&job.package) else { return };
        for kind in events {
            let relevant = match &kind {
                EventKind::StageStarted { package, .. }
                | EventKind::StageFinished { package, .. }
                | EventKind::Log { package, .. }
                | EventKind::PackageFinished { package, .. } => *package == job.package,
                _ => false,
            };
            if !relevant {
                tracing::warn!(%job, "an executor reported an event of another package, or of the run: ignored");
                continue;
            }
            record(&run, position, job.attempt, &kind);
            run.emitter.emit(with_reason(kind, &run));
        }
    }

    fn lost(&self, job: &JobId, reason: &str) {
        let Some(run) = self.get(&job.run) else { return };
        let Some(position) = run.info.position(&job.package) else { return };
        // The stage it was in; else the first it had not finished; none when it had ended.
        let stage = {
            let mut reports = run.reports.lock().unwrap_or_else(PoisonError::into_inner);
            // A lost attempt's token is good no more.
            if let Some(slot) = reports.get_mut(position) {
                slot.store_token = None;
            }
            let slot = reports.get(position);
            let finished: Vec<Stage> = slot
                .and_then(|slot| slot.report.as_ref())
                .map(|report| report.stages.iter().map(|stage| stage.stage).collect())
                .unwrap_or_default();
            match slot {
                Some(slot) if slot.ended => None,
                Some(ReportSlot { running: Some(stage), .. }) => Some(*stage),
                _ => run.info.plan.packages[position].planned_stages().into_iter().find(|s| !finished.contains(s)),
            }
        };
        let Some(stage) = stage else {
            tracing::warn!(%job, "{reason}, after its package ended");
            return;
        };
        let hint = "the executors' own logs say what became of them".to_string();
        let outcome = StageOutcome::Failed { message: reason.to_string(), hint: Some(hint), internal: true };
        let package = job.package.clone();
        // Through the report as an executor's events would go: the package ends failed in that stage.
        self.report(job, vec![EventKind::StageFinished { package, stage, outcome, duration_ms: 0 }]);
    }
}

/// `kind`, a package cancelled on an executor given the reason the run was cancelled for.
fn with_reason(kind: EventKind, run: &Shared) -> EventKind {
    match kind {
        EventKind::PackageFinished {
            run_url,
            package,
            outcome: PackageOutcome::Cancelled { reason: None },
            planned,
            stages,
            artifacts,
        } => {
            let outcome = run.cancelled();
            EventKind::PackageFinished { run_url, package, outcome, planned, stages, artifacts }
        }
        other => other,
    }
}

/// Adds what `kind` says to the report of the package at `position`, as
/// its `attempt` ran it; a newer attempt starts the report afresh.
fn record(run: &Shared, position: usize, attempt: u32, kind: &EventKind) {
    let mut reports = run.reports.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(slot) = reports.get_mut(position) else { return };
    if slot.attempt != attempt || slot.report.is_none() {
        *slot = ReportSlot {
            report: Some(PackageReport {
                name: run.info.package_name(position).to_string(),
                outcome: PackageOutcome::Failed { stage: None },
                stages: Vec::new(),
                artifacts: Vec::new(),
            }),
            ended: false,
            attempt,
            running: None,
            store_token: if slot.attempt == attempt { slot.store_token.take() } else { None },
        };
    }
    let Some(report) = slot.report.as_mut() else { return };
    match kind {
        EventKind::StageStarted { stage, .. } => slot.running = Some(*stage),
        EventKind::StageFinished { stage, outcome, duration_ms, package } => {
            slot.running = None;
            if let StageOutcome::Failed { .. } = outcome {
                report.outcome = PackageOutcome::Failed { stage: Some(*stage) };
            }
            report.stages.push(StageReport {
                stage: *stage,
                outcome: outcome.clone(),
                duration: Duration::from_millis(*duration_ms),
                log: Some(run.info.log_path(package, *stage)),
            });
        }
        EventKind::PackageFinished { outcome, artifacts, .. } => {
            slot.ended = true;
            report.outcome = outcome.clone();
            report.artifacts = artifacts.iter().map(artifact).collect();
        }
        _ => {}
    }
}

/// An artifact as events describe it, as plugins take it.
fn artifact(artifact: &loktar_protocol::Artifact) -> Artifact {
    Artifact {
        kind: artifact.kind.clone(),
        name: artifact.name.clone(),
        version: artifact.version.clone(),
        location: artifact.location.clone(),
        digest: artifact.digest.clone(),
    }
}

/// A handed job, ready on its executor: the package read from the
/// checkout of `work`'s commit at `root`, its work folder `dir`.
#[derive(Debug)]
pub struct HandedJob {
    info: Arc<RunInfo>,
}

impl HandedJob {
    /// The job of `work` for `package` (read from the checkout at `root`), working in `dir`.
    pub fn new(id: crate::events::RunId, work: Work, package: Package, root: PathBuf, dir: PathBuf) -> HandedJob {
        let plan = RunPlan {
            id,
            root,
            packages: vec![PlannedPackage {
                package,
                stages: work.stages,
                dependencies: Vec::new(),
                why: Why::default(),
                queue: String::new(),
            }],
            context: work.context.into(),
            options: scheduler::Options { concurrency: 1, fail_fast: false },
            notifiers: Vec::new(),
            not_rebuilt: Vec::new(),
        };
        let mut info = RunInfo::new(work.number, SystemTime::now(), plan, dir, work.url);
        info.store_proxy = work.store_proxy;
        HandedJob { info: Arc::new(info) }
    }

    /// The one-package run it is, for its event stream.
    pub fn info(&self) -> &Arc<RunInfo> {
        &self.info
    }
}

/// A token no one can guess: 244 random bits.
fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// What is kept of a token: its SHA-256, compared whole, so that the time a
/// comparison takes says nothing of the token.
fn token_digest(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The job a storage proxy's token was given to, while its attempt is current and running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreJob {
    /// Its run.
    pub run: crate::events::RunId,
    /// Its package.
    pub package: String,
    /// The repository (`owner/repo`) whose stores it writes to.
    pub repository: String,
    /// The plugins of its `store` stage, whose stores it may write to.
    pub storage: Vec<String>,
}

impl Runs {
    /// The job holding storage-proxy token `token`: its current attempt, not ended.
    pub fn store_job(&self, token: &str) -> Option<StoreJob> {
        let digest = token_digest(token);
        self.each_run(|run| {
            let repository = run.info.source.as_ref()?.repository.clone();
            let reports = run.reports.lock().unwrap_or_else(PoisonError::into_inner);
            let position = reports.iter().position(|slot| !slot.ended && slot.store_token == Some(digest))?;
            let stages = &run.info.plan.packages[position].stages;
            let storage =
                stages.iter().filter(|plan| plan.stage == Stage::Store).flat_map(|plan| plan.providers.clone());
            Some(StoreJob {
                run: run.info.id().clone(),
                package: run.info.package_name(position).to_string(),
                repository,
                storage: storage.collect(),
            })
        })
    }
}

/// An executor's attempt at a job, as the queue sees it.
#[async_trait::async_trait]
pub trait Attempt: Send + Sync {
    /// Whether it still holds its job (cancelled or not): false once
    /// another attempt has taken over, or the job has ended without it.
    async fn is_current(&self) -> bool;
}

/// Runs a handed job's stages with `plugins`, emitting its events into
/// `emitter`; `cancel` stops it (its programs stop, plugins clean up). Its
/// notifiers hear of it only while `attempt` is current.
pub async fn run_handed(
    job: &HandedJob,
    plugins: Arc<PluginSession>,
    emitter: Emitter,
    cancel: CancellationToken,
    attempt: &dyn Attempt,
) -> JobOutcome {
    // `cancel` reaches the plugin calls, which stop their programs.
    let shared = Shared::new(plugins, Arc::new(RunControl::new()), job.info.clone(), emitter);
    run_package(&shared, 0, cancel, Some(attempt)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of one package `lib` from a repository, registered in `runs`, and its id.
    fn registered_run(runs: &Arc<Runs>) -> (crate::executors::Registered, crate::events::RunId) {
        let json = r#"{"packages": [{"pkg_name": "lib", "build_info": {"storage_type": "s3"}}]}"#;
        let source = loktar_config::SourceFile::new("loktar.json", json.to_string());
        let mut packages = loktar_config::parse(&source, &loktar_config::Providers::builtin()).expect("valid package");
        let id = crate::events::RunId::new("run-1");
        let context = Context {
            run_id: "1".into(),
            commit: "c".repeat(40),
            branch: None,
            base: None,
            default_branch: "main".into(),
            on_default_branch: true,
            commit_time: None,
            repository_url: None,
            author: None,
        };
        let stages = vec![StagePlan { stage: Stage::Store, providers: vec!["s3".into()] }];
        let work = Work {
            number: 1,
            url: None,
            source: source_of("acme/shop"),
            package: "lib".into(),
            stages,
            context,
            store_proxy: None,
        };
        let job = HandedJob::new(id.clone(), work, packages.remove(0), PathBuf::from("/repo"), PathBuf::from("/run"));
        let mut info = (**job.info()).clone();
        info.source = Some(source_of("acme/shop"));
        let engine = Arc::new(loktar_runtime::PluginEngine::new(None).expect("engine"));
        let plugins = Arc::new(PluginSession::new(engine, loktar_settings::Settings::builtin()));
        let (_bus, emitter) =
            crate::events::EventBus::start(id.clone(), Vec::new(), crate::events::WriteHealth::new()).expect("a bus");
        let shared = Arc::new(Shared::new(plugins, Arc::new(RunControl::new()), Arc::new(info), emitter));
        (runs.register(shared), id)
    }

    fn source_of(repository: &str) -> Source {
        Source {
            repository: repository.into(),
            clone_url: "/origin".into(),
            commit: "c".repeat(40),
            reference: None,
            token: None,
        }
    }

    #[test]
    fn a_store_token_is_good_for_its_attempt_only_while_it_runs() {
        let runs = Runs::new();
        let (_registered, run) = registered_run(&runs);
        let attempt = |n: u32| JobId { run: run.clone(), package: "lib".into(), attempt: n };
        assert!(runs.start(&attempt(1)).is_some_and(|work| work.store_proxy.is_none()), "no address: no token");
        runs.set_store_proxy_url("http://127.0.0.1:8080/".into());
        let first = runs.start(&attempt(1)).and_then(|work| work.store_proxy).expect("a token");
        assert_eq!(first.url, "http://127.0.0.1:8080");
        let job = runs.store_job(&first.token).expect("its job");
        assert_eq!(
            (job.package.as_str(), job.repository.as_str(), job.storage),
            ("lib", "acme/shop", vec!["s3".to_string()])
        );
        assert!(runs.store_job("0123456789abcdef").is_none(), "a made-up token");
        // Another attempt takes over: the first's token is good no more, the second's is.
        let second = runs.start(&attempt(2)).and_then(|work| work.store_proxy).expect("a token");
        assert_ne!(first.token, second.token);
        assert!(runs.store_job(&first.token).is_none());
        assert!(runs.store_job(&second.token).is_some());
        // Lost: no more.
        runs.lost(&attempt(2), "executor lost 3 times");
        assert!(runs.store_job(&second.token).is_none());
        // A third attempt's, until its package ends.
        let third = runs.start(&attempt(3)).and_then(|work| work.store_proxy).expect("a token");
        assert!(runs.store_job(&third.token).is_some());
        let finished = EventKind::PackageFinished {
            run_url: None,
            package: "lib".into(),
            outcome: PackageOutcome::Passed,
            planned: Vec::new(),
            stages: Vec::new(),
            artifacts: Vec::new(),
        };
        runs.report(&attempt(3), vec![finished]);
        assert!(runs.store_job(&third.token).is_none(), "its package ended");
    }

    #[test]
    fn a_run_context_travels_whole() {
        let context = RunContext {
            run_id: "7".to_string(),
            commit: "a".repeat(40),
            branch: Some("main".to_string()),
            base: Some("b".repeat(40)),
            default_branch: "main".to_string(),
            on_default_branch: true,
            commit_time: Some("2026-12-07T10:00:00Z".to_string()),
            repository_url: Some("https://github.com/acme/shop".to_string()),
            author: Some("octocat".to_string()),
            settings: "{}".to_string(),
        };
        let text = serde_json::to_string(&Context::from(&context)).expect("JSON");
        let back = RunContext::from(serde_json::from_str::<Context>(&text).expect("read back"));
        // Every field: one added to the plugins' context and not here fails to compile above.
        let RunContext {
            run_id,
            commit,
            branch,
            base,
            default_branch,
            on_default_branch,
            commit_time,
            repository_url,
            author,
            settings,
        } = back;
        assert_eq!(
            (run_id, commit, branch, base, default_branch, on_default_branch),
            (context.run_id, context.commit, context.branch, context.base, context.default_branch, true)
        );
        assert_eq!(
            (commit_time, repository_url, author, settings),
            (context.commit_time, context.repository_url, context.author, context.settings)
        );
    }

    #[test]
    fn a_source_never_shows_its_token() {
        let source = Source {
            repository: "acme/shop".to_string(),
            clone_url: "https://github.com/acme/shop.git".to_string(),
            commit: "a".repeat(40),
            reference: None,
            token: Some("ghs_secret_token".to_string()),
        };
        let shown = format!("{source:?}");
        assert!(!shown.contains("ghs_secret_token") && shown.contains("<hidden>"), "{shown}");
    }
}
