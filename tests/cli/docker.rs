//! The `docker` builder and the `quay` registry against a real Docker Engine
//! and a real registry (`containers`): images are built, tagged by Loktar's
//! scheme, pushed, read back through the registry's HTTP API, pulled and run.
//! Quay's REST API (repository creation, builds from a URL) is a recording
//! server (`recorder`) whose requests are asserted as Quay documents them;
//! its builds are real: the archive is fetched from the S3 server and built
//! by the test's engine.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use crate::containers::{DockerEngine, ImageRegistry, REGISTRY_PASSWORD, REGISTRY_USER, free_port, host_config};
use crate::recorder::{Recorded, Recorder, Reply};
use crate::s3_server::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::support::{Run, TestRepo, assert_secrets_hidden};

const DOCKERFILE: &str = "FROM busybox:loktar\nARG GREETING=hello\nCOPY message.txt /message.txt\n\
RUN echo \"$GREETING from pet_api\" > /greeting && echo \"greeting written\"\nCMD [\"cat\", \"/greeting\", \"/message.txt\"]\n";

const ORIGIN: &str = "https://github.com/acme/monorepo.git";

/// A repository with one docker service `pet_api` published with `quay`, committed on `main`.
fn docker_repo(engine: &DockerEngine, registry_url: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&host_config(engine, registry_url));
    repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "pet_api", "pkg_type": "docker", "test_type": "no-test", "type": "service",
    "pkg_dir": "rest_services/pet_api", "build_info": { "registry_type": "quay", "build_args": { "GREETING": "howdy" } } } ] }"#,
    );
    repo.write("rest_services/pet_api/Dockerfile", DOCKERFILE);
    repo.write("rest_services/pet_api/message.txt", "version one\n");
    repo.git(&["remote", "add", "origin", ORIGIN]);
    repo.commit("pet api");
    repo
}

/// `loktar args…` with the registry password in its secret's variable.
fn loktar(repo: &TestRepo, password: &str, args: &[&str]) -> Run {
    repo.loktar_with_env(args, &[("TEST_QUAY_TOKEN", password)])
}

/// The published artifacts of `pet_api` in a JSON summary: (tag, location, digest).
fn published(summary: &serde_json::Value) -> Vec<(String, String, String)> {
    let artifacts = summary["packages"][0]["artifacts"].as_array().cloned().unwrap_or_default();
    artifacts
        .iter()
        .map(|a| {
            let text = |key: &str| a[key].as_str().unwrap_or_default().to_string();
            (text("version"), text("location"), text("digest"))
        })
        .collect()
}

fn remote_tags(registry: &ImageRegistry) -> Vec<String> {
    let (status, _, body) = registry.get("/v2/loktar/pet_api/tags/list", false);
    assert_eq!(status, 200, "tag list: {body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("tag list JSON");
    let mut tags: Vec<String> =
        list["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect();
    tags.sort();
    tags
}

fn remote_digest(registry: &ImageRegistry, tag: &str) -> String {
    let (status, headers, _) = registry.get(&format!("/v2/loktar/pet_api/manifests/{tag}"), true);
    assert_eq!(status, 200, "manifest of {tag}");
    headers.into_iter().find(|(name, _)| name == "docker-content-digest").map(|(_, v)| v).expect("a digest header")
}

fn stage_log(repo: &TestRepo, run: u32, stage: &str) -> String {
    std::fs::read_to_string(repo.path().join(format!(".loktar/runs/{run}/pet_api/{stage}.log"))).unwrap_or_default()
}

#[test]
fn an_image_is_built_pushed_read_back_pulled_and_run() {
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let repo = docker_repo(&engine, &registry.url());
    let head = repo.git(&["rev-parse", "HEAD"]);
    let short = &head[..7];

    let run = loktar(&repo, REGISTRY_PASSWORD, &["run", "--all", "--format", "json"]);
    let (stdout, stderr) = (run.stdout.clone(), run.stderr.clone());
    let summary = run.json();
    let pushed = published(&summary);
    let tags: Vec<&str> = pushed.iter().map(|(tag, _, _)| tag.as_str()).collect();
    assert_eq!(tags, ["1", "latest", short]);
    for (tag, location, digest) in &pushed {
        assert_eq!(*location, format!("{}/loktar/pet_api:{tag}", registry.host()));
        assert_eq!(*digest, remote_digest(&registry, tag), "the digest the plugin reported is the registry's");
    }
    let mut expected = vec!["1".to_string(), "latest".to_string(), short.to_string()];
    expected.sort();
    assert_eq!(remote_tags(&registry), expected);
    assert!(stage_log(&repo, 1, "build").contains("greeting written"), "RUN output is in the build log");

    let labels = engine.docker_ok(&["inspect", "--format", "{{json .Config.Labels}}", "pet_api:1"]);
    let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels JSON");
    assert_eq!(labels["org.opencontainers.image.revision"], head.as_str());
    assert_eq!(labels["org.opencontainers.image.source"], ORIGIN);
    assert_eq!(labels["org.opencontainers.image.created"], repo.git(&["show", "-s", "--format=%cI", "HEAD"]).as_str());

    // The registry's copy, not the local one: remove every local tag, pull and run.
    let id = engine.docker_ok(&["inspect", "--format", "{{.Id}}", "pet_api:1"]);
    engine.docker_ok(&["rmi", "--force", &id]);
    engine.docker_ok(&["login", "--username", REGISTRY_USER, "--password", REGISTRY_PASSWORD, &registry.host()]);
    let output =
        engine.docker_ok(&["run", "--rm", "--network", "none", &format!("{}/loktar/pet_api:1", registry.host())]);
    assert_eq!(output, "howdy from pet_api\nversion one");

    assert_secrets_hidden(&[REGISTRY_PASSWORD], &[&stdout, &stderr], &repo.path().join(".loktar/runs"));
}

#[test]
fn releases_take_the_next_number_and_a_rerun_pushes_nothing() {
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let repo = docker_repo(&engine, &registry.url());
    // A short commit of digits only must not pass for a release number
    // (it once made a re-run take the commit as "release 5791752").
    let mut attempt = 0;
    while !repo.git(&["rev-parse", "--short=7", "HEAD"]).bytes().all(|b| b.is_ascii_digit()) {
        attempt += 1;
        repo.git(&["commit", "--quiet", "--amend", "-m", &format!("pet api ({attempt})")]);
    }

    let first = published(&loktar(&repo, REGISTRY_PASSWORD, &["run", "--all", "--format", "json"]).json());
    let again = published(&loktar(&repo, REGISTRY_PASSWORD, &["run", "--all", "--format", "json"]).json());
    assert_eq!(again, first, "the same commit keeps its number and digests");
    let log = stage_log(&repo, 2, "publish");
    assert_eq!(log.matches("nothing pushed").count(), 3, "no tag was pushed again:\n{log}");
    assert!(!log.contains("Pushed"), "{log}");
    assert!(stage_log(&repo, 2, "build").contains("is already release 1"));

    repo.write("rest_services/pet_api/message.txt", "version two\n");
    let head = repo.commit("pet api: version two");
    let third = published(&loktar(&repo, REGISTRY_PASSWORD, &["run", "--all", "--format", "json"]).json());
    let tags: Vec<&str> = third.iter().map(|(tag, _, _)| tag.as_str()).collect();
    assert_eq!(tags, ["2", "latest", &head[..7]]);
    assert_eq!(remote_digest(&registry, "latest"), remote_digest(&registry, "2"));
    assert_ne!(remote_digest(&registry, "1"), remote_digest(&registry, "2"));
    assert_eq!(remote_tags(&registry).len(), 5, "1, 2, latest and both commits");
}

#[test]
fn branch_builds_are_tagged_with_the_branch_and_commit_only() {
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let repo = docker_repo(&engine, &registry.url());
    repo.git(&["checkout", "--quiet", "-b", "feature/Loud"]);
    repo.write("rest_services/pet_api/message.txt", "LOUD\n");
    let head = repo.commit("pet api: louder");

    let pushed = published(&loktar(&repo, REGISTRY_PASSWORD, &["run", "--all", "--format", "json"]).json());
    let tags: Vec<&str> = pushed.iter().map(|(tag, _, _)| tag.as_str()).collect();
    assert_eq!(tags, ["feature-loud", &head[..7]]);
    let mut expected = vec!["feature-loud".to_string(), head[..7].to_string()];
    expected.sort();
    assert_eq!(remote_tags(&registry), expected, "no number and no `latest` from a branch");
}

#[test]
fn build_failures_are_stage_errors_with_the_output_in_the_log() {
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let repo = docker_repo(&engine, &registry.url());

    repo.write("rest_services/pet_api/Dockerfile", "FROM busybox:loktar\nRUN echo \"about to fail\" && false\n");
    repo.commit("a failing RUN");
    let run = loktar(&repo, REGISTRY_PASSWORD, &["run", "--all"]).expect_code(1);
    run.says(&["pet_api build: plugin `docker`: the image build failed: The command '/bin/sh -c echo \"about to fail\" && false' returned a non-zero code: 1"]);
    assert!(stage_log(&repo, 1, "build").contains("about to fail"), "the failing step's output is in the log");

    repo.remove("rest_services/pet_api/Dockerfile");
    repo.commit("no Dockerfile");
    let run = loktar(&repo, REGISTRY_PASSWORD, &["run", "--all"]).expect_code(1);
    run.says(&[
        "pet_api build: plugin `docker`: package `pet_api` has no `Dockerfile` in `rest_services/pet_api`",
        "add a Dockerfile to the package folder",
    ]);
}

#[test]
fn registry_and_engine_failures_name_what_failed_and_the_fix() {
    let engine = DockerEngine::start();
    let mut registry = ImageRegistry::start();
    let repo = docker_repo(&engine, &registry.url());

    // On the default branch the build asks the registry for its numbers first.
    let run = loktar(&repo, "wrong-password", &["run", "--all"]).expect_code(1);
    run.says(&[
        "pet_api build: plugin `docker`: registry `quay` refused listing the tags of `loktar/pet_api`: HTTP 401",
        "the value of secret `quay_token`",
    ]);

    // On a branch the build asks the registry nothing; publishing does, and is refused.
    repo.git(&["checkout", "--quiet", "-b", "topic"]);
    let run = loktar(&repo, "wrong-password", &["run", "--all"]).expect_code(1);
    run.says(&["pet_api publish: plugin `quay`: registry `quay` refused reading the manifest of `loktar/pet_api:topic`: HTTP 401", "the value of secret `quay_token`"]);
    repo.git(&["checkout", "--quiet", "main"]);

    registry.stop();
    let run = loktar(&repo, REGISTRY_PASSWORD, &["run", "--all"]).expect_code(1);
    run.says(&[
        &format!("pet_api build: plugin `docker`: cannot reach registry `quay` at `{}`", registry.url()),
        "is it running? check `url` under `[registries.quay]`",
    ]);

    // On a branch the build needs no registry: it goes straight to the engine.
    repo.git(&["checkout", "--quiet", "topic"]);
    let socket = format!("/tmp/loktar-no-engine-{}.sock", free_port());
    repo.host_config(&host_config(&engine, &registry.url()).replace(&engine.host(), &format!("unix://{socket}")));
    let run = loktar(&repo, REGISTRY_PASSWORD, &["run", "--all"]).expect_code(1);
    run.says(&[&format!(
            "pet_api build: plugin `docker`: cannot reach the container engine at `unix://{socket}`: no socket at `{socket}`"
        ), "start the Docker Engine (`dockerd`)"]);
}

/// The API token of the fake Quay; a canary like the registry password.
const API_TOKEN: &str = "canary-quay-api-token-77ab";

/// `host_config` plus Quay's REST API at `api_url` and, with `s3`, the S3 store `s3`.
fn config_with_api(engine: &DockerEngine, registry: &ImageRegistry, api_url: &str, s3: Option<&S3Server>) -> String {
    let mut config = host_config(engine, &registry.url()).replace(
        "password_secret = \"quay_token\"\n",
        &format!("password_secret = \"quay_token\"\napi_url = \"{api_url}/api/v1\"\napi_token_secret = \"quay_api\"\n"),
    );
    config.push_str("\n[secrets.quay_api]\nenv = \"TEST_QUAY_API_TOKEN\"\n");
    if let Some(s3) = s3 {
        config.push_str(&format!(
            "\n[stores.s3]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"contexts\"\n\
             access_key_secret = \"s3_key\"\nsecret_key_secret = \"s3_secret\"\n\n\
             [secrets.s3_key]\nenv = \"TEST_S3_KEY\"\n\n[secrets.s3_secret]\nenv = \"TEST_S3_SECRET\"\n",
            s3.endpoint
        ));
    }
    config
}

/// `loktar args…` with every secret the Quay API tests use.
fn loktar_with_api(repo: &TestRepo, args: &[&str]) -> Run {
    let secrets = [
        ("TEST_QUAY_TOKEN", REGISTRY_PASSWORD),
        ("TEST_QUAY_API_TOKEN", API_TOKEN),
        ("TEST_S3_KEY", ACCESS_KEY),
        ("TEST_S3_SECRET", SECRET_KEY),
    ];
    repo.loktar_with_env(args, &secrets)
}

/// Quay's answers about one repository, `loktar/pet_api`, which exists once created.
fn repository_api(request: &Recorded, created: &AtomicBool) -> Option<Reply> {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/api/v1/repository/loktar/pet_api") if created.load(Ordering::SeqCst) => {
            Some(Reply::json(200, json!({"namespace": "loktar", "name": "pet_api", "kind": "image"})))
        }
        ("GET", "/api/v1/repository/loktar/pet_api") => {
            Some(Reply::json(404, json!({"detail": "Not Found", "error_message": "Not Found", "status": 404})))
        }
        ("POST", "/api/v1/repository") => {
            created.store(true, Ordering::SeqCst);
            Some(Reply::json(201, json!({"namespace": "loktar", "name": "pet_api", "kind": "image"})))
        }
        _ => None,
    }
}

fn assert_quay_call(request: &Recorded, method: &str, path: &str) {
    assert_eq!((request.method.as_str(), request.path.as_str()), (method, path), "{request:?}");
    let bearer = format!("Bearer {API_TOKEN}");
    assert_eq!(request.header("authorization"), Some(bearer.as_str()), "{request:?}");
    assert_eq!(request.header("accept"), Some("application/json"), "{request:?}");
    if method == "POST" {
        assert_eq!(request.header("content-type"), Some("application/json"), "{request:?}");
    }
}

#[test]
fn quay_creates_a_missing_repository_through_its_api_before_pushing() {
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let created = Arc::new(AtomicBool::new(false));
    let api = {
        let created = created.clone();
        Recorder::start(move |request| {
            repository_api(request, &created)
                .unwrap_or_else(|| Reply::json(405, json!({"error_message": "unexpected"})))
        })
    };
    let repo = docker_repo(&engine, &registry.url());
    repo.host_config(&config_with_api(&engine, &registry, &api.url(), None));
    repo.commit("Quay's API");

    loktar_with_api(&repo, &["run", "--all"]).expect_code(0);
    let calls = api.requests();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_quay_call(&calls[0], "GET", "/api/v1/repository/loktar/pet_api");
    assert_quay_call(&calls[1], "POST", "/api/v1/repository");
    assert_eq!(
        calls[1].json(),
        json!({"namespace": "loktar", "repository": "pet_api", "visibility": "private",
               "description": "Built and published by Loktar.", "repo_kind": "image"})
    );
    assert_eq!(remote_tags(&registry).len(), 3, "then the tags were pushed");

    // It exists now: asked for, not created again.
    loktar_with_api(&repo, &["run", "--all"]).expect_code(0);
    let calls = api.requests();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_quay_call(&calls[2], "GET", "/api/v1/repository/loktar/pet_api");
}

/// A fake Quay build service: it fetches the archive from the URL it is
/// given, builds it with the test's engine and pushes the tags, as Quay's
/// builders would; its status says `building` once, then how it ended.
struct QuayBuilds {
    log: Mutex<Vec<String>>,
    polls: AtomicUsize,
    outcome: Mutex<Option<Result<(), String>>>,
}

fn fetch(url: &str) -> Vec<u8> {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_once('/').expect("a path");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to the archive's server");
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    std::io::Write::write_all(&mut stream, request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut answer).expect("read");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "fetching the archive: {head}");
    answer[split + 4..].to_vec()
}

impl QuayBuilds {
    fn start(&self, engine: &DockerEngine, registry: &ImageRegistry, request: &Recorded) -> Reply {
        let body = request.json();
        let archive = fetch(body["archive_url"].as_str().expect("archive_url"));
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("context.tar.gz"), archive).expect("archive");
        let context = dir.path().join("context");
        std::fs::create_dir(&context).expect("context folder");
        let unpacked = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(dir.path().join("context.tar.gz"))
            .arg("-C")
            .arg(&context)
            .status()
            .expect("tar");
        assert!(unpacked.success(), "the archive is a gzipped tar");
        let tags: Vec<String> = body["docker_tags"]
            .as_array()
            .expect("docker_tags")
            .iter()
            .map(|t| format!("{}/loktar/pet_api:{}", registry.host(), t.as_str().unwrap_or_default()))
            .collect();
        let mut args = vec!["build".to_string(), "--file".to_string()];
        args.push(
            context
                .join(body["dockerfile_path"].as_str().unwrap_or_default().trim_start_matches('/'))
                .display()
                .to_string(),
        );
        for tag in &tags {
            args.extend(["--tag".to_string(), tag.clone()]);
        }
        args.push(context.display().to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let built = engine.docker(&args);
        let output = String::from_utf8_lossy(&built.stdout).into_owned() + &String::from_utf8_lossy(&built.stderr);
        self.log.lock().unwrap_or_else(PoisonError::into_inner).extend(output.lines().map(str::to_string));
        let outcome = if built.status.success() {
            engine.docker_ok(&[
                "login",
                "--username",
                REGISTRY_USER,
                "--password",
                REGISTRY_PASSWORD,
                &registry.host(),
            ]);
            for tag in &tags {
                engine.docker_ok(&["push", tag]);
            }
            Ok(())
        } else {
            Err("a build step failed".to_string())
        };
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        Reply::json(201, json!({"id": "b-1", "phase": "waiting", "display_name": "b-1"}))
    }

    fn status(&self) -> Reply {
        if self.polls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::json(200, json!({"id": "b-1", "phase": "building"}));
        }
        match self.outcome.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            Some(Ok(())) => Reply::json(200, json!({"id": "b-1", "phase": "complete"})),
            Some(Err(error)) => Reply::json(200, json!({"id": "b-1", "phase": "error", "error": error})),
            None => Reply::json(200, json!({"id": "b-1", "phase": "waiting"})),
        }
    }

    fn logs(&self, path: &str) -> Reply {
        let start: usize = path.rsplit("start=").next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let lines: Vec<serde_json::Value> =
            log.iter().skip(start).map(|line| json!({"message": line, "type": "command"})).collect();
        Reply::json(200, json!({"start": start, "total": log.len(), "logs": lines}))
    }
}

/// A repository whose `pet_api` the registry builds from its S3-kept context, with a fake Quay API.
fn remote_build_setup(
    engine: &Arc<DockerEngine>,
    registry: &Arc<ImageRegistry>,
    s3: &S3Server,
) -> (TestRepo, Recorder, Arc<QuayBuilds>) {
    let builds =
        Arc::new(QuayBuilds { log: Mutex::new(Vec::new()), polls: AtomicUsize::new(0), outcome: Mutex::new(None) });
    let created = AtomicBool::new(false);
    let api = {
        let (engine, registry, builds) = (engine.clone(), registry.clone(), builds.clone());
        Recorder::start(move |request| {
            if let Some(reply) = repository_api(request, &created) {
                return reply;
            }
            match (request.method.as_str(), request.path.as_str()) {
                ("POST", "/api/v1/repository/loktar/pet_api/build/") => builds.start(&engine, &registry, request),
                ("GET", "/api/v1/repository/loktar/pet_api/build/b-1/status") => builds.status(),
                ("GET", path) if path.starts_with("/api/v1/repository/loktar/pet_api/build/b-1/logs?start=") => {
                    builds.logs(path)
                }
                _ => Reply::json(405, json!({"error_message": "unexpected"})),
            }
        })
    };
    let repo = docker_repo(engine, &registry.url());
    repo.host_config(&config_with_api(engine, registry, &api.url(), Some(s3)));
    repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "pet_api", "pkg_type": "docker", "test_type": "no-test", "type": "service",
    "pkg_dir": "rest_services/pet_api",
    "build_info": { "build_type": "url", "registry_type": "quay", "storage_type": "s3", "poll_interval_ms": 20 } } ] }"#,
    );
    repo.commit("built by the registry");
    (repo, api, builds)
}

#[test]
fn url_builds_are_built_by_the_registry_from_the_stored_context() {
    let engine = Arc::new(DockerEngine::start());
    let registry = Arc::new(ImageRegistry::start());
    let s3 = S3Server::start(&["contexts"]);
    let (repo, api, _builds) = remote_build_setup(&engine, &registry, &s3);
    let head = repo.git(&["rev-parse", "HEAD"]);

    let summary = loktar_with_api(&repo, &["run", "--all", "--format", "json"]).json();
    let pushed = published(&summary);
    let tags: Vec<&str> = pushed.iter().map(|(tag, _, _)| tag.as_str()).collect();
    assert_eq!(tags, ["1", "latest", &head[..7]]);
    for (tag, location, digest) in &pushed {
        assert_eq!(*location, format!("{}/loktar/pet_api:{tag}", registry.host()));
        assert_eq!(*digest, remote_digest(&registry, tag), "publish reports what the registry built");
    }
    assert!(stage_log(&repo, 1, "build").contains("greeting written"), "the registry's build log is in the stage log");
    assert!(stage_log(&repo, 1, "publish").contains("was built by the registry"));
    // The engine built it for the fake Quay only: nothing was built locally by Loktar.
    assert!(!engine.docker(&["image", "inspect", "pet_api:1"]).status.success());

    let calls = api.requests();
    let paths: Vec<(&str, &str)> = calls.iter().map(|c| (c.method.as_str(), c.path.as_str())).collect();
    assert_eq!(
        &paths[..4],
        [
            ("GET", "/api/v1/repository/loktar/pet_api"),
            ("POST", "/api/v1/repository"),
            ("POST", "/api/v1/repository/loktar/pet_api/build/"),
            ("GET", "/api/v1/repository/loktar/pet_api/build/b-1/logs?start=0"),
        ]
    );
    for call in &calls {
        assert_quay_call(call, &call.method, &call.path);
    }
    let build = calls[2].json();
    let archive_url = build["archive_url"].as_str().expect("archive_url");
    assert!(
        archive_url.starts_with(&format!("{}/contexts/build-contexts/pet_api/{head}.tar.gz?", s3.endpoint)),
        "{archive_url}"
    );
    assert!(archive_url.contains("X-Amz-Signature="), "a presigned URL: {archive_url}");
    assert_eq!(build["docker_tags"], json!(["1", "latest", &head[..7]]));
    assert_eq!((&build["dockerfile_path"], &build["context"]), (&json!("/Dockerfile"), &json!("/")));
    assert!(paths.contains(&("GET", "/api/v1/repository/loktar/pet_api/build/b-1/status")), "the build was followed");

    // Quay's builds take no build arguments: the Dockerfile's default.
    let output =
        engine.docker_ok(&["run", "--rm", "--network", "none", &format!("{}/loktar/pet_api:1", registry.host())]);
    assert_eq!(output, "hello from pet_api\nversion one");
    assert_secrets_hidden(&[API_TOKEN, SECRET_KEY], &[], &repo.path().join(".loktar/runs"));
}

#[test]
fn a_failed_registry_build_is_a_stage_error_with_its_log() {
    let engine = Arc::new(DockerEngine::start());
    let registry = Arc::new(ImageRegistry::start());
    let s3 = S3Server::start(&["contexts"]);
    let (repo, _api, _builds) = remote_build_setup(&engine, &registry, &s3);
    repo.write("rest_services/pet_api/Dockerfile", "FROM busybox:loktar\nRUN echo \"about to fail\" && false\n");
    repo.commit("a failing RUN");

    let run = loktar_with_api(&repo, &["run", "--all"]).expect_code(1);
    run.says(&["pet_api build: plugin `docker`: the registry's build ended in phase `error`: a build step failed"]);
    assert!(stage_log(&repo, 1, "build").contains("about to fail"), "the registry's build log is in the stage log");

    // Quay's build API takes no build arguments or target: asking for them is an error, not a silent drop.
    repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "pet_api", "pkg_type": "docker", "pkg_dir": "rest_services/pet_api",
    "build_info": { "build_type": "url", "registry_type": "quay", "storage_type": "s3", "build_args": { "A": "b" } } } ] }"#,
    );
    repo.commit("build args");
    let run = loktar_with_api(&repo, &["run", "--all", "--stage", "build"]).expect_code(1);
    run.says(&["pet_api build: plugin `docker`: the registry builds `pet_api` (`build_type: \"url\"`) and takes no `build_args`"]);
}

#[test]
fn the_build_context_leaves_out_what_dockerignore_excludes() {
    let engine = DockerEngine::start();
    let registry = ImageRegistry::start();
    let repo = docker_repo(&engine, &registry.url());
    repo.write(
        "rest_services/pet_api/Dockerfile",
        "FROM busybox:loktar\nCOPY . /ctx\nCMD [\"sh\", \"-c\", \"cd /ctx && ls -1aR\"]\n",
    );
    repo.write("rest_services/pet_api/.dockerignore", "# not for the image\nsecret.txt\nlogs/\n**/*.tmp\n!keep.tmp\n");
    for file in ["secret.txt", "logs/today.log", "cache/a.tmp", "keep.tmp", "src/app.py"] {
        repo.write(&format!("rest_services/pet_api/{file}"), "x\n");
    }
    repo.git(&["checkout", "--quiet", "-b", "topic"]);
    repo.commit("a context with things to leave out");
    loktar(&repo, REGISTRY_PASSWORD, &["run", "--all"]).expect_code(0);

    let listing = engine.docker_ok(&["run", "--rm", "--network", "none", "pet_api:topic"]);
    for kept in ["Dockerfile", ".dockerignore", "keep.tmp", "app.py", "message.txt"] {
        assert!(listing.lines().any(|l| l == kept), "`{kept}` missing:\n{listing}");
    }
    for left_out in ["secret.txt", "today.log", "a.tmp", "logs"] {
        assert!(!listing.contains(left_out), "`{left_out}` was sent:\n{listing}");
    }
}
