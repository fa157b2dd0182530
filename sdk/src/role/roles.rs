//! One trait per role, with defaults for everything a plugin may leave out,
//! and the [`export!`](crate::export) macro that turns an implementation
//! into the component's exports.

#[allow(unused_imports)]
use crate::role::bindings::types::{Artifact, Error, FoundDependency, Package, PluginInfo, RunContext, TestReport};

/// Runs a package's tests (`test_type`).
#[cfg(feature = "tester")]
pub trait Tester {
    /// Who the plugin is and which capabilities it imports.
    fn describe() -> PluginInfo;

    /// Tests the package mounted at `/package`. Default: passes with nothing to run.
    fn test(context: RunContext, package: Package) -> Result<TestReport, Error> {
        let _ = context;
        Ok(TestReport { passed: true, summary: format!("no tests for `{}`", package.name) })
    }
}

/// Builds a package's artifact (`pkg_type`).
#[cfg(feature = "builder")]
pub trait Builder {
    /// Who the plugin is and which capabilities it imports.
    fn describe() -> PluginInfo;

    /// Builds the package mounted at `/package` into `/artifacts`. Default: builds nothing.
    fn build(context: RunContext, package: Package) -> Result<Vec<Artifact>, Error> {
        let _ = (context, package);
        Ok(Vec::new())
    }
}

/// Publishes artifacts (`build_info.registry_type`).
#[cfg(feature = "registry")]
pub trait Registry {
    /// Who the plugin is and which capabilities it imports.
    fn describe() -> PluginInfo;

    /// Publishes the artifacts. Default: hands them on unchanged.
    fn publish(context: RunContext, package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        let _ = (context, package);
        Ok(artifacts)
    }
}

/// Stores artifacts (`build_info.storage_type`).
#[cfg(feature = "storage")]
pub trait Storage {
    /// Who the plugin is and which capabilities it imports.
    fn describe() -> PluginInfo;

    /// Stores the artifacts. Default: hands them on unchanged.
    fn store(context: RunContext, package: Package, artifacts: Vec<Artifact>) -> Result<Vec<Artifact>, Error> {
        let _ = (context, package);
        Ok(artifacts)
    }
}

/// Tells people and systems how a run went.
#[cfg(feature = "notifier")]
pub trait Notifier {
    /// Who the plugin is and which capabilities it imports.
    fn describe() -> PluginInfo;

    /// Receives one run event as JSON. Default: ignores it.
    fn notify(context: RunContext, event: String) -> Result<(), Error> {
        let _ = (context, event);
        Ok(())
    }
}

/// Finds a package's dependencies in its files (`dependencies_type`).
#[cfg(feature = "discovery")]
pub trait Discovery {
    /// Who the plugin is and which capabilities it imports.
    fn describe() -> PluginInfo;

    /// Reads the package mounted at `/package`. Default: finds nothing.
    fn discover(package: Package) -> Result<Vec<FoundDependency>, Error> {
        let _ = package;
        Ok(Vec::new())
    }
}

/// Exports a role implementation as the component's exports:
/// `loktar_sdk::export!(tester: MyTester);`.
#[macro_export]
macro_rules! export {
    (tester: $plugin:ty) => {
        // The generated exports are `unsafe extern "C"` glue; the plugin's own code stays safe.
        #[allow(unsafe_code)]
        const _: () = {
            struct __LoktarExport;
            impl $crate::__world::Guest for __LoktarExport {
                fn describe() -> $crate::types::PluginInfo {
                    <$plugin as $crate::Tester>::describe()
                }
                fn test(
                    context: $crate::types::RunContext,
                    package: $crate::types::Package,
                ) -> ::core::result::Result<$crate::types::TestReport, $crate::types::Error> {
                    <$plugin as $crate::Tester>::test(context, package)
                }
            }
    $crate::__world::export_world!(__LoktarExport with_types_in $crate::__world);
        };
    };
    (builder: $plugin:ty) => {
        // The generated exports are `unsafe extern "C"` glue; the plugin's own code stays safe.
        #[allow(unsafe_code)]
        const _: () = {
            struct __LoktarExport;
            impl $crate::__world::Guest for __LoktarExport {
                fn describe() -> $crate::types::PluginInfo {
                    <$plugin as $crate::Builder>::describe()
                }
                fn build(
                    context: $crate::types::RunContext,
                    package: $crate::types::Package,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::types::Artifact>, $crate::types::Error> {
                    <$plugin as $crate::Builder>::build(context, package)
                }
            }
    $crate::__world::export_world!(__LoktarExport with_types_in $crate::__world);
        };
    };
    (registry: $plugin:ty) => {
        // The generated exports are `unsafe extern "C"` glue; the plugin's own code stays safe.
        #[allow(unsafe_code)]
        const _: () = {
            struct __LoktarExport;
            impl $crate::__world::Guest for __LoktarExport {
                fn describe() -> $crate::types::PluginInfo {
                    <$plugin as $crate::Registry>::describe()
                }
                fn publish(
                    context: $crate::types::RunContext,
                    package: $crate::types::Package,
                    artifacts: ::std::vec::Vec<$crate::types::Artifact>,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::types::Artifact>, $crate::types::Error> {
                    <$plugin as $crate::Registry>::publish(context, package, artifacts)
                }
            }
    $crate::__world::export_world!(__LoktarExport with_types_in $crate::__world);
        };
    };
    (storage: $plugin:ty) => {
        // The generated exports are `unsafe extern "C"` glue; the plugin's own code stays safe.
        #[allow(unsafe_code)]
        const _: () = {
            struct __LoktarExport;
            impl $crate::__world::Guest for __LoktarExport {
                fn describe() -> $crate::types::PluginInfo {
                    <$plugin as $crate::Storage>::describe()
                }
                fn store(
                    context: $crate::types::RunContext,
                    package: $crate::types::Package,
                    artifacts: ::std::vec::Vec<$crate::types::Artifact>,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::types::Artifact>, $crate::types::Error> {
                    <$plugin as $crate::Storage>::store(context, package, artifacts)
                }
            }
    $crate::__world::export_world!(__LoktarExport with_types_in $crate::__world);
        };
    };
    (notifier: $plugin:ty) => {
        // The generated exports are `unsafe extern "C"` glue; the plugin's own code stays safe.
        #[allow(unsafe_code)]
        const _: () = {
            struct __LoktarExport;
            impl $crate::__world::Guest for __LoktarExport {
                fn describe() -> $crate::types::PluginInfo {
                    <$plugin as $crate::Notifier>::describe()
                }
                fn notify(
                    context: $crate::types::RunContext,
                    event: ::std::string::String,
                ) -> ::core::result::Result<(), $crate::types::Error> {
                    <$plugin as $crate::Notifier>::notify(context, event)
                }
            }
    $crate::__world::export_world!(__LoktarExport with_types_in $crate::__world);
        };
    };
    (discovery: $plugin:ty) => {
        // The generated exports are `unsafe extern "C"` glue; the plugin's own code stays safe.
        #[allow(unsafe_code)]
        const _: () = {
            struct __LoktarExport;
            impl $crate::__world::Guest for __LoktarExport {
                fn describe() -> $crate::types::PluginInfo {
                    <$plugin as $crate::Discovery>::describe()
                }
                fn discover(
                    package: $crate::types::Package,
                ) -> ::core::result::Result<::std::vec::Vec<$crate::types::FoundDependency>, $crate::types::Error>
                {
                    <$plugin as $crate::Discovery>::discover(package)
                }
            }
    $crate::__world::export_world!(__LoktarExport with_types_in $crate::__world);
        };
    };
}
