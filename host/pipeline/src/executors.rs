//! In-process executors: a fixed number of workers that take package jobs
//! from a [`JobQueue`] and run each through its stages, for whichever run
//! of this process it belongs to.
//!
//! Their number is the number of packages at work at once across every
//! run they serve (`-j` for `loktar run`, `[server] executors` for the
//! server). A run registers itself in [`Runs`] while it executes, so a
//! worker finds the run's plan, plugins and event stream from the job's
//! run id; a job of a run that is not here fails. (A queue across machines
//! finds there what executors elsewhere need: see [`crate::handed`].) While a job runs its worker heartbeats;
//! a refused heartbeat (the lease is no longer this worker's) stops the
//! job. A job that panics fails, and its worker goes on. Dropping
//! [`Executors`] stops the workers once their current job is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::events::RunId;
use crate::jobs::{JobQueue, Lease};
use crate::run::{Shared, run_package};
use crate::scheduler::{CatchUnwind, JobOutcome};

/// How often a working executor says so, unless its queue asks for more
/// often ([`JobQueue::heartbeat_every`]). A queue across machines gives a
/// silent executor's job to another after a few of these.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The workers, and the runs they serve.
pub struct Executors {
    bench: Arc<Bench>,
    /// Cancelled when dropped: workers take nothing new.
    stop: CancellationToken,
    count: usize,
}

/// What the workers share.
struct Bench {
    queue: Arc<dyn JobQueue>,
    runs: Arc<Runs>,
}

/// The runs executing in this process, by id.
#[derive(Default)]
pub struct Runs {
    runs: Mutex<HashMap<RunId, Arc<Shared>>>,
    /// The address of this server's storage proxy, given to executors elsewhere.
    store_proxy_url: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.runs.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Runs").field("count", &count).finish()
    }
}

impl Runs {
    /// None yet.
    pub fn new() -> Arc<Runs> {
        Arc::default()
    }

    /// Makes the jobs of `run` findable until the returned guard is dropped.
    pub(crate) fn register(self: &Arc<Runs>, run: Arc<Shared>) -> Registered {
        let id = run.info.id().clone();
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), run);
        Registered { runs: self.clone(), id }
    }

    /// The run `id`, while it executes here.
    pub(crate) fn get(&self, id: &RunId) -> Option<Arc<Shared>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// The first answer `find` gives for a run executing here.
    pub(crate) fn each_run<T>(&self, mut find: impl FnMut(&Shared) -> Option<T>) -> Option<T> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).values().find_map(|run| find(run))
    }

    /// Says where this server's storage proxy is (`http://host:port`), for
    /// executors elsewhere to reach it; set once, when the server listens.
    pub fn set_store_proxy_url(&self, url: String) {
        let _ = self.store_proxy_url.set(url.trim_end_matches('/').to_string());
    }

    /// Where this server's storage proxy is, once known.
    pub(crate) fn store_proxy_url(&self) -> Option<String> {
        self.store_proxy_url.get().cloned()
    }
}

impl Executors {
    /// Starts `count` workers on `queue` for `runs`, on the current tokio
    /// runtime. With none, jobs wait for executors elsewhere.
    pub fn start(queue: Arc<dyn JobQueue>, runs: Arc<Runs>, count: usize) -> Executors {
        let bench = Arc::new(Bench { queue, runs });
        let stop = CancellationToken::new();
        for _ in 0..count {
            tokio::spawn(work(bench.clone(), stop.clone()));
        }
        Executors { bench, stop, count }
    }

    /// How many workers there are in this process.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The queue the workers take from.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.bench.queue
    }

    /// The runs they serve.
    pub fn runs(&self) -> &Arc<Runs> {
        &self.bench.runs
    }
}

impl Drop for Executors {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors").field("count", &self.count).finish_non_exhaustive()
    }
}

/// A run's registration; dropping it removes the run.
pub(crate) struct Registered {
    runs: Arc<Runs>,
    id: RunId,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.runs.runs.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

/// One worker: takes a job, runs it, finishes it, until stopped.
async fn work(bench: Arc<Bench>, stop: CancellationToken) {
    loop {
        let lease = tokio::select! {
            _ = stop.cancelled() => return,
            lease = bench.queue.take() => match lease {
                Some(lease) => lease,
                None => return,
            },
        };
        let outcome = run_job(&bench, &lease).await;
        let job = lease.job.id.clone();
        if let Err(problem) = bench.queue.finish(lease, outcome).await {
            tracing::warn!(%job, "the outcome of a job was refused: {problem}");
        }
    }
}

/// Runs the job of `lease` to its end, heartbeating meanwhile.
async fn run_job(bench: &Bench, lease: &Lease) -> JobOutcome {
    let Some(run) = bench.runs.get(&lease.job.id.run) else {
        tracing::error!(job = %lease.job.id, "a job of a run that is not executing here");
        return JobOutcome::Failed;
    };
    let job = run_package(&run, lease.job.position, lease.cancel.clone(), None);
    with_heartbeats(&*bench.queue, lease, job).await
}

/// Runs `job`, the work of `lease`, to its end while heartbeating to
/// `queue` beside it (one waiting for the queue's answer never holds the
/// job up); a refused heartbeat cancels the lease. A job that panics has
/// failed, and its executor goes on.
pub async fn with_heartbeats(
    queue: &dyn JobQueue,
    lease: &Lease,
    job: impl std::future::Future<Output = JobOutcome> + Send,
) -> JobOutcome {
    let mut job = CatchUnwind(Box::pin(job));
    let heartbeats = async {
        let mut heartbeat = tokio::time::interval(queue.heartbeat_every());
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            heartbeat.tick().await;
            if let Err(problem) = queue.heartbeat(lease).await {
                tracing::info!(job = %lease.job.id, "stopping: {problem}");
                lease.cancel.cancel();
            }
        }
    };
    tokio::select! {
        outcome = &mut job => outcome.unwrap_or_else(|()| {
            tracing::error!(job = %lease.job.id, "the job panicked: it fails");
            JobOutcome::Failed
        }),
        // Heartbeats never end on their own.
        () = heartbeats => JobOutcome::Failed,
    }
}
