//! Benchmark: a run of many packages over `loktar executor` processes on
//! NATS JetStream, against the embedded server's in-process executors on
//! the same repository.
//!
//! Two repositories whose `make ci` prints `ran <package> <clock>`: one of
//! `LOKTAR_BENCH_PACKAGES` (default 1,000) packages in a random DAG (each
//! depends on up to two earlier ones, fixed seed), and a chain of 100
//! (each depends on the one before: one job ready at a time, executors
//! idle). Each mode starts a `loktar server` on local origins and runs
//! every package of each once (`POST /api/runs`, `"packages": "all"`):
//! embedded with `executors = 4`, then with `[nats]` and four `loktar
//! executor -j 1` processes. Reported per mode: the DAG's time from the
//! request to the run's end (and the ratio of the two; target ≤ 1.3), jobs
//! lost (packages that did not pass) and run twice (`ran <package>` lines
//! beyond one per package, counted in every stage log), the chain's
//! dispatch latency — from a package being ready (the server's
//! `package_finished` of the one before, or `run_started`) to its program
//! printing the clock — p50 and p99 (target p99 ≤ 50 ms), and the peak
//! resident memory of the server and of each executor. Then the NATS mode
//! again with the server's run store in PostgreSQL (a server of the
//! bench's own), against the same embedded baseline.
//!
//! Run with `cargo bench --bench cluster`; nats-server comes from
//! `scripts/setup`.

#[allow(dead_code)]
mod common;
#[path = "../nats/tests/support/nats_server.rs"]
mod nats_server;
#[path = "../store/tests/support/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "bench-api-token";
const EXECUTORS: usize = 4;
/// The packages of the chain.
const CHAIN: usize = 100;

fn main() {
    let count: usize = std::env::var("LOKTAR_BENCH_PACKAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000).max(2);
    let projects = [Project::new(count, Shape::Dag), Project::new(CHAIN, Shape::Chain)];
    println!(
        "{count} packages of `make ci` in a random DAG and a chain of {CHAIN}, every one run once, {EXECUTORS} executors"
    );

    let embedded = {
        let server = Process::server(&projects, &format!("executors = {EXECUTORS}"), "");
        measure(&server, &[])
    };
    report("embedded server, in-process executors", &embedded);

    let nats = nats_server::NatsServer::start();
    let elsewhere = {
        let tables = format!("[nats]\nurl = {:?}\n", nats.url);
        let server = Process::server(&projects, "", &tables);
        let executors: Vec<Process> = (0..EXECUTORS).map(|_| Process::executor(&server)).collect();
        measure(&server, &executors)
    };
    report("server with `loktar executor` processes over NATS", &elsewhere);
    println!(
        "  ratio of totals (executors over NATS ÷ embedded): {:.2} (target ≤ 1.3)",
        common::ratio(elsewhere.total, embedded.total)
    );

    // The same, the server's runs kept in PostgreSQL.
    let store = postgres::Postgres::start();
    let on_postgres = {
        let tables = format!("[nats]\nurl = {:?}\n\n[secrets.pg]\nenv = \"BENCH_PG_PASSWORD\"\n", nats.url);
        let database = format!("database = {:?}\ndatabase_password = \"pg\"", store.create_database("bench"));
        let server = Process::server(&projects, &database, &tables);
        let executors: Vec<Process> = (0..EXECUTORS).map(|_| Process::executor(&server)).collect();
        measure(&server, &executors)
    };
    report("the same, the run store in PostgreSQL", &on_postgres);
    println!(
        "  ratio of totals (over NATS with PostgreSQL ÷ embedded): {:.2}",
        common::ratio(on_postgres.total, embedded.total)
    );
}

/// What one mode's run gave.
struct Measured {
    total: Duration,
    lost: usize,
    twice: usize,
    dispatch: Vec<Duration>,
    server_kib: u64,
    executors_kib: Vec<u64>,
}

fn report(mode: &str, measured: &Measured) {
    let mut dispatch = measured.dispatch.clone();
    println!("{mode}");
    println!(
        "  total {:>8.1} s   jobs lost {}   jobs run twice {}",
        measured.total.as_secs_f64(),
        measured.lost,
        measured.twice
    );
    println!(
        "  dispatch (ready → program running) p50 {:>6.1} ms   p99 {:>6.1} ms (target p99 ≤ 50 ms)",
        common::ms(percentile(&mut dispatch, 50)),
        common::ms(percentile(&mut dispatch, 99))
    );
    let executors: Vec<String> = measured.executors_kib.iter().map(|kib| format!("{} MiB", kib / 1024)).collect();
    println!(
        "  peak memory: server {} MiB{}",
        measured.server_kib / 1024,
        if executors.is_empty() { String::new() } else { format!(", executors {}", executors.join(" / ")) }
    );
}

/// Runs every package of both repositories once on `server`, and measures it.
fn measure(server: &Process, executors: &[Process]) -> Measured {
    let dag = run_all(server, Shape::Dag.repository());
    let chain = run_all(server, Shape::Chain.repository());
    Measured {
        total: dag.total,
        lost: dag.lost + chain.lost,
        twice: dag.twice + chain.twice,
        dispatch: chain.dispatch,
        server_kib: server.peak_kib(),
        executors_kib: executors.iter().map(Process::peak_kib).collect(),
    }
}

/// How one run went.
struct Ran {
    total: Duration,
    lost: usize,
    twice: usize,
    dispatch: Vec<Duration>,
}

/// Runs every package of `repository` once on `server`.
fn run_all(server: &Process, repository: &str) -> Ran {
    let started = Instant::now();
    let body = json!({ "repository": repository, "branch": "main", "packages": "all" });
    let (status, answer) = server.post("/api/runs", &body);
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    let shown = loop {
        let shown = server.get_json(&format!("/api/runs/{run}"));
        if !matches!(shown["run"]["status"].as_str(), Some("queued" | "running")) {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let total = started.elapsed();
    let packages = shown["packages"].as_array().cloned().unwrap_or_default();
    let passed = packages.iter().filter(|p| p["status"] == "passed").count();
    let count = usize::try_from(shown["run"]["packages"].as_i64().unwrap_or(0)).unwrap_or(0);
    // Every log: how often each package's program ran, and when.
    let mut clocks: HashMap<String, i128> = HashMap::new();
    let mut twice = 0;
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        let log = server.get_text(&format!("/api/runs/{run}/packages/{name}/stages/test/log"));
        let ran: Vec<i128> = log
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("ran {name} ")))
            .filter_map(|clock| clock.trim().parse().ok())
            .collect();
        twice += ran.len().saturating_sub(1);
        if let Some(first) = ran.first() {
            clocks.insert(name.to_string(), *first);
        }
    }
    let dispatch = dispatch_latencies(&server.get_text(&format!("/api/runs/{run}/events")), &clocks);
    Ran { total, lost: count.saturating_sub(passed), twice, dispatch }
}

/// From each package's readiness, as the run's events say, to its program's clock.
fn dispatch_latencies(events: &str, clocks: &HashMap<String, i128>) -> Vec<Duration> {
    let mut started_at = 0i128;
    let mut finished: HashMap<String, i128> = HashMap::new();
    let mut depends: HashMap<String, Vec<String>> = HashMap::new();
    for data in events.lines().filter_map(|line| line.strip_prefix("data: ")) {
        let Ok(event) = serde_json::from_str::<Value>(data) else { continue };
        let at = event["at"].as_str().and_then(nanos).unwrap_or_default();
        match event["event"].as_str() {
            Some("run_started") => {
                started_at = at;
                for package in event["packages"].as_array().into_iter().flatten() {
                    let name = package["name"].as_str().unwrap_or_default().to_string();
                    let on = package["depends_on"].as_array().into_iter().flatten();
                    depends.insert(name, on.filter_map(|d| d.as_str().map(str::to_string)).collect());
                }
            }
            Some("package_finished") => {
                finished.insert(event["package"].as_str().unwrap_or_default().to_string(), at);
            }
            _ => {}
        }
    }
    clocks
        .iter()
        .filter_map(|(name, clock)| {
            let ready = depends.get(name)?.iter().filter_map(|d| finished.get(d)).copied().max().unwrap_or(started_at);
            Some(Duration::from_nanos(u64::try_from(clock - ready).unwrap_or(0)))
        })
        .collect()
}

fn nanos(rfc3339: &str) -> Option<i128> {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos())
}

fn percentile(times: &mut [Duration], percent: usize) -> Duration {
    times.sort_unstable();
    times.get((times.len().saturating_sub(1)) * percent / 100).copied().unwrap_or_default()
}

/// How a repository's packages depend on one another.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Each on up to two earlier ones, at random.
    Dag,
    /// Each on the one before.
    Chain,
}

impl Shape {
    fn repository(self) -> &'static str {
        match self {
            Shape::Dag => "acme/shop",
            Shape::Chain => "acme/chain",
        }
    }
}

/// A repository's bare origin.
struct Project {
    _repo: tempfile::TempDir,
    origin: tempfile::TempDir,
    shape: Shape,
}

impl Project {
    /// `count` packages of `shape`.
    fn new(count: usize, shape: Shape) -> Project {
        let repo = tempfile::Builder::new().prefix("loktar-bench-cluster").tempdir().expect("temp dir");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |below: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).unwrap_or(0) % below.max(1)
        };
        let mut entries = Vec::with_capacity(count);
        for index in 0..count {
            let name = format!("p{index:04}");
            let mut depends: Vec<String> = Vec::new();
            if index > 0 && shape == Shape::Chain {
                depends.push(format!("p{:04}", index - 1));
            } else if index > 0 {
                for _ in 0..next(3) {
                    let on = format!("p{:04}", next(index));
                    if !depends.contains(&on) {
                        depends.push(on);
                    }
                }
            }
            entries.push(json!({ "pkg_name": name, "test_type": "make", "depends_on": depends }));
            let folder = repo.path().join(&name);
            std::fs::create_dir_all(&folder).expect("package folder");
            std::fs::write(folder.join("Makefile"), "ci:\n\t@echo ran $(notdir $(CURDIR)) $$(date +%s%N)\n")
                .expect("Makefile");
        }
        std::fs::write(repo.path().join("loktar.json"), json!({ "packages": entries }).to_string())
            .expect("loktar.json");
        let origin = common::commit_and_publish(repo.path(), "ENH: packages");
        Project { _repo: repo, origin, shape }
    }
}

/// A `loktar server` or `loktar executor`, stopped when dropped.
struct Process {
    child: Child,
    url: String,
    home: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Process {
    fn command(home: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loktar"));
        command
            .current_dir(home)
            .env("BENCH_API_TOKEN", TOKEN)
            .env("BENCH_PG_PASSWORD", postgres::PASSWORD)
            .env("LOKTAR_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-wasm-cache"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // `LOKTAR_BENCH_LOG=loktar=debug` shows where the servers' and executors' time goes.
        if let Ok(filter) = std::env::var("LOKTAR_BENCH_LOG") {
            command.env("RUST_LOG", filter).stderr(Stdio::inherit());
        }
        command
    }

    /// A server building `projects`, `extra` in its `[server]` and `tables` after.
    fn server(projects: &[Project], extra: &str, tables: &str) -> Process {
        let home = tempfile::Builder::new().prefix("loktar-bench-home").tempdir().expect("temp dir");
        let repositories: String = projects
            .iter()
            .map(|project| {
                let origin = project.origin.path().display().to_string();
                format!("[server.repositories.\"{}\"]\nclone_url = {origin:?}\n\n", project.shape.repository())
            })
            .collect();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\napi_tokens = [\"admin\"]\n{extra}\n\n\
             {repositories}[secrets.admin]\nenv = \"BENCH_API_TOKEN\"\n\n{tables}"
        );
        std::fs::write(home.path().join("loktar.toml"), config).expect("loktar.toml");
        let mut child =
            Process::command(home.path()).args(["--config", "loktar.toml", "server"]).spawn().expect("loktar server");
        let line = first_line(&mut child);
        let url = line.trim().strip_prefix("loktar server listening on ").expect("the address line").to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Process { child, url, home, agent }
    }

    /// An executor taking one job at a time, with `server`'s configuration.
    fn executor(server: &Process) -> Process {
        let home = tempfile::Builder::new().prefix("loktar-bench-executor").tempdir().expect("temp dir");
        let config = server.home.path().join("loktar.toml").display().to_string();
        let work = home.path().display().to_string();
        let mut child = Process::command(home.path())
            .args(["--config", &config, "executor", "-j", "1", "--work-dir", &work])
            .spawn()
            .expect("loktar executor");
        first_line(&mut child);
        Process { child, url: String::new(), home, agent: ureq::Agent::new_with_defaults() }
    }

    fn get_text(&self, path: &str) -> String {
        let mut answer = self.agent.get(format!("{}{path}", self.url)).call().expect("get");
        answer.body_mut().with_config().limit(1 << 30).read_to_string().expect("body")
    }

    fn get_json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get_text(path)).expect("JSON")
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut answer = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .send(body.to_string().as_bytes())
            .expect("post");
        let status = answer.status().as_u16();
        (status, serde_json::from_str(&answer.body_mut().read_to_string().unwrap_or_default()).unwrap_or(Value::Null))
    }

    /// Its peak resident memory (`VmHWM`), in KiB.
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:")).unwrap_or_default();
        line.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)
    }
}

/// The first line the process printed: it says it is ready.
fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a first line");
    line
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
