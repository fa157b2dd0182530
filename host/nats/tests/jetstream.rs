//! The NATS job queue against a real `nats-server` with JetStream (Debian's,
//! installed by `scripts/setup`), one per test on a free port of 127.0.0.1,
//! stopped when the test ends. A "server" queue enqueues; "executor" queues
//! — other connections, as on other machines — take, heartbeat and finish.
//! Executors that go silent are simulated by holding a lease without
//! heartbeats; every wait is bounded.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loktar_nats::{NatsOptions, NatsQueue, STREAM};
use loktar_pipeline::jobs::{Job, JobId, JobQueue, QueueDepth, QueueError};
use loktar_pipeline::scheduler::JobOutcome;
use loktar_protocol::RunId;

/// A `nats-server -js` of the test's own.
struct NatsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    fn start() -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("nats-server")
            .args(["--jetstream", "--addr", "127.0.0.1", "--port", &port.to_string(), "--store_dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server (scripts/setup installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        NatsServer { child, port, _dir: dir }
    }

    fn options(&self, ack_wait_ms: u64, max_deliver: u32) -> NatsOptions {
        NatsOptions {
            url: format!("nats://127.0.0.1:{}", self.port),
            queue: "default".to_string(),
            ack_wait: Duration::from_millis(ack_wait_ms),
            max_deliver,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn job(package: &str) -> Job {
    Job { id: JobId { run: RunId::new("run-1"), package: package.into(), attempt: 1 }, position: 0 }
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
        assert!(!hands_out(&executors[0], 1500).await, "acknowledged jobs are gone from the stream");
    });
}

#[test]
fn a_silent_executor_loses_its_job_to_the_next_attempt_and_its_late_result_is_ignored() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(1000, 5)).await.expect("server");
        let slow = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        let quick = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        let outcome = server.enqueue(job("api")).await.expect("enqueued");
        let lost = within(10, "first delivery", slow.take()).await.expect("a job");
        assert_eq!(lost.job.id.attempt, 1);
        // No heartbeat for longer than ack_wait: JetStream hands the job out again.
        let lease = within(10, "second delivery", quick.take()).await.expect("the job again");
        assert_eq!(lease.job.id.attempt, 2);
        assert_eq!(server.depth().await, QueueDepth { waiting: 0, running: 1 });
        // The first executor comes back: told to stop, and its result refused.
        assert_eq!(slow.heartbeat(&lost).await, Err(QueueError::NotHeld(lost.job.id.clone())));
        let stale = lost.job.id.clone();
        assert_eq!(slow.finish(lost, JobOutcome::Failed).await, Err(QueueError::NotHeld(stale)));
        quick.finish(lease, JobOutcome::Succeeded).await.expect("current attempt");
        assert_eq!(within(5, "the outcome", outcome).await, Ok(JobOutcome::Succeeded), "exactly once, the current one");
        assert!(!hands_out(&quick, 2500).await, "acknowledged after the outcome: not offered again");
    });
}

#[test]
fn heartbeats_keep_a_long_job_with_its_executor() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(1000, 5)).await.expect("server");
        let executor = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        let other = NatsQueue::connect(&nats.options(1000, 5)).await.expect("executor");
        let outcome = server.enqueue(job("api")).await.expect("enqueued");
        let lease = within(10, "a job", executor.take()).await.expect("a job");
        // Three times ack_wait, with an in-progress ack every 300 ms: nobody else gets it.
        let watching = async { hands_out(&other, 3000).await };
        let working = async {
            for _ in 0..10 {
                executor.heartbeat(&lease).await.expect("still ours");
                tokio::time::sleep(Duration::from_millis(300)).await;
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
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.port)).await.expect("client");
        let mut stream = async_nats::jetstream::new(client).get_stream(STREAM).await.expect("the stream");
        assert_eq!(stream.info().await.expect("info").state.messages, 0, "the lost job left the stream");
    });
}

#[test]
fn a_cancelled_job_never_starts_and_a_running_one_is_stopped_at_once() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("server");
        let executor = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("executor");
        // Waiting: it ends cancelled and is never handed out.
        let waiting = server.enqueue(job("waiting")).await.expect("enqueued");
        server.cancel(&job("waiting").id).await;
        assert_eq!(within(5, "the outcome", waiting).await, Ok(JobOutcome::Cancelled));
        assert!(!hands_out(&executor, 1500).await, "a cancelled job is not handed out");

        // Running: its executor's lease is cancelled within a second; its outcome still counts.
        let running = server.enqueue(job("running")).await.expect("enqueued");
        let lease = within(10, "a job", executor.take()).await.expect("a job");
        server.cancel(&lease.job.id).await;
        within(1, "the stop", lease.cancel.cancelled()).await;
        assert_eq!(executor.heartbeat(&lease).await, Err(QueueError::NotHeld(lease.job.id.clone())));
        executor.finish(lease, JobOutcome::Cancelled).await.expect("still its attempt");
        assert_eq!(within(5, "the outcome", running).await, Ok(JobOutcome::Cancelled));
    });
}

#[test]
fn a_job_whose_server_is_gone_is_dropped_not_run() {
    let nats = NatsServer::start();
    runtime().block_on(async {
        let server = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("server");
        let _outcome = server.enqueue(job("api")).await.expect("enqueued");
        // The server stops (its instance is gone); it will plan the run anew when it starts again.
        drop(server);
        let executor = NatsQueue::connect(&nats.options(30_000, 3)).await.expect("executor");
        assert!(!hands_out(&executor, 3000).await, "nobody claims it for a server that is gone");
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.port)).await.expect("client");
        let mut stream = async_nats::jetstream::new(client).get_stream(STREAM).await.expect("the stream");
        assert_eq!(stream.info().await.expect("info").state.messages, 0, "terminated, not left to be offered again");
    });
}
