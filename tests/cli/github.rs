//! GitHub against a recording server playing its REST API: Loktar's client
//! (what the `github` capability calls) — the documented headers and token,
//! pagination past one page, retries after a 502 and after a rate limit,
//! waiting until its reset — and the `github` notifier's commit statuses
//! through `loktar run`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loktar::github::Github;
use loktar::settings::GithubSettings;
use serde_json::json;

use crate::recorder::{Recorder, Reply};
use crate::support::{Run, TestRepo};

const TOKEN: &str = "canary-github-token-31f0";

fn github(url: &str) -> Github {
    let settings = GithubSettings { api_url: url.to_string(), retries: 3, ..GithubSettings::default() };
    Github::new(settings, Some(TOKEN.to_string()), None)
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio").block_on(future)
}

#[test]
fn calls_carry_the_token_and_the_documented_headers() {
    let server = Recorder::start(|_| Reply::json(201, json!({"state": "success"})));
    let status = json!({"state": "success", "context": "pet_api - test", "description": "tests passed"});
    let answer =
        block_on(github(&server.url()).call("POST", "/repos/acme/monorepo/statuses/abc123", Some(&status.to_string())))
            .expect("a call");
    assert_eq!(answer.status, 201);
    let calls = server.requests();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/repos/acme/monorepo/statuses/abc123"));
    assert_eq!(call.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(call.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(call.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.json(), status);
}

#[test]
fn paginated_answers_are_merged_past_the_first_page() {
    let server = Arc::new(std::sync::OnceLock::<String>::new());
    let base = server.clone();
    let recorder = Recorder::start(move |request| {
        let url = base.get().cloned().unwrap_or_default();
        let page = |from: usize, to: usize| {
            json!((from..to).map(|n| json!({"filename": format!("f{n}.py")})).collect::<Vec<_>>())
        };
        match request.path.as_str() {
            "/repos/acme/monorepo/pulls/7/files?per_page=100" => Reply::json(200, page(0, 100))
                .with_header("link", &format!("<{url}/repositories/1/pulls/7/files?per_page=100&page=2>; rel=\"next\", <{url}/repositories/1/pulls/7/files?per_page=100&page=3>; rel=\"last\"")),
            "/repositories/1/pulls/7/files?per_page=100&page=2" => Reply::json(200, page(100, 200))
                .with_header("link", &format!("<{url}/repositories/1/pulls/7/files?per_page=100&page=3>; rel=\"next\"")),
            "/repositories/1/pulls/7/files?per_page=100&page=3" => Reply::json(200, page(200, 230)),
            _ => Reply::json(404, json!({"message": "Not Found"})),
        }
    });
    server.set(recorder.url()).expect("set once");
    let answer = block_on(github(&recorder.url()).call("GET", "/repos/acme/monorepo/pulls/7/files?per_page=100", None))
        .expect("a call");
    let files: Vec<serde_json::Value> = serde_json::from_str(&answer.body).expect("one array");
    assert_eq!(files.len(), 230, "every page, merged");
    assert_eq!((files[0]["filename"].as_str(), files[229]["filename"].as_str()), (Some("f0.py"), Some("f229.py")));
    assert_eq!(recorder.requests().len(), 3);
    assert!(recorder.requests().iter().all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}"))));
}

#[test]
fn a_502_and_a_rate_limit_are_tried_again_after_the_wait_they_ask_for() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let recorder = Recorder::start(move |_| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::json(502, json!({"message": "Server Error"})),
            1 => Reply::json(403, json!({"message": "API rate limit exceeded"}))
                .with_header("x-ratelimit-remaining", "0")
                .with_header("x-ratelimit-reset", &(now + 1).to_string()),
            _ => Reply::json(200, json!({"state": "success"})),
        }
    });
    let started = std::time::Instant::now();
    let answer =
        block_on(github(&recorder.url()).call("GET", "/repos/acme/monorepo/commits/abc/status", None)).expect("a call");
    assert_eq!(answer.status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "tried again twice");
    // 1 s after the 502 (no Retry-After), then until the reset: at least 2 s.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "{:?}", started.elapsed());

    // A plain 403 (no rate limit) is an answer, not tried again.
    let refused = Recorder::start(|_| Reply::json(403, json!({"message": "Resource not accessible by integration"})));
    let answer = block_on(github(&refused.url()).call("GET", "/repos/acme/monorepo", None)).expect("an answer");
    assert_eq!((answer.status, refused.requests().len()), (403, 1));
}

#[test]
fn a_rate_limit_longer_than_loktar_waits_is_an_error_saying_so() {
    let recorder = Recorder::start(|_| {
        Reply::json(403, json!({"message": "API rate limit exceeded"}))
            .with_header("x-ratelimit-remaining", "0")
            .with_header("x-ratelimit-reset", "99999999999")
    });
    let error =
        block_on(github(&recorder.url()).call("GET", "/repos/acme/monorepo", None)).expect_err("too long a wait");
    assert!(error.message.contains("rate limit for `GET /repos/acme/monorepo` resets in"), "{}", error.message);
    assert!(error.hint.unwrap_or_default().contains("max_wait_secs"));
}

#[test]
fn without_credentials_the_error_says_what_to_configure() {
    let recorder = Recorder::start(|_| Reply::json(200, json!({})));
    let client = Github::new(GithubSettings { api_url: recorder.url(), ..GithubSettings::default() }, None, None);
    let error = block_on(client.call("GET", "/user", None)).expect_err("no credentials");
    assert_eq!(error.message, "Loktar has no GitHub credentials");
    assert!(recorder.requests().is_empty(), "nothing was sent");
}

/// A repository on GitHub (`origin`): `a`, `b` depending on `a`, `c` on `b`; `b`'s tests fail when `fail`.
fn repo_with_statuses(api_url: &str, fail: bool, retries: u32) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&format!(
            "[plugins.github]\nrole = \"notifier\"\n\n[github]\napi_url = \"{api_url}\"\ntoken_secret = \"gh\"\nretries = {retries}\n\n\
             [secrets.gh]\nenv = \"TEST_GITHUB_TOKEN\"\n\n[notifications]\nrun_url = \"https://ci.example.com/runs/{{run}}\"\n"
        ),
    );
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "a", "test_type": "make" },
  { "pkg_name": "b", "test_type": "make", "depends_on": ["a"] },
  { "pkg_name": "c", "test_type": "make", "depends_on": ["b"] } ] }"#,
    );
    for package in ["a", "b", "c"] {
        let ci = if fail && package == "b" { "\t@echo \"2 tests failed\" && false" } else { "\t@echo ok" };
        repo.write(&format!("{package}/Makefile"), &format!("ci:\n{ci}\n\nclean:\n\t@true\n"));
    }
    repo.git(&["remote", "add", "origin", "git@github.com:acme/monorepo.git"]);
    repo.commit("three packages");
    repo
}

fn run_loktar(repo: &TestRepo, args: &[&str]) -> Run {
    repo.loktar_with_env(args, &[("TEST_GITHUB_TOKEN", TOKEN)])
}

/// (context, state, description) of each status posted, in order.
fn posted(recorder: &Recorder, commit: &str) -> Vec<(String, String, String)> {
    recorder
        .requests()
        .iter()
        .map(|request| {
            assert_eq!(
                (request.method.as_str(), request.path.as_str()),
                ("POST", format!("/repos/acme/monorepo/statuses/{commit}").as_str())
            );
            assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
            let body = request.json();
            let text = |key: &str| body[key].as_str().unwrap_or_default().to_string();
            (text("context"), text("state"), text("description"))
        })
        .collect()
}

#[test]
fn the_github_notifier_posts_pending_then_final_statuses_per_package_and_stage() {
    let recorder = Recorder::start(|_| Reply::json(201, json!({"state": "ok"})));
    let repo = repo_with_statuses(&recorder.url(), true, 0);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let run = run_loktar(&repo, &["run", "--all", "-j", "1"]).expect_code(1);
    let statuses = posted(&recorder, &head);
    let owned = |c: &str, s: &str, d: &str| (c.to_string(), s.to_string(), d.to_string());
    assert_eq!(
        statuses,
        [
            owned("a - test", "pending", "queued"),
            owned("b - test", "pending", "queued"),
            owned("c - test", "pending", "queued"),
            owned("a - test", "success", "`make ci` passed"),
            owned("b - test", "failure", "`make ci` failed with exit code 2"),
            owned("c - test", "failure", "not run: dependency `b` failed"),
        ],
        "{}",
        run.stdout
    );
    for request in recorder.requests() {
        assert_eq!(request.json()["target_url"], "https://ci.example.com/runs/1");
        assert_eq!(request.header("accept"), Some("application/vnd.github+json"));
    }
    assert!(run.stdout.starts_with("package  result   test"), "{}", run.stdout);
    crate::support::assert_secrets_hidden(&[TOKEN], &[&run.stdout, &run.stderr], &repo.path().join(".loktar"));
}

#[test]
fn a_failing_notifier_never_changes_the_result_and_is_reported() {
    let recorder = Recorder::start(|_| Reply::json(500, json!({"message": "Server Error"})));
    let repo = repo_with_statuses(&recorder.url(), false, 0);
    let run = run_loktar(&repo, &["run", "--all"]).expect_code(0);
    run.says(&["notify: plugin `github`", "a notify: plugin `github`"]);
    assert!(!recorder.requests().is_empty());
}

#[test]
fn a_run_with_nothing_affected_posts_one_success_status() {
    let recorder = Recorder::start(|_| Reply::json(201, json!({"state": "ok"})));
    let repo = repo_with_statuses(&recorder.url(), false, 0);
    repo.write("README.md", "not in any package\n");
    let head = repo.commit("docs");
    let run = run_loktar(&repo, &["run"]).expect_code(0);
    run.says(&["nothing to run"]);
    assert_eq!(
        posted(&recorder, &head),
        [(
            "loktar".to_string(),
            "success".to_string(),
            format!("nothing to build: {}", run.stdout.trim().trim_start_matches("nothing to run: "))
        )]
    );
}

#[test]
fn a_github_app_signs_in_as_its_installation() {
    let key = std::process::Command::new("openssl").args(["genrsa", "-traditional", "2048"]).output().expect("openssl");
    assert!(key.status.success(), "openssl genrsa failed");
    let recorder = Recorder::start(|request| match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/app/installations/42/access_tokens") => {
            let token = json!({"token": "ghs_installation_token", "expires_at": "2099-01-01T00:00:00Z",
                               "permissions": {"statuses": "write"}, "repository_selection": "all"});
            Reply::json(201, token)
        }
        _ => Reply::json(200, json!({"full_name": "acme/monorepo"})),
    });
    let settings = GithubSettings {
        api_url: recorder.url(),
        app_id: Some(7),
        installation_id: Some(42),
        ..GithubSettings::default()
    };
    let client = Github::new(settings, None, Some(String::from_utf8_lossy(&key.stdout).into_owned()));
    let answer = block_on(client.call("GET", "/repos/acme/monorepo", None)).expect("a call");
    assert_eq!(answer.status, 200);
    let calls = recorder.requests();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!((calls[0].method.as_str(), calls[0].path.as_str()), ("POST", "/app/installations/42/access_tokens"));
    // The App signs a JWT (RS256) whose issuer is the App's id.
    let jwt = calls[0].header("authorization").and_then(|h| h.strip_prefix("Bearer ")).expect("a bearer JWT");
    let claims = jwt.split('.').nth(1).expect("a JWT payload");
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
    assert_eq!(claims["iss"], 7);
    assert_eq!((calls[1].method.as_str(), calls[1].path.as_str()), ("GET", "/repos/acme/monorepo"));
    assert_eq!(calls[1].header("authorization"), Some("Bearer ghs_installation_token"));
}

#[test]
fn a_crashed_plugin_is_an_error_status_and_a_failing_package_a_failure() {
    let recorder = Recorder::start(|_| Reply::json(201, json!({"state": "ok"})));
    let repo = TestRepo::new();
    repo.host_config(&format!(
            "[plugins.github]\nrole = \"notifier\"\n\n[plugins.hostile]\npath = {:?}\nrole = \"tester\"\n\
             capabilities = [\"log\", \"process\"]\n\n[github]\napi_url = \"{}\"\ntoken_secret = \"gh\"\nretries = 0\n\n\
             [secrets.gh]\nenv = \"TEST_GITHUB_TOKEN\"\n",
            crate::support::test_plugin("hostile").display().to_string(),
            recorder.url()
        ),
    );
    // `crash` panics inside the plugin; `refused` gets the plugin's own error (the attack fails).
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "crash", "test_type": "hostile", "build_info": { "attack": "panic" } },
  { "pkg_name": "refused", "test_type": "hostile", "build_info": { "attack": "read-passwd" } } ] }"#,
    );
    repo.write("crash/x", "x\n");
    repo.write("refused/x", "x\n");
    repo.git(&["remote", "add", "origin", "https://github.com/acme/monorepo.git"]);
    let head = repo.commit("two packages");
    let run = run_loktar(&repo, &["run", "--all", "-j", "1"]).expect_code(1);
    let mut finals: Vec<(String, String, String)> =
        posted(&recorder, &head).into_iter().filter(|(_, state, _)| state != "pending").collect();
    assert_eq!(finals.len(), 2, "{finals:?}\n{}", run.stdout);
    // Each package's notifier call is its own request: they may arrive in either order.
    finals.sort();
    assert_eq!((finals[0].0.as_str(), finals[0].1.as_str()), ("crash - test", "error"));
    assert!(finals[0].2.starts_with("plugin `hostile` crashed (it panicked or aborted)"), "{}", finals[0].2);
    assert_eq!((finals[1].0.as_str(), finals[1].1.as_str()), ("refused - test", "failure"));
    assert!(finals[1].2.starts_with("plugin `hostile`: attack failed:"), "{}", finals[1].2);
}

#[test]
fn statuses_go_to_the_repository_the_host_configuration_names() {
    let recorder = Recorder::start(|_| Reply::json(201, json!({"state": "ok"})));
    let repo = repo_with_statuses(&recorder.url(), false, 0);
    // `origin` says acme/monorepo; the operator says the statuses belong elsewhere.
    let config = std::fs::read_to_string(repo.host_config_path()).expect("the host configuration");
    repo.host_config(&config.replace("[github]\n", "[github]\nrepository = \"acme/mirror\"\n"));
    let head = repo.git(&["rev-parse", "HEAD"]);
    run_loktar(&repo, &["run", "--all", "-j", "1"]).expect_code(0);
    let paths: Vec<String> = recorder.requests().iter().map(|request| request.path.clone()).collect();
    assert_eq!(paths.len(), 6, "{paths:?}");
    assert!(paths.iter().all(|path| *path == format!("/repos/acme/mirror/statuses/{head}")), "{paths:?}");
}
