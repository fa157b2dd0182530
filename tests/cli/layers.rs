//! The host's crates are layers: each may depend only on the layers beneath
//! it, so a newcomer finds each part where its name says and a change low
//! down never needs a higher layer to compile.

use std::path::Path;

/// From the bottom up; the README's layout table lists them in this order.
const LAYERS: &[(&str, &str)] = &[
    ("loktar-protocol", "host/protocol"),
    ("loktar-support", "host/support"),
    ("loktar-settings", "host/settings"),
    ("loktar-config", "host/config"),
    ("loktar-store", "host/store"),
    ("loktar-services", "host/services"),
    ("loktar-plan", "host/plan"),
    ("loktar-runtime", "host/runtime"),
    ("loktar-pipeline", "host/pipeline"),
    ("loktar-nats", "host/nats"),
    ("loktar", "host"),
];

/// The `loktar-*` crates named under `[dependencies]` of a `Cargo.toml`.
fn loktar_dependencies(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if in_dependencies && line.starts_with("loktar-") {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
            found.push(name.to_string());
        }
    }
    found
}

#[test]
fn each_host_crate_depends_only_on_layers_beneath_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    for (position, (name, folder)) in LAYERS.iter().enumerate() {
        let manifest = std::fs::read_to_string(root.join(folder).join("Cargo.toml")).expect("a Cargo.toml");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{folder} is not `{name}`");
        let beneath: Vec<&str> = LAYERS[..position].iter().map(|(n, _)| *n).collect();
        for dependency in loktar_dependencies(&manifest) {
            assert!(
                beneath.contains(&dependency.as_str()),
                "`{name}` depends on `{dependency}`, which is not beneath it"
            );
        }
    }
    // Every crate of the workspace's host/ is one of the layers.
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace Cargo.toml");
    let members: Vec<&str> = workspace.lines().filter_map(|l| l.trim().strip_prefix("\"host")).collect();
    assert_eq!(members.len(), LAYERS.len(), "a host crate is missing from LAYERS: {members:?}");
}

#[test]
fn a_dependency_list_is_read_from_the_dependencies_section_only() {
    let manifest = "[package]\nname = \"loktar-x\"\n\n[dependencies]\nloktar-support.workspace = true\nloktar-protocol = { workspace = true }\nserde = \"1\"\n\n[dev-dependencies]\nloktar-runtime.workspace = true\n";
    assert_eq!(loktar_dependencies(manifest), ["loktar-support", "loktar-protocol"]);
}
