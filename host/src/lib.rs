//! Loktar: continuous integration for polyglot monorepos.
//!
//! This crate is the top of Loktar's layers: the use cases every front end
//! calls ([`app`]), the front ends — the command line ([`cli`]), the
//! CI server ([`server`]) and the executor that runs a server's jobs on
//! another machine ([`executor`]) — repository mirrors (`mirrors`),
//! output formats ([`render`]) and dependency discovery by plugins ([`discover`]). The layers below are
//! crates of their own, each importing only those beneath it, and are
//! re-exported here under their module names. From the bottom:
//!
//! | crate | modules | what |
//! |---|---|---|
//! | `loktar-protocol` | [`protocol`] | what the host and plugins agree on: stages, roles, run events |
//! | `loktar-support` | [`diagnostic`], [`terminal`], [`beneath`], … | parts every layer uses |
//! | `loktar-settings` | [`settings`], [`vault`] | the operator's `loktar.toml` and its secrets |
//! | `loktar-config` | [`config`] | a repository's `loktar.json` |
//! | `loktar-store` | [`store`] | the run history |
//! | `loktar-services` | [`containers`], [`objects`], [`github`], [`links`] | the outside services |
//! | `loktar-plan` | [`scm`], [`graph`], [`affected`], [`rebuild`] | what a change touches |
//! | `loktar-runtime` | [`runtime`] | the plugin host |
//! | `loktar-pipeline` | [`pipeline`], [`events`] | a run's execution and its events |
//! | `loktar-nats` | [`nats`] | the job queue across machines |
//!
//! `tests/cli/layers.rs` keeps each crate to the layers beneath it.

pub mod app;
pub mod cli;
pub mod discover;
pub mod executor;
pub(crate) mod mirrors;
pub mod render;
pub mod server;

pub use loktar_config as config;
pub use loktar_nats as nats;
pub use loktar_pipeline as pipeline;
pub use loktar_pipeline::events;
pub use loktar_plan::{affected, graph, rebuild, scm};
pub use loktar_protocol as protocol;
pub use loktar_runtime as runtime;
pub use loktar_services::{containers, github, links, loktar_server, objects};
pub use loktar_settings as settings;
pub use loktar_settings::vault;
pub use loktar_store as store;
pub use loktar_support::{beneath, blocking, diagnostic, programs, suggest, terminal, timefmt};
