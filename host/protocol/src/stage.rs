//! The stages every package goes through, in order.

use serde::{Deserialize, Serialize};

/// One step of a package's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Run the tests (tester plugin, `test_type`).
    Test,
    /// Build the artifact (builder plugin, `pkg_type`).
    Build,
    /// Publish it (registry plugin, `build_info.registry_type`).
    Publish,
    /// Store it (storage plugin, `build_info.storage_type`).
    Store,
    /// Tell people how it went (notifier plugins from the host configuration).
    Notify,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [Stage::Test, Stage::Build, Stage::Publish, Stage::Store, Stage::Notify];

    /// Its name in output, log file names, events and the run store.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Test => "test",
            Stage::Build => "build",
            Stage::Publish => "publish",
            Stage::Store => "store",
            Stage::Notify => "notify",
        }
    }

    /// The stage called `name`.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.name() == name)
    }

    /// The `loktar.json` field that picks this stage's provider.
    pub fn field(self) -> &'static str {
        match self {
            Stage::Test => "test_type",
            Stage::Build => "pkg_type",
            Stage::Publish => "build_info.registry_type",
            Stage::Store => "build_info.storage_type",
            Stage::Notify => "notifiers in loktar.toml",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
