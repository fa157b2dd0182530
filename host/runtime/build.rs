//! Builds the built-in plugins (`plugins/*`) for `wasm32-wasip2` and
//! generates the table that embeds them in `loktar-runtime`, and so in the
//! `loktar` binary.
//!
//! Each plugin is built by its own `cargo` invocation: they enable different
//! role features of `loktar-sdk`, which one invocation would unify. They
//! share a target folder beside the host's, so rebuilds are incremental.

use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.ancestors().nth(2).expect("host/runtime is two levels below the root").to_path_buf();
    let out_dir = PathBuf::from(env("OUT_DIR"));
    for watched in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=LOKTAR_PLUGINS_TARGET_DIR");

    let target_dir = std::env::var_os("LOKTAR_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| host_target_dir(&out_dir).join("wasm-plugins"));
    let mut table = String::from(
        "/// Built-in plugins: provider name and component bytes.\npub(crate) const BUILTIN: &[(&str, &[u8])] = &[\n",
    );
    for name in builtin_plugins(&root) {
        let krate = format!("loktar-plugin-{}", name.replace('_', "-"));
        build_plugin(&root, &target_dir, &krate);
        let file = target_dir.join(WASM_TARGET).join("release").join(format!("{}.wasm", krate.replace('-', "_")));
        let embedded = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(&file, &embedded).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        table.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", embedded.display().to_string()));
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), table).expect("write builtin_plugins.rs");
}

/// The built-in plugins' provider names: one per folder of `plugins/` that
/// holds a crate (`plugins/<name>`, crate `loktar-plugin-<name>`), sorted.
/// Their roles and grants are in `host/settings/src/builtin.toml`.
fn builtin_plugins(root: &Path) -> Vec<String> {
    let folders = std::fs::read_dir(root.join("plugins")).expect("the plugins/ folder");
    let mut names: Vec<String> = folders
        .filter_map(|entry| {
            let path = entry.expect("a plugins/ entry").path();
            let name = path.file_name()?.to_str()?.to_string();
            path.join("Cargo.toml").is_file().then_some(name)
        })
        .collect();
    names.sort();
    names
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"))
}

/// `target/` of the host build: OUT_DIR is `target/<profile>/build/loktar-runtime-*/out`.
fn host_target_dir(out_dir: &Path) -> PathBuf {
    out_dir.ancestors().nth(4).map_or_else(|| out_dir.join("target"), Path::to_path_buf)
}

fn build_plugin(root: &Path, target_dir: &Path, krate: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--quiet", "--target", WASM_TARGET, "-p", krate])
        .arg("--manifest-path")
        .arg(root.join("plugins").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's flags and wrappers (clippy, coverage) are for the host, not the plugins.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|e| panic!("cannot run cargo to build {krate}: {e}"));
    if !status.success() {
        panic!(
            "building the built-in plugin {krate} for {WASM_TARGET} failed.\n\
             If the target is missing, install it: `rustup target add {WASM_TARGET}` \
             (or run scripts/setup, which does)."
        );
    }
}
