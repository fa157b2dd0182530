//! One line of a stage's log, and where it came from.

use serde::{Deserialize, Serialize};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The plugin, through the `log` capability.
    Plugin,
    /// The plugin's standard output.
    Stdout,
    /// The plugin's standard error (panics land here).
    Stderr,
    /// A program run through the `process` capability.
    Program,
    /// Loktar itself: why a stage could not begin (an executor that could not fetch its commit).
    Host,
}

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Details.
    Debug,
    /// Normal progress.
    Info,
    /// Worth a look.
    Warn,
    /// A failure.
    Error,
}

/// One line of a stage log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Where it came from.
    pub source: Source,
    /// How important it is.
    pub level: Level,
    /// The text, without the newline.
    pub text: String,
}
