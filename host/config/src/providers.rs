//! The provider names `loktar.json` may request, per plugin role.
//!
//! `loktar.json` names providers (`"registry_type": "quay"`); whoever runs
//! Loktar decides which plugin answers to each name: the built-in plugins
//! and those the host configuration adds, each under the role its settings
//! give it (the built-ins' are in `builtin.toml` of `loktar-settings`).

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
    /// Every plugin with a role in the host configuration (the built-in
    /// ones included), under that role.
    pub fn from_settings(settings: &loktar_settings::Settings) -> Self {
        use loktar_settings::Role;
        let mut providers = Providers {
            testers: Vec::new(),
            builders: Vec::new(),
            registries: Vec::new(),
            storages: Vec::new(),
            discoveries: Vec::new(),
        };
        for (name, plugin) in &settings.plugins {
            let list = match plugin.role {
                Some(Role::Tester) => &mut providers.testers,
                Some(Role::Builder) => &mut providers.builders,
                Some(Role::Registry) => &mut providers.registries,
                Some(Role::Storage) => &mut providers.storages,
                Some(Role::Discovery) => &mut providers.discoveries,
                Some(Role::Notifier) | None => continue,
            };
            list.push(name.clone());
        }
        providers
    }

    /// The providers Loktar ships.
    pub fn builtin() -> Self {
        Providers::from_settings(&loktar_settings::Settings::builtin())
    }
}
