//! How a stage, a package and a run ended.
//!
//! In JSON a stage's or a package's outcome is an object whose `status`
//! names it (`{"status": "failed", "message": …}`); a run's is a word.

use serde::{Deserialize, Serialize};

use crate::Stage;

/// How a stage ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum StageOutcome {
    /// It did its work; `summary` is the plugin's one-line report, if any.
    Passed {
        /// One line for the summary.
        #[serde(default)]
        summary: Option<String>,
    },
    /// It failed.
    Failed {
        /// What went wrong, naming the plugin.
        message: String,
        /// The obvious fix, if any.
        #[serde(default)]
        hint: Option<String>,
        /// Loktar or the plugin itself broke, rather than the package.
        #[serde(default)]
        internal: bool,
    },
    /// The run was cancelled while it ran.
    Cancelled,
    /// The package does not configure it.
    Skipped {
        /// Why, e.g. "no `pkg_type`".
        reason: String,
    },
}

impl StageOutcome {
    /// Its name in output and the run store.
    pub fn name(&self) -> &'static str {
        match self {
            StageOutcome::Passed { .. } => "passed",
            StageOutcome::Failed { .. } => "failed",
            StageOutcome::Cancelled => "cancelled",
            StageOutcome::Skipped { .. } => "skipped",
        }
    }

    /// The message to show beside it, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            StageOutcome::Passed { summary } => summary.as_deref(),
            StageOutcome::Failed { message, .. } => Some(message),
            StageOutcome::Skipped { reason } => Some(reason),
            StageOutcome::Cancelled => None,
        }
    }
}

/// How a package ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PackageOutcome {
    /// Every stage it has passed.
    Passed,
    /// A stage failed.
    Failed {
        /// The stage that failed; `None` when Loktar itself failed.
        #[serde(default)]
        stage: Option<Stage>,
    },
    /// Not started: a package it depends on failed.
    Skipped {
        /// The failed dependency.
        dependency: String,
    },
    /// Cancelled while running, or never started because the run was cancelled.
    Cancelled {
        /// Why the run was cancelled, when whoever cancelled it said
        /// (`superseded by …`); without: at the first failure, or interrupted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl PackageOutcome {
    /// Its name in output and the run store.
    pub fn name(&self) -> &'static str {
        match self {
            PackageOutcome::Passed => "passed",
            PackageOutcome::Failed { .. } => "failed",
            PackageOutcome::Skipped { .. } => "skipped",
            PackageOutcome::Cancelled { .. } => "cancelled",
        }
    }

    /// Why, in words; empty when it passed.
    pub fn detail(&self) -> String {
        match self {
            PackageOutcome::Passed => String::new(),
            PackageOutcome::Failed { stage: Some(stage) } => format!("{stage} failed"),
            PackageOutcome::Failed { stage: None } => "loktar failed while running it".to_string(),
            PackageOutcome::Skipped { dependency } => format!("dependency `{dependency}` failed"),
            PackageOutcome::Cancelled { reason: Some(reason) } => reason.clone(),
            PackageOutcome::Cancelled { reason: None } => "the run was cancelled".to_string(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    /// Every package passed.
    Passed,
    /// Something failed.
    Failed,
    /// Interrupted by a signal.
    Interrupted,
}

impl RunOutcome {
    /// Its name in output and the run store.
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Passed => "passed",
            RunOutcome::Failed => "failed",
            RunOutcome::Interrupted => "interrupted",
        }
    }
}
