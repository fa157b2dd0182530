//! `loktar executor`: runs the package jobs of a server's runs on this
//! machine, taken from NATS JetStream.
//!
//! It takes one job per free slot from each of its queues. For each, it
//! fetches the run's commit into its own mirror (with the short-lived
//! credentials the job carries, never logged), checks it out into a
//! folder of the job's own, reads the package from that commit's
//! `loktar.json`, and runs its stages with the same pipeline, plugins and
//! sandbox as `loktar run` — under the operator policy of this machine's
//! `loktar.toml`. Every event and log line goes back to the server in
//! order, in batches; the outcome last. The server is the only writer of
//! the run store: an executor needs no database credentials.
//!
//! `SIGTERM` (or `SIGINT`): nothing new is taken; running jobs have
//! `grace` to finish, then are stopped (clean-up runs) and handed back so
//! that another executor runs them at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::context::{Options, plugin_session, workspace};
use crate::blocking::wait_for;
use crate::config::Workspace;
use crate::diagnostic::Diagnostic;
use crate::events::{EventBus, EventKind, RunEvent, Subscriber, WriteHealth};
use crate::mirrors::Mirrors;
use crate::nats::{NatsOptions, NatsQueue};
use crate::pipeline::executors::HEARTBEAT;
use crate::pipeline::handed::{HandedJob, Work, run_handed};
use crate::pipeline::jobs::{JobQueue, Lease};
use crate::pipeline::scheduler::JobOutcome;
use crate::settings::Settings;

/// What the command line says, over `[executor]` and `[nats]`.
#[derive(Debug, Clone, Default)]
pub struct ExecutorOptions {
    /// The NATS server.
    pub nats: Option<String>,
    /// The queues to take jobs from.
    pub queues: Vec<String>,
    /// Jobs at once.
    pub concurrency: Option<usize>,
    /// Mirrors, checkouts and artifacts.
    pub work_dir: Option<PathBuf>,
    /// How long a stopping executor lets its jobs finish.
    pub grace: Option<Duration>,
}

/// How long one wait for a job lasts before the slot is offered to another queue.
const TAKE_WAIT: Duration = Duration::from_secs(2);
/// Events sent back in one batch, at most.
const BATCH_EVENTS: usize = 512;
/// Bytes of log lines sent back in one batch, about: well under NATS's 1 MB message limit.
const BATCH_BYTES: usize = 256 * 1024;
/// How long an event waits for others to share its batch.
const BATCH_WAIT: Duration = Duration::from_millis(50);

/// Everything the jobs share.
struct Bench {
    settings: Settings,
    mirrors: Mirrors,
    work_dir: PathBuf,
}

/// Runs the executor with the operator's configuration of `options` until
/// `SIGTERM` or `SIGINT`. Called on a blocking thread of the process's runtime.
pub fn serve(options: &Options, executor: &ExecutorOptions) -> Result<(), Diagnostic> {
    let cwd = std::env::current_dir().map_err(|e| Diagnostic::new(format!("cannot read the current folder: {e}")))?;
    let settings = Settings::load(options.config.as_deref(), &cwd)?;
    // Before any secret is read, and before any thread of ours starts.
    crate::vault::seal(&settings)?;
    let url =
        executor.nats.clone().or_else(|| settings.nats.as_ref().map(|nats| nats.url.clone())).ok_or_else(|| {
            Diagnostic::new("no NATS server to take jobs from")
                .hint("give `--nats nats://host:4222`, or `url` under `[nats]` in loktar.toml")
        })?;
    let queues = if executor.queues.is_empty() { settings.executor.queues.clone() } else { executor.queues.clone() };
    let concurrency = executor
        .concurrency
        .or(settings.executor.concurrency)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let work_dir = executor.work_dir.clone().unwrap_or_else(|| settings.executor.work_dir.clone());
    let grace = executor.grace.unwrap_or(Duration::from_secs(settings.executor.grace));
    let nats = |queue: &String| NatsOptions {
        url: url.clone(),
        queue: queue.clone(),
        ack_wait: settings.nats.as_ref().map_or(NatsOptions::default().ack_wait, |n| Duration::from_secs(n.ack_wait)),
        max_deliver: settings.nats.as_ref().map_or(NatsOptions::default().max_deliver, |n| n.max_deliver),
        ..NatsOptions::default()
    };
    let connections: Vec<NatsOptions> = queues.iter().map(nats).collect();
    let bench = Arc::new(Bench { mirrors: Mirrors::new(work_dir.join("repositories")), work_dir, settings });
    wait_for(run(bench, connections, concurrency, grace))?
}

async fn run(
    bench: Arc<Bench>,
    connections: Vec<NatsOptions>,
    concurrency: usize,
    grace: Duration,
) -> Result<(), Diagnostic> {
    let mut queues = Vec::with_capacity(connections.len());
    for options in &connections {
        let queue = NatsQueue::connect(options).await.map_err(|problem| {
            Diagnostic::new(problem.to_string()).hint(
                "start nats-server with JetStream on (`nats-server -js`), or check `--nats` or `url` under `[nats]`",
            )
        })?;
        queues.push(Arc::new(queue));
    }
    let names: Vec<&str> = connections.iter().map(|options| options.queue.as_str()).collect();
    let url = connections.first().map_or("", |options| options.url.as_str());
    // On stdout, first: scripts and tests wait for it.
    println!("loktar executor taking jobs of queue(s) {} from {url}, {concurrency} at once", names.join(", "));
    let stopping = CancellationToken::new();
    crate::server::watch_signals(stopping.clone());
    let slots = Arc::new(Semaphore::new(concurrency));
    let jobs = TaskTracker::new();
    // Stopped jobs are handed back when this is cancelled: the grace is over.
    let hand_back = CancellationToken::new();
    let takers: Vec<_> = queues
        .iter()
        .map(|queue| {
            let (queue, slots, jobs) = (queue.clone(), slots.clone(), jobs.clone());
            let (bench, stopping, hand_back) = (bench.clone(), stopping.clone(), hand_back.clone());
            tokio::spawn(async move {
                while let Some(lease) = take(&queue, &slots, &stopping).await {
                    let (queue, bench, hand_back) = (queue.clone(), bench.clone(), hand_back.clone());
                    let slot = lease.1;
                    jobs.spawn(async move {
                        work(bench, &queue, lease.0, &hand_back).await;
                        drop(slot);
                    });
                }
            })
        })
        .collect();
    stopping.cancelled().await;
    for taker in takers {
        let _ = taker.await;
    }
    jobs.close();
    if !jobs.is_empty() {
        tracing::warn!("stopping: waiting up to {} s for {} job(s)", grace.as_secs(), jobs.len());
    }
    if tokio::time::timeout(grace, jobs.wait()).await.is_err() {
        tracing::warn!("stopping: the jobs still running are stopped and handed back");
        hand_back.cancel();
        jobs.wait().await;
    }
    Ok(())
}

/// The next job of `queue` with a free slot for it; `None` once stopping.
async fn take(
    queue: &NatsQueue,
    slots: &Arc<Semaphore>,
    stopping: &CancellationToken,
) -> Option<(Lease, tokio::sync::OwnedSemaphorePermit)> {
    loop {
        let slot = tokio::select! {
            _ = stopping.cancelled() => return None,
            slot = slots.clone().acquire_owned() => slot.ok()?,
        };
        if stopping.is_cancelled() {
            return None;
        }
        // Bounded: the slot goes back for another queue's jobs when this one has none.
        if let Some(lease) = queue.take_within(TAKE_WAIT).await {
            return Some((lease, slot));
        }
        drop(slot);
        tokio::task::yield_now().await;
    }
}

/// Runs the job of `lease` and finishes it, or hands it back when `hand_back` says so.
async fn work(bench: Arc<Bench>, queue: &NatsQueue, lease: Lease, hand_back: &CancellationToken) {
    let job = lease.job.id.clone();
    tracing::info!(%job, "job taken");
    let stopped = lease.cancel.clone();
    let handed_back = hand_back.clone();
    let stop = async move {
        handed_back.cancelled().await;
        stopped.cancel();
    };
    let outcome = tokio::select! {
        outcome = run_job(bench, queue, &lease) => outcome,
        () = stop => JobOutcome::Cancelled,
    };
    // Stopped for the grace's end: the job goes back for another executor, without an outcome.
    if hand_back.is_cancelled() {
        queue.release(lease).await;
        tracing::warn!(%job, "handed back");
        return;
    }
    tracing::info!(%job, ?outcome, "job done");
    if let Err(problem) = queue.finish(lease, outcome).await {
        tracing::warn!(%job, "the outcome of a job was refused: {problem}");
    }
}

/// Runs the job of `lease` to its end, heartbeating meanwhile.
async fn run_job(bench: Arc<Bench>, queue: &NatsQueue, lease: &Lease) -> JobOutcome {
    let heartbeats = async {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            heartbeat.tick().await;
            if let Err(problem) = queue.heartbeat(lease).await {
                tracing::info!(job = %lease.job.id, "stopping: {problem}");
                lease.cancel.cancel();
            }
        }
    };
    let job = async {
        match execute(bench, queue, lease).await {
            Ok(outcome) => outcome,
            Err(problem) => {
                tracing::error!(job = %lease.job.id, "{problem}");
                JobOutcome::Failed
            }
        }
    };
    tokio::select! {
        outcome = job => outcome,
        // Heartbeats never end on their own.
        () = heartbeats => JobOutcome::Failed,
    }
}

/// Checks the job's commit out, runs its package and sends its events back.
async fn execute(bench: Arc<Bench>, queue: &NatsQueue, lease: &Lease) -> Result<JobOutcome, Diagnostic> {
    let work = lease.job.work.as_deref().cloned().ok_or_else(|| {
        Diagnostic::new("the job came without what an executor elsewhere needs: its server runs such runs itself")
    })?;
    let id = lease.job.id.clone();
    let folder = bench.work_dir.join("jobs").join(uuid::Uuid::now_v7().simple().to_string());
    let prepared = {
        let (work, folder) = (work.clone(), folder.clone());
        // Git and the file system: never on the runtime's workers.
        tokio::task::spawn_blocking(move || prepare(&bench, work, &folder))
            .await
            .map_err(|e| Diagnostic::new(format!("internal error: the job's checkout failed: {e}")))?
    };
    let (checkout, job_settings, package) = prepared?;
    let job = HandedJob::new(id.run.clone(), work, package, checkout.dir().to_path_buf(), folder.join("run"));
    let plugins = Arc::new(plugin_session(job_settings)?);
    let (events, mut receiver) = mpsc::unbounded_channel();
    let health = WriteHealth::new();
    let (bus, emitter) = EventBus::start(id.run.clone(), vec![Box::new(SendBack { events })], health)
        .map_err(|e| Diagnostic::new(format!("cannot start the job's reporting: {e}")))?;
    let sending = async {
        let mut refused = false;
        while let Some(batch) = next_batch(&mut receiver).await {
            if refused {
                continue;
            }
            if let Err(problem) = queue.report(lease, batch).await {
                tracing::warn!(job = %id, "stopping, its events were refused: {problem}");
                refused = true;
                lease.cancel.cancel();
            }
        }
    };
    let running = async {
        let outcome = run_handed(&job, plugins, emitter, lease.cancel.clone()).await;
        // Every event delivered to the sender before the outcome goes.
        let _ = tokio::task::spawn_blocking(move || bus.finish()).await;
        outcome
    };
    let (outcome, ()) = tokio::join!(running, sending);
    let _ = tokio::task::spawn_blocking(move || {
        drop(checkout);
        let _ = std::fs::remove_dir_all(&folder);
    })
    .await;
    Ok(outcome)
}

/// The job's commit checked out, the host configuration for it (the
/// repository's own plugins granted by this machine's policy), and its package.
fn prepare(
    bench: &Bench,
    work: Work,
    folder: &Path,
) -> Result<(crate::mirrors::Checkout, Settings, crate::config::Package), Diagnostic> {
    let source = &work.source;
    let repository = &source.repository;
    bench.mirrors.fetch(
        repository,
        &source.clone_url,
        source.token.as_deref(),
        &source.commit,
        source.reference.as_deref(),
    )?;
    let checkout = bench.mirrors.checkout(repository, &source.commit, &folder.join("checkout"))?;
    let root = checkout.dir();
    let mut settings = bench.settings.clone();
    settings.github.repository = Some(repository.clone());
    settings.rebase_store_folders(root, &bench.work_dir.join("stores").join(repository.replace('/', "+")));
    let manifest = Workspace::read_source(root, crate::config::MANIFEST).map_err(first)?;
    let (workspace, _) = workspace(root, &mut settings, manifest).map_err(first)?;
    let package = workspace.package(&work.package).cloned().ok_or_else(|| {
        Diagnostic::new(format!("`{}` at {} has no package `{}`", crate::config::MANIFEST, source.commit, work.package))
    })?;
    Ok((checkout, settings, package))
}

fn first(problems: crate::diagnostic::Diagnostics) -> Diagnostic {
    problems.0.into_iter().next().unwrap_or_else(|| Diagnostic::new("the repository could not be read"))
}

/// The next events to send, as many as come within [`BATCH_WAIT`] up to
/// the batch's bounds; `None` when the job's events have all been sent.
async fn next_batch(receiver: &mut mpsc::UnboundedReceiver<EventKind>) -> Option<Vec<EventKind>> {
    let first = receiver.recv().await?;
    let mut bytes = size(&first);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + BATCH_WAIT;
    while batch.len() < BATCH_EVENTS && bytes < BATCH_BYTES {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(event)) => {
                bytes += size(&event);
                batch.push(event);
            }
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

/// About how many bytes an event takes on the wire.
fn size(event: &EventKind) -> usize {
    match event {
        EventKind::Log { line, .. } => line.text.len() + 64,
        _ => 256,
    }
}

/// The subscriber that sends a job's events back to its server.
struct SendBack {
    events: mpsc::UnboundedSender<EventKind>,
}

impl Subscriber for SendBack {
    fn on_event(&mut self, event: &RunEvent) {
        let _ = self.events.send(event.kind.clone());
    }
}
