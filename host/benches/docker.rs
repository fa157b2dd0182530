//! Benchmark: the second `loktar run` of an unchanged docker package against
//! the first, on a real Docker Engine and registry (the tests' harness:
//! `dockerd` with its own socket, `docker-registry` with a password).
//!
//! Each round is a new package (so nothing is cached from an earlier round):
//! a Dockerfile that copies 8 MiB of files and runs a step over them, built
//! on the default branch and pushed with `quay`. The first run builds every
//! layer and pushes every blob; the second, of the same commit, finds its
//! release number in the registry, takes every layer from the engine's
//! cache and pushes nothing. Figures: medians of each, their ratio (second
//! ÷ first), and what the second run skipped, read from its stage logs.
//! Run with `cargo bench --bench docker`; `LOKTAR_BENCH_ROUNDS` changes the rounds.

#[allow(dead_code)]
mod common;

#[path = "../../tests/cli/containers.rs"]
#[allow(dead_code)]
mod containers;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{median, ms, noise, ratio, timed};
use containers::{DockerEngine, ImageRegistry, REGISTRY_PASSWORD, host_config};

const PAYLOAD_FILES: usize = 8;
const FILE_SIZE: usize = 1 << 20;

fn main() {
    let rounds: usize = std::env::var("LOKTAR_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-wasm-cache");
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut skipped = String::new();
    for round in 0..rounds {
        let repo = tempfile::Builder::new().prefix("loktar-bench-docker").tempdir().expect("temp dir");
        let package = format!("svc{round}");
        write_repo(repo.path(), &package, round);
        // The operator's configuration, outside the repository (never read from it).
        let operator = tempfile::tempdir().expect("temp dir");
        let config = operator.path().join("loktar.toml");
        std::fs::write(&config, host_config(&engine, &registry.url())).expect("loktar.toml");
        let loktar = || {
            let output = Command::new(env!("CARGO_BIN_EXE_loktar"))
                .args(["--config", &config.display().to_string(), "run", "--all"])
                .current_dir(repo.path())
                .env("LOKTAR_CACHE_DIR", &cache)
                .env("TEST_QUAY_TOKEN", REGISTRY_PASSWORD)
                .env("NO_COLOR", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("loktar");
            assert!(output.status.success(), "loktar run failed: {}", String::from_utf8_lossy(&output.stderr));
        };
        first.push(timed(loktar));
        second.push(timed(loktar));
        let log = |stage: &str| {
            std::fs::read_to_string(repo.path().join(format!(".loktar/runs/2/{package}/{stage}.log")))
                .unwrap_or_default()
        };
        let (build, publish) = (log("build"), log("publish"));
        skipped = format!(
            "{} of {} build steps from the engine's cache, {} of {} tags not pushed again, release number kept: {}",
            build.matches("Using cache").count(),
            build.matches("Step ").count(),
            publish.matches("nothing pushed").count(),
            publish.lines().filter(|line| line.contains("pushed")).count(),
            build.contains("is already release 1"),
        );
    }
    let (first, second) = (median(first), median(second));
    println!("docker package, {rounds} rounds, medians");
    println!("  first run  (build every layer, push every blob): {:>8.0} ms", ms(first));
    println!("  second run (same commit, already published):     {:>8.0} ms", ms(second));
    println!("  ratio second ÷ first: {:.2}", ratio(second, first));
    println!("  skipped on the second run: {skipped}");
}

/// A repository with one docker package on `main`, its files unique to `round`.
fn write_repo(dir: &Path, package: &str, round: usize) {
    let folder = dir.join(package);
    std::fs::create_dir_all(folder.join("data")).expect("package folder");
    std::fs::write(
        dir.join("loktar.json"),
        format!(
            r#"{{ "packages": [ {{ "pkg_name": "{package}", "pkg_type": "docker", "test_type": "no-test", "type": "service", "build_info": {{ "registry_type": "quay" }} }} ] }}"#
        ),
    )
    .expect("loktar.json");
    std::fs::write(
        folder.join("Dockerfile"),
        "FROM busybox:loktar\nCOPY data /data\nRUN cat /data/* > /all && ls -l /all\nCMD [\"ls\", \"/data\"]\n",
    )
    .expect("Dockerfile");
    for file in 0..PAYLOAD_FILES {
        let seed = 0x9e37_79b9_7f4a_7c15 ^ ((round * PAYLOAD_FILES + file) as u64 + 1);
        std::fs::write(folder.join(format!("data/part{file}.bin")), noise(FILE_SIZE, seed)).expect("payload");
    }
    for args in [
        &["init", "--quiet", "--initial-branch=main"][..],
        &["add", "--all"],
        &["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid", "commit", "--quiet", "-m", "a service"],
    ] {
        let status = Command::new("git").args(args).current_dir(dir).status().expect("git");
        assert!(status.success(), "git {args:?} failed");
    }
}
