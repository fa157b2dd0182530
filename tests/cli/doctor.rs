//! `loktar doctor` against a real Docker Engine, a real registry and a real
//! S3 server (GitHub a recorder): every check passes, then one thing at a
//! time is broken — the registry password, the bucket, a secret, a plugin's
//! grant, GitHub's answer, the engine itself — and exactly that check fails,
//! with its fix, while the others still pass. No secret value is printed.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::containers::{DockerEngine, ImageRegistry, REGISTRY_PASSWORD, host_config};
use crate::recorder::{Recorder, Reply};
use crate::s3_server::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::support::{Run, TestRepo, assert_secrets_hidden};

const GITHUB_TOKEN: &str = "canary-github-token-77ab";
/// The secret part of the Slack webhook's URL.
const SLACK_HOOK: &str = "canary-slack-hook-19fe";

/// A docker service published to `quay` and a wheel, both tested with make and stored in S3.
fn repository() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "pet_api", "pkg_type": "docker", "test_type": "make", "type": "service",
    "pkg_dir": "services/pet_api", "dependencies_type": ["dockerfile"],
    "build_info": { "registry_type": "quay", "storage_type": "s3" } },
  { "pkg_name": "awesome_lib", "pkg_type": "whl", "test_type": "make", "type": "library",
    "build_info": { "storage_type": "s3" } } ] }"#,
    );
    repo.write("services/pet_api/Dockerfile", "FROM busybox:loktar\n");
    repo.write("services/pet_api/Makefile", "ci:\n\ttrue\nclean:\n\ttrue\n");
    repo.write("awesome_lib/setup.py", "from setuptools import setup\nsetup(name='awesome_lib')\n");
    repo.write("awesome_lib/Makefile", "ci:\n\ttrue\nclean:\n\ttrue\n");
    repo.commit("ENH: two packages");
    repo
}

/// The host configuration: the engine and registry, the S3 store in `bucket`,
/// GitHub at `github_url`, Slack's webhook host reachable by name.
fn configuration(
    engine: &DockerEngine,
    registry: &ImageRegistry,
    s3: &S3Server,
    bucket: &str,
    github_url: &str,
) -> String {
    host_config(engine, &registry.url())
        + &format!(
            "\n[stores.s3]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\n\
             access_key_secret = \"s3_key\"\nsecret_key_secret = \"s3_secret\"\n\n\
             [secrets.s3_key]\nenv = \"TEST_S3_KEY\"\n\n[secrets.s3_secret]\nenv = \"TEST_S3_SECRET\"\n\n\
             [github]\napi_url = \"{github_url}\"\ntoken_secret = \"github_token\"\nrepository = \"acme/monorepo\"\n\n\
             [secrets.github_token]\nenv = \"TEST_GITHUB_TOKEN\"\n\n[plugins.github]\nrole = \"notifier\"\n\n\
             [plugins.slack]\nrole = \"notifier\"\nsecrets = [\"slack_hook\"]\nhttp_hosts = [\"localhost:{}\"]\n\n\
             [plugins.slack.settings]\nwebhook_secret = \"slack_hook\"\n\n[secrets.slack_hook]\nenv = \"TEST_SLACK_HOOK\"\n",
            s3.endpoint, registry.port
        )
}

/// Every secret's variable, set right; the Slack webhook on `hook_port` of localhost.
fn secrets(hook_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("TEST_QUAY_TOKEN", REGISTRY_PASSWORD.to_string()),
        ("TEST_S3_KEY", ACCESS_KEY.to_string()),
        ("TEST_S3_SECRET", SECRET_KEY.to_string()),
        ("TEST_GITHUB_TOKEN", GITHUB_TOKEN.to_string()),
        ("TEST_SLACK_HOOK", format!("http://localhost:{hook_port}/services/{SLACK_HOOK}")),
    ]
}

/// `env` with `name` set to `value` (`None`: unset).
fn with(env: &[(&'static str, String)], name: &str, value: Option<&str>) -> Vec<(&'static str, String)> {
    let mut changed: Vec<(&'static str, String)> = env.iter().filter(|(key, _)| *key != name).cloned().collect();
    if let Some(value) = value {
        let key = env.iter().find(|(key, _)| *key == name).map_or("UNKNOWN", |(key, _)| key);
        changed.push((key, value.to_string()));
    }
    changed
}

/// GitHub's `GET /rate_limit`, as documented, for the right token.
fn github() -> Recorder {
    Recorder::start(|request| match request.path.as_str() {
        _ if !request.header("authorization").is_some_and(|value| value.ends_with(GITHUB_TOKEN)) => {
            Reply::json(401, json!({ "message": "Bad credentials" }))
        }
        "/rate_limit" => Reply::json(
            200,
            json!({ "resources": { "core": { "limit": 5000, "used": 13, "remaining": 4987, "reset": 1_800_000_000 } },
                    "rate": { "limit": 5000, "used": 13, "remaining": 4987, "reset": 1_800_000_000 } }),
        ),
        _ => Reply::json(404, json!({ "message": "Not Found" })),
    })
}

/// One check of doctor's JSON.
#[derive(Debug)]
struct Checked {
    /// `kind subject`.
    label: String,
    ok: bool,
    detail: String,
    fix: String,
}

/// `loktar doctor --format json` with `env`: the exit code, the checks, the run.
fn doctor(repo: &TestRepo, env: &[(&str, String)], extra: &[&str]) -> (i32, Vec<Checked>, Run) {
    let mut args = vec!["doctor", "--format", "json"];
    args.extend(extra);
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let run = repo.loktar_with_env(&args, &env);
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor's JSON ({e}):\n{}\n{}", run.stdout, run.stderr));
    let checks = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|check| {
            let text = |key: &str| check[key].as_str().unwrap_or_default().to_string();
            let label = format!("{} {}", text("kind"), text("subject")).trim().to_string();
            Checked { label, ok: check["ok"] == true, detail: text("detail"), fix: text("fix") }
        })
        .collect();
    assert_eq!(report["ok"] == true, run.code == 0, "`ok` and the exit code agree");
    (run.code, checks, run)
}

/// The labels of the failed checks.
fn failed(checks: &[Checked]) -> Vec<&str> {
    checks.iter().filter(|check| !check.ok).map(|check| check.label.as_str()).collect()
}

/// The check labelled `label`.
fn check<'a>(checks: &'a [Checked], label: &str) -> &'a Checked {
    checks.iter().find(|check| check.label == label).unwrap_or_else(|| panic!("no check `{label}` in {checks:#?}"))
}

#[test]
fn every_need_of_the_packages_is_checked_and_each_broken_one_is_named_with_its_fix() {
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let s3 = S3Server::start(&["artifacts"]);
    let github = github();
    let repo = repository();
    let config = configuration(&engine, &registry, &s3, "artifacts", &github.url());
    repo.host_config(&config);
    let env = secrets(registry.port);
    let mut outputs = Vec::new();

    // All well: each need of the two packages is there, once.
    let (code, checks, run) = doctor(&repo, &env, &[]);
    assert_eq!(failed(&checks), Vec::<&str>::new(), "{checks:#?}\n{}", run.stderr);
    assert_eq!(code, 0);
    let labels: BTreeSet<&str> = checks.iter().map(|check| check.label.as_str()).collect();
    let port = registry.port.to_string();
    let expected: BTreeSet<String> = [
        "configuration host configuration",
        "configuration loktar.json",
        "configuration dependency graph",
        "plugin docker",
        "plugin dockerfile",
        "plugin github",
        "plugin make",
        "plugin quay",
        "plugin s3",
        "plugin slack",
        "plugin whl",
        "secret github_token",
        "secret quay_token",
        "secret s3_key",
        "secret s3_secret",
        "secret slack_hook",
        "program make",
        "program python3",
        "isolation",
        "engine",
        "registry quay",
        "store s3",
        "github",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([format!("host localhost:{port}")])
    .collect();
    assert_eq!(labels, expected.iter().map(String::as_str).collect(), "{checks:#?}");
    assert!(check(&checks, "engine").detail.contains("answers: Docker Engine"), "{checks:#?}");
    assert!(check(&checks, "registry quay").detail.contains("signs in as `loktar+ci`"), "{checks:#?}");
    assert!(check(&checks, "store s3").detail.contains("bucket `artifacts`"), "{checks:#?}");
    assert!(
        check(&checks, "github").detail.ends_with("answers for `acme/monorepo`: 4987 of 5000 requests left this hour"),
        "{checks:#?}"
    );
    assert!(check(&checks, "secret slack_hook").detail.contains("TEST_SLACK_HOOK"), "{checks:#?}");
    // GitHub was asked once, with the token.
    let asked: Vec<_> = github.requests().into_iter().filter(|r| r.path == "/rate_limit").collect();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(asked[0].header("authorization").is_some_and(|value| value.ends_with(GITHUB_TOKEN)), "{asked:#?}");
    outputs.push(run.stdout + &run.stderr);

    // The text: one line per check, the fix under a ✗, the count last, exit 1.
    let wrong_password = with(&env, "TEST_QUAY_TOKEN", Some("not-the-password"));
    let wrong_password: Vec<(&str, &str)> =
        wrong_password.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let text = repo.loktar_with_env(&["doctor"], &wrong_password).expect_code(1);
    let lines: Vec<&str> = text.stdout.lines().collect();
    let row = lines.iter().position(|line| line.starts_with("✗ registry quay")).expect(&text.stdout);
    assert!(lines[row].contains("refused signing in (`GET /v2/`): HTTP 401"), "{}", text.stdout);
    assert!(
        lines[row + 1]
            .trim_start()
            .starts_with("fix: check `username` under `[registries.quay]` and the value of secret `quay_token`"),
        "{}",
        text.stdout
    );
    assert!(lines.iter().filter(|line| line.starts_with("✓ ")).count() == expected.len() - 1, "{}", text.stdout);
    assert_eq!(
        lines.last(),
        Some(&format!("{} checks: {} passed, 1 failed", expected.len(), expected.len() - 1).as_str())
    );
    outputs.push(text.stdout + &text.stderr);

    // Broken one at a time: (what, environment, host configuration, the failing check, its fix).
    let no_slack_hook = with(&env, "TEST_SLACK_HOOK", None);
    let empty_slack_hook = with(&env, "TEST_SLACK_HOOK", Some(""));
    let hook_elsewhere = with(&env, "TEST_SLACK_HOOK", Some(&format!("https://hooks.slack.com/services/{SLACK_HOOK}")));
    let wrong_github_token = with(&env, "TEST_GITHUB_TOKEN", Some("not-the-token"));
    let missing_bucket = configuration(&engine, &registry, &s3, "no-such-bucket", &github.url());
    let make_without_process = format!("{config}\n[plugins.make]\ncapabilities = [\"log\"]\n");
    let not_a_registry =
        config.replace(&format!("url = \"{}\"", registry.url()), &format!("url = \"{}\"", s3.endpoint));
    let ungranted_secret = config.replace("webhook_secret = \"slack_hook\"", "webhook_secret = \"quay_token\"");
    type Case<'a> = (&'a str, &'a [(&'static str, String)], &'a str, &'a str, &'a str);
    let cases: [Case; 9] = [
        ("missing bucket", &env, &missing_bucket, "store s3", "create it, or fix `bucket` under `[stores.s3]`"),
        ("unset secret", &no_slack_hook, &config, "secret slack_hook", "set `TEST_SLACK_HOOK` in the environment"),
        ("empty secret", &empty_slack_hook, &config, "secret slack_hook", "give `TEST_SLACK_HOOK` the secret's value"),
        (
            "plugin not granted a capability",
            &env,
            &make_without_process,
            "plugin make",
            "`capabilities = [\"log\", \"process\"]` under `[plugins.make]`",
        ),
        (
            "a secret the plugin's settings name, not granted to it",
            &env,
            &ungranted_secret,
            "plugin slack",
            "add `\"quay_token\"` to `secrets` under `[plugins.slack]`",
        ),
        (
            "a webhook the plugin may not reach",
            &hook_elsewhere,
            &config,
            "plugin slack",
            "add it to `http_hosts` under `[plugins.slack]`",
        ),
        ("wrong GitHub token", &wrong_github_token, &config, "github", "check the value of secret `github_token`"),
        (
            "a registry URL that is no registry",
            &env,
            &not_a_registry,
            "registry quay",
            "check `url` under `[registries.quay]`",
        ),
        (
            "a repository GitHub cannot be told",
            &env,
            &config.replace("repository = \"acme/monorepo\"\n", ""),
            "github",
            "add the `origin` remote",
        ),
    ];
    for (what, env, config, failing, fix) in cases {
        repo.host_config(config);
        let (code, checks, run) = doctor(&repo, env, &[]);
        assert_eq!((code, failed(&checks)), (1, vec![failing]), "{what}: {checks:#?}");
        assert!(check(&checks, failing).fix.contains(fix), "{what}: {checks:#?}");
        outputs.push(run.stdout + &run.stderr);
    }
    // Without its password, the registry is not tried: the secret's check says why.
    repo.host_config(&config);
    let (code, checks, run) = doctor(&repo, &with(&env, "TEST_QUAY_TOKEN", None), &[]);
    assert_eq!((code, failed(&checks)), (1, vec!["secret quay_token", "registry quay"]), "{checks:#?}");
    assert_eq!(check(&checks, "registry quay").detail, "not checked: secret `quay_token` is not usable");
    outputs.push(run.stdout + &run.stderr);

    // The webhook's host is named, never its secret path.
    let (_, checks, _) = doctor(&repo, &hook_elsewhere, &[]);
    assert!(check(&checks, "plugin slack").detail.contains("goes to `hooks.slack.com:443`"), "{checks:#?}");

    // GitHub accepting connections but never answering: given up after the timeout, the rest unharmed.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a silent port");
    let silent_url = format!("http://{}", silent.local_addr().expect("address"));
    repo.host_config(&configuration(&engine, &registry, &s3, "artifacts", &silent_url));
    let (code, checks, run) = doctor(&repo, &env, &["--timeout", "1"]);
    assert_eq!((code, failed(&checks)), (1, vec!["github"]), "{checks:#?}");
    assert_eq!(check(&checks, "github").detail, "no answer within 1 s", "{checks:#?}");
    outputs.push(run.stdout + &run.stderr);

    // The engine stopped.
    repo.host_config(&config);
    drop(engine);
    let (code, checks, run) = doctor(&repo, &env, &[]);
    assert_eq!((code, failed(&checks)), (1, vec!["engine"]), "{checks:#?}");
    assert!(check(&checks, "engine").fix.starts_with("start the Docker Engine (`dockerd`)"), "{checks:#?}");
    outputs.push(run.stdout + &run.stderr);

    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    assert_secrets_hidden(&[REGISTRY_PASSWORD, SECRET_KEY, GITHUB_TOKEN, SLACK_HOOK], &outputs, repo.path());
    assert!(outputs.iter().all(|output| !output.contains("not-the-password") && !output.contains("not-the-token")));
}

#[test]
fn a_broken_configuration_or_graph_is_a_failed_check_with_its_place_and_no_repository_is_an_error() {
    let repo = TestRepo::new();
    repo.write("loktar.json", "{ \"packages\": [ { \"pkg_name\": \"api\", \"pkg_typ\": \"docker\" } ] }\n");
    repo.commit("ENH: a typo");
    let (code, checks, _) = doctor(&repo, &[], &[]);
    assert_eq!((code, failed(&checks)), (1, vec!["configuration loktar.json"]), "{checks:#?}");
    let broken = check(&checks, "configuration loktar.json");
    assert!(broken.detail.starts_with("loktar.json:1:") && broken.detail.contains("pkg_typ"), "{broken:?}");

    // A host configuration that is not TOML: its place, and nothing else is checked.
    repo.host_config("[plugins.make\n");
    let (code, checks, _) = doctor(&repo, &[], &[]);
    assert_eq!((code, failed(&checks)), (1, vec!["configuration host configuration"]), "{checks:#?}");
    let at = format!("{}:1:", repo.host_config_path().display());
    assert!(check(&checks, "configuration host configuration").detail.starts_with(&at), "{checks:#?}");
    repo.host_config("");

    // A cycle of `depends_on`, and a discovery plugin failing on a file: both in one check.
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "a", "pkg_type": "whl", "depends_on": ["b"] },
  { "pkg_name": "b", "pkg_type": "whl", "depends_on": ["a"] },
  { "pkg_name": "web", "pkg_type": "whl", "dependencies_type": ["docker_compose"] } ] }"#,
    );
    repo.write("a/setup.py", "");
    repo.write("b/setup.py", "");
    repo.write("web/setup.py", "");
    repo.write("web/compose.yaml", "services: [\n");
    repo.commit("ENH: a cycle");
    let (code, checks, _) = doctor(&repo, &[], &[]);
    assert_eq!((code, failed(&checks)), (1, vec!["configuration dependency graph"]), "{checks:#?}");
    let graph = &check(&checks, "configuration dependency graph").detail;
    assert!(graph.contains("compose.yaml") && graph.contains("not valid YAML"), "{graph}");
    assert!(graph.contains("cycle"), "{graph}");
    // `loktar plan` refuses the same repository.
    repo.loktar(&["plan", "--all"]).expect_code(2);

    let outside = tempfile::tempdir().expect("temp dir");
    let run = repo.loktar_in(outside.path(), &["doctor"]).expect_code(2);
    assert!(run.stderr.contains("is not inside a git repository"), "{}", run.stderr);
}
