//! Benchmark: `loktar run` end to end against the shell loop it replaces.
//!
//! A repository of 100 packages whose `make ci` and `make clean` do nothing
//! (each depending on up to two earlier ones). Baseline: a shell loop
//! running `make ci && make clean` in each package folder, one after the
//! other. Measured: `loktar run --all -j1` (same work, sequential) and
//! `-j2`, each timed as a whole process — startup, plugin load from the
//! compile cache, scheduling, log files and the run record included. Rounds
//! alternate between the three; the figures are ratios of medians. Run with
//! `cargo bench --bench run`; `LOKTAR_BENCH_ROUNDS` changes the rounds.

#[allow(dead_code)]
mod common;

use common::{commit_all, median, ms, ratio, timed};
use std::path::Path;
use std::process::{Command, Stdio};

const PACKAGES: usize = 100;

fn main() {
    let repo = tempfile::Builder::new().prefix("loktar-bench-run").tempdir().expect("temp dir");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-wasm-cache");
    write_repo(repo.path());
    let rounds: usize = std::env::var("LOKTAR_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(7);

    let shell_loop = "for dir in p*/; do (cd \"$dir\" && make ci && make clean) >/dev/null || exit 1; done";
    let shell = || {
        let status = Command::new("sh").args(["-c", shell_loop]).current_dir(repo.path()).status().expect("sh");
        assert!(status.success(), "the shell loop failed");
    };
    let loktar = |jobs: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_loktar"))
            .args(["run", "--all", "-j", jobs])
            .current_dir(repo.path())
            .env("LOKTAR_CACHE_DIR", &cache)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("loktar");
        assert!(output.status.success(), "loktar run failed: {}", String::from_utf8_lossy(&output.stderr));
    };

    // Warm up: the plugin compile cache, the page cache, the run store.
    shell();
    loktar("1");
    let (mut shell_times, mut sequential, mut parallel) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        shell_times.push(timed(shell));
        sequential.push(timed(|| loktar("1")));
        parallel.push(timed(|| loktar("2")));
    }
    let (shell, sequential, parallel) = (median(shell_times), median(sequential), median(parallel));
    println!("{PACKAGES} packages, trivial `make ci` + `make clean`, median of {rounds} rounds");
    println!("  shell loop (sequential)      {:>8.1} ms", ms(shell));
    println!("  loktar run --all -j1         {:>8.1} ms   ratio {:.2}", ms(sequential), ratio(sequential, shell));
    println!("  loktar run --all -j2         {:>8.1} ms   ratio {:.2}", ms(parallel), ratio(parallel, shell));
    println!("  per package, -j1 overhead    {:>8.2} ms", (ms(sequential) - ms(shell)) / PACKAGES as f64);
}

/// `p000` … `p099`, each with a trivial Makefile, depending on up to two earlier packages.
fn write_repo(root: &Path) {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % bound as u64).expect("small")
    };
    let mut entries = Vec::new();
    for index in 0..PACKAGES {
        let name = format!("p{index:03}");
        let mut deps: Vec<String> = Vec::new();
        if index > 0 {
            for _ in 0..next(3) {
                let dep = format!("\"p{:03}\"", next(index));
                if !deps.contains(&dep) {
                    deps.push(dep);
                }
            }
        }
        entries
            .push(format!(r#"{{ "pkg_name": "{name}", "test_type": "make", "depends_on": [{}] }}"#, deps.join(", ")));
        std::fs::create_dir_all(root.join(&name)).expect("package folder");
        std::fs::write(root.join(&name).join("Makefile"), "ci:\n\t@true\n\nclean:\n\t@true\n").expect("Makefile");
    }
    std::fs::write(root.join("loktar.json"), format!("{{ \"packages\": [\n  {}\n] }}\n", entries.join(",\n  ")))
        .expect("loktar.json");
    commit_all(root);
}
