//! The bindings generated from `wit/loktar.wit` for the role chosen by the
//! crate feature. Plugins use them through the [`prelude`](crate::prelude).

#[cfg(any(
    all(
        feature = "tester",
        any(
            feature = "builder",
            feature = "registry",
            feature = "storage",
            feature = "notifier",
            feature = "discovery"
        )
    ),
    all(
        feature = "builder",
        any(feature = "registry", feature = "storage", feature = "notifier", feature = "discovery")
    ),
    all(feature = "registry", any(feature = "storage", feature = "notifier", feature = "discovery")),
    all(feature = "storage", any(feature = "notifier", feature = "discovery")),
    all(feature = "notifier", feature = "discovery"),
))]
compile_error!("loktar-sdk: a plugin plays one role; enable exactly one role feature");

/// Generates the bindings of one world into `__world`.
macro_rules! world {
    ($name:literal) => {
        #[doc(hidden)]
        #[allow(missing_docs, clippy::all, unsafe_code)]
        pub mod __world {
            wit_bindgen::generate!({
                world: $name,
                path: "../wit",
                pub_export_macro: true,
                export_macro_name: "export_world",
                default_bindings_module: "loktar_sdk::__world",
                generate_all,
            });
        }
    };
}

#[cfg(feature = "tester")]
world!("tester");
#[cfg(feature = "builder")]
world!("builder");
#[cfg(feature = "registry")]
world!("registry");
#[cfg(feature = "storage")]
world!("storage");
#[cfg(feature = "notifier")]
world!("notifier");
#[cfg(feature = "discovery")]
world!("discovery");

/// The records and enums shared by every role: [`Package`](types::Package),
/// [`RunContext`](types::RunContext), [`Artifact`](types::Artifact),
/// [`Error`](types::Error)…
pub use __world::loktar::plugin::types;

/// Raw host capability bindings, for what the helpers do not cover.
pub mod raw {
    #[cfg(any(feature = "builder", feature = "registry"))]
    pub use super::__world::loktar::plugin::container_engine;
    #[cfg(feature = "notifier")]
    pub use super::__world::loktar::plugin::github;
    pub use super::__world::loktar::plugin::log;
    #[cfg(any(feature = "builder", feature = "storage"))]
    pub use super::__world::loktar::plugin::object_store;
    #[cfg(any(feature = "tester", feature = "builder"))]
    pub use super::__world::loktar::plugin::process;
    #[cfg(any(feature = "builder", feature = "registry", feature = "storage", feature = "notifier"))]
    pub use super::__world::loktar::plugin::secrets;
}
