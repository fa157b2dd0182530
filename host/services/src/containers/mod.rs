//! Container images: the engine that builds them ([`engine`], the Docker
//! Engine API through bollard) and the registries they are pushed to
//! ([`registry`], the distribution v2 HTTP API), as the host configuration
//! names them (`[engine]`, `[registries.<name>]`).
//!
//! Credentials stay here: plugins name a registry, the host signs in.

pub mod context;
pub mod engine;
pub mod program;
pub mod registry;

use std::collections::BTreeMap;

pub use engine::{BuildRequest, Engine, ImageInfo};
pub use program::{ContainerProgram, RunningContainer};
pub use registry::Registry;

use loktar_settings::Settings;
use loktar_support::diagnostic::Diagnostic;

/// The engine and the registries of one host configuration.
#[derive(Debug)]
pub struct Containers {
    /// The engine (connected on first use).
    pub engine: Engine,
    registries: BTreeMap<String, Registry>,
}

impl Containers {
    /// The engine and registries `settings` describe; registry passwords are
    /// read from their secrets' environment variables now.
    pub fn from_settings(settings: &Settings) -> Containers {
        let secret = |name: &str| settings.secret_value(name);
        let registries = settings
            .registries
            .iter()
            .map(|(name, registry)| (name.clone(), Registry::new(name, registry, secret)))
            .collect();
        Containers { engine: Engine::new(&settings.engine), registries }
    }

    /// The registry named `name` in the host configuration.
    pub fn registry(&self, name: &str) -> Result<&Registry, Diagnostic> {
        self.registries.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.registries.keys().map(String::as_str).collect();
            let hint = if known.is_empty() {
                format!("configure it in loktar.toml: `[registries.{name}]` with `url` and `namespace`")
            } else {
                format!("configured registries: {}; or add `[registries.{name}]` to loktar.toml", known.join(", "))
            };
            Diagnostic::new(format!("no registry `{name}` in the host configuration")).hint(hint)
        })
    }
}
