//! Integration tests: the real `loktar` binary on real git repositories
//! created in temporary folders.

mod containers;
#[path = "../../host/store/tests/support/postgres.rs"]
mod postgres;
mod recorder;
mod s3_server;
mod support;

mod binary;
mod builders;
mod cluster;
mod concurrent_runs;
mod config_errors;
mod docker;
mod doctor;
mod github;
mod graph;
mod hostile_context;
mod hostile_disk;
mod hostile_faults;
mod hostile_isolation;
mod hostile_output;
mod hostile_paths;
mod hostile_terminal;
mod init;
mod languages;
mod layers;
mod manuals;
mod plan;
mod plugin_cache;
mod plugins;
mod pull_requests;
mod range;
mod run;
mod s3;
mod server;
mod slack;
