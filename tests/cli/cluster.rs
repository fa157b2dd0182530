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

use crate::server::{TOKEN, TestServer, github, on_postgres, push_event, sse};
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
        TestExecutor::start_with(home, &[])
    }

    /// [`TestExecutor::start`] with `args` added (a work folder of its own unless they give one).
    fn start_with(home: &Path, args: &[&str]) -> TestExecutor {
        let work = tempfile::Builder::new().prefix("loktar-executor").tempdir().expect("temp dir");
        let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        if !args.iter().any(|arg| arg == "--work-dir") {
            args.extend(["--work-dir".to_string(), work.path().display().to_string()]);
        }
        let mut child = loktar_command()
            .current_dir(home)
            .args(["--config", "loktar.toml", "executor", "--concurrency", "1"])
            .args(&args)
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
        assert!(
            line.starts_with("loktar executor taking jobs of queue(s) ") && line.contains(" from nats://"),
            "{line}"
        );
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

impl TestExecutor {
    /// Sends it `signal`.
    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("signal the executor");
    }

    /// Whether it has exited.
    fn child_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Whether it logged a line containing `text` within `seconds`.
    fn logs_within(&self, seconds: u64, text: &str) -> bool {
        within(seconds, || {
            self.log.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|line| line.contains(text))
        })
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
        Layered::with_recipe("@echo start $$(basename $$PWD); sleep 1; echo end $$(basename $$PWD)")
    }

    /// The same packages, each `make ci` running `recipe`.
    fn with_recipe(recipe: &str) -> Layered {
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
            repo.write(&format!("{package}/Makefile"), &format!("ci:\n\t{recipe}\n"));
        }
        repo.commit("ENH: three levels");
        let origin = repo.push_to_new_origin();
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

/// A cluster whose `lib` waits, in its `make ci`, for a gate the test opens:
/// NATS (with `nats` added to `[nats]`), the project, GitHub, a server with no executor of its own.
struct Gated {
    /// The server's run store, when it is PostgreSQL.
    postgres: Option<crate::postgres::Postgres>,
    nats: NatsServer,
    gate: tempfile::TempDir,
    project: Layered,
    recorder: crate::recorder::Recorder,
    server: TestServer,
}

impl Gated {
    fn start(nats_settings: &str) -> Gated {
        Gated::start_with_store(nats_settings, None)
    }

    /// [`Gated::start`], the server keeping its runs in a PostgreSQL of the test's own.
    fn start_on_postgres(nats_settings: &str) -> Gated {
        Gated::start_with_store(nats_settings, Some(crate::postgres::Postgres::start()))
    }

    fn start_with_store(nats_settings: &str, postgres: Option<crate::postgres::Postgres>) -> Gated {
        let nats = NatsServer::start();
        let gate = tempfile::Builder::new().prefix("loktar-gate").tempdir().expect("temp dir");
        let recipe = format!(
            "@echo start $$(basename $$PWD); if [ \"$$(basename $$PWD)\" = lib ]; then while [ ! -e {}/open ]; do sleep 0.1; done; fi",
            gate.path().display()
        );
        let project = Layered::with_recipe(&recipe);
        let recorder = github();
        let (database, password) =
            postgres.as_ref().map(|postgres| on_postgres(&postgres.create_database("runs"))).unwrap_or_default();
        let tables = format!(
            "[nats]\nurl = {:?}\n{nats_settings}\n[isolation]\nread_only = [{:?}]\n{password}",
            nats.url,
            gate.path().display().to_string()
        );
        let server = TestServer::start_with(
            project.origin.path(),
            &recorder.url(),
            &format!("executors = 0\n{database}"),
            &tables,
        );
        Gated { postgres, nats, gate, project, recorder, server }
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

/// The states GitHub was told for each context, in order.
fn states(recorder: &crate::recorder::Recorder) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut states = std::collections::BTreeMap::<String, Vec<String>>::new();
    for request in recorder.requests() {
        let body = request.json();
        let context = body["context"].as_str().unwrap_or_default().to_string();
        states.entry(context).or_default().push(body["state"].as_str().unwrap_or_default().to_string());
    }
    states
}

/// A package's outcome in a finished run as the API shows it.
fn status_of<'a>(shown: &'a Value, package: &str) -> &'a str {
    shown["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == package)
        .and_then(|p| p["status"].as_str())
        .unwrap_or("absent")
}

/// The executor of `executors` that took `job` (`package#attempt`) within 60 s.
fn taker<'a>(executors: &'a [TestExecutor], job: &str) -> &'a TestExecutor {
    let found = within(60, || executors.iter().any(|e| e.taken().iter().any(|taken| taken.ends_with(job))));
    assert!(found, "nobody took {job}");
    executors.iter().find(|e| e.taken().iter().any(|taken| taken.ends_with(job))).expect("found")
}

#[test]
fn an_executor_killed_mid_job_loses_it_to_another_and_the_run_passes() {
    // `lib` waits for the gate; the rest pass at once.
    let Gated { postgres: _, nats: _running, gate, project, recorder, server } =
        Gated::start("ack_wait = 2\nmax_deliver = 3\n");
    let executors = [TestExecutor::start(server.home()), TestExecutor::start(server.home())];
    let (status, answer) = server.hook("push", "kill-1", &project.push_change(&["base/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");

    let first = taker(&executors, "/lib#1");
    let other = executors.iter().find(|e| !std::ptr::eq(*e, first)).expect("the other executor");
    assert!(within(30, || !crate::support::sleeping("0.1").is_empty()), "`lib` never started waiting");
    first.signal(rustix::process::Signal::KILL);
    // The job goes to the other executor as attempt 2, once `ack_wait` has passed without word.
    assert!(other.logs_within(30, "/lib#2"), "attempt 2 never started: {:?}", other.taken());
    std::fs::write(gate.path().join("open"), "").expect("open the gate");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    for package in ["base", "lib", "app"] {
        assert_eq!(status_of(&shown, package), "passed", "{shown:#}");
    }
    // Exactly one final status per context: pending once, success once.
    for (context, states) in states(&recorder) {
        assert_eq!(states, ["pending", "success"], "{context}");
    }
}

#[test]
fn a_stopped_executor_s_late_result_is_ignored() {
    let nats = NatsServer::start();
    // `lib` takes three seconds: long enough to be stopped during it.
    let recipe = "@echo start $$(basename $$PWD); if [ \"$$(basename $$PWD)\" = lib ]; then sleep 3; fi; echo end";
    let project = Layered::with_recipe(recipe);
    let recorder = github();
    let tables = format!("[nats]\nurl = {:?}\nack_wait = 2\nmax_deliver = 3\n", nats.url);
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "executors = 0", &tables);
    let executors = [TestExecutor::start(server.home()), TestExecutor::start(server.home())];
    let (status, answer) = server.hook("push", "stop-1", &project.push_change(&["lib/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");

    let first = taker(&executors, "/lib#1");
    first.signal(rustix::process::Signal::STOP);
    let other = executors.iter().find(|e| !std::ptr::eq(*e, first)).expect("the other executor");
    assert!(other.logs_within(30, "/lib#2"), "attempt 2 never started");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    // Woken, the first executor finds its attempt stale: its result is refused, nothing changes.
    first.signal(rustix::process::Signal::CONT);
    assert!(first.logs_within(30, "lib#1 outcome="), "the first executor never finished its attempt");
    let again = server.get_json(&format!("/api/runs/{run}"));
    assert_eq!((again["run"]["status"].as_str(), status_of(&again, "lib")), (Some("passed"), "passed"), "{again:#}");
    for (context, states) in states(&recorder) {
        assert_eq!(states, ["pending", "success"], "{context}");
    }
}

#[test]
fn a_stopping_executor_hands_its_job_back_after_its_grace_and_another_runs_it() {
    // `lib` waits for the gate: longer than the stopping executor's grace.
    let Gated { postgres: _, nats: _running, gate, project, recorder, server } = Gated::start("");
    let stopping = TestExecutor::start_with(server.home(), &["--grace", "1"]);
    let (status, answer) = server.hook("push", "term-1", &project.push_change(&["lib/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    assert!(stopping.logs_within(60, "/lib#1"), "`lib` was never taken");

    // SIGTERM: the job has a second to finish, does not, and goes back at once (not after `ack_wait`).
    stopping.signal(rustix::process::Signal::TERM);
    assert!(stopping.logs_within(30, "handed back"), "the job was not handed back");
    let mut stopping = stopping;
    assert!(within(30, || stopping.child_exited()), "the executor did not stop");
    let other = TestExecutor::start(server.home());
    assert!(other.logs_within(20, "/lib#2"), "another executor never took the job back");
    std::fs::write(gate.path().join("open"), "").expect("open the gate");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    assert_eq!((status_of(&shown, "lib"), status_of(&shown, "app")), ("passed", "passed"), "{shown:#}");
    for (context, states) in states(&recorder) {
        assert_eq!(states.last().map(String::as_str), Some("success"), "{context}: {states:?}");
        assert_eq!(states.iter().filter(|state| *state == "success").count(), 1, "{context}: {states:?}");
    }
}

#[test]
fn a_job_its_executor_cannot_begin_fails_with_the_reason_on_the_server() {
    let nats = NatsServer::start();
    let project = Layered::new();
    let recorder = github();
    let tables = format!("[nats]\nurl = {:?}\n", nats.url);
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "executors = 0", &tables);
    // Where its mirrors go is a file: it can keep none.
    let work = tempfile::Builder::new().prefix("loktar-executor").tempdir().expect("temp dir");
    std::fs::write(work.path().join("repositories"), "not a folder").expect("a file");
    let broken = TestExecutor::start_with(server.home(), &["--work-dir", &work.path().display().to_string()]);
    let (status, answer) = server.hook("push", "broken-1", &project.push_change(&["app/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "failed", "{shown:#}");
    assert_eq!(status_of(&shown, "app"), "failed", "{shown:#}");
    let test = &shown["packages"][0]["stages"][0];
    let message = test["detail"].as_str().unwrap_or_default();
    assert!(message.starts_with("the executor could not begin: cannot create"), "{shown:#}");
    let (status, log) = server.get(&format!("/api/runs/{run}/packages/app/stages/test/log"));
    assert_eq!(status, 200);
    assert!(log.contains("error: cannot create"), "{log}");
    // GitHub is told, by the server as the package never ended on the executor: an error of the
    // CI (not a failure of the change).
    let states = states(&recorder);
    assert_eq!(states.get("app - test").cloned(), Some(vec!["pending".to_string(), "error".to_string()]), "{states:?}");
    drop(broken);
}

#[test]
fn a_job_whose_queue_no_executor_takes_waits_with_the_reason_until_one_joins() {
    let nats = NatsServer::start();
    let project = Layered::new();
    // `tool` goes to the executors of queue `special`; the others to `default`.
    let manifest = std::fs::read_to_string(project.repo.path().join("loktar.json")).expect("loktar.json");
    let routed = manifest.replace(
        r#"{ "pkg_name": "tool", "test_type": "make" }"#,
        r#"{ "pkg_name": "tool", "test_type": "make", "build_info": { "queue": "special" } }"#,
    );
    assert_ne!(routed, manifest);
    project.repo.write("loktar.json", &routed);
    project.repo.commit("ENH: tool on its own executors");
    project.repo.git(&["push", "--quiet", "origin", "main"]);
    let recorder = github();
    let tables = format!("[nats]\nurl = {:?}\n", nats.url);
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "executors = 0", &tables);
    let _default = TestExecutor::start(server.home());
    let (status, answer) = server.hook("push", "route-1", &project.push_change(&["tool/a.txt", "base/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");

    // `base` runs on `default`; `tool` waits, and the API says why.
    let mut shown = Value::Null;
    let waiting = within(60, || {
        shown = server.get_json(&format!("/api/runs/{run}"));
        status_of(&shown, "base") == "passed" && status_of(&shown, "tool") == "waiting"
    });
    assert!(waiting, "{shown:#}");
    let tool = shown["packages"].as_array().into_iter().flatten().find(|p| p["name"] == "tool").expect("tool");
    assert_eq!(tool["queue"], "special", "{shown:#}");
    let detail = tool["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("no executor takes jobs of queue `special`"), "{shown:#}");
    assert_eq!(shown["run"]["status"], "running");

    let special = TestExecutor::start_with(server.home(), &["--queues", "special"]);
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    assert_eq!(status_of(&shown, "tool"), "passed", "{shown:#}");
    assert!(special.taken().iter().any(|job| job.ends_with("/tool#1")), "{:?}", special.taken());
}

#[test]
fn a_package_that_always_loses_its_executor_fails_after_max_deliver_attempts_and_its_dependents_skip() {
    let nats = NatsServer::start();
    // `lib` runs long enough for its executor to be killed under it, every time.
    let project = Layered::with_recipe("@if [ \"$$(basename $$PWD)\" = lib ]; then sleep 20; fi; echo done");
    let recorder = github();
    let tables = format!("[nats]\nurl = {:?}\nack_wait = 2\nmax_deliver = 3\n", nats.url);
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "executors = 0", &tables);
    let mut executors = [TestExecutor::start(server.home()), TestExecutor::start(server.home())];
    let (status, answer) = server.hook("push", "crash-1", &project.push_change(&["base/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");

    for attempt in 1..=3 {
        let job = format!("/lib#{attempt}");
        let found = within(60, || executors.iter().any(|e| e.taken().iter().any(|taken| taken.ends_with(&job))));
        assert!(found, "nobody took {job}");
        let at = executors.iter().position(|e| e.taken().iter().any(|taken| taken.ends_with(&job))).expect("found");
        executors[at].signal(rustix::process::Signal::KILL);
        executors[at] = TestExecutor::start(server.home());
    }
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "failed", "{shown:#}");
    assert_eq!(
        (status_of(&shown, "base"), status_of(&shown, "lib"), status_of(&shown, "app")),
        ("passed", "failed", "skipped"),
        "{shown:#}"
    );
    let lib = shown["packages"].as_array().into_iter().flatten().find(|p| p["name"] == "lib").expect("lib");
    assert_eq!(
        lib["stages"][0]["detail"].as_str().and_then(|d| d.lines().next()),
        Some("executor lost 3 times"),
        "{shown:#}"
    );
    assert!(executors.iter().all(|e| !e.taken().iter().any(|taken| taken.ends_with("/lib#4"))), "a fourth attempt");
}

#[test]
fn nats_killed_mid_run_and_restarted_the_run_completes_and_nothing_that_passed_runs_again() {
    // `lib` waits for the gate, opened once NATS is back.
    let Gated { postgres: _, mut nats, gate, project, recorder, server } = Gated::start("");
    let executors = [TestExecutor::start(server.home()), TestExecutor::start(server.home())];
    let (status, answer) = server.hook("push", "nats-1", &project.push_change(&["base/a.txt", "tool/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    taker(&executors, "/lib#1");

    nats.kill_and_restart();
    std::fs::write(gate.path().join("open"), "").expect("open the gate");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    // What had passed before NATS died did not run again. `lib`, running, may: JetStream, killed,
    // can come back from an older state of its consumer and deliver it again — then the newer
    // claim holds it and the older one's result and notifications are refused.
    let taken: Vec<String> = executors.iter().flat_map(TestExecutor::taken).collect();
    let times = |package: &str| taken.iter().filter(|job| job.contains(&format!("/{package}#"))).count();
    assert_eq!((times("base"), times("tool"), times("app")), (1, 1, 1), "{taken:?}");
    assert!((1..=2).contains(&times("lib")), "{taken:?}");
    for (context, states) in states(&recorder) {
        assert_eq!(states, ["pending", "success"], "{context}: one final status");
    }
}

#[test]
fn a_server_on_postgres_killed_mid_run_resumes_it_on_the_executors_and_what_passed_stays_passed() {
    // `lib` waits for the gate, opened once the server is back.
    let Gated { postgres: _store, nats: _running, gate, project, recorder, mut server } = Gated::start_on_postgres("");
    assert!(!server.home().join("data/loktar.db").exists(), "the runs are kept in PostgreSQL");
    let executors = [TestExecutor::start(server.home()), TestExecutor::start(server.home())];
    let (status, answer) = server.hook("push", "server-kill-1", &project.push_change(&["base/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    taker(&executors, "/lib#1");
    // Killed once `base` has passed, as its record says (the record is written a tick later).
    assert!(within(30, || status_of(&server.get_json(&format!("/api/runs/{run}")), "base") == "passed"));

    server.kill_and_restart();
    std::fs::write(gate.path().join("open"), "").expect("open the gate");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    assert_eq!(shown["run"]["reason"], "resumed after the server stopped", "{shown:#}");
    for package in ["base", "lib", "app"] {
        assert_eq!(status_of(&shown, package), "passed", "{shown:#}");
    }
    // `base` had passed: it ran once, and GitHub heard of it once.
    let taken: Vec<String> = executors.iter().flat_map(TestExecutor::taken).collect();
    assert_eq!(taken.iter().filter(|job| job.contains("/base#")).count(), 1, "{taken:?}");
    let states = states(&recorder);
    assert_eq!(states.get("base - test").cloned(), Some(vec!["pending".to_string(), "success".to_string()]));
    for (context, states) in states {
        assert_eq!(states.last().map(String::as_str), Some("success"), "{context}: {states:?}");
    }
}

#[test]
fn two_executors_in_one_work_folder_are_refused() {
    let nats = NatsServer::start();
    let project = Layered::new();
    let tables = format!("[nats]\nurl = {:?}\n", nats.url);
    let recorder = github();
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "executors = 0", &tables);
    let work = tempfile::Builder::new().prefix("loktar-executor").tempdir().expect("temp dir");
    let shown = work.path().display().to_string();
    let _first = TestExecutor::start_with(server.home(), &["--work-dir", &shown]);
    let second = loktar_command()
        .current_dir(server.home())
        .args(["--config", "loktar.toml", "executor", "--work-dir", &shown])
        .output()
        .expect("run a second executor");
    assert_eq!(second.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&format!("another `loktar executor` works in `{shown}`")), "{stderr}");
    assert!(stderr.contains("give each executor its own `--work-dir`"), "{stderr}");
    let bad = loktar_command()
        .current_dir(server.home())
        .args(["--config", "loktar.toml", "executor", "--queues", "default, docker"])
        .output()
        .expect("run an executor");
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("` docker` is not a queue name"), "{:?}", bad);
}

#[test]
fn an_executor_in_a_container_of_the_executor_image_takes_a_job() {
    // The image, built by the project's script on the test's own engine, its base made from Debian's packages.
    let engine = crate::containers::DockerEngine::start();
    let built = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/executor-image"))
        .arg(env!("CARGO_BIN_EXE_loktar"))
        .env("DOCKER_HOST", engine.host())
        .output()
        .expect("run scripts/executor-image");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    assert_eq!(String::from_utf8_lossy(&built.stdout).trim(), "loktar-executor");

    let nats = NatsServer::start();
    let project = Layered::new();
    let recorder = github();
    let tables = format!("[nats]\nurl = {:?}\n", nats.url);
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "executors = 0", &tables);
    // The container's configuration: the server's, its programs isolated by the container
    // alone (this machine lets no container make the namespaces bubblewrap needs).
    let config = tempfile::Builder::new().prefix("loktar-executor-config").tempdir().expect("temp dir");
    let shared = std::fs::read_to_string(server.home().join("loktar.toml")).expect("loktar.toml");
    std::fs::write(config.path().join("loktar.toml"), format!("{shared}\n[isolation]\nmode = \"none\"\n"))
        .expect("the container's loktar.toml");
    let cache = crate::support::wasm_cache_dir().display().to_string();
    let origin = project.origin.path().display().to_string();
    let container = engine.docker_ok(&[
        "run",
        "--detach",
        "--network",
        "host",
        "--volume",
        &format!("{origin}:{origin}:ro"),
        "--volume",
        &format!("{}:/config:ro", config.path().display()),
        "--volume",
        &format!("{cache}:{cache}"),
        "--env",
        &format!("LOKTAR_CACHE_DIR={cache}"),
        "--env",
        &format!("TEST_GITHUB_TOKEN={TOKEN}"),
        "--env",
        "RUST_LOG=loktar::executor=info",
        "loktar-executor",
        "--config",
        "/config/loktar.toml",
        "--concurrency",
        "1",
    ]);
    let container = container.trim().to_string();
    let logs = || {
        let output = engine.docker(&["logs", &container]);
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    };
    assert!(within(60, || logs().contains("loktar executor taking jobs")), "{}", logs());

    let (status, answer) = server.hook("push", "image-1", &project.push_change(&["tool/a.txt"]));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}\n{}", logs());
    assert!(logs().contains("job taken job=") && logs().contains("/tool#1"), "{}", logs());
    let (status, log) = server.get(&format!("/api/runs/{run}/packages/tool/stages/test/log"));
    assert_eq!(status, 200);
    assert!(log.contains("start tool") && log.contains("end tool"), "{log}");
    engine.docker_ok(&["stop", "--time", "30", &container]);
}

#[test]
fn an_executor_without_a_store_s_credentials_stores_through_the_server_s_proxy_with_its_job_s_token() {
    let s3 = crate::s3_server::S3Server::start(&["artifacts"]);
    let nats = NatsServer::start();
    // `lib` is built by the `zip` test builder (`lib.txt`, version 1) and kept by the built-in `s3` store.
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "lib", "pkg_type": "zip", "test_type": "make", "build_info": { "storage_type": "s3" } } ] }"#,
    );
    repo.write("lib/Makefile", "ci:\n\t@true\n");
    let before = repo.commit("ENH: lib");
    let origin = repo.push_to_new_origin();
    repo.write("lib/a.txt", "changed\n");
    let after = repo.commit("ENH: change lib");
    repo.git(&["push", "--quiet", "origin", "main"]);
    let zip = format!(
        "[plugins.zip]\npath = \"{}\"\nrole = \"builder\"\ncapabilities = [\"log\"]\n",
        crate::support::test_plugin("zip").display()
    );
    let recorder = github();
    // The server has the store and its credentials; the executor has neither.
    let s3_store = format!(
        "[stores.s3]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"artifacts\"\nprefix = \"ci\"\n\
         access_key_secret = \"s3_key\"\nsecret_key_secret = \"s3_secret\"\n\n\
         [secrets.s3_key]\nenv = \"TEST_S3_KEY\"\n\n[secrets.s3_secret]\nenv = \"TEST_S3_SECRET\"\n",
        s3.endpoint
    );
    let nats_table = format!("[nats]\nurl = {:?}\n", nats.url);
    let server = TestServer::start_with(
        origin.path(),
        &recorder.url(),
        "executors = 0",
        &format!("{nats_table}{zip}{s3_store}"),
    );
    let elsewhere = tempfile::Builder::new().prefix("loktar-executor-home").tempdir().expect("temp dir");
    std::fs::write(
        elsewhere.path().join("loktar.toml"),
        format!(
            "{nats_table}{zip}\n[plugins.github]\nrole = \"notifier\"\n\n[github]\napi_url = \"{}\"\ntoken_secret = \"gh\"\n\
             retries = 0\n\n[secrets.gh]\nenv = \"TEST_GITHUB_TOKEN\"\n",
            recorder.url()
        ),
    )
    .expect("the executor's loktar.toml");
    let executor = TestExecutor::start(elsewhere.path());

    let (status, answer) = server.hook("push", "proxy-1", &push_event(&before, &after));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    assert_eq!(executor.taken().len(), 1, "the executor ran `lib`");
    // In the server's S3 store, where its record says, and served by its proxy.
    let object = String::from_utf8(s3.read("artifacts", "ci/lib/1/lib.txt")).expect("text");
    assert_eq!(object, format!("built lib at {after}"), "the object in the server's bucket");
    let artifact = &shown["packages"][0]["artifacts"][0];
    assert_eq!(artifact["location"], "s3://artifacts/ci/lib/1/lib.txt", "{shown:#}");
    let (status, log) = server.get(&format!("/api/runs/{run}/packages/lib/stages/store/log"));
    assert_eq!(status, 200, "{log}");
    assert!(log.contains("stored `lib/1/lib.txt`"), "{log}");

    // The route takes a running job's token only: none, or one made up, is refused.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}/api/stores/s3/lib/2/lib.txt", server.url());
    let status = |request: ureq::RequestBuilder<ureq::typestate::WithBody>| {
        request.send(&b"forged"[..]).expect("answered").status().as_u16()
    };
    assert_eq!(status(agent.put(&url)), 401);
    assert_eq!(status(agent.put(&url).header("Authorization", "Bearer 0123456789abcdef")), 403);
    assert!(!s3.root.path().join("artifacts/ci/lib/2").exists(), "nothing written");
}
