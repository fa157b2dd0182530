//! Host bindings generated from `wit/loktar.wit`: the capability interfaces
//! once (world `host`), then each role's exports, sharing those types.

#![allow(missing_docs, clippy::all)]

/// Every capability interface, implemented by the host.
pub mod host {
    wasmtime::component::bindgen!({
        world: "host",
        path: "../../wit",
        imports: { default: async },
    });
}

/// Generates a role world's exports; its imports map onto the `host` bindings.
macro_rules! role_world {
    ($module:ident, $world:literal, [$($interface:literal => $path:ident),*]) => {
        pub mod $module {
            wasmtime::component::bindgen!({
                world: $world,
                path: "../../wit",
                exports: { default: async },
                with: {
                    "loktar:plugin/types": super::host::loktar::plugin::types,
                    $($interface: super::host::loktar::plugin::$path,)*
                },
            });
        }
    };
}

role_world!(tester, "tester", ["loktar:plugin/log" => log, "loktar:plugin/process" => process]);
role_world!(
    builder,
    "builder",
    [
        "loktar:plugin/log" => log,
        "loktar:plugin/process" => process,
        "loktar:plugin/container-engine" => container_engine,
        "loktar:plugin/secrets" => secrets
    ]
);
role_world!(
    registry,
    "registry",
    ["loktar:plugin/log" => log, "loktar:plugin/container-engine" => container_engine, "loktar:plugin/secrets" => secrets]
);
role_world!(
    storage,
    "storage",
    ["loktar:plugin/log" => log, "loktar:plugin/object-store" => object_store, "loktar:plugin/secrets" => secrets]
);
role_world!(
    notifier,
    "notifier",
    ["loktar:plugin/log" => log, "loktar:plugin/github" => github, "loktar:plugin/secrets" => secrets]
);
role_world!(discovery, "discovery", ["loktar:plugin/log" => log]);

pub use host::loktar::plugin::types;
