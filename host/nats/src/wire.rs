//! What travels between the server that enqueues jobs and the executors
//! that run them, as JSON: the job itself on the work-queue stream, and
//! requests to the server (claim, heartbeat, events, outcome) with its answers.
//! Names of packages and runs travel only in payloads, never in subjects.

use serde::{Deserialize, Serialize};

use loktar_pipeline::handed::Work;
use loktar_pipeline::scheduler::JobOutcome;
use loktar_protocol::{EventKind, RunId};

/// The subject prefix of the jobs of every queue: `loktar.jobs.<queue>`.
pub(crate) const JOBS: &str = "loktar.jobs";
/// Where servers listen: `loktar.servers.<instance>.<request>`.
pub(crate) const SERVERS: &str = "loktar.servers";
/// Where servers tell executors to stop a job.
pub(crate) const CANCEL: &str = "loktar.cancel";
/// Where executors answer that they take jobs of a queue: `loktar.queues.<queue>`.
pub(crate) const PRESENCE: &str = "loktar.queues";

/// A package job on the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobMessage {
    pub run: RunId,
    pub package: String,
    /// The package's position in its run's plan.
    pub position: usize,
    /// Where the server that enqueued it listens (`loktar.servers.<instance>`).
    pub server: String,
}

/// An attempt at a job: which delivery of its message an executor works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    pub run: RunId,
    pub package: String,
    /// The message's delivery count: 1 for the first executor, 2 for the next…
    pub attempt: u32,
    /// Which claim of the job this is, as the server numbered it when it said go
    /// (0 in a claim): the fence when delivery counts repeat (JetStream restarted
    /// from an older state of its consumer).
    #[serde(default)]
    pub holder: u64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Finished {
    #[serde(flatten)]
    pub attempt: Attempt,
    pub outcome: Outcome,
}

/// A job's outcome, as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl From<JobOutcome> for Outcome {
    fn from(outcome: JobOutcome) -> Outcome {
        match outcome {
            JobOutcome::Succeeded => Outcome::Succeeded,
            JobOutcome::Failed => Outcome::Failed,
            JobOutcome::Cancelled => Outcome::Cancelled,
        }
    }
}

impl From<Outcome> for JobOutcome {
    fn from(outcome: Outcome) -> JobOutcome {
        match outcome {
            Outcome::Succeeded => JobOutcome::Succeeded,
            Outcome::Failed => JobOutcome::Failed,
            Outcome::Cancelled => JobOutcome::Cancelled,
        }
    }
}

/// The server's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    /// Claim: this attempt is the job's current one; run it.
    Go,
    /// Claim: the job was cancelled before it started; do not run it.
    Cancelled,
    /// The server knows no such job (it ended, or the server started again).
    Unknown,
    /// A newer attempt holds the job, or it ended: this one is ignored.
    Stale,
    /// Heartbeat: go on.
    Working,
    /// Heartbeat: stop, the job is cancelled (and still this attempt's).
    Stop,
    /// Outcome: committed; acknowledge the message.
    Accepted,
}

/// The server's answer to a claim: with [`Answer::Go`], what an executor
/// elsewhere needs to run the job (none for a job of a run not fetched from
/// a repository: only the server's own executors can run it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claimed {
    pub answer: Answer,
    /// With [`Answer::Go`], the claim's number, to give with everything about the job from now on.
    #[serde(default)]
    pub holder: u64,
    #[serde(default)]
    pub work: Option<Box<Work>>,
}

/// Events an attempt reports, in the order they happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reported {
    #[serde(flatten)]
    pub attempt: Attempt,
    /// Counts the attempt's batches from 1.
    pub batch: u64,
    pub events: Vec<EventKind>,
}

/// A job to stop, for whichever executor holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CancelMessage {
    pub run: RunId,
    pub package: String,
}

/// JetStream's advisory that a message reached its consumer's `max_deliver`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct MaxDeliveries {
    pub stream_seq: u64,
    pub deliveries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_travels_as_the_attempt_beside_its_outcome() {
        let finished = Finished {
            attempt: Attempt { run: RunId::new("r1"), package: "web.front".into(), attempt: 2, holder: 0 },
            outcome: JobOutcome::Failed.into(),
        };
        let text = serde_json::to_string(&finished).expect("JSON");
        assert_eq!(text, r#"{"run":"r1","package":"web.front","attempt":2,"holder":0,"outcome":"failed"}"#);
        assert_eq!(serde_json::from_str::<Finished>(&text).expect("read back"), finished);
        assert_eq!(JobOutcome::from(finished.outcome), JobOutcome::Failed);
    }

    #[test]
    fn the_advisory_of_max_deliveries_is_read_as_jetstream_writes_it() {
        let advisory = r#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-12-07T08:00:00Z",
            "stream":"LOKTAR_JOBS","consumer":"loktar-default","stream_seq":42,"deliveries":3}"#;
        let read: MaxDeliveries = serde_json::from_str(advisory).expect("an advisory");
        assert_eq!(read, MaxDeliveries { stream_seq: 42, deliveries: 3 });
    }
}
