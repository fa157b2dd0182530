//! The roles a plugin plays and the host capabilities it may be granted, as
//! the host configuration writes them. (The WIT interface has its own
//! copies for the component ABI; the host converts them when it loads a plugin.)

use serde::{Deserialize, Serialize};

use crate::Stage;

/// A plugin role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs a package's tests (`test_type`).
    Tester,
    /// Builds its artifact (`pkg_type`).
    Builder,
    /// Publishes it (`build_info.registry_type`).
    Registry,
    /// Stores it (`build_info.storage_type`).
    Storage,
    /// Tells people how a run went.
    Notifier,
    /// Finds dependencies between packages (`dependencies_type`).
    Discovery,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] =
        [Role::Tester, Role::Builder, Role::Registry, Role::Storage, Role::Notifier, Role::Discovery];

    /// Its name in messages and the host configuration.
    pub fn name(self) -> &'static str {
        match self {
            Role::Tester => "tester",
            Role::Builder => "builder",
            Role::Registry => "registry",
            Role::Storage => "storage",
            Role::Notifier => "notifier",
            Role::Discovery => "discovery",
        }
    }

    /// The role called `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Stage {
    /// The role of the plugins this stage calls.
    pub fn role(self) -> Role {
        match self {
            Stage::Test => Role::Tester,
            Stage::Build => Role::Builder,
            Stage::Publish => Role::Registry,
            Stage::Store => Role::Storage,
            Stage::Notify => Role::Notifier,
        }
    }
}

/// A host capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Write to the stage log.
    Log,
    /// Run allow-listed programs.
    Process,
    /// Build, tag and push images.
    ContainerEngine,
    /// S3-compatible object storage.
    ObjectStore,
    /// The GitHub REST API.
    Github,
    /// Outbound HTTP (`wasi:http`) to allow-listed hosts.
    Http,
    /// Named secrets.
    Secrets,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 7] = [
        Capability::Log,
        Capability::Process,
        Capability::ContainerEngine,
        Capability::ObjectStore,
        Capability::Github,
        Capability::Http,
        Capability::Secrets,
    ];

    /// The name used in messages and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Process => "process",
            Capability::ContainerEngine => "container-engine",
            Capability::ObjectStore => "object-store",
            Capability::Github => "github",
            Capability::Http => "http",
            Capability::Secrets => "secrets",
        }
    }

    /// The capability called `name`.
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|capability| capability.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_configuration_spelling() {
        for role in Role::ALL {
            let written = format!("\"{}\"", role.name());
            assert_eq!(serde_json::from_str::<Role>(&written).ok(), Some(role));
            assert_eq!(Role::from_name(role.name()), Some(role));
        }
        assert_eq!(Role::from_name("notifiers"), None);
        for capability in Capability::ALL {
            let written = format!("\"{}\"", capability.name());
            assert_eq!(serde_json::from_str::<Capability>(&written).ok(), Some(capability));
            assert_eq!(Capability::from_name(capability.name()), Some(capability));
        }
        for stage in Stage::ALL {
            let role = stage.role();
            assert_eq!(serde_json::to_string(&role).ok(), Some(format!("\"{}\"", role.name())));
        }
    }
}
