//! The NATS job queue against a real `nats-server` with JetStream (from
//! PyPI, installed by `scripts/setup`), one per test on a port of 127.0.0.1 it chooses,
//! stopped when the test ends. A "server" queue enqueues; "executor" queues
//! — other connections, as on other machines — take, heartbeat and finish.
//! Executors that go silent are simulated by holding a lease without
//! heartbeats; every wait is bounded.

use std::time::Duration;

use loktar_nats::{NatsOptions, NatsQueue, STREAM};
use loktar_pipeline::jobs::{Job, JobId, JobQueue, QueueDepth, QueueError};
use loktar_pipeline::scheduler::JobOutcome;
use loktar_protocol::RunId;

#[path = "support/nats_server.rs"]
mod nats_server;
use nats_server::NatsServer;

/// What the queue's tests ask of their server.
impl NatsServer {
    fn options(&self, ack_wait_ms: u64, max_deliver: u32) -> NatsOptions {
        NatsOptions {
            url: self.url.clone(),
            queue: "default".to_string(),
            ack_wait: Duration::from_millis(ack_wait_ms),
            max_deliver,
            liveness: Duration::from_secs(2),
        }
    }

    /// Whether the job stream comes to hold `count` messages within two seconds.
    async fn comes_to_hold(&self, count: u64) -> bool {
        for _ in 0..20 {
            if self.stored().await == count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// How many messages the job stream holds.
    async fn stored(&self) -> u64 {
        let client = async_nats::connect(self.url.as_str()).await.expect("client");
        let mut stream = async_nats::jetstream::new(client).get_stream(STREAM).await.expect("the stream");
        stream.info().await.expect("stream info").state.messages
    }
}

fn job(package: &str) -> Job {
    Job {
        id: JobId { run: RunId::new("run-1"), package: package.into(), attempt: 1 },
        position: 0,
        queue: "default".to_string(),
        work: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio")
}

/// `future`, or a failure after `seconds`.
async fn within<T>(seconds: u64, what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), future).await.unwrap_or_else(|_| panic!("{what}: timed out"))
}

/// Whether `queue` hands out a job within `millis`.
async fn hands_out(queue: &NatsQueue, millis: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(millis), queue.take()).await.is_ok()
}

#[test]
fn jobs_reach_executors_on_other_connections_once_each_and_their_outcomes_come_back() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("server");
        let executors = [
            NatsQueue::connect(&nats.options(30_000, 3)).await.expect("executor"),
            NatsQueue::connect(&nats.options(30_000, 3)).await.expect("executor"),
        ];
        let mut outcomes = Vec::new();
        for package in ["a", "b", "c", "d"] {
            outcomes.push(server.enqueue(job(package)).await.expect("enqueued"));
        }
        assert_eq!(server.depth().await, QueueDepth { waiting: 4, running: 0 });
        let mut taken = Vec::new();
        for turn in 0..4 {
            let executor = &executors[turn % 2];
            let lease = within(10, "a job", executor.take()).await.expect("a job");
            assert_eq!(lease.job.id.attempt, 1, "first delivery");
            executor.heartbeat(&lease).await.expect("held");
            taken.push(lease.job.id.package.to_string());
            let outcome = if &*lease.job.id.package == "b" { JobOutcome::Failed } else { JobOutcome::Succeeded };
            executor.finish(lease, outcome).await.expect("taken");
        }
        taken.sort();
        assert_eq!(taken, ["a", "b", "c", "d"], "each job once");
        let mut ended = Vec::new();
        for outcome in outcomes {
            ended.push(within(5, "an outcome", outcome).await.expect("delivered"));
        }
        use JobOutcome::{Failed, Succeeded};
        assert_eq!(ended, [Succeeded, Failed, Succeeded, Succeeded]);
        assert_eq!(server.depth().await, QueueDepth::default());
        assert_eq!(nats.stored().await, 0, "acknowledged jobs are gone from the stream");
    });
}

#[test]
fn a_silent_executor_loses_its_job_to_the_next_attempt_and_its_late_result_is_ignored() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(1000, 5)).await.expect("server");
        let slow = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        let quick = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        let third = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        let outcome = server.enqueue(job("api")).await.expect("enqueued");
        let lost = within(10, "first delivery", slow.take()).await.expect("a job");
        assert_eq!(lost.job.id.attempt, 1);
        // No heartbeat for longer than ack_wait: JetStream hands the job out again.
        let lease = within(10, "second delivery", quick.take()).await.expect("the job again");
        assert_eq!(lease.job.id.attempt, 2);
        assert_eq!(server.depth().await, QueueDepth { waiting: 0, running: 1 });
        // The first executor comes back: told to stop, and its result refused — and not acked.
        assert_eq!(slow.heartbeat(&lost).await, Err(QueueError::NotHeld(lost.job.id.clone())));
        let stale = lost.job.id.clone();
        assert_eq!(slow.finish(lost, JobOutcome::Failed).await, Err(QueueError::NotHeld(stale)));
        // Had it acked, the job would be gone; the second executor goes silent too, and a third gets it.
        let last = within(10, "third delivery", third.take()).await.expect("the job once more");
        assert_eq!(last.job.id.attempt, 3);
        third.finish(last, JobOutcome::Succeeded).await.expect("current attempt");
        assert_eq!(within(5, "the outcome", outcome).await, Ok(JobOutcome::Succeeded), "exactly once, the current one");
        let late = lease.job.id.clone();
        assert_eq!(quick.finish(lease, JobOutcome::Failed).await, Err(QueueError::NotHeld(late)));
        assert_eq!(nats.stored().await, 0, "acknowledged after the outcome");
    });
}

#[test]
fn heartbeats_keep_a_long_job_with_its_executor() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(2000, 5)).await.expect("server");
        let executor = NatsQueue::connect(&nats.options(2000, 5)).await.expect("executor");
        let other = NatsQueue::connect(&nats.options(2000, 5)).await.expect("executor");
        let outcome = server.enqueue(job("api")).await.expect("enqueued");
        let lease = within(10, "a job", executor.take()).await.expect("a job");
        // Well past ack_wait, with a heartbeat every 400 ms: nobody else gets it.
        let watching = async { hands_out(&other, 5000).await };
        let working = async {
            for _ in 0..12 {
                executor.heartbeat(&lease).await.expect("still ours");
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        };
        let (handed_out, ()) = tokio::join!(watching, working);
        assert!(!handed_out, "the job stayed with its executor");
        executor.finish(lease, JobOutcome::Succeeded).await.expect("held");
        assert_eq!(within(5, "the outcome", outcome).await, Ok(JobOutcome::Succeeded));
    });
}

#[test]
fn a_job_lost_max_deliver_times_fails_and_leaves_the_stream() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(1000, 2)).await.expect("server");
        let executor = NatsQueue::connect(&nats.options(1000, 2)).await.expect("executor");
        let outcome = server.enqueue(job("api")).await.expect("enqueued");
        // Taken twice, never heartbeated nor finished: as if two executors died.
        let first = within(10, "delivery 1", executor.take()).await.expect("a job");
        let second = within(10, "delivery 2", executor.take()).await.expect("the job again");
        assert_eq!((first.job.id.attempt, second.job.id.attempt), (1, 2));
        // JetStream gives up when it would deliver it a third time: to an executor asking for work.
        let asking = async { hands_out(&executor, 4000).await };
        let (ended, handed_out) = tokio::join!(within(10, "the failure", outcome), asking);
        assert_eq!(ended, Ok(JobOutcome::Failed));
        assert!(!handed_out, "not handed out a third time");
        assert_eq!(server.depth().await, QueueDepth::default());
        assert!(nats.comes_to_hold(0).await, "the lost job left the stream");
    });
}

#[test]
fn a_cancelled_job_never_starts_and_a_running_one_is_stopped_at_once() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(1000, 5)).await.expect("server");
        let executor = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        // Waiting: it ends cancelled and leaves the stream.
        let waiting = server.enqueue(job("waiting")).await.expect("enqueued");
        server.cancel(&job("waiting").id).await;
        assert_eq!(within(5, "the outcome", waiting).await, Ok(JobOutcome::Cancelled));
        assert_eq!(nats.stored().await, 0, "a cancelled job is not handed out");

        // Running: its executor's lease is cancelled at once; its outcome still counts.
        let running = server.enqueue(job("running")).await.expect("enqueued");
        let lease = within(10, "a job", executor.take()).await.expect("a job");
        server.cancel(&lease.job.id).await;
        within(2, "the stop", lease.cancel.cancelled()).await;
        assert_eq!(executor.heartbeat(&lease).await, Err(QueueError::NotHeld(lease.job.id.clone())));
        executor.finish(lease, JobOutcome::Cancelled).await.expect("still its attempt");
        assert_eq!(within(5, "the outcome", running).await, Ok(JobOutcome::Cancelled));

        // Running, cancelled, and its executor dies before it finishes: the next delivery ends it.
        let orphan = server.enqueue(job("orphan")).await.expect("enqueued");
        let lease = within(10, "a job", executor.take()).await.expect("a job");
        server.cancel(&lease.job.id).await;
        drop(lease);
        let ended = tokio::select! {
            ended = within(10, "the outcome", orphan) => ended,
            lease = executor.take() => panic!("a cancelled job was handed out again: {lease:?}"),
        };
        assert_eq!(ended, Ok(JobOutcome::Cancelled));
        assert!(nats.comes_to_hold(0).await, "the cancelled job left the stream");
    });
}

#[test]
fn a_job_whose_server_is_gone_is_dropped_not_run() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("server");
        let _outcome = server.enqueue(job("api")).await.expect("enqueued");
        // The server stops; it will plan its runs anew when it starts again.
        drop(server);
        let executor = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("executor");
        // Asked again until the server's sign of life expires (`liveness`), then dropped.
        assert!(!hands_out(&executor, 8000).await, "nobody runs a job for a server that is gone");
        assert!(nats.comes_to_hold(0).await, "terminated, not left to be offered again");
    });
}

#[test]
fn jobs_survive_nats_killed_and_started_again() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("server");
        let executor = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("executor");
        let before = server.enqueue(job("before")).await.expect("enqueued");
        // kill -9 of NATS: the job is on disk; both sides reconnect by themselves.
        let mut nats = nats;
        nats.kill_and_restart();
        let lease = within(30, "the job stored before", executor.take()).await.expect("a job");
        assert_eq!(&*lease.job.id.package, "before");
        executor.heartbeat(&lease).await.expect("still ours");
        executor.finish(lease, JobOutcome::Succeeded).await.expect("the outcome reaches the server");
        assert_eq!(within(5, "the outcome", before).await, Ok(JobOutcome::Succeeded));
        // And a job enqueued after it.
        let after = server.enqueue(job("after")).await.expect("enqueued after the restart");
        let lease = within(10, "the job after", executor.take()).await.expect("a job");
        executor.finish(lease, JobOutcome::Failed).await.expect("held");
        assert_eq!(within(5, "the outcome", after).await, Ok(JobOutcome::Failed));
        assert!(nats.comes_to_hold(0).await);
    });
}
