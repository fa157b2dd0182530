//! `[nats]` and `[executor]` in the operator's `loktar.toml`: running the
//! package jobs of a server's runs on other machines. With `[nats]`, the
//! server puts its jobs on NATS JetStream instead of running them in its
//! own process, and `loktar executor` processes (anywhere that reaches
//! NATS and the repositories) take them.
//!
//! ```toml
//! [nats]
//! url = "nats://nats.internal:4222"
//! ack_wait = 30        # seconds a silent executor keeps its job
//! max_deliver = 3      # executors a job is handed to before it fails
//!
//! [executor]
//! queues = ["default"]
//! concurrency = 2
//! work_dir = "/var/lib/loktar-executor"
//! grace = 60           # seconds a stopping executor lets its jobs finish
//! ```

use std::path::PathBuf;

use serde::Deserialize;

/// `[nats]`: where the job queue is, and how it treats jobs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// The NATS server, with JetStream on.
    pub url: String,
    /// Seconds a taken job may go without word from its executor before another gets it.
    #[serde(default = "default_ack_wait")]
    pub ack_wait: u64,
    /// How many executors a job may be handed to before it fails ("executor lost N times").
    #[serde(default = "default_max_deliver")]
    pub max_deliver: u32,
}

/// `[executor]`: what `loktar executor` takes and where it works.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSettings {
    /// The queues it takes jobs from.
    #[serde(default = "default_queues")]
    pub queues: Vec<String>,
    /// Jobs at once [default: the number of cores].
    pub concurrency: Option<usize>,
    /// Repository mirrors, checkouts and artifacts; relative to the configuration file's folder.
    #[serde(default = "default_work_dir")]
    pub work_dir: PathBuf,
    /// Seconds a stopping executor (`SIGTERM`) lets its running jobs finish before it hands them back.
    #[serde(default = "default_grace")]
    pub grace: u64,
}

impl Default for ExecutorSettings {
    fn default() -> ExecutorSettings {
        ExecutorSettings {
            queues: default_queues(),
            concurrency: None,
            work_dir: default_work_dir(),
            grace: default_grace(),
        }
    }
}

/// The queue of a package no routing sends elsewhere.
pub const DEFAULT_QUEUE: &str = "default";

fn default_ack_wait() -> u64 {
    30
}

fn default_max_deliver() -> u32 {
    3
}

fn default_queues() -> Vec<String> {
    vec![DEFAULT_QUEUE.to_string()]
}

fn default_work_dir() -> PathBuf {
    PathBuf::from("loktar-executor")
}

fn default_grace() -> u64 {
    60
}
