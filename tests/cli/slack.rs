//! The `slack` notifier through `loktar run`, against a recording server
//! playing Slack: an incoming webhook and `chat.postMessage` with a bot
//! token — the exact requests (method, path, headers, Block Kit body), the
//! plain-text fallback, `only_on_failure`, a failing webhook that leaves the
//! run's result alone, a host outside `http_hosts` refused before any
//! connection, and the webhook URL and token never in output or logs.

use serde_json::json;

use crate::recorder::{Recorder, Reply};
use crate::support::{Run, TestRepo, assert_secrets_hidden};

/// The secret part of the webhook URL.
const WEBHOOK_PATH: &str = "/services/T0CANARY/B0CANARY/canary-webhook-secret-77f1";
const BOT_TOKEN: &str = "xoxb-canary-bot-token-5c2e";

/// `a` and `b` (depending on `a`); `b`'s tests fail when `fail`. The Slack
/// section of `loktar.toml` is `settings`, allowing `allowed_host`.
fn repo(settings: &str, allowed_host: &str, fail: bool) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&format!(
            "[plugins.slack]\nrole = \"notifier\"\nsecrets = [\"slack_webhook\", \"slack_bot\"]\nhttp_hosts = [\"{allowed_host}\"]\n\n\
             [plugins.slack.settings]\n{settings}\n\n\
             [secrets.slack_webhook]\nenv = \"TEST_SLACK_WEBHOOK\"\n\n[secrets.slack_bot]\nenv = \"TEST_SLACK_TOKEN\"\n\n\
             [notifications]\nrun_url = \"https://ci.example.com/runs/{{run}}\"\n"
        ),
    );
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "a", "test_type": "make" },
  { "pkg_name": "b", "test_type": "make", "depends_on": ["a"] } ] }"#,
    );
    for package in ["a", "b"] {
        let ci = if fail && package == "b" { "\t@echo \"1 test failed\" && false" } else { "\t@echo ok" };
        repo.write(&format!("{package}/Makefile"), &format!("ci:\n{ci}\n"));
    }
    repo.git(&["remote", "add", "origin", "https://github.com/acme/monorepo.git"]);
    repo.git(&["checkout", "-q", "-b", "feature/slack"]);
    repo.commit("two packages");
    repo
}

fn run(repo: &TestRepo, server: &Recorder, args: &[&str]) -> Run {
    let webhook = format!("{}{WEBHOOK_PATH}", server.url());
    repo.loktar_with_env(args, &[("TEST_SLACK_WEBHOOK", &webhook), ("TEST_SLACK_TOKEN", BOT_TOKEN)])
}

fn host(server: &Recorder) -> String {
    server.url().trim_start_matches("http://").to_string()
}

#[test]
fn a_webhook_gets_one_block_kit_message_per_run() {
    let server = Recorder::start(|_| Reply::text(200, "ok"));
    let repo = repo("webhook_secret = \"slack_webhook\"", &host(&server), true);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let run = run(&repo, &server, &["run", "--all", "-j", "1"]).expect_code(1);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one message per run: {requests:#?}");
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", WEBHOOK_PATH));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    let short = &head[..7];
    assert_eq!(
        body["text"],
        format!("Loktar run 1 failed: acme/monorepo on feature/slack ({short}) by Loktar Test — 1 passed, 1 failed")
    );
    let blocks = body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0], json!({"type": "header", "text": {"type": "plain_text", "text": "❌ Loktar run 1 failed"}}));
    assert_eq!(
        blocks[1]["fields"],
        json!([
            {"type": "mrkdwn", "text": "*Repository*\nacme/monorepo"},
            {"type": "mrkdwn", "text": "*Branch*\nfeature/slack"},
            {"type": "mrkdwn", "text": format!("*Commit*\n<https://github.com/acme/monorepo/commit/{head}|`{short}`>")},
            {"type": "mrkdwn", "text": "*Author*\nLoktar Test"},
        ])
    );
    let packages = blocks[2]["text"]["text"].as_str().expect("package lines");
    let lines: Vec<&str> = packages.lines().collect();
    assert_eq!(lines.len(), 2, "{packages}");
    assert!(lines[0].starts_with("✅ `a` passed in ") && lines[0].ends_with(" s"), "{packages}");
    assert!(lines[1].starts_with("❌ `b` failed in "), "{packages}");
    assert_eq!(
        blocks.last().expect("a link"),
        &json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open the run"}, "url": "https://ci.example.com/runs/1"}]})
    );
    assert_secrets_hidden(
        &[WEBHOOK_PATH, "canary-webhook-secret"],
        &[&run.stdout, &run.stderr],
        &repo.path().join(".loktar"),
    );
}

#[test]
fn a_bot_token_posts_to_each_channel_with_chat_post_message() {
    let server = Recorder::start(|_| Reply::json(200, json!({"ok": true, "channel": "C1", "ts": "1.2"})));
    let settings =
        format!("token_secret = \"slack_bot\"\nchannels = [\"#ci\", \"C0TEAM\"]\napi_url = \"{}/api\"", server.url());
    let repo = repo(&settings, &host(&server), false);
    let run = run(&repo, &server, &["run", "--all"]).expect_code(0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for (request, channel) in requests.iter().zip(["#ci", "C0TEAM"]) {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/api/chat.postMessage"));
        assert_eq!(request.header("authorization"), Some(format!("Bearer {BOT_TOKEN}").as_str()));
        assert_eq!(request.header("content-type"), Some("application/json; charset=utf-8"));
        let body = request.json();
        assert_eq!(body["channel"], channel);
        assert!(body["text"].as_str().unwrap_or_default().starts_with("Loktar run 1 passed: acme/monorepo"), "{body}");
        assert_eq!(body["blocks"][0]["text"]["text"], "✅ Loktar run 1 passed");
    }
    assert_secrets_hidden(&[BOT_TOKEN], &[&run.stdout, &run.stderr], &repo.path().join(".loktar"));
}

#[test]
fn only_on_failure_stays_quiet_about_a_run_that_passed() {
    let server = Recorder::start(|_| Reply::text(200, "ok"));
    let repo = repo("webhook_secret = \"slack_webhook\"\nonly_on_failure = true", &host(&server), false);
    run(&repo, &server, &["run", "--all"]).expect_code(0);
    assert!(server.requests().is_empty(), "a passing run sends nothing");
    repo.write("b/Makefile", "ci:\n\t@false\n");
    repo.commit("break b");
    run(&repo, &server, &["run", "--all"]).expect_code(1);
    assert_eq!(server.requests().len(), 1, "a failing run is told");
}

#[test]
fn a_failing_webhook_leaves_the_result_alone_and_is_reported_without_the_url() {
    let server = Recorder::start(|_| Reply::text(404, "no_service"));
    let repo = repo("webhook_secret = \"slack_webhook\"", &host(&server), false);
    let run = run(&repo, &server, &["run", "--all"]).expect_code(0);
    run.says(&["notify: plugin `slack`: Slack refused the message: HTTP 404 `no_service`"]);
    assert_eq!(server.requests().len(), 1);
    assert_secrets_hidden(
        &[WEBHOOK_PATH, "canary-webhook-secret"],
        &[&run.stdout, &run.stderr],
        &repo.path().join(".loktar"),
    );

    // A refused bot message names Slack's error and the channel.
    let refusing = Recorder::start(|_| Reply::json(200, json!({"ok": false, "error": "not_in_channel"})));
    let settings = format!("token_secret = \"slack_bot\"\nchannels = [\"#ci\"]\napi_url = \"{}/api\"", refusing.url());
    let repo = self::repo(&settings, &host(&refusing), false);
    let run = self::run(&repo, &refusing, &["run", "--all"]).expect_code(0);
    run.says(&["Slack refused the message to `#ci`: HTTP 200 `not_in_channel`"]);
}

#[test]
fn a_host_outside_http_hosts_is_refused_before_any_connection() {
    let server = Recorder::start(|_| Reply::text(200, "ok"));
    // Allowed: another port on the same host.
    let repo = repo("webhook_secret = \"slack_webhook\"", "127.0.0.1:1", false);
    let run = run(&repo, &server, &["run", "--all"]).expect_code(0);
    let port = host(&server);
    run.says(&[&format!("notify: plugin `slack`: Loktar refused the request to `{port}`")]);
    assert!(server.requests().is_empty(), "nothing reached the server");
    // Run-level notifications have no stage log: the refusal goes to stderr.
    assert!(run.stderr.contains(&format!("plugin `slack` may not reach `{port}`")), "{}", run.stderr);
    assert_secrets_hidden(&[WEBHOOK_PATH], &[&run.stdout, &run.stderr], &repo.path().join(".loktar"));
}

#[test]
fn a_rate_limited_message_is_sent_again_after_retry_after() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let server = Recorder::start(move |_| match counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
        0 => Reply::text(429, "rate_limited").with_header("retry-after", "1"),
        _ => Reply::text(200, "ok"),
    });
    let repo = repo("webhook_secret = \"slack_webhook\"", &host(&server), false);
    let started = std::time::Instant::now();
    let run = run(&repo, &server, &["run", "--all"]).expect_code(0);
    assert!(!run.stdout.contains("notify:"), "{}", run.stdout);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "sent again once");
    assert_eq!(requests[0].body, requests[1].body, "the same message");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "waited for Retry-After");
}
