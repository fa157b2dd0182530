//! Package jobs across machines: a [`JobQueue`] over NATS JetStream.
//!
//! The server enqueues each package job on a work-queue stream
//! (`LOKTAR_JOBS`, subjects `loktar.jobs.<queue>`, `Nats-Msg-Id` =
//! run/package/attempt/server so a retried publish is stored once); executors take
//! them through one durable pull consumer per queue — one message per free
//! slot, nothing prefetched — with explicit acks and an `ack_wait` kept
//! alive by in-progress acks while the job runs. JetStream delivers a job
//! again when its executor goes silent; the delivery count is the job's
//! *attempt*.
//!
//! At least once in, exactly once out: the server that enqueued a job is
//! the only judge of its attempts. An executor *claims* its attempt before
//! it starts (the server answers go, cancelled or unknown), asks with each
//! heartbeat whether it is still current, and hands its outcome to the
//! server, which takes it only from the current attempt; a late executor's
//! result is logged and ignored. The message is acknowledged only after the
//! server has taken the outcome — an ack from an older delivery could
//! otherwise acknowledge a newer one, so a stale executor never acks. A job
//! delivered `max_deliver` times without an outcome fails ("executor lost N
//! times", from JetStream's advisory) and leaves the stream. A cancelled
//! job that waits is taken off the stream; one that runs is stopped through
//! `loktar.cancel`, which every executor listens to.
//!
//! A server's silence is not its death: NATS may be reconnecting. An
//! executor that gets no answer asks again, keeping its delivery alive
//! meanwhile, and takes a server for gone — and drops its job — only once
//! nobody has listened at its address for `liveness`. A server fails the jobs JetStream gave up
//! on (the advisory) and, should it miss that advisory, the jobs it has not
//! heard of for `max_deliver + 1` times `ack_wait`. An outcome sent twice
//! (its answer lost) is accepted twice, counted once.
//!
//! The same [`NatsQueue`] serves both sides: a server enqueues and answers
//! (handing executors elsewhere the job's work, [`NatsQueue::serve`]), an
//! executor (`loktar executor`) takes, reports its events
//! ([`NatsQueue::report`]) and finishes; in tests, both at once.

mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{self, RetentionPolicy, Stream};
use async_nats::jetstream::{self, AckKind};
use async_nats::{Client, RequestErrorKind};
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use loktar_pipeline::handed::RemoteRuns;
use loktar_pipeline::jobs::{Job, JobId, JobQueue, Lease, QueueDepth, QueueError, Waiting};
use loktar_pipeline::scheduler::JobOutcome;
use loktar_protocol::{EventKind, RunId};
use loktar_settings::NatsSettings;
use wire::{
    Answer, Attempt, CANCEL, CancelMessage, Claimed, Finished, JOBS, JobMessage, MaxDeliveries, PRESENCE, Reported,
    SERVERS,
};

/// The stream every queue's jobs are on.
pub const STREAM: &str = "LOKTAR_JOBS";

/// How long a publish is remembered, so that a retried one is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long an empty fetch waits for a job before asking again.
const FETCH_WAIT: Duration = Duration::from_secs(5);
/// How long a request to the server waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long between two tries of a request the server did not answer.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long an executor keeps asking a server that does not answer, but lives.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long a server waits for an executor to say it takes jobs of a queue.
const PRESENCE_WAIT: Duration = Duration::from_millis(500);
/// How long a server remembers the outcomes it took, to accept one sent again.
const REMEMBERED: Duration = Duration::from_secs(600);

/// Where the queue is and how it treats jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// The NATS server: `nats://127.0.0.1:4222`.
    pub url: String,
    /// The queue this side takes jobs from and puts them on: `default`, `docker`, `jvm`
    /// (letters, digits, `-` and `_`).
    pub queue: String,
    /// How long a taken job may go without a heartbeat before it is offered again.
    pub ack_wait: Duration,
    /// How many executors a job may be handed to before it fails.
    pub max_deliver: u32,
    /// How long nobody may listen at a server's address before it counts as
    /// gone, and its jobs as never to be run.
    pub liveness: Duration,
}

impl Default for NatsOptions {
    fn default() -> NatsOptions {
        NatsOptions {
            url: "nats://127.0.0.1:4222".to_string(),
            queue: "default".to_string(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 3,
            liveness: Duration::from_secs(30),
        }
    }
}

impl NatsOptions {
    /// The options `[nats]` gives for `queue`, at `url` over `[nats] url`;
    /// `None` without either URL.
    pub fn from_settings(nats: Option<&NatsSettings>, url: Option<&str>, queue: &str) -> Option<NatsOptions> {
        let defaults = NatsOptions::default();
        Some(NatsOptions {
            url: url.map(str::to_string).or_else(|| nats.map(|nats| nats.url.clone()))?,
            queue: queue.to_string(),
            ack_wait: nats.map_or(defaults.ack_wait, |nats| Duration::from_secs(nats.ack_wait)),
            max_deliver: nats.map_or(defaults.max_deliver, |nats| nats.max_deliver),
            ..defaults
        })
    }
}

/// `url` — one server's or a comma-separated list — without the users and
/// passwords it may carry: for messages.
pub fn shown_url(url: &str) -> String {
    let one = |url: &str| match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_string(),
        },
        None => url.rsplit_once('@').map_or_else(|| url.to_string(), |(_, host)| format!("…@{host}")),
    };
    url.split(',').map(one).collect::<Vec<_>>().join(",")
}

/// Which job, for the server: its run and package.
type JobKey = (RunId, String);

/// A job the server enqueued and has no outcome of yet.
#[derive(Debug)]
struct Pending {
    outcome: oneshot::Sender<JobOutcome>,
    /// The current attempt; 0 while no executor has claimed it.
    attempt: u32,
    /// Its message's sequence in the stream.
    sequence: u64,
    cancelled: bool,
    /// When an executor last claimed it or said it works on it.
    seen: Instant,
    /// The last batch of events taken from the current attempt: one sent again is taken once.
    batch: u64,
    /// The number of the claim that holds it (see [`Attempt::holder`]).
    holder: u64,
    /// The queue it is on.
    queue: String,
}

/// What a server knows of its jobs.
#[derive(Debug, Default)]
struct Ledger {
    pending: HashMap<JobKey, Pending>,
    /// The claims whose outcome was taken, and when: a resent outcome is accepted again.
    accepted: HashMap<JobKey, (u64, Instant)>,
    /// The last claim's number.
    claims: u64,
    /// Messages of jobs that ended before their message did: to take off the stream.
    discard: Vec<u64>,
}

/// A job this executor holds.
#[derive(Debug)]
struct Held {
    message: jetstream::Message,
    key: JobKey,
    attempt: u32,
    /// The claim's number the server gave.
    holder: u64,
    /// Where its server listens.
    server: String,
    cancel: CancellationToken,
    /// Since when nobody has listened at the server's address, if so.
    unheard_since: Option<Instant>,
}

impl Held {
    /// Its attempt, as its server knows it.
    fn attempt(&self) -> Attempt {
        Attempt { run: self.key.0.clone(), package: self.key.1.clone(), attempt: self.attempt, holder: self.holder }
    }
}

/// The server's side: the jobs it enqueued, by key.
type Jobs = Arc<Mutex<Ledger>>;
/// The executor's side: the jobs it holds, by lease number.
type HeldJobs = Arc<Mutex<HashMap<u64, Held>>>;
/// The server's side: its runs, once it hands their jobs to executors elsewhere.
type Served = Arc<OnceLock<Arc<dyn RemoteRuns>>>;

/// A job queue on a NATS server with JetStream. See the module's documentation.
pub struct NatsQueue {
    client: Client,
    jetstream: jetstream::Context,
    /// The job stream, for taking jobs off it.
    stream: Stream,
    consumer: PullConsumer,
    ack_wait: Duration,
    liveness: Duration,
    queue: String,
    /// As a server: how the consumers of the queues it puts jobs on are made.
    options: NatsOptions,
    /// The queues whose consumer is known to be there.
    consumers: Mutex<std::collections::HashSet<String>>,
    /// Where this side listens as a server: `loktar.servers.<instance>`.
    listens: String,
    jobs: Jobs,
    held: HeldJobs,
    served: Served,
    leases: AtomicU64,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NatsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsQueue").field("queue", &self.queue).field("listens", &self.listens).finish_non_exhaustive()
    }
}

impl Drop for NatsQueue {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn unreachable(what: &str, error: impl std::fmt::Display) -> QueueError {
    QueueError::Unreachable(format!("{what}: {error}"))
}

impl NatsQueue {
    /// Connects, makes the stream and the queue's consumer if they are not there, and
    /// starts listening: as a server for its jobs' executors, as an executor for cancellations.
    pub async fn connect(options: &NatsOptions) -> Result<NatsQueue, QueueError> {
        let queue = &options.queue;
        if !loktar_settings::is_queue_name(queue) {
            return Err(QueueError::Unreachable(format!(
                "`{queue}` is not a queue name: use letters, digits, `-` and `_`"
            )));
        }
        if options.ack_wait < Duration::from_millis(500) || options.liveness < Duration::from_secs(1) {
            return Err(QueueError::Unreachable(
                "`ack_wait` is at least half a second and `liveness` at least a second".to_string(),
            ));
        }
        let client = async_nats::ConnectOptions::new()
            .name("loktar")
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(options.url.as_str())
            .await
            .map_err(|e| unreachable(&format!("cannot connect to NATS at `{}`", options.url), e))?;
        let jetstream = jetstream::new(client.clone());
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: STREAM.to_string(),
                subjects: vec![format!("{JOBS}.>")],
                retention: RetentionPolicy::WorkQueue,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable(&format!("cannot make the stream `{STREAM}` (is JetStream on?)"), e))?;
        let (consumer, ack_wait) = consumer(&stream, queue, options).await?;
        let listens = format!("{SERVERS}.{}", uuid::Uuid::now_v7().simple());
        let jobs = Jobs::default();
        let held = HeldJobs::default();
        let served = Served::default();
        let subscribe = |subject: String| {
            let client = client.clone();
            async move { client.subscribe(subject).await.map_err(|e| unreachable("cannot subscribe", e)) }
        };
        let requests = subscribe(format!("{listens}.*")).await?;
        let cancellations = subscribe(CANCEL.to_string()).await?;
        // Every queue's: a server's jobs go to several.
        let advisories = subscribe(format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM}.*")).await?;
        // Subscriptions reach the server before anyone is told where this side listens.
        client.flush().await.map_err(|e| unreachable("cannot reach NATS", e))?;
        let silence = ack_wait * (options.max_deliver.max(1) + 1);
        let tasks = vec![
            tokio::spawn(answer_requests(client.clone(), stream.clone(), requests, jobs.clone(), served.clone())),
            tokio::spawn(stop_cancelled(cancellations, held.clone())),
            tokio::spawn(fail_lost(advisories, jobs.clone(), stream.clone(), served.clone())),
            tokio::spawn(fail_silent(jobs.clone(), stream.clone(), ack_wait, silence, served.clone())),
        ];
        Ok(NatsQueue {
            client,
            jetstream,
            stream,
            consumer,
            ack_wait,
            liveness: options.liveness,
            queue: queue.clone(),
            options: options.clone(),
            consumers: Mutex::new(std::collections::HashSet::from([queue.clone()])),
            listens,
            jobs,
            held,
            served,
            leases: AtomicU64::new(0),
            tasks,
        })
    }

    /// Says, from now on, that an executor takes jobs of this queue: a
    /// server whose jobs wait on it no longer says nobody does.
    pub async fn announce(&mut self) -> Result<(), QueueError> {
        let mut asked = self
            .client
            // One executor of a queue answers for all.
            .queue_subscribe(format!("{PRESENCE}.{}", self.queue), "loktar-executors".to_string())
            .await
            .map_err(|e| unreachable("cannot subscribe", e))?;
        let client = self.client.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Some(request) = asked.next().await {
                if let Some(reply) = request.reply {
                    let _ = client.publish(reply, "here".into()).await;
                }
            }
        }));
        self.client.flush().await.map_err(|e| unreachable("cannot reach NATS", e))
    }

    /// Makes `queue`'s consumer with this side's `ack_wait` and `max_deliver`
    /// before its first job goes on it — not with those of whichever
    /// executor comes first — and says when no executor takes its jobs.
    async fn ensure_consumer(&self, queue: &str) -> Result<(), QueueError> {
        if self.consumers.lock().unwrap_or_else(PoisonError::into_inner).contains(queue) {
            return Ok(());
        }
        consumer(&self.stream, queue, &self.options).await?;
        self.consumers.lock().unwrap_or_else(PoisonError::into_inner).insert(queue.to_string());
        if !self.has_executor(queue).await {
            tracing::warn!(
                "no executor takes jobs of queue `{queue}`: they wait (start one: `loktar executor --queues {queue}`)"
            );
        }
        Ok(())
    }

    /// Whether any executor takes jobs of `queue`, as far as NATS can tell
    /// (when it cannot, it says so).
    async fn has_executor(&self, queue: &str) -> bool {
        let asked = self.client.request(format!("{PRESENCE}.{queue}"), "".into());
        match tokio::time::timeout(PRESENCE_WAIT, asked).await {
            Ok(Err(problem)) => !matches!(problem.kind(), RequestErrorKind::NoResponders),
            Ok(Ok(_)) | Err(_) => true,
        }
    }

    /// Hands executors elsewhere what they need to run the jobs of `runs`
    /// (the runs of this process), and gives `runs` the events they report.
    /// Without it, only executors that find the run in their own process can run its jobs.
    pub fn serve(&self, runs: Arc<dyn RemoteRuns>) {
        if self.served.set(runs).is_err() {
            tracing::warn!("the queue already serves runs: the first stay");
        }
    }

    /// Reports `events` of `lease`'s job to the server that enqueued it, in
    /// order: an error when the attempt is no longer current (stop it) or
    /// the server cannot be reached.
    /// `batch` counts the attempt's batches from 1: one sent again is taken once.
    pub async fn report(&self, lease: &Lease, batch: u64, events: Vec<EventKind>) -> Result<(), QueueError> {
        let not_held = || QueueError::NotHeld(lease.job.id.clone());
        let (message, server, attempt) = self.holding(lease).ok_or_else(not_held)?;
        let reported = Reported { attempt, batch, events };
        match self.ask_patiently::<Answer>(&server, "events", &reported, &message).await {
            Ok(Answer::Working) => Ok(()),
            Ok(_) => Err(not_held()),
            Err(Asked::Gone) => Err(QueueError::Unreachable("the server that enqueued the job is gone".to_string())),
            Err(Asked::Failed(problem)) => Err(QueueError::Unreachable(problem)),
        }
    }

    /// Hands `lease`'s job back without an outcome: JetStream offers it to
    /// another executor at once (an executor stopping, its grace over).
    /// Its server, told first, shows it waiting again and does not take it for lost.
    pub async fn release(&self, lease: Lease) {
        let Some(held) = self.held().remove(&lease.number()) else { return };
        let attempt = held.attempt();
        let told = tokio::time::timeout(RETRY_DELAY, self.ask::<Answer>(&held.server, "release", &attempt)).await;
        if !matches!(told, Ok(Ok(Answer::Accepted))) {
            tracing::debug!(job = %lease.job.id, "the server did not hear the job handed back");
        }
        // Flushed: an executor that stops next must not take the hand-back with it.
        let handed = held.message.ack_with(AckKind::Nak(None)).await.map_err(|e| e.to_string());
        if let Err(problem) = handed.and(self.client.flush().await.map_err(|e| e.to_string())) {
            tracing::warn!(job = %lease.job.id, "cannot hand the job back: {problem}; it is offered again after `ack_wait`");
        }
    }

    /// The next job, if one comes within `wait`. A job that came is claimed
    /// before this returns, which takes as long as its server takes to
    /// answer (patiently, while it may be reconnecting: up to a minute).
    /// For an executor that offers a free slot to several queues in turn.
    pub async fn take_within(&self, wait: Duration) -> Option<Lease> {
        let batch = self.consumer.fetch().max_messages(1).expires(wait).messages().await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(problem) => {
                tracing::warn!("cannot ask NATS for a job: {problem}");
                tokio::time::sleep(RETRY_DELAY).await;
                return None;
            }
        };
        while let Some(message) = batch.next().await {
            match message {
                Ok(message) => {
                    if let Some(lease) = self.claim(message).await {
                        return Some(lease);
                    }
                }
                Err(problem) => {
                    tracing::warn!("a job could not be fetched: {problem}");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
        None
    }

    /// Whether `lease` still holds its job (cancelled or not), as its server
    /// says; a server that cannot say is taken to agree (the outcome's
    /// delivery decides in the end).
    pub async fn is_current(&self, lease: &Lease) -> bool {
        let Some((message, server, attempt)) = self.holding(lease) else { return false };
        !matches!(
            self.ask_patiently::<Answer>(&server, "heartbeat", &attempt, &message).await,
            Ok(Answer::Stale | Answer::Unknown) | Err(Asked::Gone)
        )
    }

    /// The message, server and attempt of a job this executor holds.
    fn holding(&self, lease: &Lease) -> Option<(jetstream::Message, String, Attempt)> {
        let held = self.held();
        let held = held.get(&lease.number())?;
        Some((held.message.clone(), held.server.clone(), held.attempt()))
    }

    /// Asks the server at `server` (its `listens`) `request` about `body`.
    async fn ask<A: serde::de::DeserializeOwned>(
        &self,
        server: &str,
        request: &str,
        body: &impl serde::Serialize,
    ) -> Result<A, Asked> {
        let payload = serde_json::to_vec(body).map_err(|e| Asked::Failed(e.to_string()))?;
        let reply =
            self.client.request(format!("{server}.{request}"), payload.into()).await.map_err(|e| match e.kind() {
                RequestErrorKind::NoResponders => Asked::Gone,
                _ => Asked::Failed(e.to_string()),
            })?;
        serde_json::from_slice(&reply.payload).map_err(|e| Asked::Failed(format!("an answer that is not one: {e}")))
    }

    /// Asks until the server answers, nobody has listened at its address
    /// for `liveness` (it is gone), or [`PATIENCE`] runs out — keeping
    /// `message`'s delivery alive meanwhile.
    async fn ask_patiently<A: serde::de::DeserializeOwned>(
        &self,
        server: &str,
        request: &str,
        body: &impl serde::Serialize,
        message: &jetstream::Message,
    ) -> Result<A, Asked> {
        let started = Instant::now();
        let mut unheard_since: Option<Instant> = None;
        loop {
            let problem = match self.ask(server, request, body).await {
                Ok(answer) => return Ok(answer),
                Err(Asked::Gone) => {
                    let since = *unheard_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.liveness {
                        return Err(Asked::Gone);
                    }
                    "nobody listens there for now".to_string()
                }
                Err(Asked::Failed(problem)) => {
                    unheard_since = None;
                    problem
                }
            };
            if started.elapsed() > PATIENCE.max(self.liveness) {
                return Err(Asked::Failed(problem));
            }
            tracing::debug!(request, "the server did not answer ({problem}): asking again");
            let _ = message.ack_with(AckKind::Progress).await;
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }

    /// Claims the job of `message` for this executor: a lease when it is to run.
    async fn claim(&self, message: jetstream::Message) -> Option<Lease> {
        let attempt = message.info().map(|info| u32::try_from(info.delivered).unwrap_or(u32::MAX)).unwrap_or(1);
        let Ok(job) = serde_json::from_slice::<JobMessage>(&message.payload) else {
            tracing::warn!(subject = %message.subject, "a message on the job stream that is not a job: dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return None;
        };
        let claim = Attempt { run: job.run.clone(), package: job.package.clone(), attempt, holder: 0 };
        let claimed = self.ask_patiently::<Claimed>(&job.server, "claim", &claim, &message).await;
        let holder = claimed.as_ref().map_or(0, |claimed| claimed.holder);
        match claimed.map(|claimed| (claimed.answer, claimed.work)) {
            Ok((Answer::Go, work)) => {
                let number = self.leases.fetch_add(1, Ordering::Relaxed);
                let cancel = CancellationToken::new();
                let id = JobId { run: job.run.clone(), package: job.package.as_str().into(), attempt };
                let key = (job.run, job.package);
                let held = Held {
                    message,
                    key,
                    attempt,
                    holder,
                    server: job.server,
                    cancel: cancel.clone(),
                    unheard_since: None,
                };
                self.held().insert(number, held);
                let job = Job { id, position: job.position, queue: self.queue.clone(), work: work.map(Arc::from) };
                Some(Lease::new(job, cancel, number))
            }
            // A newer delivery holds the job: an ack from this one could acknowledge that one.
            Ok((Answer::Stale, _)) => None,
            // Cancelled before it started, or its server no longer knows it (it ended, or
            // the server started again and runs it anew): never to run.
            Ok((Answer::Cancelled | Answer::Unknown, _)) | Err(Asked::Gone) => {
                let _ = message.ack_with(AckKind::Term).await;
                None
            }
            Ok((other, _)) => {
                tracing::warn!(?other, "the server answered a claim strangely: the job is offered again");
                let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                None
            }
            Err(Asked::Failed(problem)) => {
                tracing::warn!(job = %claim.package, "the server did not answer a claim ({problem}): offered again later");
                let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                None
            }
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a request to a server got no answer.
#[derive(Debug)]
enum Asked {
    /// Nobody listens there any more: that server is gone.
    Gone,
    /// No answer, or not one: it may answer later.
    Failed(String),
}

#[async_trait::async_trait]
impl JobQueue for NatsQueue {
    async fn enqueue(&self, job: Job) -> Result<oneshot::Receiver<JobOutcome>, QueueError> {
        let (sender, receiver) = oneshot::channel();
        let key: JobKey = (job.id.run.clone(), job.id.package.to_string());
        // Known before it is published: a quick executor's claim must find it.
        if !loktar_settings::is_queue_name(&job.queue) {
            return Err(QueueError::Unreachable(format!(
                "`{}` is not a queue name: use letters, digits, `-` and `_`",
                job.queue
            )));
        }
        self.ensure_consumer(&job.queue).await?;
        let pending = Pending {
            outcome: sender,
            attempt: 0,
            sequence: 0,
            cancelled: false,
            seen: Instant::now(),
            batch: 0,
            holder: 0,
            queue: job.queue.clone(),
        };
        self.jobs().pending.insert(key.clone(), pending);
        let message = JobMessage {
            run: key.0.clone(),
            package: key.1.clone(),
            position: job.position,
            server: self.listens.clone(),
        };
        let mut headers = async_nats::HeaderMap::new();
        // The server's address too: a run resumed by a restarted server is enqueued anew.
        let id = format!("{}/{}/{}/{}", job.id.run, job.id.package, job.id.attempt, self.listens);
        headers.insert("Nats-Msg-Id", id.as_str());
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        let subject = format!("{JOBS}.{}", job.queue);
        // Tried twice with the same id: a publish stored but unanswered is stored once.
        let mut published = Err(QueueError::Unreachable(String::new()));
        for try_number in 0..2 {
            published = match self
                .jetstream
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone().into())
                .await
            {
                Ok(ack) => ack.await.map_err(|e| unreachable("the job was not stored", e)),
                Err(e) => Err(unreachable("cannot publish the job", e)),
            };
            match &published {
                Ok(ack) if ack.duplicate && try_number == 0 => {
                    published = Err(QueueError::Unreachable(format!(
                        "job {} was enqueued already in the last {} s",
                        job.id,
                        DUPLICATE_WINDOW.as_secs()
                    )));
                    break;
                }
                Ok(_) => break,
                Err(_) => continue,
            }
        }
        match published {
            Ok(ack) => {
                if let Some(pending) = self.jobs().pending.get_mut(&key) {
                    pending.sequence = ack.sequence;
                }
                Ok(receiver)
            }
            Err(problem) => {
                self.jobs().pending.remove(&key);
                Err(problem)
            }
        }
    }

    async fn take(&self) -> Option<Lease> {
        loop {
            if let Some(lease) = self.take_within(FETCH_WAIT).await {
                return Some(lease);
            }
        }
    }

    async fn heartbeat(&self, lease: &Lease) -> Result<(), QueueError> {
        let not_held = || QueueError::NotHeld(lease.job.id.clone());
        let (message, server, attempt) = self.holding(lease).ok_or_else(not_held)?;
        let keep_alive = async {
            // JetStream waits another `ack_wait` — only for the current attempt: a stale one's
            // in-progress ack would keep the newer delivery's.
            if let Err(problem) = message.ack_with(AckKind::Progress).await {
                tracing::warn!(job = %lease.job.id, "cannot tell NATS the job goes on: {problem}");
            }
        };
        // Never longer than a heartbeat's interval: unanswered, the delivery is kept alive all the same.
        let answer = tokio::time::timeout(self.heartbeat_every(), self.ask::<Answer>(&server, "heartbeat", &attempt))
            .await
            .unwrap_or_else(|_| Err(Asked::Failed("no answer in time".to_string())));
        let unheard_for = {
            let mut held = self.held();
            let since = held.get_mut(&lease.number()).and_then(|held| match answer {
                Err(Asked::Gone) => Some(*held.unheard_since.get_or_insert_with(Instant::now)),
                _ => held.unheard_since.take().and(None),
            });
            since.map(|since| since.elapsed())
        };
        match answer {
            Ok(Answer::Working) => {
                keep_alive.await;
                Ok(())
            }
            Ok(_) => Err(not_held()),
            Err(Asked::Gone) if unheard_for.is_some_and(|unheard| unheard >= self.liveness) => Err(not_held()),
            // The server may be reconnecting: the job goes on.
            Err(Asked::Gone | Asked::Failed(_)) => {
                tracing::debug!(job = %lease.job.id, "a heartbeat went unanswered");
                keep_alive.await;
                Ok(())
            }
        }
    }

    /// A third of `ack_wait` (at most the pipeline's usual pace): two
    /// heartbeats may go astray before JetStream offers the job again.
    fn heartbeat_every(&self) -> Duration {
        (self.ack_wait / 3).min(loktar_pipeline::executors::HEARTBEAT)
    }

    async fn finish(&self, lease: Lease, outcome: JobOutcome) -> Result<(), QueueError> {
        let held = self.held().remove(&lease.number()).ok_or_else(|| QueueError::NotHeld(lease.job.id.clone()))?;
        let finished = Finished { attempt: held.attempt(), outcome: outcome.into() };
        match self.ask_patiently::<Answer>(&held.server, "outcome", &finished, &held.message).await {
            Ok(Answer::Accepted) => {
                // Committed: only now is the message done with.
                if let Err(problem) = held.message.double_ack().await {
                    tracing::warn!(job = %lease.job.id, "the outcome is in, but NATS did not take the ack: {problem}");
                }
                Ok(())
            }
            Ok(_) => Err(QueueError::NotHeld(lease.job.id)),
            Err(Asked::Gone) => {
                let _ = held.message.ack_with(AckKind::Term).await;
                Err(QueueError::Unreachable("the server that enqueued the job is gone".to_string()))
            }
            // Not acknowledged: JetStream offers the job again, and the next attempt runs it.
            Err(Asked::Failed(problem)) => Err(QueueError::Unreachable(problem)),
        }
    }

    async fn cancel(&self, job: &JobId) {
        let key: JobKey = (job.run.clone(), job.package.to_string());
        let waiting = {
            let mut jobs = self.jobs();
            match jobs.pending.get_mut(&key) {
                None => return,
                Some(pending) if pending.attempt == 0 => jobs.pending.remove(&key),
                Some(pending) => {
                    pending.cancelled = true;
                    None
                }
            }
        };
        match waiting {
            // Never started: it ends now, and leaves the stream (an executor that took it
            // meanwhile hears it is unknown).
            Some(pending) => {
                let _ = pending.outcome.send(JobOutcome::Cancelled);
                discard(&self.stream, pending.sequence).await;
            }
            // Running: its executor stops it, and finishes it.
            None => {
                let message = CancelMessage { run: key.0, package: key.1 };
                let payload = serde_json::to_vec(&message).unwrap_or_default();
                if let Err(problem) = self.client.publish(CANCEL, payload.into()).await {
                    tracing::warn!(%job, "cannot tell the executors to stop a job: {problem}");
                }
            }
        }
    }

    async fn depth(&self) -> QueueDepth {
        let jobs = self.jobs();
        let running = jobs.pending.values().filter(|pending| pending.attempt > 0).count();
        QueueDepth { waiting: jobs.pending.len() - running, running }
    }

    async fn waiting(&self, run: &RunId) -> Vec<Waiting> {
        let waiting: Vec<(JobKey, String)> = {
            let jobs = self.jobs();
            let unclaimed = jobs.pending.iter().filter(|((of, _), pending)| of == run && pending.attempt == 0);
            unclaimed.map(|(key, pending)| (key.clone(), pending.queue.clone())).collect()
        };
        let mut queues: Vec<&str> = waiting.iter().map(|(_, queue)| queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        // Asked side by side: one answer each, at most `PRESENCE_WAIT`.
        let served = futures_util::future::join_all(queues.iter().map(|queue| self.has_executor(queue))).await;
        let unserved: Vec<String> =
            queues.iter().zip(served).filter(|(_, served)| !served).map(|(queue, _)| queue.to_string()).collect();
        waiting
            .into_iter()
            .map(|((run, package), queue)| {
                let reason = unserved.contains(&queue).then(|| {
                    format!("no executor takes jobs of queue `{queue}` (start one: `loktar executor --queues {queue}`)")
                });
                Waiting { job: JobId { run, package: package.as_str().into(), attempt: 0 }, queue, reason }
            })
            .collect()
    }
}

/// The durable consumer of `queue` (made with `options`' `ack_wait` and
/// `max_deliver` when it is not there), and the `ack_wait` it has.
async fn consumer(stream: &Stream, queue: &str, options: &NatsOptions) -> Result<(PullConsumer, Duration), QueueError> {
    let durable = format!("loktar-{queue}");
    let mut consumer: PullConsumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: format!("{JOBS}.{queue}"),
                ack_policy: AckPolicy::Explicit,
                ack_wait: options.ack_wait,
                max_deliver: i64::from(options.max_deliver.max(1)),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| unreachable(&format!("cannot make the consumer `{durable}`"), e))?;
    // The consumer's own `ack_wait` is the one heartbeats must beat.
    let mut ack_wait = options.ack_wait;
    if let Ok(info) = consumer.info().await {
        if info.config.ack_wait != options.ack_wait || info.config.max_deliver != i64::from(options.max_deliver.max(1))
        {
            tracing::warn!(
                consumer = %durable,
                "the consumer exists with another `ack_wait` or `max_deliver`: it keeps its own (delete it to change them)"
            );
        }
        ack_wait = info.config.ack_wait;
    }
    Ok((consumer, ack_wait))
}

/// As a server: answers the claims, heartbeats, events and outcomes of its jobs' executors.
async fn answer_requests(
    client: Client,
    stream: Stream,
    mut requests: async_nats::Subscriber,
    jobs: Jobs,
    served: Served,
) {
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply.clone() else { continue };
        let kind = request.subject.rsplit('.').next().unwrap_or_default();
        let payload = {
            let mut jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let runs = served.get();
            match kind {
                "claim" => read(&request.payload).map(|attempt| {
                    let answer = claim(&mut jobs, &attempt);
                    let work = runs.filter(|_| answer == Answer::Go).and_then(|runs| runs.start(&job_id(&attempt)));
                    let holder =
                        jobs.pending.get(&(attempt.run.clone(), attempt.package.clone())).map_or(0, |p| p.holder);
                    serde_json::to_vec(&Claimed { answer, holder, work: work.map(Box::new) })
                }),
                "heartbeat" => {
                    read(&request.payload).map(|attempt| serde_json::to_vec(&heartbeat(&mut jobs, &attempt)))
                }
                "events" => read(&request.payload)
                    .map(|reported| serde_json::to_vec(&take_events(&mut jobs, runs.map(Arc::as_ref), reported))),
                "outcome" => read(&request.payload).map(|finished| serde_json::to_vec(&finish(&mut jobs, finished))),
                "release" => read(&request.payload).map(|attempt| serde_json::to_vec(&released(&mut jobs, &attempt))),
                _ => None,
            }
        };
        let Some(Ok(payload)) = payload else {
            tracing::warn!(subject = %request.subject, "a request the server does not understand: not answered");
            continue;
        };
        if let Err(problem) = client.publish(reply, payload.into()).await {
            tracing::warn!("cannot answer an executor: {problem}");
        }
        let discarded = std::mem::take(&mut jobs.lock().unwrap_or_else(PoisonError::into_inner).discard);
        for sequence in discarded {
            discard(&stream, sequence).await;
        }
    }
}

/// A claim: the newest attempt becomes the job's current one.
fn claim(jobs: &mut Ledger, attempt: &Attempt) -> Answer {
    let key = (attempt.run.clone(), attempt.package.clone());
    match jobs.pending.get_mut(&key) {
        None => Answer::Unknown,
        Some(pending) if attempt.attempt < pending.attempt => Answer::Stale,
        // Cancelled while it ran, and its executor lost: it ends here.
        Some(pending) if pending.cancelled => {
            if let Some(pending) = jobs.pending.remove(&key) {
                let _ = pending.outcome.send(JobOutcome::Cancelled);
                jobs.discard.push(pending.sequence);
            }
            Answer::Cancelled
        }
        Some(pending) => {
            if pending.attempt > 0 {
                tracing::warn!(
                    run = %attempt.run, package = %attempt.package,
                    "an executor went silent: attempt {} takes over from attempt {}", attempt.attempt, pending.attempt
                );
            }
            jobs.claims += 1;
            pending.attempt = attempt.attempt;
            pending.holder = jobs.claims;
            pending.seen = Instant::now();
            pending.batch = 0;
            Answer::Go
        }
    }
}

/// Whether `attempt` is the claim that holds `pending`.
fn holds(pending: &Pending, attempt: &Attempt) -> bool {
    pending.attempt == attempt.attempt && pending.holder == attempt.holder
}

/// A request's body, when it is one.
fn read<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Option<T> {
    serde_json::from_slice(payload).ok()
}

/// The job an attempt is at.
fn job_id(attempt: &Attempt) -> JobId {
    JobId { run: attempt.run.clone(), package: attempt.package.as_str().into(), attempt: attempt.attempt }
}

/// A job handed back by the executor of its current attempt: waiting again,
/// and not taken for lost while it waits.
fn released(jobs: &mut Ledger, attempt: &Attempt) -> Answer {
    match jobs.pending.get_mut(&(attempt.run.clone(), attempt.package.clone())) {
        Some(pending) if holds(pending, attempt) => {
            pending.attempt = 0;
            pending.holder = 0;
            pending.seen = Instant::now();
            Answer::Accepted
        }
        _ => Answer::Stale,
    }
}

/// Events: taken from the current attempt only (a cancelled job's too: how it stopped).
fn take_events(jobs: &mut Ledger, runs: Option<&dyn RemoteRuns>, reported: Reported) -> Answer {
    let key = (reported.attempt.run.clone(), reported.attempt.package.clone());
    match (jobs.pending.get_mut(&key), runs) {
        (Some(pending), Some(runs)) if holds(pending, &reported.attempt) => {
            // A batch sent again (its answer lost) was taken already.
            if reported.batch > pending.batch {
                pending.batch = reported.batch;
                runs.report(&job_id(&reported.attempt), reported.events);
            }
            Answer::Working
        }
        _ => {
            tracing::warn!(
                run = %reported.attempt.run, package = %reported.attempt.package, attempt = reported.attempt.attempt,
                "events of an attempt that no longer holds its job are ignored"
            );
            Answer::Stale
        }
    }
}

/// A heartbeat: go on while this attempt is current and the job not
/// cancelled; stop when cancelled; stale when another attempt holds the job, or it ended.
fn heartbeat(jobs: &mut Ledger, attempt: &Attempt) -> Answer {
    match jobs.pending.get_mut(&(attempt.run.clone(), attempt.package.clone())) {
        Some(pending) if holds(pending, attempt) && !pending.cancelled => {
            pending.seen = Instant::now();
            Answer::Working
        }
        Some(pending) if holds(pending, attempt) => Answer::Stop,
        _ => Answer::Stale,
    }
}

/// An outcome: taken from the current attempt only, once; the same attempt's again is accepted.
fn finish(jobs: &mut Ledger, finished: Finished) -> Answer {
    let key = (finished.attempt.run.clone(), finished.attempt.package.clone());
    let (attempt, holder) = (finished.attempt.attempt, finished.attempt.holder);
    if jobs.pending.get(&key).is_some_and(|pending| holds(pending, &finished.attempt)) {
        if let Some(pending) = jobs.pending.remove(&key) {
            let _ = pending.outcome.send(finished.outcome.into());
        }
        jobs.accepted.retain(|_, (_, when)| when.elapsed() < REMEMBERED);
        jobs.accepted.insert(key, (holder, Instant::now()));
        return Answer::Accepted;
    }
    if jobs.accepted.get(&key).is_some_and(|(taken, _)| *taken == holder) {
        return Answer::Accepted;
    }
    tracing::warn!(
        run = %finished.attempt.run, package = %finished.attempt.package, attempt,
        "a late executor's result is ignored: another attempt holds the job, or it has ended"
    );
    Answer::Stale
}

/// As an executor: stops the jobs it holds that the server cancels.
async fn stop_cancelled(mut cancellations: async_nats::Subscriber, held: HeldJobs) {
    while let Some(message) = cancellations.next().await {
        let Ok(cancel) = serde_json::from_slice::<CancelMessage>(&message.payload) else { continue };
        let held = held.lock().unwrap_or_else(PoisonError::into_inner);
        for job in held.values().filter(|job| job.key.0 == cancel.run && job.key.1 == cancel.package) {
            job.cancel.cancel();
        }
    }
}

/// Takes the message `sequence` off the job stream: its job ended without it.
async fn discard(stream: &Stream, sequence: u64) {
    if let Err(problem) = stream.delete_message(sequence).await {
        tracing::debug!(sequence, "a job's message could not be taken off the stream: {problem}");
    }
}

/// As a server: fails the jobs JetStream gave up on after `max_deliver` deliveries.
async fn fail_lost(mut advisories: async_nats::Subscriber, jobs: Jobs, stream: Stream, served: Served) {
    while let Some(message) = advisories.next().await {
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&message.payload) else { continue };
        let lost = {
            let mut jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let key =
                jobs.pending.iter().find(|(_, job)| job.sequence == advisory.stream_seq).map(|(key, _)| key.clone());
            key.and_then(|key| jobs.pending.remove(&key).map(|pending| (key, pending)))
        };
        if let Some(((run, package), pending)) = lost {
            let reason = format!("executor lost {} times", advisory.deliveries);
            tracing::error!(%run, %package, "{reason}: the job fails");
            if let Some(runs) = served.get() {
                runs.lost(&JobId { run, package: package.as_str().into(), attempt: pending.attempt }, &reason);
            }
            let _ = pending.outcome.send(JobOutcome::Failed);
        }
        // Never to be delivered again, whoever's it was: off the stream.
        discard(&stream, advisory.stream_seq).await;
    }
}

/// As a server: fails the running jobs it has not heard of for `silence` —
/// lost beyond what JetStream offers again, its advisory missed.
async fn fail_silent(jobs: Jobs, stream: Stream, every: Duration, silence: Duration, served: Served) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let lost: Vec<(JobKey, Pending)> = {
            let mut jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let silent: Vec<JobKey> = jobs
                .pending
                .iter()
                .filter(|(_, job)| job.attempt > 0 && job.seen.elapsed() > silence)
                .map(|(key, _)| key.clone())
                .collect();
            silent.into_iter().filter_map(|key| jobs.pending.remove(&key).map(|job| (key, job))).collect()
        };
        for ((run, package), job) in lost {
            let reason = format!("executor lost: no word of the job for {} s", silence.as_secs());
            tracing::error!(%run, %package, "{reason}: it fails");
            if let Some(runs) = served.get() {
                runs.lost(&JobId { run, package: package.as_str().into(), attempt: job.attempt }, &reason);
            }
            let _ = job.outcome.send(JobOutcome::Failed);
            discard(&stream, job.sequence).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> (Pending, oneshot::Receiver<JobOutcome>) {
        let (outcome, receiver) = oneshot::channel();
        let queue = "default".to_string();
        (
            Pending {
                outcome,
                attempt: 0,
                sequence: 1,
                cancelled: false,
                seen: Instant::now(),
                batch: 0,
                holder: 0,
                queue,
            },
            receiver,
        )
    }

    /// Delivery `n`, as claim `holder` (0: not yet claimed).
    fn attempt(n: u32, holder: u64) -> Attempt {
        Attempt { run: RunId::new("r1"), package: "api".into(), attempt: n, holder }
    }

    #[test]
    fn only_the_current_attempt_works_on_and_its_outcome_is_taken_once() {
        let mut jobs = Ledger::default();
        let (job, mut outcome) = pending();
        jobs.pending.insert((RunId::new("r1"), "api".to_string()), job);
        assert_eq!(claim(&mut jobs, &attempt(1, 0)), Answer::Go);
        assert_eq!(heartbeat(&mut jobs, &attempt(1, 1)), Answer::Working);
        // Attempt 1 went silent: attempt 2 takes over, and attempt 1 is told to stop.
        assert_eq!(claim(&mut jobs, &attempt(2, 0)), Answer::Go);
        assert_eq!(heartbeat(&mut jobs, &attempt(1, 1)), Answer::Stale);
        assert_eq!(claim(&mut jobs, &attempt(1, 0)), Answer::Stale, "an older delivery never runs again");
        let finished = |n: u32, holder: u64, outcome: JobOutcome| Finished {
            attempt: attempt(n, holder),
            outcome: outcome.into(),
        };
        assert_eq!(finish(&mut jobs, finished(1, 1, JobOutcome::Failed)), Answer::Stale);
        assert!(outcome.try_recv().is_err(), "a late result is not taken");
        assert_eq!(finish(&mut jobs, finished(2, 2, JobOutcome::Succeeded)), Answer::Accepted);
        assert_eq!(outcome.try_recv(), Ok(JobOutcome::Succeeded));
        // Sent again (its answer lost): accepted again, taken once.
        assert_eq!(finish(&mut jobs, finished(2, 2, JobOutcome::Failed)), Answer::Accepted);
        assert!(outcome.try_recv().is_err(), "taken once");
        assert_eq!(finish(&mut jobs, finished(1, 1, JobOutcome::Failed)), Answer::Stale);
        assert_eq!(claim(&mut jobs, &attempt(3, 0)), Answer::Unknown);
    }

    #[test]
    fn a_delivery_count_seen_twice_is_fenced_by_the_claim() {
        // JetStream restarted from an older state of its consumer: delivery 1 comes again.
        let mut jobs = Ledger::default();
        let (job, mut outcome) = pending();
        jobs.pending.insert((RunId::new("r1"), "api".to_string()), job);
        assert_eq!(claim(&mut jobs, &attempt(1, 0)), Answer::Go);
        assert_eq!(claim(&mut jobs, &attempt(1, 0)), Answer::Go, "the newer delivery takes over");
        assert_eq!(heartbeat(&mut jobs, &attempt(1, 1)), Answer::Stale, "the first holder is told to stop");
        let reported = Reported { attempt: attempt(1, 1), batch: 1, events: Vec::new() };
        assert_eq!(take_events(&mut jobs, None, reported), Answer::Stale);
        let late = Finished { attempt: attempt(1, 1), outcome: JobOutcome::Failed.into() };
        assert_eq!(finish(&mut jobs, late), Answer::Stale);
        assert!(outcome.try_recv().is_err(), "the first holder's result is not taken");
        let current = Finished { attempt: attempt(1, 2), outcome: JobOutcome::Succeeded.into() };
        assert_eq!(finish(&mut jobs, current), Answer::Accepted);
        assert_eq!(outcome.try_recv(), Ok(JobOutcome::Succeeded));
    }

    #[test]
    fn a_url_is_shown_without_its_credentials() {
        assert_eq!(shown_url("nats://ci:s3cret@nats.internal:4222"), "nats://…@nats.internal:4222");
        assert_eq!(shown_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            shown_url("nats://a:p1@one:4222,nats://b:p2@two:4222,c:p3@three:4222"),
            "nats://…@one:4222,nats://…@two:4222,…@three:4222"
        );
    }

    #[test]
    fn a_cancelled_job_is_not_claimed_and_its_runner_is_told_to_stop() {
        let mut jobs = Ledger::default();
        let (mut job, mut outcome) = pending();
        job.attempt = 1;
        job.holder = 1;
        job.cancelled = true;
        jobs.pending.insert((RunId::new("r1"), "api".to_string()), job);
        assert_eq!(heartbeat(&mut jobs, &attempt(1, 1)), Answer::Stop);
        // Its executor died: the next delivery ends it, cancelled.
        assert_eq!(claim(&mut jobs, &attempt(2, 0)), Answer::Cancelled);
        assert_eq!(outcome.try_recv(), Ok(JobOutcome::Cancelled));
        assert_eq!(claim(&mut jobs, &attempt(3, 0)), Answer::Unknown);
    }
}
