//! Everything that exists once a role feature is enabled.

pub mod bindings;
pub mod helpers;
#[cfg(feature = "http")]
pub mod http;
pub mod roles;

pub use bindings::*;
pub use helpers::*;
pub use roles::*;

/// Everything a plugin usually needs: `use loktar_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::role::bindings::types::{
        Artifact, Capability, Error, FoundDependency, Package, PluginInfo, Role, RunContext, TestReport,
    };
    pub use crate::role::helpers::*;
    pub use crate::role::roles::*;
}
