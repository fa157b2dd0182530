//! The use cases the front ends call — the `loktar` command line today, the
//! server next — so that both take the same path: a repository loaded and
//! its changes planned ([`context`]), a run chosen from a [`RunRequest`] and
//! planned ([`run::plan_run`]), begun with its record and folder
//! ([`run::begin_run`]) and executed by the pipeline; and the packages of a
//! repository without `loktar.json` proposed ([`init`]).
//!
//! Nothing here parses arguments or prints: front ends turn their input
//! into requests and render what comes back.

pub mod context;
pub mod doctor;
pub mod init;
pub mod request;
pub mod run;

pub use request::{Range, RunRequest, RunSelection};
