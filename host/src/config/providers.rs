//! The provider names `loktar.json` may request, per plugin role.
//!
//! `loktar.json` names providers (`"registry_type": "quay"`); whoever runs
//! Loktar decides which plugin answers to each name. Until the plugin host
//! lands, the names are the built-in ones.

/// Provider names accepted for each field of `loktar.json` that names a plugin.
#[derive(Debug, Clone)]
pub struct Providers {
    /// `test_type`: tester plugins (`no-test` is always accepted).
    pub testers: Vec<String>,
    /// `pkg_type`: builder plugins.
    pub builders: Vec<String>,
    /// `build_info.registry_type`: registry plugins.
    pub registries: Vec<String>,
    /// `build_info.storage_type`: storage plugins.
    pub storages: Vec<String>,
    /// `dependencies_type`: dependency discovery plugins.
    pub discoveries: Vec<String>,
}

/// `test_type` value that skips the test stage.
pub const NO_TEST: &str = "no-test";

/// `build_info.build_type` values: build with the local engine or remotely from a URL.
pub const BUILD_TYPES: &[&str] = &["local", "url"];

impl Providers {
    /// The built-in providers plus every plugin the host configuration adds.
    pub fn from_settings(settings: &crate::settings::Settings) -> Self {
        use crate::settings::Role;
        let mut providers = Providers::builtin();
        for (name, plugin) in &settings.plugins {
            let list = match plugin.role {
                Some(Role::Tester) => &mut providers.testers,
                Some(Role::Builder) => &mut providers.builders,
                Some(Role::Registry) => &mut providers.registries,
                Some(Role::Storage) => &mut providers.storages,
                Some(Role::Discovery) => &mut providers.discoveries,
                Some(Role::Notifier) | None => continue,
            };
            if !list.contains(name) {
                list.push(name.clone());
            }
        }
        providers
    }

    /// The providers Loktar ships.
    pub fn builtin() -> Self {
        let owned = |names: &[&str]| names.iter().map(|name| (*name).to_string()).collect();
        Providers {
            testers: owned(&["make"]),
            builders: owned(&["docker", "whl", "deb", "jar"]),
            registries: owned(&["quay"]),
            storages: owned(&["s3", "fs"]),
            discoveries: owned(&["python_requirements", "dockerfile", "docker_compose"]),
        }
    }
}
