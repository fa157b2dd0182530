//! What Loktar's host and its plugins must agree on, in one place and
//! without any WebAssembly runtime: plugin roles and host capabilities,
//! the stages a package goes through, the
//! events of a run with the outcomes they report, the commit-status
//! contexts runs post, and how a repository is named.
//!
//! The host emits [`RunEvent`]s and turns them into progress, log files and
//! the run record; notifier plugins receive the same events as JSON
//! (`docs/events.md` documents it, with its [`SCHEMA_VERSION`]). The SDK
//! re-exports this crate, so a plugin reads exactly what the host writes.

mod event;
mod log;
mod outcome;
mod repository;
mod roles;
mod stage;
pub mod status;

pub use event::{
    Artifact, EventKind, NotRebuilt, PackageName, PackageResult, PlannedPackage, RunEvent, RunId, SCHEMA_VERSION,
    StageResult, millis,
};
pub use log::{Level, Line, Source};
pub use outcome::{PackageOutcome, RunOutcome, StageOutcome};
pub use repository::{repository_slug, repository_url};
pub use roles::{Capability, Role};
pub use stage::Stage;
