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
const TOKEN: &str = "ghp_server_test_token";
const REPOSITORY: &str = "acme/shop";

/// A running `loktar server`, stopped with SIGTERM when dropped.
struct TestServer {
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
        let home = tempfile::Builder::new().prefix("loktar-server").tempdir().expect("temp dir");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nwebhook_secret = \"hook\"\nexecutors = 2\n{extra}\n\
             [server.repositories.\"{REPOSITORY}\"]\nclone_url = {:?}\n\n\
             [plugins.github]\nrole = \"notifier\"\n\n[github]\napi_url = \"{github_api}\"\ntoken_secret = \"gh\"\nretries = 0\n\n\
             [secrets.hook]\nenv = \"TEST_WEBHOOK_SECRET\"\n\n[secrets.gh]\nenv = \"TEST_GITHUB_TOKEN\"\n",
            origin.display().to_string()
        );
        std::fs::write(home.path().join("loktar.toml"), config).expect("write loktar.toml");
        let mut child = loktar_command()
            .current_dir(home.path())
            .args(["--config", "loktar.toml", "server"])
            .env("TEST_WEBHOOK_SECRET", SECRET)
            .env("TEST_GITHUB_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loktar server");
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
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        TestServer { child, url, home, agent }
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
    fn hook(&self, event: &str, delivery: &str, payload: &Value) -> (u16, Value) {
        let body = payload.to_string();
        let signature = loktar::server::signature::sign(SECRET.as_bytes(), body.as_bytes());
        self.post(event, delivery, body.as_bytes(), Some(&signature))
    }

    /// `GET path`: status and body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut response = self.agent.get(format!("{}{path}", self.url)).call().expect("get");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("read the answer"))
    }

    /// `GET path` as JSON, which must answer 200.
    #[track_caller]
    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    /// The run numbered `run` once it has ended (at most 120 s later).
    #[track_caller]
    fn finished(&self, run: i64) -> Value {
        let mut last = Value::Null;
        let ended = within(120, || {
            last = self.get_json(&format!("/api/runs/{run}"));
            !matches!(last["run"]["status"].as_str(), Some("queued" | "running"))
        });
        assert!(ended, "run {run} did not end: {last:#}");
        last
    }

    /// Every run the server lists.
    fn runs(&self) -> Vec<Value> {
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
        let origin = tempfile::Builder::new().prefix("loktar-origin").tempdir().expect("temp dir");
        let bare = origin.path().display().to_string();
        repo.git(&["init", "--quiet", "--bare", &bare]);
        repo.git(&["remote", "add", "origin", &bare]);
        repo.git(&["push", "--quiet", "origin", "main"]);
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
fn push_event(before: &str, after: &str) -> Value {
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

fn github() -> Recorder {
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
        assert_eq!(server.finished(run)["run"]["status"], "passed");
    }
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
    assert_eq!(server.finished(fast)["run"]["status"], "passed");
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
    assert_eq!(examples.len(), 6, "an example per answer of docs/api.md");
    let project = Project::new("@false");
    let recorder = github();
    let server = TestServer::start(project.origin.path(), &recorder.url(), "");
    let (status, accepted) = server.hook("push", "docs-1", &project.push_change("lib/a.txt"));
    assert_eq!(status, 202);
    assert_eq!(keys(&accepted), keys(&examples[1]), "the 202 answer");
    assert_eq!(keys(&server.hook("push", "docs-1", &project.push_change("lib/a.txt")).1), keys(&examples[2]));
    let run = accepted["run"].as_i64().expect("number");
    let shown = server.finished(run);
    assert_eq!(keys(&server.get_json("/api/health")), keys(&examples[3]), "the health answer");
    let listed = server.get_json("/api/runs");
    assert_eq!(keys(&listed), keys(&examples[4]));
    assert_eq!(keys(&listed["runs"][0]), keys(&examples[4]["runs"][0]), "a listed run");
    assert_eq!(keys(&shown), keys(&examples[5]));
    assert_eq!(keys(&shown["run"]), keys(&examples[5]["run"]), "a run");
    // `lib` failed: `app` never ran a stage.
    assert_eq!(keys(&shown["packages"][0]), keys(&examples[5]["packages"][0]), "a package that ran: {shown:#}");
    assert_eq!(keys(&shown["packages"][0]["stages"][0]), keys(&examples[5]["packages"][0]["stages"][0]), "a stage");
    assert_eq!(keys(&shown["packages"][1]), keys(&examples[5]["packages"][1]), "a package that did not run: {shown:#}");
    assert_eq!(shown["packages"][1]["status"], "skipped", "{shown:#}");
    let (status, refused) = server.hook("push", "docs-2", &json!({ "ref": "refs/heads/main", "before": "0", "after": "0", "repository": { "full_name": "acme/unknown" } }));
    assert_eq!(status, 404);
    assert_eq!(keys(&refused), keys(&examples[0]), "a refusal");
    let pong = server.hook("ping", "docs-3", &json!({ "zen": "Keep it logically awesome.", "hook_id": 1 }));
    assert_eq!(pong, (200, json!({ "message": "pong" })), "as the table of docs/api.md says");
}
