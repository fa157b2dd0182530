//! Loktar on several machines, played on one: a real `nats-server` with
//! JetStream, a `loktar server` with `[nats]` (no executor of its own),
//! and `loktar executor` processes, each with its own work folder,
//! started from the same operator configuration; a real git origin;
//! GitHub the recording server. Every process is the test's own and is
//! stopped when it ends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::server::{TOKEN, TestServer, github, push_event, sse};
use crate::support::{TestRepo, loktar_command, within};

#[path = "../../host/nats/tests/support/nats_server.rs"]
mod nats_server;
use nats_server::NatsServer;

/// A running `loktar executor`, stopped with SIGTERM when dropped.
struct TestExecutor {
    child: Child,
    /// What it logged, line by line.
    log: Arc<Mutex<Vec<String>>>,
    /// Its work folder.
    _work: tempfile::TempDir,
}

impl TestExecutor {
    /// Starts an executor with the server's configuration in `home`, taking one job at a time.
    fn start(home: &Path) -> TestExecutor {
        let work = tempfile::Builder::new().prefix("loktar-executor").tempdir().expect("temp dir");
        let mut child = loktar_command()
            .current_dir(home)
            .args(["--config", "loktar.toml", "executor", "--concurrency", "1", "--work-dir"])
            .arg(work.path())
            .env("TEST_WEBHOOK_SECRET", "unused")
            .env("TEST_GITHUB_TOKEN", TOKEN)
            .env("TEST_API_TOKEN", "unused")
            .env("RUST_LOG", "loktar=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loktar executor");
        let (sender, started) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let kept = log.clone();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("executor {pid}: {line}");
                kept.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        let line = started.recv_timeout(Duration::from_secs(60)).expect("the executor says it started");
        assert!(line.starts_with("loktar executor taking jobs of queue(s) default from nats://"), "{line}");
        TestExecutor { child, log, _work: work }
    }

    /// The jobs it took, as `run/package#attempt`.
    fn taken(&self) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter()
            .filter(|line| line.contains("job taken"))
            .filter_map(|line| line.split("job=").nth(1))
            .map(|job| job.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for TestExecutor {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if !within(30, || matches!(self.child.try_wait(), Ok(Some(_)))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A repository of three levels — `app` needs `lib`, which needs `base`;
/// `tool` stands alone — whose `make ci` prints its package's name between
/// two lines a moment apart; and its bare origin.
struct Layered {
    repo: TestRepo,
    origin: tempfile::TempDir,
}

impl Layered {
    fn new() -> Layered {
        let repo = TestRepo::new();
        repo.write(
            "loktar.json",
            r#"{ "packages": [
  { "pkg_name": "base", "test_type": "make" },
  { "pkg_name": "lib", "test_type": "make", "depends_on": ["base"] },
  { "pkg_name": "app", "test_type": "make", "depends_on": ["lib"] },
  { "pkg_name": "tool", "test_type": "make" } ] }"#,
        );
        for package in ["base", "lib", "app", "tool"] {
            let recipe = "@echo start $$(basename $$PWD); sleep 1; echo end $$(basename $$PWD)";
            repo.write(&format!("{package}/Makefile"), &format!("ci:\n\t{recipe}\n"));
        }
        repo.commit("ENH: three levels");
        let origin = tempfile::Builder::new().prefix("loktar-origin").tempdir().expect("temp dir");
        let bare = origin.path().display().to_string();
        repo.git(&["init", "--quiet", "--bare", &bare]);
        repo.git(&["remote", "add", "origin", &bare]);
        repo.git(&["push", "--quiet", "origin", "main"]);
        Layered { repo, origin }
    }

    /// Commits a change to each of `files` and pushes them; the push event GitHub would send.
    fn push_change(&self, files: &[&str]) -> Value {
        let before = self.repo.git(&["rev-parse", "HEAD"]);
        for file in files {
            self.repo.write(file, &format!("changed at {:?}\n", std::time::SystemTime::now()));
        }
        let after = self.repo.commit("ENH: change");
        self.repo.git(&["push", "--quiet", "origin", "main"]);
        push_event(&before, &after)
    }
}

/// The position of the first event of `kind` for `package` in `events`.
fn position(events: &[(u64, String, String)], kind: &str, package: &str) -> usize {
    events
        .iter()
        .position(|(_, event, data)| {
            event == kind && serde_json::from_str::<Value>(data).is_ok_and(|data| data["package"] == package)
        })
        .unwrap_or_else(|| panic!("no `{kind}` of `{package}`"))
}

#[test]
fn a_run_over_two_executors_runs_each_package_once_in_dependency_order() {
    let nats = NatsServer::start();
    let project = Layered::new();
    let recorder = github();
    let tables = format!("[nats]\nurl = {:?}\n", nats.url);
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "executors = 0", &tables);
    let executors = [TestExecutor::start(server.home()), TestExecutor::start(server.home())];

    let payload = project.push_change(&["base/a.txt", "tool/a.txt"]);
    let after = payload["after"].as_str().expect("after").to_string();
    let (status, answer) = server.hook("push", "cluster-1", &payload);
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    let id = answer["id"].as_str().expect("the run's id").to_string();
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    let packages: Vec<(&str, &str)> = shown["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?, p["status"].as_str()?)))
        .collect();
    assert_eq!(packages, [("base", "passed"), ("tool", "passed"), ("lib", "passed"), ("app", "passed")]);

    // Each package taken once, first attempt; both executors worked (`base` and `tool` are ready at once).
    let taken: Vec<Vec<String>> = executors.iter().map(TestExecutor::taken).collect();
    let mut all: Vec<String> = taken.concat();
    all.sort();
    let expected: Vec<String> = ["app", "base", "lib", "tool"].iter().map(|p| format!("{id}/{p}#1")).collect();
    assert_eq!(all, expected, "{taken:?}");
    assert!(taken.iter().all(|jobs| !jobs.is_empty()), "one executor did all: {taken:?}");

    // In dependency order: a package starts after what it needs has finished.
    let (status, stream) = server.get(&format!("/api/runs/{run}/events"));
    assert_eq!(status, 200);
    let events = sse(&stream);
    assert!(position(&events, "package_finished", "base") < position(&events, "stage_started", "lib"));
    assert!(position(&events, "package_finished", "lib") < position(&events, "stage_started", "app"));
    for (at, (id, _, _)) in events.iter().enumerate() {
        assert_eq!(*id, at as u64, "one stream, numbered by the server");
    }

    // Each log whole, through the API, as the executor's make printed it.
    for package in ["base", "lib", "app", "tool"] {
        let (status, log) = server.get(&format!("/api/runs/{run}/packages/{package}/stages/test/log"));
        assert_eq!(status, 200);
        let printed: Vec<&str> = log.lines().filter(|line| line.contains(package)).collect();
        assert_eq!(printed, [format!("start {package}"), format!("end {package}")], "{log}");
    }

    // GitHub heard each package once pending, once passed, as in embedded mode.
    let mut statuses: Vec<(String, String)> = recorder
        .requests()
        .iter()
        .map(|request| {
            assert_eq!(request.path, format!("/repos/acme/shop/statuses/{after}"));
            let body = request.json();
            (
                body["context"].as_str().unwrap_or_default().to_string(),
                body["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    statuses.sort();
    let mut expected: Vec<(String, String)> = ["app", "base", "lib", "tool"]
        .iter()
        .flat_map(|p| [(format!("{p} - test"), "pending".to_string()), (format!("{p} - test"), "success".to_string())])
        .collect();
    expected.sort();
    assert_eq!(statuses, expected);
}
