//! The scheduler: runs one job per node of a dependency DAG, each as soon as
//! every node it depends on has succeeded — not when a whole level has — with
//! at most `concurrency` jobs at once.
//!
//! It knows nothing of packages, plugins or reporting: a job is a future
//! returning [`JobOutcome`]. When a job fails, everything that depends on it
//! is skipped and the rest goes on; with `fail_fast` (or its cancellation token cancelled),
//! nothing new starts and running jobs are told to stop: they finish
//! cleanly and report themselves cancelled.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::{Notify, Semaphore};

use tokio_util::sync::CancellationToken;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// It did its work.
    Succeeded,
    /// It failed.
    Failed,
    /// It stopped early because the run was cancelled.
    Cancelled,
}

/// What became of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its job ran and ended so.
    Ran(JobOutcome),
    /// Its job never started because `dependency` (a node it depends on,
    /// directly or not) failed or was skipped.
    Skipped {
        /// The failed node that caused the skip.
        dependency: usize,
    },
    /// Its job never started because the run was cancelled first.
    NotStarted,
}

/// Options of one run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Jobs running at once (at least 1).
    pub concurrency: usize,
    /// Cancel everything at the first failure.
    pub fail_fast: bool,
}

/// Runs `job(node, cancel)` for every node of the DAG whose node `i` depends
/// on `dependencies[i]`; returns each node's status. The graph must be acyclic.
///
/// There is no central loop to wake: the job that finishes last among a
/// node's dependencies starts that node itself, and a semaphore keeps at
/// most `concurrency` jobs working. A scheduled job costs about what a bare
/// `tokio::spawn` does.
pub async fn run<F, Fut>(
    dependencies: &[Vec<usize>],
    options: Options,
    cancel: CancellationToken,
    job: F,
) -> Vec<Status>
where
    F: Fn(usize, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobOutcome> + Send + 'static,
{
    let count = dependencies.len();
    let mut dependents = vec![Vec::new(); count];
    for (node, deps) in dependencies.iter().enumerate() {
        for &dep in deps {
            dependents[dep].push(node);
        }
    }
    let shared = Arc::new(Shared {
        waiting: dependencies.iter().map(|deps| AtomicUsize::new(deps.len())).collect(),
        dependents,
        status: Mutex::new(Decided { status: vec![None; count], decided: 0 }),
        permits: Semaphore::new(options.concurrency.max(1)),
        done: Notify::new(),
        fail_fast: options.fail_fast,
        cancel,
        job,
    });
    if count == 0 {
        return Vec::new();
    }
    let roots: Vec<usize> = (0..count).filter(|&n| dependencies[n].is_empty()).collect();
    let finished = shared.done.notified();
    tokio::pin!(finished);
    finished.as_mut().enable();
    for node in roots {
        Shared::start(&shared, node);
    }
    finished.await;
    let decided = shared.status.lock().unwrap_or_else(PoisonError::into_inner);
    decided.status.iter().map(|s| s.unwrap_or(Status::NotStarted)).collect()
}

struct Decided {
    status: Vec<Option<Status>>,
    decided: usize,
}

struct Shared<F> {
    /// For each node, how many dependencies have not succeeded yet.
    waiting: Vec<AtomicUsize>,
    dependents: Vec<Vec<usize>>,
    status: Mutex<Decided>,
    permits: Semaphore,
    /// Notified once every node has a status.
    done: Notify,
    fail_fast: bool,
    cancel: CancellationToken,
    job: F,
}

impl<F, Fut> Shared<F>
where
    F: Fn(usize, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobOutcome> + Send + 'static,
{
    /// Spawns `node`'s job; it waits for a permit, then runs unless the run was cancelled.
    fn start(shared: &Arc<Self>, node: usize) {
        let shared = shared.clone();
        tokio::spawn(async move {
            let outcome = match shared.permits.acquire().await {
                Ok(_permit) if !shared.cancel.is_cancelled() => {
                    // A job that panics, making its future or running it, has failed.
                    let made = std::panic::catch_unwind(AssertUnwindSafe(|| (shared.job)(node, shared.cancel.clone())));
                    match made {
                        Ok(work) => Some(CatchUnwind(Box::pin(work)).await.unwrap_or(JobOutcome::Failed)),
                        Err(_) => Some(JobOutcome::Failed),
                    }
                }
                _ => None,
            };
            shared.finish(node, outcome);
        });
    }

    /// Records how `node` ended (`None`: it never started) and starts what it unblocks.
    fn finish(self: &Arc<Self>, node: usize, outcome: Option<JobOutcome>) {
        let mut unblocked = Vec::new();
        {
            let mut decided = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            match outcome {
                Some(JobOutcome::Succeeded) => {
                    decide(&mut decided, node, Status::Ran(JobOutcome::Succeeded));
                    for &dependent in &self.dependents[node] {
                        if self.waiting[dependent].fetch_sub(1, Ordering::AcqRel) == 1
                            && decided.status[dependent].is_none()
                        {
                            unblocked.push(dependent);
                        }
                    }
                }
                Some(JobOutcome::Failed) => {
                    decide(&mut decided, node, Status::Ran(JobOutcome::Failed));
                    self.decide_downstream(&mut decided, node, Status::Skipped { dependency: node });
                    if self.fail_fast {
                        self.cancel.cancel();
                    }
                }
                Some(JobOutcome::Cancelled) => {
                    decide(&mut decided, node, Status::Ran(JobOutcome::Cancelled));
                    self.decide_downstream(&mut decided, node, Status::NotStarted);
                }
                None => {
                    decide(&mut decided, node, Status::NotStarted);
                    self.decide_downstream(&mut decided, node, Status::NotStarted);
                }
            }
            if decided.decided == decided.status.len() {
                self.done.notify_one();
            }
        }
        for node in unblocked {
            Shared::start(self, node);
        }
    }

    /// Gives every undecided node downstream of `node` the status `status`.
    fn decide_downstream(&self, decided: &mut Decided, node: usize, status: Status) {
        let mut stack = self.dependents[node].clone();
        while let Some(next) = stack.pop() {
            if decided.status[next].is_none() {
                decide(decided, next, status);
                stack.extend_from_slice(&self.dependents[next]);
            }
        }
    }
}

fn decide(decided: &mut Decided, node: usize, status: Status) {
    if decided.status[node].is_none() {
        decided.status[node] = Some(status);
        decided.decided += 1;
    }
}

/// Turns a panic while polling the inner future into `Err`.
pub(crate) struct CatchUnwind<T>(pub(crate) Pin<Box<T>>);

impl<T: Future> Future for CatchUnwind<T> {
    type Output = Result<T::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the jobs did, in order: ("start" | "end", node).
    type Journal = Arc<Mutex<Vec<(&'static str, usize)>>>;

    fn schedule(
        dependencies: &[Vec<usize>],
        options: Options,
        failing: &[usize],
    ) -> (Vec<Status>, Vec<(&'static str, usize)>) {
        let journal: Journal = Arc::default();
        let failing: Vec<usize> = failing.to_vec();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio");
        let cancel = CancellationToken::new();
        let recorder = journal.clone();
        let status = runtime.block_on(run(dependencies, options, cancel, move |node, cancel| {
            let journal = recorder.clone();
            let fails = failing.contains(&node);
            async move {
                journal.lock().expect("journal").push(("start", node));
                // Let other jobs start in between, without measuring time.
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                let outcome = if fails {
                    JobOutcome::Failed
                } else if node == 99 {
                    cancel.cancelled().await;
                    JobOutcome::Cancelled
                } else if cancel.is_cancelled() {
                    JobOutcome::Cancelled
                } else {
                    JobOutcome::Succeeded
                };
                journal.lock().expect("journal").push(("end", node));
                outcome
            }
        }));
        let journal = journal.lock().expect("journal").clone();
        (status, journal)
    }

    fn position(journal: &[(&str, usize)], event: &str, node: usize) -> usize {
        journal.iter().position(|e| *e == (event, node)).expect("event happened")
    }

    /// 0 ← 1 ← 3, 0 ← 2, 4 alone.
    fn diamond() -> Vec<Vec<usize>> {
        vec![vec![], vec![0], vec![0], vec![1, 2], vec![]]
    }

    #[test]
    fn nothing_starts_before_its_dependencies_end() {
        let (status, journal) = schedule(&diamond(), Options { concurrency: 4, fail_fast: false }, &[]);
        assert!(status.iter().all(|s| *s == Status::Ran(JobOutcome::Succeeded)), "{status:?}");
        for (node, deps) in diamond().iter().enumerate() {
            for &dep in deps {
                assert!(position(&journal, "end", dep) < position(&journal, "start", node), "{journal:?}");
            }
        }
    }

    #[test]
    fn at_most_concurrency_jobs_run_at_once() {
        let dependencies = vec![Vec::new(); 12];
        for concurrency in [1, 3] {
            let (_, journal) = schedule(&dependencies, Options { concurrency, fail_fast: false }, &[]);
            let mut running: usize = 0;
            let mut most = 0;
            for (event, _) in &journal {
                running = if *event == "start" { running + 1 } else { running - 1 };
                most = most.max(running);
            }
            assert_eq!(most, concurrency, "{journal:?}");
        }
    }

    #[test]
    fn a_failure_skips_exactly_its_dependents() {
        let (status, _) = schedule(&diamond(), Options { concurrency: 2, fail_fast: false }, &[1]);
        assert_eq!(
            status,
            [
                Status::Ran(JobOutcome::Succeeded),
                Status::Ran(JobOutcome::Failed),
                Status::Ran(JobOutcome::Succeeded),
                Status::Skipped { dependency: 1 },
                Status::Ran(JobOutcome::Succeeded),
            ]
        );
    }

    #[test]
    fn fail_fast_starts_nothing_new_and_cancels_what_runs() {
        // 99 waits for cancellation; 0 fails; the others would start later.
        let mut dependencies = vec![Vec::new(); 100];
        for (node, deps) in dependencies.iter_mut().enumerate().take(99).skip(1) {
            deps.push(node - 1);
        }
        let (status, _) = schedule(&dependencies, Options { concurrency: 2, fail_fast: true }, &[0]);
        assert_eq!(status[0], Status::Ran(JobOutcome::Failed));
        assert_eq!(status[99], Status::Ran(JobOutcome::Cancelled));
        assert!(status[1..99].iter().all(|s| *s == Status::Skipped { dependency: 0 }), "{status:?}");
    }

    #[test]
    fn a_job_that_panics_has_failed() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        let cancel = CancellationToken::new();
        let options = Options { concurrency: 2, fail_fast: false };
        let status = runtime.block_on(run(&diamond(), options, cancel, |node, _| async move {
            assert_ne!(node, 2, "job 2 panics");
            JobOutcome::Succeeded
        }));
        assert_eq!(status[2], Status::Ran(JobOutcome::Failed));
        assert_eq!(status[3], Status::Skipped { dependency: 2 });
        assert_eq!(status[4], Status::Ran(JobOutcome::Succeeded));
    }

    #[test]
    fn a_cancelled_run_leaves_waiting_jobs_not_started() {
        let dependencies = vec![Vec::new(); 6];
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("tokio");
        let cancel = CancellationToken::new();
        let status = runtime.block_on(run(
            &dependencies,
            Options { concurrency: 1, fail_fast: false },
            cancel.clone(),
            move |node, _| {
                let cancel = cancel.clone();
                async move {
                    if node == 1 {
                        cancel.cancel();
                        return JobOutcome::Cancelled;
                    }
                    JobOutcome::Succeeded
                }
            },
        ));
        assert_eq!(status[0], Status::Ran(JobOutcome::Succeeded));
        assert_eq!(status[1], Status::Ran(JobOutcome::Cancelled));
        assert!(status[2..].iter().all(|s| *s == Status::NotStarted), "{status:?}");
    }
}
