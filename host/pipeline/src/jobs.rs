//! Package jobs and the queue that hands them to executors.
//!
//! The worker manager — each run's [`crate::run::execute`] — enqueues a
//! package's job as soon as every package it depends on has passed, and
//! awaits how it ended. Executors ([`crate::executors`]) take jobs one at a
//! time, tell the queue they are still at work with heartbeats, and finish
//! each with its outcome. Cancelling a job drops it while it waits and
//! tells its executor to stop once taken (clean-up still runs).
//!
//! [`JobQueue`] is the interface; [`LocalQueue`] is the in-process
//! implementation that `loktar run` and the embedded server use. Every
//! implementation keeps these promises: a job is worked by one executor at
//! a time, its outcome reaches the run once, a job cancelled while waiting
//! never starts, and a lease that is no longer current is refused. In
//! process, executors live and die with the queue, and a job that panics
//! is caught and fails: a lease ends when its job is finished or
//! cancelled. A queue across machines also loses executors — it takes
//! their jobs back when heartbeats stop and hands them out again as the
//! next `attempt`, refusing the older lease.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::events::{PackageName, RunId};
use crate::scheduler::JobOutcome;

/// Which job: a package of a run, in one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId {
    /// The run.
    pub run: RunId,
    /// The package.
    pub package: PackageName,
    /// Counts from 1; a queue across machines that hands a job out again gives the next.
    pub attempt: u32,
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}#{}", self.run, self.package, self.attempt)
    }
}

/// A package job: what an executor needs to find its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Which job.
    pub id: JobId,
    /// The package's position in its run's plan.
    pub position: usize,
    /// The executors' queue it goes to.
    pub queue: String,
    /// For an executor elsewhere, what it needs to run it (handed out when
    /// it claims it); `None` for executors that find the run in their own process.
    pub work: Option<std::sync::Arc<crate::handed::Work>>,
}

/// A job an executor took: it heartbeats while it works, then finishes it.
#[derive(Debug)]
pub struct Lease {
    /// The job.
    pub job: Job,
    /// Cancelled when the job is cancelled: the executor stops it.
    pub cancel: CancellationToken,
    /// Which taking of the job this is.
    number: u64,
}

impl Lease {
    /// A queue's lease of `job`, its `number`th taking of any job: what
    /// tells this lease from an older one of the same job.
    pub fn new(job: Job, cancel: CancellationToken, number: u64) -> Lease {
        Lease { job, cancel, number }
    }

    /// Which taking of a job this is, for the queue that made it.
    pub fn number(&self) -> u64 {
        self.number
    }
}

/// How many jobs wait for an executor, and how many executors work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Jobs enqueued and not taken.
    pub waiting: usize,
    /// Jobs taken and not finished.
    pub running: usize,
}

/// A job waiting for an executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Which job.
    pub job: JobId,
    /// The queue it waits on.
    pub queue: String,
    /// Why, when it is more than every executor being busy: no executor takes jobs of its queue.
    pub reason: Option<String>,
}

/// Why the queue refused a call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    /// The queue cannot be reached (a queue across machines whose connection is lost).
    #[error("the job queue cannot be reached: {0}")]
    Unreachable(String),
    /// The lease is not the job's current one: finished, cancelled or handed out again.
    #[error("job {0} is no longer held by this executor")]
    NotHeld(JobId),
}

/// Hands package jobs to executors. See the module's documentation for its promises.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds `job`; the receiver hears how it ended, once (dropped unheard:
    /// the queue lost the job, and the run counts it failed).
    async fn enqueue(&self, job: Job) -> Result<oneshot::Receiver<JobOutcome>, QueueError>;

    /// The next job, waiting until there is one; `None` when the queue can hand out no more.
    async fn take(&self) -> Option<Lease>;

    /// Says the executor still works on `lease`'s job; an error when it should stop.
    async fn heartbeat(&self, lease: &Lease) -> Result<(), QueueError>;

    /// How often a working executor heartbeats: often enough that the queue
    /// never takes a living executor for lost.
    fn heartbeat_every(&self) -> std::time::Duration {
        crate::executors::HEARTBEAT
    }

    /// Ends `lease`'s job with `outcome`, which goes to whoever enqueued it.
    async fn finish(&self, lease: Lease, outcome: JobOutcome) -> Result<(), QueueError>;

    /// Cancels `job`: a waiting job ends `Cancelled` without starting; a
    /// taken one's executor is told to stop, and finishes it.
    async fn cancel(&self, job: &JobId);

    /// What waits and what runs.
    async fn depth(&self) -> QueueDepth;

    /// The jobs of `run` waiting for an executor, and why.
    async fn waiting(&self, run: &RunId) -> Vec<Waiting>;
}

/// The in-process queue: first in, first out, for executors in this process.
#[derive(Debug, Default)]
pub struct LocalQueue {
    state: Mutex<State>,
    /// Woken when a job is added.
    ready: Notify,
    leases: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<(Job, oneshot::Sender<JobOutcome>)>,
    taken: HashMap<JobId, Taken>,
}

#[derive(Debug)]
struct Taken {
    lease: u64,
    cancel: CancellationToken,
    outcome: oneshot::Sender<JobOutcome>,
}

impl LocalQueue {
    /// An empty, open queue.
    pub fn new() -> LocalQueue {
        LocalQueue::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl JobQueue for LocalQueue {
    async fn enqueue(&self, job: Job) -> Result<oneshot::Receiver<JobOutcome>, QueueError> {
        let (sender, receiver) = oneshot::channel();
        self.state().waiting.push_back((job, sender));
        self.ready.notify_one();
        Ok(receiver)
    }

    async fn take(&self) -> Option<Lease> {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            // Registered before looking, so a job added in between is not missed.
            ready.as_mut().enable();
            {
                let mut state = self.state();
                if let Some((job, outcome)) = state.waiting.pop_front() {
                    let number = self.leases.fetch_add(1, Ordering::Relaxed);
                    let cancel = CancellationToken::new();
                    state.taken.insert(job.id.clone(), Taken { lease: number, cancel: cancel.clone(), outcome });
                    // Another job may be waiting for another executor.
                    if !state.waiting.is_empty() {
                        self.ready.notify_one();
                    }
                    return Some(Lease { job, cancel, number });
                }
            }
            ready.await;
        }
    }

    async fn heartbeat(&self, lease: &Lease) -> Result<(), QueueError> {
        match self.state().taken.get(&lease.job.id) {
            Some(taken) if taken.lease == lease.number && !taken.cancel.is_cancelled() => Ok(()),
            _ => Err(QueueError::NotHeld(lease.job.id.clone())),
        }
    }

    async fn finish(&self, lease: Lease, outcome: JobOutcome) -> Result<(), QueueError> {
        let mut state = self.state();
        match state.taken.get(&lease.job.id) {
            Some(taken) if taken.lease == lease.number => {
                if let Some(taken) = state.taken.remove(&lease.job.id) {
                    // Whoever enqueued it may have gone (its run ended): nothing waits.
                    let _ = taken.outcome.send(outcome);
                }
                Ok(())
            }
            _ => Err(QueueError::NotHeld(lease.job.id)),
        }
    }

    async fn cancel(&self, job: &JobId) {
        let mut state = self.state();
        if let Some(at) = state.waiting.iter().position(|(waiting, _)| waiting.id == *job) {
            if let Some((_, outcome)) = state.waiting.remove(at) {
                let _ = outcome.send(JobOutcome::Cancelled);
            }
        } else if let Some(taken) = state.taken.get(job) {
            taken.cancel.cancel();
        }
    }

    async fn depth(&self) -> QueueDepth {
        let state = self.state();
        QueueDepth { waiting: state.waiting.len(), running: state.taken.len() }
    }

    async fn waiting(&self, run: &RunId) -> Vec<Waiting> {
        let state = self.state();
        let waiting = |(job, _): &(Job, _)| Waiting { job: job.id.clone(), queue: job.queue.clone(), reason: None };
        state.waiting.iter().filter(|(job, _)| job.id.run == *run).map(waiting).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(package: &str) -> Job {
        Job {
            id: JobId { run: RunId::new("r1"), package: package.into(), attempt: 1 },
            position: 0,
            queue: "default".to_string(),
            work: None,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("tokio")
    }

    #[test]
    fn jobs_are_taken_in_order_and_their_outcome_reaches_the_run() {
        runtime().block_on(async {
            let queue = LocalQueue::new();
            let first = queue.enqueue(job("a")).await.expect("open");
            let second = queue.enqueue(job("b")).await.expect("open");
            assert_eq!(queue.depth().await, QueueDepth { waiting: 2, running: 0 });
            let lease = queue.take().await.expect("a job");
            assert_eq!(&*lease.job.id.package, "a");
            assert_eq!(queue.depth().await, QueueDepth { waiting: 1, running: 1 });
            queue.heartbeat(&lease).await.expect("held");
            queue.finish(lease, JobOutcome::Failed).await.expect("held");
            assert_eq!(first.await, Ok(JobOutcome::Failed));
            let lease = queue.take().await.expect("a job");
            queue.finish(lease, JobOutcome::Succeeded).await.expect("held");
            assert_eq!(second.await, Ok(JobOutcome::Succeeded));
            assert_eq!(queue.depth().await, QueueDepth::default());
        });
    }

    #[test]
    fn a_job_cancelled_while_waiting_never_starts() {
        runtime().block_on(async {
            let queue = LocalQueue::new();
            let cancelled = queue.enqueue(job("a")).await.expect("open");
            let _kept = queue.enqueue(job("b")).await.expect("open");
            queue.cancel(&job("a").id).await;
            assert_eq!(cancelled.await, Ok(JobOutcome::Cancelled));
            let lease = queue.take().await.expect("a job");
            assert_eq!(&*lease.job.id.package, "b", "the cancelled job is not handed out");
        });
    }

    #[test]
    fn a_taken_job_cancelled_is_told_to_stop_and_its_lease_ends_with_it() {
        runtime().block_on(async {
            let queue = LocalQueue::new();
            let outcome = queue.enqueue(job("a")).await.expect("open");
            let lease = queue.take().await.expect("a job");
            queue.cancel(&lease.job.id).await;
            assert!(lease.cancel.is_cancelled());
            assert_eq!(queue.heartbeat(&lease).await, Err(QueueError::NotHeld(job("a").id)));
            // The executor still finishes it, once: the run hears it.
            queue.finish(lease, JobOutcome::Cancelled).await.expect("still its job");
            assert_eq!(outcome.await, Ok(JobOutcome::Cancelled));
        });
    }

    #[test]
    fn a_lease_finished_once_is_refused_the_second_time() {
        runtime().block_on(async {
            let queue = LocalQueue::new();
            let _outcome = queue.enqueue(job("a")).await.expect("open");
            let lease = queue.take().await.expect("a job");
            let stale = Lease { job: lease.job.clone(), cancel: lease.cancel.clone(), number: lease.number };
            queue.finish(lease, JobOutcome::Succeeded).await.expect("held");
            assert_eq!(queue.finish(stale, JobOutcome::Failed).await, Err(QueueError::NotHeld(job("a").id)));
        });
    }

    #[test]
    fn waiting_executors_wake_for_new_jobs_and_each_job_is_taken_once() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio");
        runtime.block_on(async {
            let queue = std::sync::Arc::new(LocalQueue::new());
            let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let executors: Vec<_> = (0..2)
                .map(|_| {
                    let (queue, taken) = (queue.clone(), taken.clone());
                    tokio::spawn(async move {
                        while let Some(lease) = queue.take().await {
                            taken.lock().expect("taken").push(lease.job.id.package.to_string());
                            queue.finish(lease, JobOutcome::Succeeded).await.expect("held");
                        }
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for package in ["a", "b", "c", "d", "e"] {
                outcomes.push(queue.enqueue(job(package)).await.expect("open"));
                tokio::task::yield_now().await;
            }
            for outcome in outcomes {
                assert_eq!(outcome.await, Ok(JobOutcome::Succeeded));
            }
            let mut taken = taken.lock().expect("taken").clone();
            taken.sort();
            assert_eq!(taken, ["a", "b", "c", "d", "e"]);
            for executor in executors {
                executor.abort();
            }
        });
    }
}
