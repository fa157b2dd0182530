//! Loktar: continuous integration for polyglot monorepos.
//!
//! The crate is the `loktar` binary's library. Data flows from `loktar.json`
//! ([`config`]) and git ([`scm`]) through the dependency graph ([`graph`]) to
//! a plan, which [`render`] prints. See `DESIGN.md` for the whole map.

pub mod affected;
pub mod app;
pub mod beneath;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod containers;
pub mod diagnostic;
pub mod discover;
pub mod events;
pub mod github;
pub mod graph;
pub mod links;
pub mod objects;
pub mod pipeline;
pub mod programs;
pub mod rebuild;
pub mod render;
pub mod runtime;
pub mod scm;
pub mod settings;
pub mod store;
pub mod suggest;
pub mod terminal;
pub mod timefmt;
pub mod vault;
