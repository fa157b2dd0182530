//! The events of a run: what the host's sinks (console, log files, run
//! record) consume, what notifier plugins receive, and what will cross a
//! message queue or a browser connection. Each event names its run and its
//! packages by name, so it means the same wherever it is read.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Line, PackageOutcome, RunOutcome, Stage, StageOutcome};

/// The version of the event JSON. Fields may be added within a version;
/// one renamed, removed or given another meaning makes a new version.
pub const SCHEMA_VERSION: u32 = 1;

/// A package's name, shared by every event that names it.
pub type PackageName = Arc<str>;

/// A run's identity, unique across machines (a time-ordered UUID, so that
/// ids sort by when their runs were made).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// The id written as `id`.
    pub fn new(id: impl Into<String>) -> RunId {
        RunId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEvent {
    /// [`SCHEMA_VERSION`] when it was written.
    pub schema_version: u32,
    /// The run it belongs to.
    pub run_id: RunId,
    /// Its place in the run's stream: 0, 1, 2… in the order delivered.
    pub seq: u64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened; in JSON its fields sit beside the ones above, and
    /// `event` names it.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run begins.
    RunStarted {
        /// The run's page, for notifiers to link to.
        #[serde(default)]
        run_url: Option<String>,
        /// Every package it will run, in run order.
        packages: Vec<PlannedPackage>,
        /// Packages affected but left out as already green (`--rebuild`).
        #[serde(default)]
        not_rebuilt: Vec<NotRebuilt>,
    },
    /// A stage of a package begins.
    StageStarted {
        /// The package.
        package: PackageName,
        /// The stage.
        stage: Stage,
    },
    /// A stage wrote a log line.
    Log {
        /// The package.
        package: PackageName,
        /// The stage.
        stage: Stage,
        /// The line.
        line: Line,
    },
    /// A stage ended (or was skipped, with no `stage_started` before it).
    StageFinished {
        /// The package.
        package: PackageName,
        /// The stage.
        stage: Stage,
        /// How it ended.
        outcome: StageOutcome,
        /// How long it ran, in milliseconds.
        duration_ms: u64,
    },
    /// A package is done, or will never start.
    PackageFinished {
        /// The run's page, for notifiers to link to.
        #[serde(default)]
        run_url: Option<String>,
        /// The package.
        package: PackageName,
        /// How it ended.
        outcome: PackageOutcome,
        /// The stages it was planned to go through (those its configuration does not skip).
        planned: Vec<Stage>,
        /// Each stage that ran or was skipped, in order.
        stages: Vec<StageResult>,
        /// What its build produced, as published and stored.
        artifacts: Vec<Artifact>,
    },
    /// The run is over.
    RunFinished {
        /// The run's page, for notifiers to link to.
        #[serde(default)]
        run_url: Option<String>,
        /// How it ended.
        outcome: RunOutcome,
        /// How long it took, in milliseconds.
        duration_ms: u64,
        /// How each package ended, in run order.
        packages: Vec<PackageResult>,
        /// Why no package ran, when none did (the run started nothing).
        #[serde(default)]
        nothing_to_run: Option<String>,
        /// With `nothing_to_run`: the packages left out as already green
        /// (a run that starts nothing has no `run_started` to name them).
        #[serde(default)]
        not_rebuilt: Vec<NotRebuilt>,
    },
}

/// A package as a run plans it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPackage {
    /// Its name.
    pub name: PackageName,
    /// The stages it will go through (those its configuration does not skip).
    pub planned: Vec<Stage>,
    /// The packages of the run it waits for.
    pub depends_on: Vec<PackageName>,
    /// Why it is in the run: its files that changed (none when it was
    /// asked for, or only depends on a changed package).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_files: Vec<String>,
    /// The changed packages it depends on, directly or not, that brought it into the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub because_of: Vec<PackageName>,
}

/// A package left out of a run because it is already green.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotRebuilt {
    /// The package.
    pub name: String,
    /// The commit whose statuses say it is green.
    pub commit: String,
}

/// How one stage of a package went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageResult {
    /// The stage.
    pub stage: Stage,
    /// How it ended.
    pub outcome: StageOutcome,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

/// How one package of a run ended, for the run's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageResult {
    /// The package.
    pub name: PackageName,
    /// How it ended.
    pub outcome: PackageOutcome,
    /// The time its stages took, in milliseconds.
    pub duration_ms: u64,
}

/// Something a build produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// What it is: `image`, `wheel`, `deb`, `jar`, `file`…
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its version or tag.
    pub version: String,
    /// Where it is: a path under `/artifacts`, or a reference such as an image name.
    pub location: String,
    /// Its content digest (`sha256:…`), when known.
    #[serde(default)]
    pub digest: Option<String>,
}

/// Milliseconds of `duration`, saturating.
pub fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
