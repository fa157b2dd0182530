//! Benchmark: the cost of a plugin call against starting a process.
//!
//! - A no-op tester called 10,000 times, each call in a fresh `Store` with a
//!   fresh instance (as every stage runs), against spawning `/bin/true`
//!   10,000 times from the same process: medians, p99 and their ratio.
//! - `loktar plugins` (loads the four built-in plugins) with a cold and a warm
//!   compile cache.
//!
//! Run with `cargo bench --bench plugin`.

#[allow(dead_code)]
#[path = "../../tests/cli/support.rs"]
mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loktar::config::{Providers, SourceFile, parse};
use loktar::runtime::bindings::types::RunContext;
use loktar::runtime::{CallEnv, Mounts, PluginEngine, PluginSession};
use loktar::settings::Settings;

const CALLS: usize = 10_000;
const STARTS: usize = 5;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("loktar.toml");
    let noop = support::test_plugin("noop");
    std::fs::write(&config, format!("[plugins.noop]\npath = {:?}\nrole = \"tester\"\n", noop.display().to_string()))
        .expect("write config");
    let settings = Settings::load(Some(&config), dir.path()).expect("settings");
    let cache = dir.path().join("cache");
    let engine = Arc::new(PluginEngine::new(Some(&cache)).expect("plugin engine"));
    let session = PluginSession::new(engine, settings);
    let package =
        parse(&SourceFile::new("loktar.json", r#"{"packages": [{"pkg_name": "p"}]}"#.into()), &Providers::builtin())
            .expect("package")
            .remove(0);
    let env = CallEnv::with_mounts(Mounts { root: dir.path().to_path_buf(), package: String::new(), artifacts: None });
    let context = RunContext {
        run_id: "bench".into(),
        commit: String::new(),
        branch: None,
        base: None,
        default_branch: "main".into(),
        on_default_branch: false,
        commit_time: None,
        repository_url: None,
        author: None,
        settings: "{}".into(),
    };
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let plugin_calls = tokio.block_on(async {
        session.test("noop", &context, &package, &env).await.expect("warm-up call");
        let mut times = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let start = Instant::now();
            let outcome = session.test("noop", &context, &package, &env).await.expect("call");
            times.push(start.elapsed());
            assert!(outcome.value.passed);
        }
        times
    });
    let spawns: Vec<Duration> = (0..CALLS)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new("/bin/true").stdout(Stdio::null()).status().expect("spawn /bin/true");
            let elapsed = start.elapsed();
            assert!(status.success());
            elapsed
        })
        .collect();
    let (call_median, call_p99) = stats(plugin_calls);
    let (spawn_median, spawn_p99) = stats(spawns);
    println!("no-op plugin call (fresh store + instance) vs spawning /bin/true, {CALLS} each");
    println!("  plugin call   median {:>9.1} µs   p99 {:>9.1} µs", us(call_median), us(call_p99));
    println!("  /bin/true     median {:>9.1} µs   p99 {:>9.1} µs", us(spawn_median), us(spawn_p99));
    println!(
        "  ratio (/bin/true ÷ plugin call): median {:.1}×, p99 {:.1}×",
        spawn_median.as_secs_f64() / call_median.as_secs_f64(),
        spawn_p99.as_secs_f64() / call_p99.as_secs_f64()
    );

    let repo = tempfile::tempdir().expect("temp dir");
    let start_with = |cache: &std::path::Path| {
        let start = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_loktar"))
            .args(["plugins", "--format", "json"])
            .current_dir(repo.path())
            .env("LOKTAR_CACHE_DIR", cache)
            .stdout(Stdio::null())
            .status()
            .expect("run loktar");
        assert!(status.success());
        start.elapsed()
    };
    let cold: Vec<Duration> = (0..STARTS).map(|i| start_with(&dir.path().join(format!("cold-{i}")))).collect();
    let warm_cache = dir.path().join("warm");
    start_with(&warm_cache);
    let warm: Vec<Duration> = (0..STARTS).map(|_| start_with(&warm_cache)).collect();
    let (cold, _) = stats(cold);
    let (warm, _) = stats(warm);
    println!("`loktar plugins` (loads the 4 built-in plugins), median of {STARTS}");
    println!("  cold compile cache {:>8.1} ms", ms(cold));
    println!("  warm compile cache {:>8.1} ms   ({:.1}× faster)", ms(warm), cold.as_secs_f64() / warm.as_secs_f64());
}

fn stats(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    (times[times.len() / 2], p99)
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
