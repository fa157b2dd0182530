//! `loktar server`, as GitHub and people use it: the real binary on
//! `127.0.0.1:0`, a local bare repository as the origin it mirrors,
//! webhooks signed as GitHub signs them (payloads shaped as GitHub's
//! documentation shows), the REST API read back, and GitHub's status API
//! played by the recording server.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::recorder::{Recorder, Reply};
use crate::support::{TestRepo, loktar_command, within};

const SECRET: &str = "It's a Secret to Everybody";
pub(crate) const TOKEN: &str = "ghp_server_test_token";
const REPOSITORY: &str = "acme/shop";
const API_TOKEN: &str = "loktar-api-token-7f3e";

/// A running `loktar server`, stopped with SIGTERM when dropped.
pub(crate) struct TestServer {
    child: Child,
    url: String,
    /// The folder of its configuration; `data` below it is its data folder.
    home: tempfile::TempDir,
    agent: ureq::Agent,
}

impl TestServer {
    /// Starts a server that builds `origin` as `acme/shop`, with `extra`
    /// appended to its `[server]` table and `github_api` as GitHub.
    fn start(origin: &Path, github_api: &str, extra: &str) -> TestServer {
        TestServer::start_with(origin, github_api, extra, "")
    }

    /// [`TestServer::start`], with `tables` added to its configuration.
    pub(crate) fn start_with(origin: &Path, github_api: &str, extra: &str, tables: &str) -> TestServer {
        let home = tempfile::Builder::new().prefix("loktar-server").tempdir().expect("temp dir");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nwebhook_secret = \"hook\"\n{executors}{extra}\n\
             [server.repositories.\"{REPOSITORY}\"]\nclone_url = {:?}\n\n\
             [plugins.github]\nrole = \"notifier\"\n\n[github]\napi_url = \"{github_api}\"\ntoken_secret = \"gh\"\nretries = 0\n\n\
             [secrets.hook]\nenv = \"TEST_WEBHOOK_SECRET\"\n\n[secrets.gh]\nenv = \"TEST_GITHUB_TOKEN\"\n\n\
             [secrets.admin]\nenv = \"TEST_API_TOKEN\"\n\n{tables}\n",
            origin.display().to_string(),
            executors = if extra.contains("executors =") { "" } else { "executors = 2\n" },
        );
        std::fs::write(home.path().join("loktar.toml"), config).expect("write loktar.toml");
        let (child, url) = spawn_server(home.path());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        TestServer { child, url, home, agent }
    }

    /// Kills the server with SIGKILL, as a crash would, and starts it again
    /// on the same configuration and data folder.
    pub(crate) fn kill_and_restart(&mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().expect("wait for the killed server");
        let (child, url) = spawn_server(self.home.path());
        (self.child, self.url) = (child, url);
    }

    /// Its address, `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The folder of its configuration.
    pub(crate) fn home(&self) -> &Path {
        self.home.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.home.path().join("data")
    }

    /// Posts a webhook with the given headers; its status and JSON body (`null` when none).
    fn post(&self, event: &str, delivery: &str, body: &[u8], signature: Option<&str>) -> (u16, Value) {
        let mut request = self
            .agent
            .post(format!("{}/hooks/github", self.url))
            .header("Content-Type", "application/json")
            .header("User-Agent", "GitHub-Hookshot/loktar-test")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery);
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        let mut response = request.send(body).expect("post the webhook");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("read the answer");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Posts a webhook signed as GitHub signs it.
    pub(crate) fn hook(&self, event: &str, delivery: &str, payload: &Value) -> (u16, Value) {
        let body = payload.to_string();
        let signature = loktar::server::signature::sign(SECRET.as_bytes(), body.as_bytes());
        self.post(event, delivery, body.as_bytes(), Some(&signature))
    }

    /// `POST path` with a JSON body and, if given, a bearer token: status and JSON answer.
    fn api_post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.agent.post(format!("{}{path}", self.url)).header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.send(body.to_string().as_bytes()).expect("post");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("read the answer");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET path`: status and body.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let mut response = self.agent.get(format!("{}{path}", self.url)).call().expect("get");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("read the answer"))
    }

    /// `GET path` as JSON, which must answer 200.
    #[track_caller]
    pub(crate) fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    /// The run numbered `run` once it has ended (at most 120 s later).
    #[track_caller]
    pub(crate) fn finished(&self, run: i64) -> Value {
        let mut last = Value::Null;
        let ended = within(120, || {
            last = self.get_json(&format!("/api/runs/{run}"));
            !matches!(last["run"]["status"].as_str(), Some("queued" | "running"))
        });
        assert!(ended, "run {run} did not end: {last:#}");
        last
    }

    /// Every run the server lists.
    pub(crate) fn runs(&self) -> Vec<Value> {
        self.get_json("/api/runs?limit=200")["runs"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let stopped = within(40, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `loktar server` with the configuration in `home`; the process and
/// the URL it prints.
fn spawn_server(home: &Path) -> (Child, String) {
    let mut command = loktar_command();
    command
        .current_dir(home)
        .args(["--config", "loktar.toml", "server"])
        .env("TEST_WEBHOOK_SECRET", SECRET)
        .env("TEST_GITHUB_TOKEN", TOKEN)
        .env("TEST_API_TOKEN", API_TOKEN)
        .env("TEST_PG_PASSWORD", crate::postgres::PASSWORD)
        .env("TEST_S3_KEY", crate::s3_server::ACCESS_KEY)
        .env("TEST_S3_SECRET", crate::s3_server::SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // `LOKTAR_TEST_SERVER_LOG=loktar=debug cargo test server::` shows what the servers do.
    if let Ok(filter) = std::env::var("LOKTAR_TEST_SERVER_LOG") {
        command.env("RUST_LOG", filter);
    }
    let mut child = command.spawn().expect("start loktar server");
    let (sender, address) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        // Shown with the test's output, should it fail.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("server: {line}");
        }
    });
    let line = address.recv_timeout(Duration::from_secs(60)).expect("the server prints its address");
    let url = line.strip_prefix("loktar server listening on ").expect("the address line").to_string();
    (child, url)
}

/// A repository of three packages (`app` depends on `lib`; `other` stands
/// alone), each `make ci` running `recipe`, and its bare origin.
struct Project {
    repo: TestRepo,
    origin: tempfile::TempDir,
}

impl Project {
    fn new(recipe: &str) -> Project {
        let repo = TestRepo::new();
        repo.write(
            "loktar.json",
            r#"{ "packages": [
  { "pkg_name": "lib", "test_type": "make" },
  { "pkg_name": "app", "test_type": "make", "depends_on": ["lib"] },
  { "pkg_name": "other", "test_type": "make" } ] }"#,
        );
        for package in ["lib", "app", "other"] {
            repo.write(&format!("{package}/Makefile"), &format!("ci:\n\t{recipe}\n\nclean:\n\t@touch cleaned\n"));
        }
        repo.commit("ENH: three packages");
        let origin = repo.push_to_new_origin();
        Project { repo, origin }
    }

    /// Commits a change to `file` and pushes it; the push event GitHub would send.
    fn push_change(&self, file: &str) -> Value {
        let before = self.repo.git(&["rev-parse", "HEAD"]);
        self.repo.write(file, &format!("changed at {:?}\n", std::time::SystemTime::now()));
        let after = self.repo.commit(&format!("ENH: change {file}"));
        self.repo.git(&["push", "--quiet", "origin", "main"]);
        push_event(&before, &after)
    }
}

/// A `push` payload as GitHub documents it (the fields Loktar reads, and some it does not).
pub(crate) fn push_event(before: &str, after: &str) -> Value {
    json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": format!("https://github.com/{REPOSITORY}/compare/{}...{}", &before[..12], &after[..12]),
        "commits": [{ "id": after, "message": "ENH: change", "distinct": true }],
        "head_commit": { "id": after, "message": "ENH: change" },
        "repository": {
            "id": 1296269,
            "name": "shop",
            "full_name": REPOSITORY,
            "private": false,
            "owner": { "login": "acme", "id": 1 },
            "default_branch": "main",
            "master_branch": "main"
        },
        "pusher": { "name": "octocat", "email": "octocat@example.com" },
        "sender": { "login": "octocat", "id": 1 }
    })
}

/// What a server's configuration says to keep its runs in PostgreSQL
/// database `url`: the line for `[server]`, and the table of its password's secret.
pub(crate) fn on_postgres(url: &str) -> (String, String) {
    (
        format!("database = {url:?}\ndatabase_password = \"pg\"\n"),
        "[secrets.pg]\nenv = \"TEST_PG_PASSWORD\"\n".to_string(),
    )
}

pub(crate) fn github() -> Recorder {
    Recorder::start(|_| Reply::json(201, json!({ "state": "ok" })))
}

#[test]
fn only_a_correctly_signed_webhook_starts_a_run() {
    let project = Project::new("@true");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "");
    let payload = project.push_change("lib/a.txt");
    let body = payload.to_string();
    let signature = loktar::server::signature::sign(SECRET.as_bytes(), body.as_bytes());

    let (status, answer) = server.post("push", "d-missing", body.as_bytes(), None);
    assert_eq!((status, answer["error"].as_str()), (401, Some("the request has no `X-Hub-Signature-256` header")));
    let wrong = loktar::server::signature::sign(b"another secret", body.as_bytes());
    let (status, answer) = server.post("push", "d-wrong", body.as_bytes(), Some(&wrong));
    assert_eq!((status, answer["error"].as_str()), (401, Some("`X-Hub-Signature-256` does not sign this body")));
    let mut changed = body.clone().into_bytes();
    let last = changed.len() - 2;
    changed[last] ^= 1;
    assert_eq!(server.post("push", "d-changed", &changed, Some(&signature)).0, 401, "one byte changed");
    assert!(server.runs().is_empty(), "a refused webhook started a run");

    let (status, answer) = server.post("push", "d-right", body.as_bytes(), Some(&signature));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    assert_eq!(server.finished(run)["run"]["status"], "passed");
    assert_eq!(server.runs().len(), 1);

    // What became of each delivery, and of the run, in Prometheus' format.
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    for line in [
        "loktar_webhook_deliveries_total{result=\"unauthorized\"} 3",
        "loktar_webhook_deliveries_total{result=\"accepted\"} 1",
        "loktar_runs{status=\"passed\"} 1",
        "loktar_queue_depth 0",
        "loktar_stage_runs_total{stage=\"test\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in:\n{metrics}");
    }
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
}

#[test]
fn a_push_runs_the_packages_it_affects_in_dependency_order_and_the_api_shows_them() {
    let project = Project::new("@echo testing $$(basename $$PWD)");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "public_url = \"https://ci.example.com/\"");
    let payload = project.push_change("lib/src.txt");
    let after = payload["after"].as_str().expect("after").to_string();
    let (status, answer) = server.hook("push", "delivery-1", &payload);
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    assert!(answer["id"].as_str().is_some_and(|id| id.len() == 36), "{answer}");

    let shown = server.finished(run);
    let summary = &shown["run"];
    assert_eq!(summary["status"], "passed", "{shown:#}");
    assert_eq!(
        (&summary["repository"], &summary["trigger"], &summary["branch"], &summary["head"]),
        (&json!(REPOSITORY), &json!("push"), &json!("main"), &json!(after))
    );
    // Exactly the changed package and what depends on it, in dependency order.
    let names: Vec<&str> =
        shown["packages"].as_array().expect("packages").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["lib", "app"], "{shown:#}");
    // And why each is there: its own change, or the changed package it depends on.
    let (lib, app) = (&shown["packages"][0], &shown["packages"][1]);
    assert_eq!((&lib["changed_files"], &lib["because_of"]), (&json!(["lib/src.txt"]), &json!([])), "{shown:#}");
    assert_eq!((&app["changed_files"], &app["because_of"]), (&json!([]), &json!(["lib"])), "{shown:#}");
    assert_eq!(app["depends_on"], json!(["lib"]), "{shown:#}");
    let test = &shown["packages"][0]["stages"][0];
    assert_eq!((&test["stage"], &test["status"]), (&json!("test"), &json!("passed")), "{shown:#}");

    // The stage's log, through the API.
    let log_url = test["log"].as_str().expect("a log link");
    let (status, log) = server.get(log_url);
    assert_eq!(status, 200);
    assert!(log.contains("testing lib"), "{log}");
    assert_eq!(server.get(&format!("/api/runs/{run}/packages/lib/stages/build/log")).0, 404);

    // Listed, and filtered.
    let listed = server.get_json(&format!("/api/runs?repository={REPOSITORY}&branch=main&status=passed"));
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(server.get_json("/api/runs?branch=other")["runs"], json!([]));
    assert_eq!(server.get("/api/runs?limit=ten").0, 400);
    assert_eq!(server.get("/api/runs/999").0, 404);
    assert_eq!(server.get_json("/api/health")["status"], "ok");

    // GitHub heard of it as `loktar run` tells it: pending, then each stage's outcome, on the pushed commit.
    let statuses: Vec<(String, String)> = recorder
        .requests()
        .iter()
        .map(|request| {
            assert_eq!(request.path, format!("/repos/{REPOSITORY}/statuses/{after}"));
            assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
            let body = request.json();
            assert_eq!(body["target_url"], format!("https://ci.example.com/api/runs/{run}"), "links to the run");
            (
                body["context"].as_str().unwrap_or_default().to_string(),
                body["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let owned = |context: &str, state: &str| (context.to_string(), state.to_string());
    assert_eq!(
        statuses,
        [
            owned("lib - test", "pending"),
            owned("app - test", "pending"),
            owned("lib - test", "success"),
            owned("app - test", "success")
        ]
    );
    // The run's checkout is gone; its logs stay in the data folder.
    assert!(
        within(10, || std::fs::read_dir(server.data_dir().join("work")).map_or(true, |mut dir| dir.next().is_none()))
    );
    crate::support::assert_secrets_hidden(&[TOKEN, SECRET], &[], &server.data_dir().join("runs"));
}

#[test]
fn a_delivery_starts_one_run_however_often_it_comes_and_none_is_lost() {
    let project = Project::new("@true");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "cancel_superseded = false");
    let payload = project.push_change("other/x.txt");
    let first = server.hook("push", "same-delivery", &payload);
    assert_eq!(first.0, 202, "{}", first.1);
    for _ in 0..2 {
        let again = server.hook("push", "same-delivery", &payload);
        assert_eq!(again, (200, json!({ "duplicate": true, "run": first.1["run"] })));
    }
    assert_eq!(server.runs().len(), 1);

    // Fifty different deliveries at once: fifty runs, each its own.
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let posting: Vec<_> = (0..50)
            .map(|n| {
                let (server, payload) = (&server, &payload);
                scope.spawn(move || server.hook("push", &format!("delivery-{n}"), payload))
            })
            .collect();
        posting.into_iter().map(|thread| thread.join().expect("poster")).collect()
    });
    let mut numbers: Vec<i64> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 202, "{answer}");
            answer["run"].as_i64().expect("a run number")
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 50, "two deliveries shared a run");
    assert_eq!(server.runs().len(), 51);
    for run in numbers {
        let shown = server.finished(run);
        assert_eq!(shown["run"]["status"], "passed", "{shown:#}");
    }
}

#[test]
fn the_same_delivery_twenty_times_at_once_and_again_after_a_restart_starts_one_run_on_sqlite_and_on_postgres() {
    let postgres = crate::postgres::Postgres::start();
    for database in [None, Some(postgres.create_database("deliveries"))] {
        let project = Project::new("@true");
        let recorder = github();
        let (extra, tables) = database.as_deref().map(on_postgres).unwrap_or_default();
        let mut server = TestServer::start_with(project.origin.path(), &recorder.url(), &extra, &tables);
        let payload = project.push_change("other/x.txt");
        let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let posting: Vec<_> = (0..20)
                .map(|_| {
                    let (server, payload) = (&server, &payload);
                    scope.spawn(move || server.hook("push", "one-delivery", payload))
                })
                .collect();
            posting.into_iter().map(|thread| thread.join().expect("poster")).collect()
        });
        let accepted: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 202).map(|(_, a)| a).collect();
        assert_eq!(accepted.len(), 1, "{database:?}: {answers:?}");
        let run = accepted[0]["run"].as_i64().expect("a run number");
        let duplicate = (200, json!({ "duplicate": true, "run": run }));
        assert_eq!(answers.iter().filter(|answer| **answer == duplicate).count(), 19, "{database:?}: {answers:?}");
        assert_eq!(server.finished(run)["run"]["status"], "passed");

        server.kill_and_restart();
        assert_eq!(server.hook("push", "one-delivery", &payload), duplicate, "{database:?}: after a restart");
        assert_eq!(server.runs().len(), 1, "{database:?}");
        // PostgreSQL holds the runs: the data folder has no database of its own.
        assert_eq!(server.data_dir().join("loktar.db").exists(), database.is_none(), "{database:?}");
    }
}

#[test]
fn a_server_on_postgres_answers_again_once_postgres_is_back_without_a_restart() {
    let postgres = crate::postgres::Postgres::start();
    let project = Project::new("@true");
    let recorder = github();
    let (extra, tables) = on_postgres(&postgres.create_database("outage"));
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), &extra, &tables);
    let (status, answer) = server.hook("push", "before-outage", &project.push_change("lib/a.txt"));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(server.finished(answer["run"].as_i64().expect("a run"))["run"]["status"], "passed");

    postgres.stop();
    let (status, body) = server.get("/api/runs");
    assert_eq!(status, 500, "{body}");
    assert!(!body.contains(crate::postgres::PASSWORD), "{body}");
    postgres.start_again();
    // Its broken connections are replaced: the same server answers, and takes new runs.
    assert!(within(30, || server.get("/api/runs").0 == 200), "the server never answered again");
    let (status, answer) = server.hook("push", "after-outage", &project.push_change("lib/b.txt"));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(server.finished(answer["run"].as_i64().expect("a run"))["run"]["status"], "passed");
    assert_eq!(server.runs().len(), 2);
}

#[test]
fn a_newer_push_cancels_the_older_run_of_its_branch() {
    // Programs see only their package's folder.
    let project = Project::new("@if [ -e slow ]; then sleep 37; fi");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "");
    project.repo.write("lib/slow", "");
    let slow = server.hook("push", "push-1", &project.push_change("lib/a.txt"));
    assert_eq!(slow.0, 202, "{}", slow.1);
    let slow = slow.1["run"].as_i64().expect("number");
    assert!(within(60, || !crate::support::sleeping("37").is_empty()), "the first run's `make ci` never started");

    project.repo.remove("lib/slow");
    let payload = project.push_change("lib/b.txt");
    let short = &payload["after"].as_str().expect("after")[..10];
    let fast = server.hook("push", "push-2", &payload);
    assert_eq!(fast.0, 202, "{}", fast.1);
    let fast = fast.1["run"].as_i64().expect("number");

    let first = server.finished(slow);
    assert_eq!(first["run"]["status"], "interrupted", "{first:#}");
    assert_eq!(first["run"]["reason"], format!("superseded by `{short}`"));
    assert!(within(10, || crate::support::sleeping("37").is_empty()), "the superseded run's program still runs");
    // Its clean-up ran, as the stage's log says.
    let (status, log) = server.get(&format!("/api/runs/{slow}/packages/lib/stages/test/log"));
    assert_eq!(status, 200, "{log}");
    assert!(log.contains("running `make clean`"), "{log}");
    assert_eq!(server.finished(fast)["run"]["status"], "passed");
    // No check of the superseded commit hangs: each ends `error`, saying what superseded it.
    let superseded = first["run"]["head"].as_str().expect("head").to_string();
    let mut last_state = std::collections::BTreeMap::new();
    for request in recorder.requests() {
        if request.path == format!("/repos/{REPOSITORY}/statuses/{superseded}") {
            let body = request.json();
            last_state.insert(body["context"].as_str().unwrap_or_default().to_string(), body);
        }
    }
    assert_eq!(last_state.keys().collect::<Vec<_>>(), ["app - test", "lib - test"], "{last_state:#?}");
    for status in last_state.values() {
        assert_eq!(status["state"], "error", "{status:#}");
        assert_eq!(status["description"], format!("superseded by `{short}`"), "{status:#}");
    }
}

#[test]
fn bad_requests_are_refused_with_a_reason_and_start_nothing() {
    let project = Project::new("@true");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "");
    let payload = project.push_change("lib/a.txt");

    // Not JSON, or not a push.
    let (status, answer) = post_signed(&server, "push", "bad-1", b"{\"ref\": ");
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().is_some_and(|e| e.starts_with("the body is not a `push` event: ")), "{answer}");
    let (status, answer) = post_signed(&server, "push", "bad-2", br#"{"ref": "refs/heads/main"}"#);
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("missing field `before`")), "{answer}");
    // An event Loktar does not act on.
    assert_eq!(server.hook("issues", "bad-3", &json!({ "action": "opened" })).0, 204);
    // A repository this server does not build.
    let mut elsewhere = payload.clone();
    elsewhere["repository"]["full_name"] = json!("acme/unknown");
    let (status, answer) = server.hook("push", "bad-4", &elsewhere);
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("repository `acme/unknown` is not built by this server"))
    );
    assert!(answer["hint"].as_str().is_some_and(|h| h.contains("[server.repositories.\"acme/unknown\"]")), "{answer}");
    // A tag is not built, and says so.
    let mut tag = payload.clone();
    tag["ref"] = json!("refs/tags/v1.0");
    let (status, answer) = server.hook("push", "bad-5", &tag);
    assert_eq!(
        (status, answer["ignored"].as_str()),
        (200, Some("`refs/tags/v1.0` is not a branch: only pushes to branches are built"))
    );
    // No delivery id.
    let body = payload.to_string();
    let signature = loktar::server::signature::sign(SECRET.as_bytes(), body.as_bytes());
    let (status, answer) = server.post("push", "", body.as_bytes(), Some(&signature));
    assert_eq!((status, answer["error"].as_str()), (400, Some("the request has no `X-GitHub-Delivery` header")));
    // A body over GitHub's 25 MB. The server answers before it has read it
    // all and closes; the connection's reset may overtake the answer, so
    // the answer is looked for a few times.
    let oversized: Vec<u16> = (0..3).map(|_| post_oversized(&server)).collect();
    assert!(oversized.contains(&413) && oversized.iter().all(|&status| status == 413 || status == 0), "{oversized:?}");
    // No route, or the wrong method: JSON too.
    let (status, body) = server.get("/api/nothing");
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON")["error"], "no route `/api/nothing`");
    assert_eq!(server.get("/hooks/github").0, 405);

    assert!(server.runs().is_empty(), "a refused request started a run");
    assert!(recorder.requests().is_empty(), "a refused request reached GitHub");
    assert!(!server.data_dir().join("repositories").exists(), "a refused request fetched the repository");
}

/// Posts `body` signed, as the `event` of delivery `delivery`.
fn post_signed(server: &TestServer, event: &str, delivery: &str, body: &[u8]) -> (u16, Value) {
    let signature = loktar::server::signature::sign(SECRET.as_bytes(), body);
    server.post(event, delivery, body, Some(&signature))
}

/// Sends a 26 MB webhook over a plain connection (the server may answer
/// before it has read it all); the status it answers.
fn post_oversized(server: &TestServer) -> u16 {
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let size = 26 * 1024 * 1024;
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n\
         X-GitHub-Delivery: oversized\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    let mut writer = stream.try_clone().expect("clone the stream");
    let sending = std::thread::spawn(move || {
        let chunk = vec![b' '; 1024 * 1024];
        let _ = writer.write_all(head.as_bytes());
        for _ in 0..26 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut answer = String::new();
    let _ = BufReader::new(&mut stream).read_line(&mut answer);
    let mut rest = Vec::new();
    let _ = stream.take(4096).read_to_end(&mut rest);
    let _ = sending.join();
    answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// The JSON examples of `docs/api.md`, in order.
fn documented_examples() -> Vec<Value> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md")).expect("docs/api.md");
    doc.split("```json\n")
        .skip(1)
        .map(|block| {
            let example = block.split("\n```").next().unwrap_or_default();
            serde_json::from_str(example)
                .unwrap_or_else(|e| panic!("an example of docs/api.md is not JSON ({e}):\n{example}"))
        })
        .collect()
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

#[test]
fn the_api_documentation_shows_what_the_server_answers() {
    let examples = documented_examples();
    assert_eq!(examples.len(), 7, "an example per answer and request of docs/api.md");
    let project = Project::new("@false");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "api_tokens = [\"admin\"]");
    let (status, accepted) = server.hook("push", "docs-1", &project.push_change("lib/a.txt"));
    assert_eq!(status, 202);
    assert_eq!(keys(&accepted), keys(&examples[1]), "the 202 answer");
    assert_eq!(keys(&server.hook("push", "docs-1", &project.push_change("lib/a.txt")).1), keys(&examples[2]));
    let run = accepted["run"].as_i64().expect("number");
    let shown = server.finished(run);
    // The documented request starts the run it says.
    let (status, triggered) = server.api_post("/api/runs", Some(API_TOKEN), &examples[3]);
    assert_eq!(status, 202, "{triggered}");
    assert_eq!(keys(&triggered), keys(&examples[1]));
    let triggered = server.finished(triggered["run"].as_i64().expect("number"));
    let names: Vec<&str> =
        triggered["packages"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["lib", "app"], "{triggered:#}");
    assert_eq!(keys(&server.get_json("/api/health")), keys(&examples[4]), "the health answer");
    let listed = server.get_json("/api/runs");
    assert_eq!(keys(&listed), keys(&examples[5]));
    assert_eq!(keys(&listed["runs"][0]), keys(&examples[5]["runs"][0]), "a listed run");
    assert_eq!(keys(&shown), keys(&examples[6]));
    assert_eq!(keys(&shown["run"]), keys(&examples[6]["run"]), "a run");
    // `lib` failed: `app` never ran a stage.
    assert_eq!(keys(&shown["packages"][0]), keys(&examples[6]["packages"][0]), "a package that ran: {shown:#}");
    assert_eq!(keys(&shown["packages"][0]["stages"][0]), keys(&examples[6]["packages"][0]["stages"][0]), "a stage");
    assert_eq!(keys(&shown["packages"][1]), keys(&examples[6]["packages"][1]), "a package that did not run: {shown:#}");
    assert_eq!(shown["packages"][1]["status"], "skipped", "{shown:#}");
    let (status, refused) = server.hook("push", "docs-2", &json!({ "ref": "refs/heads/main", "before": "0", "after": "0", "repository": { "full_name": "acme/unknown" } }));
    assert_eq!(status, 404);
    assert_eq!(keys(&refused), keys(&examples[0]), "a refusal");
    let pong = server.hook("ping", "docs-3", &json!({ "zen": "Keep it logically awesome.", "hook_id": 1 }));
    assert_eq!(pong, (200, json!({ "message": "pong" })), "as the table of docs/api.md says");
}

#[test]
fn the_write_routes_need_a_token_and_start_cancel_and_rerun_runs() {
    // `lib` fails while `lib/broken` exists; `app` sleeps while `app/slow` does.
    let project = Project::new("@if [ -e broken ]; then exit 1; fi; if [ -e slow ]; then sleep 38; fi");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "api_tokens = [\"admin\"]");
    let all = json!({ "repository": REPOSITORY, "branch": "main", "packages": "all" });

    let (status, answer) = server.api_post("/api/runs", None, &all);
    assert_eq!((status, answer["error"].as_str()), (401, Some("this route needs an API token")), "{answer}");
    let (status, answer) = server.api_post("/api/runs", Some("not-the-token"), &all);
    assert_eq!((status, answer["error"].as_str()), (401, Some("the API token is not valid")), "{answer}");
    assert_eq!(server.api_post("/api/runs/1/cancel", None, &json!({})).0, 401);
    assert_eq!(server.api_post("/api/runs/1/rerun", Some("not-the-token"), &json!({})).0, 401);
    let refused = [
        (json!({ "repository": REPOSITORY }), 400),
        (json!({ "repository": REPOSITORY, "branch": "--upload-pack=touch /tmp/x" }), 400),
        (json!({ "repository": REPOSITORY, "commit": "HEAD" }), 400),
        (json!({ "repository": REPOSITORY, "branch": "main", "packages": 3 }), 400),
        (json!({ "repository": REPOSITORY, "branch": "main", "unknown": true }), 400),
        (json!({ "repository": "acme/unknown", "branch": "main" }), 404),
    ];
    for (body, expected) in refused {
        let (status, answer) = server.api_post("/api/runs", Some(API_TOKEN), &body);
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert!(server.runs().is_empty(), "a refused request started a run");

    // Every package of the head of `main`: `lib` fails, so `app` is skipped.
    project.repo.write("lib/broken", "");
    project.repo.commit("TST: lib broken");
    project.repo.git(&["push", "--quiet", "origin", "main"]);
    let head = project.repo.git(&["rev-parse", "HEAD"]);
    let (status, answer) = server.api_post("/api/runs", Some(API_TOKEN), &all);
    assert_eq!(status, 202, "{answer}");
    let first = server.finished(answer["run"].as_i64().expect("number"));
    assert_eq!((&first["run"]["status"], &first["run"]["trigger"]), (&json!("failed"), &json!("api")), "{first:#}");
    assert_eq!(first["run"]["head"], json!(head), "the branch's head was built");
    let first_id = first["run"]["id"].as_i64().expect("number");

    // Run again what did not pass: `lib` and the `app` it held back, on the same commit.
    let (status, answer) = server.api_post(&format!("/api/runs/{first_id}/rerun"), Some(API_TOKEN), &json!({}));
    assert_eq!(status, 202, "{answer}");
    let again = server.finished(answer["run"].as_i64().expect("number"));
    let names: Vec<&str> =
        again["packages"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["lib", "app"], "{again:#}");
    assert_eq!((&again["run"]["trigger"], &again["run"]["head"]), (&json!("rerun"), &json!(head)));

    // A slow run, cancelled.
    project.repo.remove("lib/broken");
    project.repo.write("app/slow", "");
    project.repo.commit("TST: app slow");
    project.repo.git(&["push", "--quiet", "origin", "main"]);
    let (status, answer) = server.api_post("/api/runs", Some(API_TOKEN), &all);
    assert_eq!(status, 202, "{answer}");
    let slow = answer["run"].as_i64().expect("number");
    assert!(within(60, || !crate::support::sleeping("38").is_empty()), "the slow run's `make ci` never started");
    let (status, answer) = server.api_post(&format!("/api/runs/{slow}/cancel"), Some(API_TOKEN), &json!({}));
    assert_eq!((status, answer), (202, json!({ "cancelled": slow })));
    let cancelled = server.finished(slow);
    assert_eq!(
        (&cancelled["run"]["status"], &cancelled["run"]["reason"]),
        (&json!("interrupted"), &json!("cancelled through the API")),
        "{cancelled:#}"
    );
    assert!(within(10, || crate::support::sleeping("38").is_empty()), "the cancelled run's program still runs");
    let (status, answer) = server.api_post(&format!("/api/runs/{slow}/cancel"), Some(API_TOKEN), &json!({}));
    assert_eq!((status, answer["error"].as_str()), (409, Some(format!("run {slow} has ended: interrupted").as_str())));
    assert_eq!(server.api_post("/api/runs/9999/cancel", Some(API_TOKEN), &json!({})).0, 404);
}

/// A pull request `number` from branch `name` of one commit on `main`
/// adding `file`, pushed to the origin as GitHub keeps it
/// (`refs/pull/<n>/head`); its head.
fn open_pull_request(project: &Project, number: u64, name: &str, file: &str) -> String {
    project.repo.git(&["checkout", "--quiet", "-b", name, "main"]);
    project.repo.write(file, "new\n");
    let head = project.repo.commit(&format!("ENH: {name}"));
    project.repo.git(&["push", "--quiet", "origin", name, &format!("HEAD:refs/pull/{number}/head")]);
    project.repo.git(&["checkout", "--quiet", "main"]);
    head
}

/// GitHub's answer to `path` about one of `pulls` (number, head, the one
/// file it adds), each a single commit on `base`: the pull request, its
/// files, its commits; `None` for any other path.
fn pull_request_api(pulls: &[(u64, String, &str)], base: &str, path: &str) -> Option<Reply> {
    for (number, head, file) in pulls {
        let pull = format!("/repos/{REPOSITORY}/pulls/{number}");
        if path == pull {
            return Some(Reply::json(
                200,
                json!({ "number": number, "commits": 1, "changed_files": 1,
                        "base": { "sha": base, "ref": "main" }, "head": { "sha": head, "ref": "feature" } }),
            ));
        }
        if path == format!("{pull}/files?per_page=100") {
            return Some(Reply::json(200, json!([{ "filename": file, "status": "added" }])));
        }
        if path == format!("{pull}/commits?per_page=100") {
            let commit = json!({ "sha": head, "commit": { "message": "ENH" }, "parents": [{ "sha": base }] });
            return Some(Reply::json(200, json!([commit])));
        }
    }
    None
}

/// A `pull_request` event as GitHub documents it.
fn pull_request_event(action: &str, number: u64, name: &str, head: &str, base: &str) -> Value {
    json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number, "state": "open", "title": format!("ENH: {name}"),
            "head": { "sha": head, "ref": name, "label": format!("acme:{name}") },
            "base": { "sha": base, "ref": "main", "label": "acme:main" }
        },
        "repository": { "full_name": REPOSITORY, "default_branch": "main" },
        "sender": { "login": "octocat" }
    })
}

#[test]
fn a_pull_request_runs_its_change_set_and_closing_it_cancels_its_runs() {
    // `other` sleeps while `other/slow` exists.
    let project = Project::new("@if [ -e slow ]; then sleep 39; fi");
    let base = project.repo.git(&["rev-parse", "HEAD"]);
    let quick = open_pull_request(&project, 1, "quick", "other/x.txt");
    let slow = open_pull_request(&project, 2, "slow", "other/slow");
    // GitHub's API for the two pull requests: each one commit adding one file.
    let pulls = [(1, quick.clone(), "other/x.txt"), (2, slow.clone(), "other/slow")];
    let api_base = base.clone();
    let recorder = Recorder::start(move |request| {
        if request.method == "POST" {
            return Reply::json(201, json!({ "state": "ok" }));
        }
        pull_request_api(&pulls, &api_base, &request.path)
            .unwrap_or_else(|| Reply::json(404, json!({ "message": "Not Found" })))
    });
    let server = TestServer::start(project.origin.path(), &recorder.url(), "");

    let (status, answer) =
        server.hook("pull_request", "pr-1", &pull_request_event("opened", 1, "quick", &quick, &base));
    assert_eq!(status, 202, "{answer}");
    let run = server.finished(answer["run"].as_i64().expect("number"));
    assert_eq!(run["run"]["status"], "passed", "{run:#}");
    assert_eq!(
        (&run["run"]["trigger"], &run["run"]["pull_request"], &run["run"]["branch"], &run["run"]["head"]),
        (&json!("pull_request"), &json!(1), &json!("quick"), &json!(quick))
    );
    let names: Vec<&str> =
        run["packages"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["other"], "the change set came from GitHub: {run:#}");
    let posted = |head: &str| -> Vec<String> {
        let path = format!("/repos/{REPOSITORY}/statuses/{head}");
        recorder
            .requests()
            .iter()
            .filter(|request| request.method == "POST" && request.path == path)
            .map(|request| request.json()["state"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(posted(&quick), ["pending", "success"]);

    let (status, answer) =
        server.hook("pull_request", "pr-1b", &pull_request_event("labeled", 1, "quick", &quick, &base));
    assert_eq!((status, answer["ignored"].as_str()), (200, Some("pull request action `labeled` starts no run")));

    // Closing a pull request cancels its run; its checks end settled.
    let (status, answer) = server.hook("pull_request", "pr-2", &pull_request_event("opened", 2, "slow", &slow, &base));
    assert_eq!(status, 202, "{answer}");
    let second = answer["run"].as_i64().expect("number");
    assert!(
        within(60, || !crate::support::sleeping("39").is_empty()),
        "the slow pull request's `make ci` never started"
    );
    let closed = server.hook("pull_request", "pr-2b", &pull_request_event("closed", 2, "slow", &slow, &base));
    assert_eq!(closed, (200, json!({ "cancelled": [second] })));
    let cancelled = server.finished(second);
    assert_eq!(
        (&cancelled["run"]["status"], &cancelled["run"]["reason"]),
        (&json!("interrupted"), &json!("pull request #2 was closed")),
        "{cancelled:#}"
    );
    assert!(within(10, || crate::support::sleeping("39").is_empty()), "the closed pull request's program still runs");
    let states = posted(&slow);
    assert_eq!(states.first().map(String::as_str), Some("pending"), "{states:?}");
    assert_ne!(states.last().map(String::as_str), Some("pending"), "a check was left pending: {states:?}");
    assert_eq!(server.runs().len(), 2);
}

#[test]
fn a_pull_request_sharing_packages_with_an_earlier_one_is_told_in_one_comment_and_blocked() {
    let project = Project::new("@true");
    let base = project.repo.git(&["rev-parse", "HEAD"]);
    // Both change the shared library (`lib`, and `app` that depends on it); #3 only `other`.
    let first = open_pull_request(&project, 1, "first", "lib/x.txt");
    let second = open_pull_request(&project, 2, "second", "lib/y.txt");
    let third = open_pull_request(&project, 3, "third", "other/z.txt");
    let pulls = [(1, first.clone(), "lib/x.txt"), (2, second.clone(), "lib/y.txt"), (3, third.clone(), "other/z.txt")];
    let api_base = base.clone();
    let recorder = Recorder::start(move |request| {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/repos/acme/shop/pulls?state=open&per_page=100") => return Reply::json(200, json!([])),
            ("POST", "/repos/acme/shop/issues/2/comments") => return Reply::json(201, json!({ "id": 9001 })),
            ("PATCH", "/repos/acme/shop/issues/comments/9001") => return Reply::json(200, json!({ "id": 9001 })),
            ("POST", _) => return Reply::json(201, json!({ "state": "ok" })),
            _ => {}
        }
        pull_request_api(&pulls, &api_base, &request.path)
            .unwrap_or_else(|| Reply::json(404, json!({ "message": "Not Found" })))
    });
    let server = TestServer::start(project.origin.path(), &recorder.url(), "collisions = \"block\"");
    let open = |number: u64, name: &str, head: &str, opened: &str| {
        let mut event = pull_request_event("opened", number, name, head, &base);
        event["pull_request"]["created_at"] = json!(opened);
        let (status, answer) = server.hook("pull_request", &format!("open-{number}"), &event);
        assert_eq!(status, 202, "{answer}");
        server.finished(answer["run"].as_i64().expect("number"));
    };
    // Which pull requests are open was asked of GitHub when the server started.
    let listed = || recorder.requests().iter().any(|r| r.path == "/repos/acme/shop/pulls?state=open&per_page=100");
    assert!(within(10, listed), "the open pull requests were not listed");
    open(1, "first", &first, "2026-12-07T09:00:00Z");
    open(2, "second", &second, "2026-12-07T10:00:00Z");
    open(3, "third", &third, "2026-12-07T11:00:00Z");

    let requests = |method: &str, path: &str| -> Vec<Value> {
        recorder.requests().iter().filter(|r| r.method == method && r.path == path).map(|r| r.json()).collect()
    };
    let collisions_status = |head: &str| -> Vec<(String, String)> {
        requests("POST", &format!("/repos/{REPOSITORY}/statuses/{head}"))
            .iter()
            .filter(|status| status["context"] == "loktar - collisions")
            .map(|status| {
                (status["state"].as_str().unwrap_or("").into(), status["description"].as_str().unwrap_or("").into())
            })
            .collect()
    };
    // The later pull request is told, once, in one comment; the earlier and the unrelated ones are not.
    assert!(within(30, || !requests("POST", "/repos/acme/shop/issues/2/comments").is_empty()), "no comment on #2");
    assert!(within(30, || !collisions_status(&third).is_empty()), "no collisions status on #3");
    let comments = requests("POST", "/repos/acme/shop/issues/2/comments");
    assert_eq!(comments.len(), 1, "{comments:?}");
    let body = comments[0]["body"].as_str().unwrap_or_default();
    assert!(body.ends_with("\nPackages also affected by #1: `lib`, `app`"), "{body}");
    for other in [1, 3] {
        assert!(
            requests("POST", &format!("/repos/acme/shop/issues/{other}/comments")).is_empty(),
            "#{other} got a comment"
        );
    }
    // `block`: the colliding head fails the collisions check; the others pass it.
    assert_eq!(collisions_status(&second), [("failure".to_string(), "packages also affected by #1".to_string())]);
    assert_eq!(collisions_status(&first).first().map(|s| s.0.as_str()), Some("success"));
    assert_eq!(collisions_status(&third).first().map(|s| s.0.as_str()), Some("success"));

    // #1 closed: #2's comment is edited in place, and its check passes.
    let closed = server.hook("pull_request", "close-1", &pull_request_event("closed", 1, "first", &first, &base));
    assert_eq!(closed.0, 200, "{}", closed.1);
    assert!(
        within(30, || !requests("PATCH", "/repos/acme/shop/issues/comments/9001").is_empty()),
        "the comment stayed"
    );
    let edited = requests("PATCH", "/repos/acme/shop/issues/comments/9001");
    assert!(
        edited[0]["body"]
            .as_str()
            .is_some_and(|b| b.ends_with("No other open pull request affects these packages any more.")),
        "{edited:?}"
    );
    assert!(
        within(30, || collisions_status(&second).last().is_some_and(|s| s.0 == "success")),
        "{:?}",
        collisions_status(&second)
    );
    assert_eq!(requests("POST", "/repos/acme/shop/issues/2/comments").len(), 1, "a second comment was posted");
}

#[test]
fn a_run_s_events_and_logs_are_followed_live_and_replayed() {
    let project = Project::new("@echo first; sleep 3; echo second");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "");
    let (status, answer) = server.hook("push", "live-1", &project.push_change("other/x.txt"));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("number");

    // The log, followed from before the stage starts: `first` arrives while the run still runs.
    let mut response = server
        .agent
        .get(format!("{}/api/runs/{run}/packages/other/stages/test/log?follow=true", server.url))
        .call()
        .expect("follow the log");
    assert_eq!(response.status().as_u16(), 200);
    let mut reader = BufReader::new(response.body_mut().as_reader());
    let mut followed = String::new();
    while !followed.contains("first") {
        let read = reader.read_line(&mut followed).expect("read the followed log");
        assert!(read > 0, "the log ended before `first`: {followed}");
    }
    assert_eq!(server.get_json(&format!("/api/runs/{run}"))["run"]["status"], "running", "not live: the run had ended");
    reader.read_to_string(&mut followed).expect("read the rest");
    assert!(followed.contains("second"), "{followed}");
    assert_eq!(server.finished(run)["run"]["status"], "passed");

    // The whole log, and a part of it.
    let (status, whole) = server.get(&format!("/api/runs/{run}/packages/other/stages/test/log"));
    assert_eq!(status, 200);
    assert_eq!(whole, followed, "following gave the whole log");
    let mut part = server
        .agent
        .get(format!("{}/api/runs/{run}/packages/other/stages/test/log", server.url))
        .header("Range", "bytes=2-9")
        .call()
        .expect("a range");
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.body_mut().read_to_string().expect("the part"), whole[2..10]);

    // The events, replayed from the start, then after one of them.
    let (status, stream) = server.get(&format!("/api/runs/{run}/events"));
    assert_eq!(status, 200);
    let events = sse(&stream);
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"), "{stream}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{stream}");
    assert!(kinds.contains(&"stage_started") && kinds.contains(&"package_finished"), "{kinds:?}");
    for (at, (id, kind, data)) in events.iter().enumerate() {
        let event: Value = serde_json::from_str(data).expect("an event's data is its JSON");
        assert_eq!(event["event"].as_str(), Some(kind.as_str()));
        assert_eq!(*id, at as u64, "ids count the journal's lines");
    }
    let after = events[1].0;
    let mut response = server
        .agent
        .get(format!("{}/api/runs/{run}/events", server.url))
        .header("Last-Event-ID", &after.to_string())
        .call()
        .expect("events after one");
    let rest = sse(&response.body_mut().read_to_string().expect("the stream"));
    assert_eq!(rest.first().map(|(id, _, _)| *id), events.get(2).map(|(id, _, _)| *id), "resumed after {after}");
    assert_eq!(rest.len(), events.len() - 2);
    assert_eq!(server.get(&format!("/api/runs/{run}/packages/other/stages/lint/log")).0, 404);
    assert_eq!(server.get(&format!("/api/runs/{run}/packages/other/stages/build/log?follow=true")).0, 404);
}

/// How many programs wait for the gate of the kill test (`sleep 0.1` in a loop).
fn gate_waiters() -> usize {
    crate::support::sleeping("0.1").len()
}

/// The events of a server-sent event stream: (id, event, data).
pub(crate) fn sse(stream: &str) -> Vec<(u64, String, String)> {
    stream
        .split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::to_string);
            Some((field("id: ")?.parse().ok()?, field("event: ")?, field("data: ")?))
        })
        .collect()
}

#[test]
fn a_server_killed_mid_run_resumes_it_and_what_passed_stays_passed() {
    // `app` waits until the gate opens; `lib`, which it depends on, passes at once.
    let gate = tempfile::Builder::new().prefix("loktar-gate").tempdir().expect("temp dir");
    let recipe = format!(
        "@if [ \"$$(basename $$PWD)\" = app ]; then while [ ! -e {}/open ]; do sleep 0.1; done; fi",
        gate.path().display()
    );
    let project = Project::new(&recipe);
    let recorder = github();
    let isolation = format!("[isolation]\nread_only = [{:?}]\n", gate.path().display().to_string());
    let mut server = TestServer::start_with(project.origin.path(), &recorder.url(), "", &isolation);
    let (status, answer) = server.hook("push", "crash-1", &project.push_change("lib/a.txt"));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("number");
    // Killed once `lib` has passed, as its record says, and `app` waits.
    let lib_passed = within(60, || {
        let shown = server.get_json(&format!("/api/runs/{run}"));
        shown["packages"][0]["name"] == "lib" && shown["packages"][0]["status"] == "passed"
    });
    assert!(lib_passed, "`lib` never passed");
    assert!(within(30, || gate_waiters() > 0), "`app` never started waiting");

    server.kill_and_restart();
    std::fs::write(gate.path().join("open"), "").expect("open the gate");
    let resumed = server.finished(run);
    assert_eq!(resumed["run"]["status"], "passed", "{resumed:#}");
    assert_eq!(resumed["run"]["reason"], "resumed after the server stopped");
    let names: Vec<(&str, &str)> = resumed["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?, p["status"].as_str()?)))
        .collect();
    assert_eq!(names, [("lib", "passed"), ("app", "passed")], "{resumed:#}");
    assert_eq!(server.runs().len(), 1, "the delivery started one run, resumed");

    // `lib` ran once: one pending and one success; `app`'s checks end settled.
    let states = |context: &str| -> Vec<String> {
        recorder
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.json()["context"] == context)
            .map(|r| r.json()["state"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(states("lib - test"), ["pending", "success"]);
    assert_eq!(states("app - test").last().map(String::as_str), Some("success"), "{:?}", states("app - test"));
}

#[test]
fn stored_artifacts_are_served_whole_in_part_and_by_tag_and_paths_out_of_the_store_are_refused() {
    let project = Project::new("@true");
    // `lib` is built by the `zip` test builder (`lib.txt`, version 1) and kept by the built-in `fs` store.
    project.repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "lib", "pkg_type": "zip", "build_info": { "storage_type": "fs" } } ] }"#,
    );
    let before = project.repo.git(&["rev-parse", "HEAD"]);
    let after = project.repo.commit("ENH: build lib with zip");
    project.repo.git(&["push", "--quiet", "origin", "main"]);
    let zip = format!(
        "[plugins.zip]\npath = \"{}\"\nrole = \"builder\"\ncapabilities = [\"log\"]\n",
        crate::support::test_plugin("zip").display()
    );
    let recorder = github();
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "", &zip);
    let (status, answer) = server.hook("push", "delivery-artifact", &push_event(&before, &after));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("the run's number");
    let shown = server.finished(run);
    assert_eq!(shown["run"]["status"], "passed", "{shown:#}");

    // The run lists what `lib` stored, with a link through the proxy.
    let artifact = &shown["packages"][0]["artifacts"][0];
    assert_eq!((&artifact["name"], &artifact["version"]), (&json!("lib"), &json!("1")), "{shown:#}");
    assert!(artifact["location"].as_str().is_some_and(|l| l.starts_with("file://")), "{shown:#}");
    let download = artifact["download"].as_str().expect("a download link");
    assert_eq!(download, "/api/artifacts/lib/1/lib.txt?repository=acme%2Fshop", "in its repository's stores");
    assert_eq!(server.get(download).0, 200);
    let link = "/api/artifacts/lib/1/lib.txt";
    let content = format!("built lib at {after}");

    // Whole, with its tag.
    let whole = server.agent.get(format!("{}{link}", server.url)).call().expect("get");
    assert_eq!(whole.status().as_u16(), 200);
    let etag = whole.headers().get("etag").and_then(|v| v.to_str().ok()).expect("an ETag").to_string();
    assert_eq!(whole.headers().get("accept-ranges").and_then(|v| v.to_str().ok()), Some("bytes"));
    assert_eq!(whole.into_body().read_to_string().expect("body"), content);

    // A part of it.
    let mut part = server.agent.get(format!("{}{link}", server.url)).header("Range", "bytes=6-8").call().expect("get");
    assert_eq!(part.status().as_u16(), 206);
    let range = part.headers().get("content-range").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(range, Some(format!("bytes 6-8/{}", content.len())));
    assert_eq!(part.body_mut().read_to_string().expect("body"), "lib");
    // The end of it, and a range past it.
    let mut tail = server.agent.get(format!("{}{link}", server.url)).header("Range", "bytes=-7").call().expect("get");
    assert_eq!(tail.body_mut().read_to_string().expect("body"), &after[after.len() - 7..]);
    let beyond = server.agent.get(format!("{}{link}", server.url)).header("Range", "bytes=999-").call().expect("get");
    assert_eq!(beyond.status().as_u16(), 416);
    // A suffix longer than the artifact: all of it.
    let mut all = server.agent.get(format!("{}{link}", server.url)).header("Range", "bytes=-9999").call().expect("get");
    assert_eq!(all.status().as_u16(), 206);
    assert_eq!(all.body_mut().read_to_string().expect("body"), content);
    // Unchanged since the reader's copy (its tag, weak or not): nothing sent again.
    for tag in [etag.clone(), format!("W/{etag}"), "*".to_string()] {
        let cached =
            server.agent.get(format!("{}{link}", server.url)).header("If-None-Match", &tag).call().expect("get");
        assert_eq!(cached.status().as_u16(), 304, "{tag}");
    }
    // Its headers alone.
    let head = server.agent.head(format!("{}{link}", server.url)).call().expect("head");
    assert_eq!(head.status().as_u16(), 200);
    let length = head.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(length, Some(content.len().to_string()));
    // Narrowed to its repository: still there; another repository: not built here.
    assert_eq!(server.get(&format!("{link}?repository={REPOSITORY}")).0, 200);
    assert_eq!(server.get(&format!("{link}?repository=acme/other")).0, 404);

    // Not stored, and paths that would leave the store.
    let (status, body) = server.get("/api/artifacts/lib/2/lib.txt");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no store holds `lib/2/lib.txt`"), "{body}");
    for leaving in
        ["/api/artifacts/lib/../lib.txt", "/api/artifacts/lib/1/..%2F..%2Floktar.db", "/api/artifacts/lib/%2E%2E/x"]
    {
        let (status, body) = raw_get(&server.url, leaving);
        assert_eq!(status, 400, "{leaving}: {body}");
        assert!(body.contains("leaves the store"), "{leaving}: {body}");
    }
}

#[test]
fn artifacts_in_an_s3_store_are_served_through_the_proxy() {
    let s3 = crate::s3_server::S3Server::start(&["artifacts"]);
    // Stored as the `s3` storage lays it out, below the store's prefix.
    let content: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let object = s3.root.path().join("artifacts/ci/lib/7/lib.tar");
    std::fs::create_dir_all(object.parent().expect("a folder")).expect("mkdir");
    std::fs::write(&object, &content).expect("write the object");
    let project = Project::new("@true");
    let store = format!(
        "[stores.s3]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"artifacts\"\nprefix = \"ci\"\n\
         access_key_secret = \"s3_key\"\nsecret_key_secret = \"s3_secret\"\n\n\
         [secrets.s3_key]\nenv = \"TEST_S3_KEY\"\n\n[secrets.s3_secret]\nenv = \"TEST_S3_SECRET\"\n",
        s3.endpoint
    );
    let recorder = github();
    let server = TestServer::start_with(project.origin.path(), &recorder.url(), "", &store);
    let url = format!("{}/api/artifacts/lib/7/lib.tar", server.url);

    let mut whole = server.agent.get(&url).call().expect("get");
    assert_eq!(whole.status().as_u16(), 200);
    let etag = whole.headers().get("etag").and_then(|v| v.to_str().ok()).expect("an ETag").to_string();
    assert_eq!(whole.body_mut().with_config().limit(1 << 20).read_to_vec().expect("body"), content);
    let mut part = server.agent.get(&url).header("Range", "bytes=1000-1999").call().expect("get");
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.body_mut().read_to_vec().expect("body"), &content[1000..2000]);
    assert_eq!(server.agent.get(&url).header("If-None-Match", &etag).call().expect("get").status().as_u16(), 304);

    // The store gone: the proxy says which store did not answer, and nothing of its credentials.
    drop(s3);
    let (status, body) = server.get("/api/artifacts/lib/7/lib.tar");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("store `s3` did not answer"), "{body}");
    assert!(!body.contains(crate::s3_server::SECRET_KEY), "{body}");
}

#[test]
fn loktar_remote_lists_shows_follows_and_controls_a_server_s_runs() {
    let project = Project::new("@echo testing $$(basename $$PWD)");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "api_tokens = [\"admin\"]");
    let remote = |args: &[&str], token: Option<&str>| {
        let mut all = vec!["remote", "--server", server.url.as_str()];
        all.extend_from_slice(args);
        project.repo.loktar_with_env(&all, &token.map(|token| [("LOKTAR_TOKEN", token)]).unwrap_or_default()[..])
    };
    let (status, answer) = server.hook("push", "remote-1", &project.push_change("lib/a.txt"));
    assert_eq!(status, 202, "{answer}");
    let run = answer["run"].as_i64().expect("number");
    server.finished(run);

    // Listed and shown as `loktar runs` lists and shows local runs.
    let listed = remote(&["runs"], None).ok();
    assert!(listed.starts_with("run  started (UTC)"), "{listed}");
    assert!(
        listed.lines().nth(1).is_some_and(|row| row.starts_with(&format!("{run} ")) && row.contains("passed")),
        "{listed}"
    );
    let shown = remote(&["show", &run.to_string()], None).ok();
    assert!(shown.starts_with(&format!("run {run}: passed")), "{shown}");
    for package in ["lib", "app"] {
        let row = |line: &str| line.split_whitespace().take(3).eq([package, "test", "passed"]);
        assert!(shown.lines().any(row), "{shown}");
    }
    assert!(shown.contains(&format!("/api/runs/{run}/packages/lib/stages/test/log")), "{shown}");
    let json: Value = serde_json::from_str(&remote(&["show", &run.to_string(), "--format", "json"], None).ok())
        .expect("the server's JSON");
    assert_eq!(json["run"]["id"], run);
    assert_eq!(remote(&["runs", "--branch", "other"], None).ok(), "no runs on this server yet\n");
    // A stage's log, whole and followed to its end.
    assert!(remote(&["logs", &run.to_string(), "lib", "test"], None).ok().contains("testing lib"));
    assert!(remote(&["logs", &run.to_string(), "app", "test", "--follow"], None).ok().contains("testing app"));

    // The write routes: refused without a token, saying where it comes from; done with one.
    let refused = remote(&["rerun", &run.to_string(), "--all"], None).expect_code(2);
    assert!(refused.stderr.contains("this route needs an API token (HTTP 401)"), "{}", refused.stderr);
    assert!(refused.stderr.contains("set `LOKTAR_TOKEN`"), "{}", refused.stderr);
    let rerun = remote(&["rerun", &run.to_string(), "--all"], Some(API_TOKEN)).ok();
    let again: i64 = rerun
        .strip_prefix("run ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("not a started run: {rerun}"));
    assert_eq!(rerun, format!("run {again} started: {}/api/runs/{again}\n", server.url));
    assert_eq!(server.finished(again)["packages"].as_array().map(Vec::len), Some(2), "--all: both packages of the run");
    let triggered =
        remote(&["trigger", "--repository", REPOSITORY, "--branch", "main", "--package", "other"], Some(API_TOKEN))
            .ok();
    let number: i64 = triggered.split(' ').nth(1).and_then(|n| n.parse().ok()).expect("a run number");
    let names: Vec<Value> =
        server.finished(number)["packages"].as_array().into_iter().flatten().map(|p| p["name"].clone()).collect();
    assert_eq!(names, [json!("other")]);
    let ended = remote(&["cancel", &number.to_string()], Some(API_TOKEN)).expect_code(2);
    assert!(ended.stderr.contains(&format!("run {number} has ended: passed (HTTP 409)")), "{}", ended.stderr);

    // What the server refuses, and a server that is not there, said plainly.
    let missing = remote(&["show", "999"], None).expect_code(2);
    assert!(missing.stderr.contains("no run 999 (HTTP 404)"), "{}", missing.stderr);
    let nowhere = project.repo.loktar(&["remote", "--server", "http://127.0.0.1:9", "runs"]).expect_code(2);
    assert!(nowhere.stderr.contains("cannot reach the Loktar server at http://127.0.0.1:9"), "{}", nowhere.stderr);
    let unnamed = project.repo.loktar(&["remote", "runs"]).expect_code(2);
    assert!(
        unnamed.stderr.contains("give `--server http://<host>:<port>`, or set `LOKTAR_SERVER`"),
        "{}",
        unnamed.stderr
    );
}

#[test]
fn repositories_are_fetched_with_github_s_credentials_sent_to_the_clone_url_alone() {
    let project = Project::new("@true");
    // GitHub's host (its API and its git) that turns every fetch away, keeping what it was sent.
    let git_host = Recorder::start(|_| Reply::text(403, "denied"));
    let clone_url = format!("{}/acme/shop.git", git_host.url());
    let server = TestServer::start(Path::new(&clone_url), &git_host.url(), "");
    let (status, answer) = server.hook("push", "credentials-1", &project.push_change("lib/a.txt"));
    assert_eq!(status, 202, "{answer}");
    let shown = server.finished(answer["run"].as_i64().expect("number"));
    assert_eq!(shown["run"]["status"], "failed", "{shown:#}");
    let reason = shown["run"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.starts_with("cannot fetch `acme/shop`: "), "{reason}");
    assert!(reason.contains("check `clone_url` under `[server.repositories]`"), "{reason}");

    // Git asked with the token of `[github]`, as GitHub takes it over HTTPS, and only the clone URL.
    let fetches: Vec<_> = git_host.requests().into_iter().filter(|r| r.path.starts_with("/acme/shop.git/")).collect();
    assert!(!fetches.is_empty(), "git never asked the git host");
    use base64::Engine;
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}")));
    for fetch in &fetches {
        assert!(fetch.path.starts_with("/acme/shop.git/info/refs"), "{fetch:?}");
        assert_eq!(fetch.header("authorization"), Some(basic.as_str()), "{fetch:?}");
    }
    // Nowhere else: not in the answer, the record, a mirror's configuration.
    crate::support::assert_secrets_hidden(&[TOKEN, &basic[6..]], &[&reason], &server.data_dir());

    // Another host than GitHub's (here: another port) is never given them.
    let elsewhere = Recorder::start(|_| Reply::text(403, "denied"));
    let project = Project::new("@true");
    let server = TestServer::start(Path::new(&format!("{}/acme/shop.git", elsewhere.url())), &git_host.url(), "");
    let (status, answer) = server.hook("push", "credentials-2", &project.push_change("lib/a.txt"));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(server.finished(answer["run"].as_i64().expect("number"))["run"]["status"], "failed");
    let asked = elsewhere.requests();
    assert!(!asked.is_empty(), "git never asked the other host");
    assert!(asked.iter().all(|request| request.header("authorization").is_none()), "{asked:?}");
}

/// `GET path` sent exactly as written (no client normalises `..` away): status and body.
fn raw_get(url: &str, path: &str) -> (u16, String) {
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}
