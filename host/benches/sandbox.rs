//! Benchmark: what the sandbox costs.
//!
//! 1. Isolation: `loktar run --all -j1` on 100 packages whose `make ci` and
//!    `make clean` do nothing, with `[isolation] mode = "namespaces"`
//!    (every program under bubblewrap) against `mode = "none"`, in
//!    alternating rounds; the figure is the ratio of medians (target ≤ 1.2).
//! 2. The log path: one package whose `make ci` writes 100 MB of 100-byte
//!    lines, through Loktar with the default log cap (4 MiB kept, the rest
//!    read and dropped) and with a cap above 100 MB (every line kept and
//!    written to the log file); MB/s of the whole run and Loktar's peak
//!    memory (`VmHWM`, read from `/proc` while it runs), against the same
//!    `make ci` writing to `/dev/null` from a shell.
//!
//! Run with `cargo bench --bench sandbox`; `LOKTAR_BENCH_ROUNDS` changes the rounds.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{commit_all, median, ms, ratio, timed};

const PACKAGES: usize = 100;
/// Bytes of output in the log-path benchmark.
const OUTPUT: usize = 100_000_000;

fn main() {
    let rounds: usize = std::env::var("LOKTAR_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(7);
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-wasm-cache");
    isolation(rounds, &cache);
    log_path(rounds.min(5), &cache);
}

fn isolation(rounds: usize, cache: &Path) {
    let repo = tempfile::Builder::new().prefix("loktar-bench-sandbox").tempdir().expect("temp dir");
    let configs = tempfile::tempdir().expect("temp dir");
    let mut entries = Vec::new();
    for index in 0..PACKAGES {
        let name = format!("p{index:03}");
        entries.push(format!(r#"{{ "pkg_name": "{name}", "test_type": "make" }}"#));
        write(&repo.path().join(&name).join("Makefile"), "ci:\n\t@true\n\nclean:\n\t@true\n");
    }
    write(&repo.path().join("loktar.json"), &format!("{{ \"packages\": [{}] }}\n", entries.join(", ")));
    commit_all(repo.path());
    let isolated = configs.path().join("isolated.toml");
    let open = configs.path().join("open.toml");
    write(&isolated, "[isolation]\nmode = \"namespaces\"\n");
    write(&open, "[isolation]\nmode = \"none\"\n");
    let run = |config: &Path| {
        let output = loktar(repo.path(), cache, config).args(["run", "--all", "-j", "1"]).output().expect("loktar");
        assert!(output.status.success(), "loktar run failed: {}", String::from_utf8_lossy(&output.stderr));
    };
    // Warm up: the compile cache, the page cache, the run store.
    run(&isolated);
    run(&open);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        with.push(timed(|| run(&isolated)));
        without.push(timed(|| run(&open)));
    }
    let (with, without) = (median(with), median(without));
    println!("{PACKAGES} packages, trivial `make ci` + `make clean` (200 programs), -j1, median of {rounds} rounds");
    println!("  isolation off (mode = \"none\")        {:>8.1} ms", ms(without));
    println!(
        "  isolation on (bubblewrap namespaces)  {:>8.1} ms   ratio {:.2} (target ≤ 1.2)",
        ms(with),
        ratio(with, without)
    );
    println!("  per program                           {:>8.2} ms", (ms(with) - ms(without)) / (2 * PACKAGES) as f64);
}

fn log_path(rounds: usize, cache: &Path) {
    let repo = tempfile::Builder::new().prefix("loktar-bench-log").tempdir().expect("temp dir");
    let configs = tempfile::tempdir().expect("temp dir");
    // 100-byte lines (99 characters and the newline), `OUTPUT` bytes in all.
    let line = "x".repeat(99);
    let lines = OUTPUT / 100;
    write(&repo.path().join("a/Makefile"), &format!("ci:\n\t@yes {line} | head -n {lines}\n\nclean:\n\t@true\n"));
    write(&repo.path().join("loktar.json"), r#"{ "packages": [{ "pkg_name": "a", "test_type": "make" }] }"#);
    commit_all(repo.path());
    let capped = configs.path().join("capped.toml");
    let whole = configs.path().join("whole.toml");
    write(&capped, "[isolation]\nmode = \"none\"\n");
    write(&whole, "[isolation]\nmode = \"none\"\n\n[limits]\nlog_kib = 200000\n");

    let shell = || {
        let status = Command::new("make")
            .args(["--no-print-directory", "ci"])
            .current_dir(repo.path().join("a"))
            .stdout(Stdio::null())
            .status()
            .expect("make");
        assert!(status.success());
    };
    // Kept: passes. Capped: the stage fails (its log is full), which is what is measured.
    let run = |config: &Path, expect_success: bool| -> u64 {
        let mut child = loktar(repo.path(), cache, config)
            .args(["run", "--all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("loktar");
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kib = 0;
        loop {
            if let Ok(status) = std::fs::read_to_string(&status_file) {
                peak_kib = peak_kib.max(vm_hwm_kib(&status));
            }
            if let Some(status) = child.try_wait().expect("wait") {
                assert_eq!(status.success(), expect_success, "loktar run ended {status}");
                return peak_kib;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    shell();
    run(&capped, false);
    let (mut base, mut capped_times, mut whole_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut capped_peak, mut whole_peak) = (0, 0);
    for _ in 0..rounds {
        base.push(timed(shell));
        let start = Instant::now();
        capped_peak = capped_peak.max(run(&capped, false));
        capped_times.push(start.elapsed());
        let start = Instant::now();
        whole_peak = whole_peak.max(run(&whole, true));
        whole_times.push(start.elapsed());
    }
    let mb = OUTPUT as f64 / 1e6;
    let rate = |time: Duration| mb / time.as_secs_f64();
    let (base, capped_time, whole_time) = (median(base), median(capped_times), median(whole_times));
    println!("\n{mb:.0} MB of output from `make ci` in 100-byte lines, median of {rounds} rounds");
    println!("  make ci > /dev/null (shell)          {:>8.1} ms   {:>6.0} MB/s", ms(base), rate(base));
    println!(
        "  loktar run, default log cap (4 MiB)  {:>8.1} ms   {:>6.0} MB/s   peak {:>5.1} MiB",
        ms(capped_time),
        rate(capped_time),
        capped_peak as f64 / 1024.0
    );
    println!(
        "  loktar run, every line kept         {:>8.1} ms   {:>6.0} MB/s   peak {:>5.1} MiB",
        ms(whole_time),
        rate(whole_time),
        whole_peak as f64 / 1024.0
    );
}

/// `VmHWM` (peak resident memory, KiB) from a `/proc/<pid>/status`.
fn vm_hwm_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn loktar(repo: &Path, cache: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loktar"));
    command
        .current_dir(repo)
        .env("LOKTAR_CACHE_DIR", cache)
        .env("LOKTAR_CONFIG", config)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null());
    command
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("folder");
    }
    std::fs::write(path, text).expect("write");
}
