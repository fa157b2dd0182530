//! `loktar-sdk`: write Loktar plugins in Rust.
//!
//! A Loktar plugin is a WebAssembly component playing one role in a pipeline:
//! a tester, builder, registry, storage, notifier or dependency discovery.
//! Pick the role with a Cargo feature, implement its trait, and export it:
//!
//! ```toml
//! [package]
//! name = "loktar-plugin-pytest"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! loktar-sdk = { version = "0.1", features = ["tester"] }
//! ```
//!
//! ```ignore
//! use loktar_sdk::prelude::*;
//!
//! struct Pytest;
//!
//! impl Tester for Pytest {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("pytest", env!("CARGO_PKG_VERSION"), Role::Tester)
//!             .with_capabilities(&[Capability::Log, Capability::Process])
//!     }
//!
//!     fn test(_context: RunContext, package: Package) -> Result<TestReport, Error> {
//!         log::info(&format!("testing `{}`", package.name));
//!         let status = process::run(&Command::new("pytest").arg("-q"))?;
//!         Ok(TestReport { passed: status.code == Some(0), summary: "pytest".into() })
//!     }
//! }
//!
//! loktar_sdk::export!(tester: Pytest);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` and point the
//! host configuration at the `.wasm` file:
//!
//! ```toml
//! [plugins.pytest]
//! path = "target/wasm32-wasip2/release/loktar_plugin_pytest.wasm"
//! capabilities = ["log", "process"]
//! programs = ["pytest"]
//! ```
//!
//! Inside the plugin the package folder is mounted read-only at `/package`
//! and the artifact folder read-write at `/artifacts`; nothing else of the
//! host's filesystem exists. Every import must be declared in
//! [`PluginInfo::capabilities`] and granted by the host configuration, or
//! the plugin does not load.
//!
//! Without a role feature the crate is empty: a plugin plays exactly one role.

#![deny(missing_docs)]

#[cfg(loktar_role)]
mod role;

#[cfg(loktar_role)]
pub use role::*;

/// What the host and plugins agree on: stages, the run events a notifier
/// receives (`RunEvent`, documented in Loktar's `docs/events.md`), status
/// contexts and repository names.
pub use loktar_protocol as protocol;
