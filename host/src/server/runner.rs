//! A run the server accepted, from its queue to its record: the mirror
//! fetched, the commit checked out on its own, the run planned and
//! executed by the application layer `loktar run` uses, its logs and
//! record in the server's data folder, the checkout removed at the end.

use std::sync::Arc;
use std::time::Duration;

use super::Server;
use super::intake::Wanted;
use crate::app::context::{Options, plugin_session};
use crate::app::run::{PlannedRun, RunPlace, begin_run, plan_run};
use crate::app::{Range, RunRequest, RunSelection};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::events::journal::Journal;
use crate::events::logfiles::LogFiles;
use crate::events::record::Recorder;
use crate::events::{EventBus, RunId, RunOutcome, Subscriber, WriteHealth};
use crate::mirrors::{Checkout, Mirrors};
use crate::pipeline::control::RunControl;
use crate::pipeline::handed::Source;
use crate::pipeline::run::{execute, notify_nothing_to_run};
use crate::pipeline::stage::Stage;

/// A run accepted from a webhook (or the API), recorded as queued.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// Its number in the server's run store.
    pub number: i64,
    /// Its identity.
    pub id: RunId,
    /// What it runs.
    pub wanted: Wanted,
    /// Stops it.
    pub control: Arc<RunControl>,
}

/// Runs `accepted` to its end and records how it ended. Never fails: what
/// goes wrong is the run's outcome and reason.
pub(crate) async fn run(server: Arc<Server>, accepted: Accepted) {
    let number = accepted.number;
    let ended = match server.runs_at_once.acquire().await {
        _ if accepted.control.is_interrupted() => Err(Diagnostic::new("cancelled before it started")),
        Ok(_permit) if server.stopping.is_cancelled() => {
            // Left queued: the server runs it when it starts again.
            server.active().remove(&number);
            return;
        }
        Ok(_permit) => execute_accepted(&server, &accepted).await,
        Err(_) => Err(Diagnostic::new("cancelled before it started")),
    };
    if let Err(problem) = ended {
        let cancelled = accepted.control.is_interrupted();
        if cancelled {
            tracing::info!(run = number, "{problem}");
        } else {
            tracing::warn!(run = number, "{problem}");
        }
        let outcome = if cancelled { RunOutcome::Interrupted } else { RunOutcome::Failed };
        let reason = match &problem.hint {
            Some(hint) => format!("{}; hint: {hint}", problem.message),
            None => problem.message.clone(),
        };
        let recorded = server
            .with_store(move |store| {
                // A reason given by whoever cancelled it stays.
                if !cancelled {
                    store.set_reason(number, &reason)?;
                }
                store.finish_run(number, outcome.name(), Duration::ZERO)
            })
            .await;
        if let Err(problem) = recorded {
            tracing::error!(run = number, "cannot record how the run ended: {problem}");
        }
    }
    server.active().remove(&number);
}

/// The run, up to its record; an error for a run that could not begin.
async fn execute_accepted(server: &Arc<Server>, accepted: &Accepted) -> Result<(), Diagnostic> {
    // `[github]`'s credentials go to GitHub's own host only: never to another git host.
    let clone_url = server.settings.repositories.get(&accepted.wanted.repository).map(|r| r.clone_url.as_str());
    let token = match clone_url {
        Some(url) if crate::mirrors::on_github(url, server.github.api_url()) => server.github.git_token().await?,
        _ => None,
    };
    let prepared = {
        let server = server.clone();
        let (wanted, id) = (accepted.wanted.clone(), accepted.id.clone());
        tokio::task::spawn_blocking(move || prepare(&server, wanted, id, token))
            .await
            .map_err(|e| Diagnostic::new(format!("internal error: planning failed: {e}")))??
    };
    let Prepared { checkout, planned, source } = prepared;
    // What a pull request's run plans is what it affects — unless a newer run has taken its place.
    if let (Some(number), RunSelection::Changes) = (accepted.wanted.pull_request, &accepted.wanted.selection)
        && !accepted.control.is_interrupted()
    {
        let affected = planned.plan.packages.iter().map(|package| package.name().to_string()).collect();
        let repository = &accepted.wanted.repository;
        super::collisions::planned(server, repository, number, &accepted.wanted.head, affected).await;
    }
    let ran = run_planned(server, accepted, planned, source).await;
    // Removing the work tree runs git: never on the runtime's workers.
    let _ = tokio::task::spawn_blocking(move || drop(checkout)).await;
    ran
}

/// Executes a planned run, recording it; an error for a run that could not begin.
async fn run_planned(
    server: &Arc<Server>,
    accepted: &Accepted,
    planned: PlannedRun,
    source: Source,
) -> Result<(), Diagnostic> {
    if let Some(because) = planned.nothing_to_run() {
        let session = plugin_session(planned.context.settings.clone())?;
        for failure in notify_nothing_to_run(&session, &planned.plan, &because).await {
            tracing::warn!(run = accepted.number, "notify: {failure}");
        }
        let number = accepted.number;
        server
            .with_store(move |store| {
                store.set_reason(number, &format!("nothing to run: {because}"))?;
                store.finish_run(number, RunOutcome::Passed.name(), Duration::ZERO)
            })
            .await?;
        return Ok(());
    }
    let place = RunPlace::Server { data_dir: server.data_dir().to_path_buf(), database: server.database.clone() };
    // Its folder and record are written: never on the runtime's workers.
    let (context, store, info) = tokio::task::spawn_blocking(move || begin_run(planned, place))
        .await
        .map_err(|e| Diagnostic::new(format!("internal error: the run could not begin: {e}")))??;
    tracing::debug!(run = accepted.number, "run begun");
    let mut info = info;
    info.source = Some(Source { commit: info.plan.context.commit.clone(), ..source });
    let info = Arc::new(info);
    let session = Arc::new(plugin_session(context.settings.clone())?);
    let health = WriteHealth::new();
    let subscribers: Vec<Box<dyn Subscriber>> = vec![
        Box::new(Journal::new(&info, health.clone())),
        Box::new(LogFiles::new(info.clone(), health.clone())),
        Box::new(Recorder::new(store, info.clone(), health.clone())),
    ];
    let (bus, emitter) = EventBus::start(info.id().clone(), subscribers, health.clone())
        .map_err(|e| Diagnostic::new(format!("cannot start the run's reporting: {e}")))?;
    // A run interrupted (superseded, its branch deleted, the server stopping) is `interrupted`, not `failed`.
    let report = execute(session, info, emitter, &accepted.control, &server.executors).await;
    // It waits for the run's last records to be written: never on the runtime's workers.
    let _ = tokio::task::spawn_blocking(move || bus.finish()).await;
    tracing::info!(run = accepted.number, outcome = report.outcome.name(), "run finished");
    Ok(())
}

/// A run planned in its own checkout.
struct Prepared {
    checkout: Checkout,
    planned: PlannedRun,
    /// Where executors elsewhere fetch it from.
    source: Source,
}

/// Fetches (with `token`, GitHub's credentials), checks out and plans. Blocking.
fn prepare(server: &Server, mut wanted: Wanted, id: RunId, token: Option<String>) -> Result<Prepared, Diagnostic> {
    let repository = &wanted.repository;
    let configured = server.settings.repositories.get(repository).ok_or_else(|| {
        Diagnostic::new(format!("repository `{repository}` is no longer built by this server"))
            .hint(format!("add `[server.repositories.\"{repository}\"]` back to the server's loktar.toml"))
    })?;
    let started = std::time::Instant::now();
    let reference = wanted.reference();
    let clone_url = &configured.clone_url;
    let mirror = server.mirrors.fetch(repository, clone_url, token.as_deref(), &wanted.head, reference.as_deref())?;
    tracing::debug!(elapsed = ?started.elapsed(), %repository, "mirror fetched");
    if wanted.default_branch.is_none() {
        wanted.default_branch = Mirrors::default_branch(&mirror);
    }
    let work_tree = server.data_dir().join("work").join(id.as_str());
    let checkout = server.mirrors.checkout(repository, &wanted.head, &work_tree)?;
    tracing::debug!(elapsed = ?started.elapsed(), "checked out");
    let options = Options {
        repo: Some(checkout.dir().to_path_buf()),
        config: server.config.clone(),
        github_repository: Some(repository.to_string()),
        store_root: Some(server.store_root(repository)),
    };
    let mut planned =
        plan_run(&options, &request(server.packages_at_once, &wanted)).map_err(Diagnostics::into_first)?;
    // The run keeps the identity it was accepted with.
    planned.plan.id = id;
    // Statuses and messages link to the run on this server, unless the operator chose another page.
    if let Some(public_url) = &server.settings.public_url {
        let run_url = &mut planned.context.settings.notifications.run_url;
        run_url.get_or_insert_with(|| format!("{}/api/runs/{{run}}", public_url.trim_end_matches('/')));
    }
    let source = Source {
        repository: repository.clone(),
        clone_url: clone_url.clone(),
        commit: String::new(),
        reference,
        token,
    };
    Ok(Prepared { checkout, planned, source })
}

/// What the server asks of the application layer for an accepted run.
fn request(concurrency: usize, wanted: &Wanted) -> RunRequest {
    RunRequest {
        range: Range {
            base: wanted.base.clone(),
            head: wanted.head.clone(),
            default_branch: wanted.default_branch.clone(),
            worktree: false,
            github_pr: wanted.pull_request.filter(|_| wanted.selection == RunSelection::Changes),
            branch: wanted.branch.clone(),
        },
        selection: wanted.selection.clone(),
        last_stage: Stage::Notify,
        concurrency,
        fail_fast: false,
        rebuild: false,
    }
}
