//! Benchmark: `loktar server` taking GitHub webhooks, against `loktar run`
//! started from the shell on the same change.
//!
//! Latency. A repository of three packages whose `make ci` prints the
//! clock (`date +%s%N`) first thing. Each round commits a change to one
//! package and pushes it to a local origin; then (a) a signed `push`
//! webhook is posted to the server, which fetches its mirror and checks the
//! commit out, and (b) in a clone, `git pull` then `loktar run`, as a
//! developer would. Measured: from the post (a) or the pull (b) to the
//! clock the first stage's program printed. Rounds
//! alternate (a) and (b); reported are p50 and p99 of each and the ratio of
//! the medians (target: ≤ 0.5 — the server keeps plugins compiled and the
//! mirror warm). `LOKTAR_BENCH_ROUNDS` (default 200) sets the rounds.
//!
//! Load. 100 webhooks per second for 30 s (3000; four senders, each on a
//! schedule of its own) of pushes to one branch — each cancels the older
//! run, as `cancel_superseded` does, so the work stays bounded. Reported:
//! the rate reached, every answer's time counted from when it was due (a
//! sender held up by a slow answer counts the wait too; p50, p99, max;
//! target p99 ≤ 100 ms), whether all were accepted, whether the server
//! recorded exactly one run per delivery, and its resident memory before
//! and after. `LOKTAR_BENCH_LOAD_SECS` (default 30) sets the duration.
//!
//! Run with `cargo bench --bench server`; `LOKTAR_BENCH_SERVER_LOG=loktar=debug`
//! shows the server's log (where its time goes).

#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::git;
use serde_json::{Value, json};

const SECRET: &str = "bench-webhook-secret";
const PACKAGES: [&str; 3] = ["lib", "app", "other"];

fn main() {
    let rounds: usize = std::env::var("LOKTAR_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(200).max(2);
    let load_secs: u64 = std::env::var("LOKTAR_BENCH_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let project = Project::new();
    let server = BenchServer::start(project.origin.path());
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-wasm-cache");

    // Warm up both: the plugin compile cache, the mirror, the page cache.
    let warm = project.commit_change(0);
    server.to_first_stage(&warm, "warm-up");
    project.cli_to_first_stage(&cache);

    let (mut served, mut shell) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let change = project.commit_change(round + 1);
        served.push(server.to_first_stage(&change, &format!("round-{round}")));
        shell.push(project.cli_to_first_stage(&cache));
    }
    let (served_p50, served_p99) = (percentile(&mut served, 50), percentile(&mut served, 99));
    let (shell_p50, shell_p99) = (percentile(&mut shell, 50), percentile(&mut shell, 99));
    println!("change pushed → first stage's program running, {rounds} rounds each, alternating");
    println!("  server, signed webhook        p50 {:>7.1} ms   p99 {:>7.1} ms", ms(served_p50), ms(served_p99));
    println!("  git pull && loktar run        p50 {:>7.1} ms   p99 {:>7.1} ms", ms(shell_p50), ms(shell_p99));
    println!("  ratio of medians (server ÷ loktar run): {:.2} (target ≤ 0.5)", common::ratio(served_p50, shell_p50));

    // Load: every push of the same commit pair to `main`, each a new delivery.
    let last = project.commit_change(rounds + 1);
    let runs_before = server.runs_recorded();
    let memory_before = server.resident_kib();
    let started = Instant::now();
    let mut answers = server.load(&last, load_secs);
    let took = started.elapsed();
    let sent = answers.len();
    let accepted = answers.iter().filter(|(status, _)| *status == 202).count();
    let drained = server.wait_until_idle(Duration::from_secs(300));
    let recorded = server.runs_recorded() - runs_before;
    let memory_after = server.resident_kib();
    let mut times: Vec<Duration> = answers.drain(..).map(|(_, time)| time).collect();
    let (p50, p99) = (percentile(&mut times, 50), percentile(&mut times, 99));
    let longest = times.iter().max().copied().unwrap_or_default();
    println!(
        "load: {sent} webhooks in {:.1} s ({:.0}/s), four senders",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64()
    );
    println!("  accepted (202)           {accepted} of {sent}");
    println!(
        "  answer time              p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms (target p99 ≤ 100)",
        ms(p50),
        ms(p99),
        ms(longest)
    );
    println!("  runs recorded            {recorded} (one per delivery: {})", recorded == sent);
    println!("  every run ended          {drained}");
    println!("  server memory (RSS)      {} MiB before, {} MiB after", memory_before / 1024, memory_after / 1024);
}

fn ms(duration: Duration) -> f64 {
    common::ms(duration)
}

/// The `percent`th percentile (nearest rank) of `times`.
fn percentile(times: &mut [Duration], percent: usize) -> Duration {
    times.sort_unstable();
    let rank = (times.len() * percent).div_ceil(100).clamp(1, times.len());
    times[rank - 1]
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos())
}

/// The clock the stage's program printed, in a log (the first line of digits alone).
fn printed_clock(log: &str) -> Option<u128> {
    log.lines().map(str::trim).find(|line| line.len() > 15 && line.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
}

/// The repository, its bare origin, and a clone where `loktar run` runs.
struct Project {
    repo: tempfile::TempDir,
    origin: tempfile::TempDir,
    clone: tempfile::TempDir,
    /// The host configuration of the clone's runs (nothing in it).
    config: PathBuf,
}

impl Project {
    fn new() -> Project {
        let repo = tempfile::Builder::new().prefix("loktar-bench-server").tempdir().expect("temp dir");
        let entries: Vec<String> =
            PACKAGES.iter().map(|name| format!(r#"{{"pkg_name": "{name}", "test_type": "make"}}"#)).collect();
        std::fs::write(repo.path().join("loktar.json"), format!(r#"{{"packages": [{}]}}"#, entries.join(", ")))
            .expect("loktar.json");
        for name in PACKAGES {
            std::fs::create_dir_all(repo.path().join(name)).expect("package folder");
            std::fs::write(repo.path().join(name).join("Makefile"), "ci:\n\t@date +%s%N\n\nclean:\n\t@true\n")
                .expect("Makefile");
        }
        let origin = common::commit_and_publish(repo.path(), "ENH: three packages");
        let bare = origin.path().display().to_string();
        let clone = tempfile::Builder::new().prefix("loktar-bench-clone").tempdir().expect("temp dir");
        git(clone.path(), &["clone", "--quiet", &bare, "."]);
        let config = origin.path().join("loktar-bench.toml");
        std::fs::write(&config, "").expect("host config");
        Project { repo, origin, clone, config }
    }

    /// Commits a change to one package, pushes it, and returns the push (`before`, `after`).
    fn commit_change(&self, round: usize) -> (String, String) {
        let before = git(self.repo.path(), &["rev-parse", "HEAD"]);
        let package = PACKAGES[round % PACKAGES.len()];
        std::fs::write(self.repo.path().join(package).join("change.txt"), format!("{round}\n")).expect("change");
        git(self.repo.path(), &["add", "--all"]);
        git(self.repo.path(), &["commit", "--quiet", "-m", &format!("ENH: change {round}")]);
        git(self.repo.path(), &["push", "--quiet", "origin", "main"]);
        (before, git(self.repo.path(), &["rev-parse", "HEAD"]))
    }

    /// `git pull` then `loktar run` in the clone, from the pull to the first stage's program running.
    fn cli_to_first_stage(&self, cache: &Path) -> Duration {
        let started = now_nanos();
        git(self.clone.path(), &["pull", "--quiet", "--ff-only"]);
        let output = Command::new(env!("CARGO_BIN_EXE_loktar"))
            .args(["--config", &self.config.display().to_string(), "run"])
            .current_dir(self.clone.path())
            .env("LOKTAR_CACHE_DIR", cache)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("loktar run");
        assert!(output.status.success(), "loktar run failed: {}", String::from_utf8_lossy(&output.stderr));
        let runs = self.clone.path().join(".loktar/runs");
        let latest = std::fs::read_dir(&runs)
            .expect("the run folders")
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .expect("a run");
        let run = runs.join(latest.to_string());
        let log = PACKAGES
            .iter()
            .find_map(|name| std::fs::read_to_string(run.join(name).join("test.log")).ok())
            .expect("a test log");
        let printed = printed_clock(&log).expect("the clock in the log");
        Duration::from_nanos(u64::try_from(printed.saturating_sub(started)).unwrap_or(u64::MAX))
    }
}

/// A `loktar server` process, stopped when dropped.
struct BenchServer {
    child: Child,
    url: String,
    _home: tempfile::TempDir,
    agent: ureq::Agent,
}

impl BenchServer {
    fn start(origin: &Path) -> BenchServer {
        let home = tempfile::Builder::new().prefix("loktar-bench-home").tempdir().expect("temp dir");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nwebhook_secret = \"hook\"\nexecutors = 2\n\n\
             [server.repositories.\"acme/shop\"]\nclone_url = {:?}\n\n[secrets.hook]\nenv = \"BENCH_WEBHOOK_SECRET\"\n",
            origin.display().to_string()
        );
        std::fs::write(home.path().join("loktar.toml"), config).expect("loktar.toml");
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-wasm-cache");
        let mut command = Command::new(env!("CARGO_BIN_EXE_loktar"));
        command
            .args(["--config", "loktar.toml", "server"])
            .current_dir(home.path())
            .env("BENCH_WEBHOOK_SECRET", SECRET)
            .env("LOKTAR_CACHE_DIR", cache)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // `LOKTAR_BENCH_SERVER_LOG=loktar=debug` shows where the server's time goes.
        if let Ok(filter) = std::env::var("LOKTAR_BENCH_SERVER_LOG") {
            command.env("RUST_LOG", filter).stderr(Stdio::inherit());
        }
        let mut child = command.spawn().expect("loktar server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("the server's address");
        let url = line.trim().strip_prefix("loktar server listening on ").expect("the address line").to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        BenchServer { child, url, _home: home, agent }
    }

    fn get_json(&self, path: &str) -> Value {
        let mut answer = self.agent.get(format!("{}{path}", self.url)).call().expect("get");
        serde_json::from_str(&answer.body_mut().read_to_string().expect("body")).expect("JSON")
    }

    /// Posts a signed push of `(before, after)` to `main`: status and time taken.
    fn post_push(agent: &ureq::Agent, url: &str, push: &(String, String), delivery: &str) -> (u16, Value) {
        let body = json!({
            "ref": "refs/heads/main", "before": push.0, "after": push.1, "created": false, "deleted": false,
            "repository": { "full_name": "acme/shop", "default_branch": "main" },
            "head_commit": { "id": push.1 }, "pusher": { "name": "bench" }
        })
        .to_string();
        let signature = loktar::server::signature::sign(SECRET.as_bytes(), body.as_bytes());
        let mut answer = agent
            .post(format!("{url}/hooks/github"))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", &signature)
            .send(body.as_bytes())
            .expect("post the webhook");
        let status = answer.status().as_u16();
        (status, serde_json::from_str(&answer.body_mut().read_to_string().unwrap_or_default()).unwrap_or(Value::Null))
    }

    /// Posts the push as a webhook; from the post to its first stage's program running.
    fn to_first_stage(&self, push: &(String, String), delivery: &str) -> Duration {
        let started = now_nanos();
        let (status, answer) = BenchServer::post_push(&self.agent, &self.url, push, delivery);
        assert_eq!(status, 202, "{answer}");
        let run = answer["run"].as_i64().expect("the run's number");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let shown = self.get_json(&format!("/api/runs/{run}"));
            if !matches!(shown["run"]["status"].as_str(), Some("queued" | "running")) {
                assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
                let package = shown["packages"][0]["name"].as_str().expect("a package").to_string();
                let mut log = self
                    .agent
                    .get(format!("{}/api/runs/{run}/packages/{package}/stages/test/log", self.url))
                    .call()
                    .expect("the log");
                let printed = printed_clock(&log.body_mut().read_to_string().expect("log")).expect("the clock");
                return Duration::from_nanos(u64::try_from(printed.saturating_sub(started)).unwrap_or(u64::MAX));
            }
            assert!(Instant::now() < deadline, "run {run} did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// 100 webhooks per second for `secs`, from four senders: each answer's status and time.
    fn load(&self, push: &(String, String), secs: u64) -> Vec<(u16, Duration)> {
        const SENDERS: u64 = 4;
        let interval = Duration::from_millis(10 * SENDERS);
        let per_sender = secs * 100 / SENDERS;
        let start = Instant::now() + Duration::from_millis(100);
        let push = Arc::new(push.clone());
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let (url, push, agent) = (self.url.clone(), push.clone(), self.agent.clone());
                std::thread::spawn(move || {
                    let mut answers = Vec::new();
                    for k in 0..per_sender {
                        let due = start
                            + interval * u32::try_from(k).unwrap_or(u32::MAX)
                            + Duration::from_millis(10 * sender);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let (status, _) = BenchServer::post_push(&agent, &url, &push, &format!("load-{sender}-{k}"));
                        // From when it was due: a wait behind a slow answer counts.
                        answers.push((status, due.elapsed()));
                    }
                    answers
                })
            })
            .collect();
        senders.into_iter().flat_map(|sender| sender.join().expect("a sender")).collect()
    }

    /// Waits until the server has no run left to end; whether it got there.
    fn wait_until_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.get_json("/api/health")["active_runs"] == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Every run the server recorded, whatever its status (from `/metrics`).
    fn runs_recorded(&self) -> usize {
        let mut answer = self.agent.get(format!("{}/metrics", self.url)).call().expect("metrics");
        let text = answer.body_mut().read_to_string().expect("metrics text");
        text.lines()
            .filter(|line| line.starts_with("loktar_runs{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<usize>().ok())
            .sum()
    }

    /// The server's resident memory, in KiB.
    fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
