//! Sets `cfg(loktar_role)` when a role feature is enabled: without one the
//! crate is empty (a plugin plays exactly one role).

const ROLES: [&str; 6] = ["TESTER", "BUILDER", "REGISTRY", "STORAGE", "NOTIFIER", "DISCOVERY"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loktar_role)");
    if ROLES.iter().any(|role| std::env::var_os(format!("CARGO_FEATURE_{role}")).is_some()) {
        println!("cargo::rustc-cfg=loktar_role");
    }
}
