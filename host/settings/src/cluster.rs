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
//! [nats.routes]        # the queue of each pkg_type, over the built-in ones
//! jar = "jvm"
//!
//! [executor]
//! queues = ["default"]
//! concurrency = 2
//! work_dir = "/var/lib/loktar-executor"
//! grace = 60           # seconds a stopping executor lets its jobs finish
//! ```

use std::collections::BTreeMap;
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
    /// The queue of the packages of each `pkg_type`, over [`BUILT_IN_ROUTES`].
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
}

/// The queues the packages of a `pkg_type` need, unless `[nats.routes]` says
/// otherwise: docker builds need an engine, which only some executors have.
pub const BUILT_IN_ROUTES: &[(&str, &str)] = &[("docker", "docker")];

/// The queue a package's jobs go to: its own `build_info.queue`, else the
/// route of its `pkg_type` (`[nats.routes]`, then [`BUILT_IN_ROUTES`]), else [`DEFAULT_QUEUE`].
pub fn queue_of(nats: Option<&NatsSettings>, pkg_type: Option<&str>, own: Option<&str>) -> String {
    let routed = pkg_type.and_then(|pkg_type| {
        let operator = nats.and_then(|nats| nats.routes.get(pkg_type)).map(String::as_str);
        operator.or_else(|| BUILT_IN_ROUTES.iter().find(|(of, _)| *of == pkg_type).map(|(_, queue)| *queue))
    });
    own.or(routed).unwrap_or(DEFAULT_QUEUE).to_string()
}

/// Whether `name` can name a queue: letters, digits, `-` and `_` (it is part of NATS subjects).
pub fn is_queue_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_s_own_queue_wins_then_the_operator_s_route_then_the_built_in_one() {
        let nats = NatsSettings {
            url: "nats://127.0.0.1:4222".to_string(),
            ack_wait: 30,
            max_deliver: 3,
            routes: BTreeMap::from([("jar".to_string(), "jvm".to_string())]),
        };
        assert_eq!(queue_of(Some(&nats), Some("docker"), Some("gpu")), "gpu");
        assert_eq!(queue_of(Some(&nats), Some("jar"), None), "jvm");
        assert_eq!(queue_of(Some(&nats), Some("docker"), None), "docker");
        assert_eq!(queue_of(None, Some("whl"), None), "default");
        assert_eq!(queue_of(None, None, None), "default");
        assert!(is_queue_name("build-x86_64") && !is_queue_name("a.b") && !is_queue_name("") && !is_queue_name("*"));
    }
}
