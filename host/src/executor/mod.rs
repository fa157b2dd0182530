//! `loktar executor`: runs the package jobs of a server's runs on this
//! machine, taken from NATS JetStream.
//!
//! It takes one job per free slot from each of its queues. For each, it
//! fetches the run's commit into its own mirror (with the credentials the
//! job carries, never logged) and checks it out — once for all its jobs of
//! that run ([`checkouts`]) — reads the package from that commit's
//! `loktar.json`, and runs its stages with the same pipeline, plugins and
//! sandbox as `loktar run` — under the operator policy of this machine's
//! `loktar.toml`. Every event and log line goes back to the server in
//! order, in batches; the outcome last. The server is the only writer of
//! the run store: an executor needs no database credentials.
//!
//! A job that cannot begin (its commit cannot be fetched, its package is
//! not in `loktar.json`) fails with the reason as its first stage's
//! failure, for the server's record. `SIGTERM` (or `SIGINT`): nothing new
//! is taken; running jobs have `grace` to finish, then are cancelled
//! (clean-up runs) and handed back so that another executor runs them at
//! once. Each job's folder is removed when it ends, a run's checkout once
//! no job uses it and newer ones are kept instead, and what a killed
//! executor left when it starts again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod checkouts;

use crate::app::context::Options;
use crate::blocking::wait_for;
use crate::diagnostic::Diagnostic;
use crate::events::{EventBus, EventKind, RunEvent, StageOutcome, Subscriber, WriteHealth};
use crate::mirrors::Mirrors;
use crate::nats::{NatsOptions, NatsQueue};
use crate::pipeline::executors::with_heartbeats;
use crate::pipeline::handed::{Attempt, HandedJob, Work, run_handed};
use crate::pipeline::jobs::{JobQueue, Lease};
use crate::pipeline::scheduler::JobOutcome;
use crate::pipeline::stage::Stage;
use crate::protocol::{Level, Line, Source as LineSource};
use crate::settings::Settings;
use checkouts::Checkouts;

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
/// Bytes of events sent back in one batch, about: well under NATS's 1 MB message limit.
const BATCH_BYTES: usize = 256 * 1024;
/// The longest log line sent back whole; a longer one is cut, saying so.
const LONGEST_LINE: usize = 128 * 1024;
/// How long an event waits for others to share its batch.
const BATCH_WAIT: Duration = Duration::from_millis(50);

/// Everything the jobs share.
struct Bench {
    checkouts: Arc<Checkouts>,
    work_dir: PathBuf,
}

/// Runs the executor with the operator's configuration of `options` until
/// `SIGTERM` or `SIGINT`. Called on a blocking thread of the process's runtime.
pub fn serve(options: &Options, executor: &ExecutorOptions) -> Result<(), Diagnostic> {
    let cwd = std::env::current_dir().map_err(|e| Diagnostic::new(format!("cannot read the current folder: {e}")))?;
    let settings = Settings::load(options.config.as_deref(), &cwd)?;
    // Before any secret is read, and before any thread of ours starts.
    crate::vault::seal(&settings)?;
    let mut queues =
        if executor.queues.is_empty() { settings.executor.queues.clone() } else { executor.queues.clone() };
    queues.dedup();
    if let Some(wrong) = queues.iter().find(|queue| !crate::settings::is_queue_name(queue)) {
        return Err(Diagnostic::new(format!("`{wrong}` is not a queue name"))
            .hint("use letters, digits, `-` and `_`, comma-separated without spaces: `--queues default,docker`"));
    }
    let connections = queues
        .iter()
        .map(|queue| NatsOptions::from_settings(settings.nats.as_ref(), executor.nats.as_deref(), queue))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Diagnostic::new("no NATS server to take jobs from")
                .hint("give `--nats nats://host:4222`, or `url` under `[nats]` in loktar.toml")
        })?;
    if connections.is_empty() {
        return Err(Diagnostic::new("no queue to take jobs from").hint("give `--queues default`"));
    }
    let concurrency = executor
        .concurrency
        .or(settings.executor.concurrency)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let work_dir = executor.work_dir.clone().unwrap_or_else(|| settings.executor.work_dir.clone());
    let grace = executor.grace.unwrap_or(Duration::from_secs(settings.executor.grace));
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| Diagnostic::new(format!("cannot create the work folder `{}`: {e}", work_dir.display())))?;
    let lock = own(&work_dir)?;
    let mirrors = Mirrors::new(work_dir.join("repositories"));
    // What a killed executor left: no job of this one has begun yet, and no other executor works here.
    for left in ["jobs", "checkouts"] {
        let _ = std::fs::remove_dir_all(work_dir.join(left));
    }
    mirrors.prune_work_trees();
    // A run's commit for each job at once, and one more kept for the next.
    let checkouts = Arc::new(Checkouts::new(settings, cwd, mirrors, work_dir.clone(), concurrency + 1));
    let bench = Arc::new(Bench { checkouts, work_dir });
    let ran = wait_for(run(bench, connections, concurrency, grace))?;
    drop(lock);
    ran
}

/// Makes `work_dir` this executor's own for as long as the returned file
/// is open: two executors in one folder would remove each other's work.
fn own(work_dir: &Path) -> Result<std::fs::File, Diagnostic> {
    let path = work_dir.join(".lock");
    let file = std::fs::File::create(&path)
        .map_err(|e| Diagnostic::new(format!("cannot create `{}`: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(Diagnostic::new(format!("another `loktar executor` works in `{}`", work_dir.display()))
                .hint("give each executor its own `--work-dir` (or `work_dir` under `[executor]`)"))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Diagnostic::new(format!("cannot lock `{}`: {e}", path.display()))),
    }
}

async fn run(
    bench: Arc<Bench>,
    connections: Vec<NatsOptions>,
    concurrency: usize,
    grace: Duration,
) -> Result<(), Diagnostic> {
    let mut queues = Vec::with_capacity(connections.len());
    for options in &connections {
        let unreachable = |problem: crate::pipeline::jobs::QueueError| {
            Diagnostic::new(problem.to_string().replace(&options.url, &crate::nats::shown_url(&options.url))).hint(
                "start nats-server with JetStream on (`nats-server -js`), or check `--nats` or `url` under `[nats]`",
            )
        };
        let mut queue = NatsQueue::connect(options).await.map_err(unreachable)?;
        queue.announce().await.map_err(unreachable)?;
        queues.push(Arc::new(queue));
    }
    let names: Vec<&str> = connections.iter().map(|options| options.queue.as_str()).collect();
    let url = connections.first().map_or(String::new(), |options| crate::nats::shown_url(&options.url));
    // On stdout, first: scripts and tests wait for it.
    println!("loktar executor taking jobs of queue(s) {} from {url}, {concurrency} at once", names.join(", "));
    let stopping = CancellationToken::new();
    crate::server::watch_signals(stopping.clone());
    let slots = Arc::new(Semaphore::new(concurrency));
    let jobs = TaskTracker::new();
    // Running jobs are handed back when this is cancelled: the grace is over.
    let hand_back = CancellationToken::new();
    let takers: Vec<_> = queues
        .iter()
        .map(|queue| {
            let (queue, slots, jobs) = (queue.clone(), slots.clone(), jobs.clone());
            let (bench, stopping, hand_back) = (bench.clone(), stopping.clone(), hand_back.clone());
            tokio::spawn(async move {
                while let Some((lease, slot)) = take(&queue, &slots, &stopping).await {
                    let (queue, bench, hand_back) = (queue.clone(), bench.clone(), hand_back.clone());
                    jobs.spawn(async move {
                        work(bench, &queue, lease, &hand_back).await;
                        drop(slot);
                    });
                }
            })
        })
        .collect();
    stopping.cancelled().await;
    let waited = tokio::time::Instant::now();
    for taker in takers {
        let _ = taker.await;
    }
    jobs.close();
    if !jobs.is_empty() {
        tracing::warn!("stopping: waiting up to {} s for {} job(s)", grace.as_secs(), jobs.len());
    }
    if tokio::time::timeout_at(waited + grace, jobs.wait()).await.is_err() {
        tracing::warn!("stopping: the jobs still running are cancelled and handed back");
        hand_back.cancel();
        jobs.wait().await;
    }
    let checkouts = bench.checkouts.clone();
    let _ = tokio::task::spawn_blocking(move || checkouts.clear()).await;
    Ok(())
}

/// The next job of `queue` with a free slot for it; `None` once stopping.
async fn take(
    queue: &NatsQueue,
    slots: &Arc<Semaphore>,
    stopping: &CancellationToken,
) -> Option<(Lease, OwnedSemaphorePermit)> {
    loop {
        let slot = tokio::select! {
            _ = stopping.cancelled() => return None,
            slot = slots.clone().acquire_owned() => slot.ok()?,
        };
        // Bounded: the slot goes back for another queue's jobs when this one has none. Never
        // cut short: a job fetched and claimed is run, or handed back.
        let taken = queue.take_within(TAKE_WAIT).await;
        match taken {
            // Taken as the executor began to stop: another executor runs it at once.
            Some(lease) if stopping.is_cancelled() => {
                queue.release(lease).await;
                return None;
            }
            Some(lease) => return Some((lease, slot)),
            None => drop(slot),
        }
        tokio::task::yield_now().await;
    }
}

/// Runs the job of `lease` and finishes it — or, once `hand_back` says so,
/// cancels it, lets it clean up and hands it back without an outcome.
async fn work(bench: Arc<Bench>, queue: &NatsQueue, lease: Lease, hand_back: &CancellationToken) {
    let job = lease.job.id.clone();
    tracing::info!(%job, "job taken");
    let folder = bench.work_dir.join("jobs").join(uuid::Uuid::now_v7().simple().to_string());
    let outcome = {
        let running = with_heartbeats(queue, &lease, execute(bench, queue, &lease, &folder, hand_back));
        tokio::pin!(running);
        tokio::select! {
            outcome = &mut running => outcome,
            () = hand_back.cancelled() => {
                lease.cancel.cancel();
                running.await
            }
        }
    };
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(folder)).await;
    // Cancelled for the grace's end: another executor runs it. Ended anyway: its outcome stands.
    if hand_back.is_cancelled() && outcome == JobOutcome::Cancelled {
        queue.release(lease).await;
        tracing::warn!(%job, "handed back");
        return;
    }
    tracing::info!(%job, ?outcome, "job done");
    if let Err(problem) = queue.finish(lease, outcome).await {
        tracing::warn!(%job, "the outcome of a job was refused: {problem}");
    }
}

/// Runs the job's package in the checkout of its commit (shared with the
/// executor's other jobs of that commit), its artifacts in `folder`, and
/// sends its events back; a job that cannot begin fails with the reason.
async fn execute(
    bench: Arc<Bench>,
    queue: &NatsQueue,
    lease: &Lease,
    folder: &Path,
    hand_back: &CancellationToken,
) -> JobOutcome {
    let Some(work) = lease.job.work.as_deref().cloned() else {
        tracing::error!(job = %lease.job.id, "a job without what an executor elsewhere needs: its server runs it");
        return JobOutcome::Failed;
    };
    let mut sender = Sender { queue, lease, hand_back, batch: 0, refused: None };
    let started = std::time::Instant::now();
    let prepared = match bench.checkouts.get(&lease.job.id.run, &work).await {
        Ok(prepared) => prepared,
        Err(problem) => return cannot_begin(&mut sender, &work, &problem).await,
    };
    tracing::debug!(job = %lease.job.id, elapsed = ?started.elapsed(), "checked out");
    let ran = async {
        let package = prepared.package(&work.package).ok_or_else(|| {
            let commit = &work.source.commit;
            Diagnostic::new(format!("`{}` at {commit} has no package `{}`", crate::config::MANIFEST, work.package))
        })?;
        let job = HandedJob::new(lease.job.id.run.clone(), work.clone(), package, prepared.root(), folder.join("run"));
        let (events, mut receiver) = mpsc::unbounded_channel();
        let (bus, emitter) =
            EventBus::start(lease.job.id.run.clone(), vec![Box::new(SendBack { events })], WriteHealth::new())
                .map_err(|e| Diagnostic::new(format!("cannot start the job's reporting: {e}")))?;
        let sending = async {
            while let Some(batch) = next_batch(&mut receiver).await {
                sender.send(batch).await;
            }
        };
        let running = async {
            let attempt = Holding { queue, lease, hand_back };
            let outcome = run_handed(&job, prepared.plugins.clone(), emitter, lease.cancel.clone(), &attempt).await;
            // Every event reaches the sender before the outcome goes.
            let _ = tokio::task::spawn_blocking(move || bus.finish()).await;
            outcome
        };
        let (outcome, ()) = tokio::join!(running, sending);
        tracing::debug!(job = %lease.job.id, elapsed = ?started.elapsed(), "ran, every event sent");
        Ok::<_, Diagnostic>(outcome)
    }
    .await;
    // The last user of a checkout removes it, which runs git: never on the runtime's workers.
    checkouts::drop_blocking(prepared).await;
    match ran {
        // Events that never reached the server: the job failed, whatever happened here.
        Ok(_) if sender.refused.is_some() => JobOutcome::Failed,
        Ok(outcome) => outcome,
        Err(problem) => cannot_begin(&mut sender, &work, &problem).await,
    }
}

/// Tells the server why the job could not begin — as the failure of its
/// first stage, with the reason in its log — and fails it.
async fn cannot_begin(sender: &mut Sender<'_>, work: &Work, problem: &Diagnostic) -> JobOutcome {
    tracing::error!(job = %sender.lease.job.id, "{problem}");
    let stage = crate::pipeline::stage::planned(&work.stages).first().copied().unwrap_or(Stage::Test);
    let package = crate::events::PackageName::from(work.package.as_str());
    let line = Line { source: LineSource::Host, level: Level::Error, text: problem.to_string() };
    sender
        .send(vec![
            EventKind::StageStarted { package: package.clone(), stage },
            EventKind::Log { package: package.clone(), stage, line },
            EventKind::StageFinished {
                package,
                stage,
                outcome: StageOutcome::Failed {
                    message: format!("the executor could not begin: {}", problem.message),
                    hint: problem.hint.clone(),
                    internal: true,
                },
                duration_ms: 0,
            },
        ])
        .await;
    JobOutcome::Failed
}

/// Sends a job's events back to its server, batch after batch.
struct Sender<'a> {
    queue: &'a NatsQueue,
    lease: &'a Lease,
    /// Once cancelled, the job is another executor's to run: what this one did since is not told.
    hand_back: &'a CancellationToken,
    /// Batches sent so far.
    batch: u64,
    /// Why the server took no more, once it did not.
    refused: Option<String>,
}

impl Sender<'_> {
    /// Sends `events`; once refused (another attempt holds the job, or the
    /// server is gone), the job is stopped and nothing more is sent.
    async fn send(&mut self, events: Vec<EventKind>) {
        if self.refused.is_some() || self.hand_back.is_cancelled() {
            return;
        }
        self.batch += 1;
        if let Err(problem) = self.queue.report(self.lease, self.batch, events).await {
            tracing::warn!(job = %self.lease.job.id, "stopping, its events were refused: {problem}");
            self.refused = Some(problem.to_string());
            self.lease.cancel.cancel();
        }
    }
}

/// The next events to send, as many as come within [`BATCH_WAIT`] up to
/// the batch's bounds; `None` when the job's events have all been sent.
async fn next_batch(receiver: &mut mpsc::UnboundedReceiver<EventKind>) -> Option<Vec<EventKind>> {
    let first = bounded(receiver.recv().await?);
    let mut bytes = size(&first);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + BATCH_WAIT;
    while batch.len() < BATCH_EVENTS && bytes < BATCH_BYTES {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(event)) => {
                let event = bounded(event);
                bytes += size(&event);
                batch.push(event);
            }
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

/// `event`, its log line cut to [`LONGEST_LINE`] bytes (saying so): every event fits a message.
fn bounded(mut event: EventKind) -> EventKind {
    if let EventKind::Log { line, .. } = &mut event
        && line.text.len() > LONGEST_LINE
    {
        let mut end = LONGEST_LINE;
        while !line.text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = line.text.len() - end;
        line.text.truncate(end);
        line.text.push_str(&format!(" … [{cut} more bytes of this line not sent by the executor]"));
    }
    event
}

/// How many bytes an event takes on the wire.
fn size(event: &EventKind) -> usize {
    serde_json::to_vec(event).map_or(BATCH_BYTES, |json| json.len())
}

/// A lease of this executor, as its server sees it.
struct Holding<'a> {
    queue: &'a NatsQueue,
    lease: &'a Lease,
    /// Cancelled when the job goes back to another executor: then no longer this one's.
    hand_back: &'a CancellationToken,
}

#[async_trait::async_trait]
impl Attempt for Holding<'_> {
    async fn is_current(&self) -> bool {
        !self.hand_back.is_cancelled() && self.queue.is_current(self.lease).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_on_a_character_and_says_so() {
        let text = "é".repeat(LONGEST_LINE);
        let line = Line { source: LineSource::Program, level: Level::Info, text };
        let EventKind::Log { line, .. } = bounded(EventKind::Log { package: "api".into(), stage: Stage::Test, line })
        else {
            panic!("still a log line")
        };
        assert!(line.text.len() < LONGEST_LINE + 100, "{}", line.text.len());
        assert!(
            line.text.ends_with("more bytes of this line not sent by the executor]"),
            "{}",
            &line.text[line.text.len() - 80..]
        );
    }
}
