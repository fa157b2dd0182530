//! Hostile build contexts: what a package folder may hold to make archiving
//! it hang, widen its modes or fail without saying why — a pathological
//! `.dockerignore` over a deep folder, a context that takes longer than the
//! plugin's deadline, a signal in the middle of archiving, files with tight
//! modes, links and named pipes. The archive is made by the `docker`
//! builder's registry builds (`build_type: "url"`), read back from the S3
//! store it is kept in. Also `dockerfile` discovery of names built from
//! `ARG`s and variable tags.
//!
//! Each `loktar` here runs as a child that is killed after a generous bound:
//! the assertion is that it ended by itself, with the right outcome.

use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::containers::{REGISTRY_PASSWORD, free_port};
use crate::s3_server::{ACCESS_KEY, S3Server, SECRET_KEY};
use crate::support::{TestRepo, files_below, loktar_command};

/// The package folder of `pet_api`.
const PACKAGE: &str = "rest_services/pet_api";

/// A repository whose `pet_api` the registry builds from a context kept in
/// `s3`, on a branch, and the host configuration (outside it) of such a
/// run; the registry's API is a closed port, so every run fails after
/// storing the context. `timeout_secs` is the plugins' deadline.
fn context_repo(s3: &S3Server, timeout_secs: u64) -> (TestRepo, tempfile::TempDir) {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{ "packages": [ { "pkg_name": "pet_api", "pkg_type": "docker", "test_type": "no-test", "type": "service",
    "pkg_dir": "rest_services/pet_api",
    "build_info": { "build_type": "url", "registry_type": "quay", "storage_type": "s3" } } ] }"#,
    );
    repo.write(&format!("{PACKAGE}/Dockerfile"), "FROM scratch\nCOPY . /\n");
    repo.commit("ENH: pet_api");
    // Off the default branch the tags need no registry: the build goes straight to archiving.
    repo.git(&["checkout", "--quiet", "-b", "topic"]);
    let closed = format!("http://127.0.0.1:{}", free_port());
    let host = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "[limits]\ntimeout_secs = {timeout_secs}\n\n\
         [registries.quay]\nurl = \"{closed}\"\nnamespace = \"loktar\"\nusername = \"loktar\"\n\
         password_secret = \"quay_token\"\napi_url = \"{closed}/api/v1\"\napi_token_secret = \"quay_api\"\n\n\
         [stores.s3]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"contexts\"\n\
         access_key_secret = \"s3_key\"\nsecret_key_secret = \"s3_secret\"\n\n\
         [secrets.quay_token]\nenv = \"TEST_QUAY_TOKEN\"\n\n[secrets.quay_api]\nenv = \"TEST_QUAY_API_TOKEN\"\n\n\
         [secrets.s3_key]\nenv = \"TEST_S3_KEY\"\n\n[secrets.s3_secret]\nenv = \"TEST_S3_SECRET\"\n",
        s3.endpoint
    );
    std::fs::write(host.path().join("loktar.toml"), config).expect("write the host configuration");
    (repo, host)
}

/// `loktar run --all` in `repo` with the host configuration in `host`, not yet started.
fn run_command(repo: &TestRepo, host: &tempfile::TempDir) -> Command {
    let mut command = loktar_command();
    command
        .current_dir(repo.path())
        .args(["run", "--all"])
        .env("LOKTAR_CONFIG", host.path().join("loktar.toml"))
        .env("TEST_QUAY_TOKEN", REGISTRY_PASSWORD)
        .env("TEST_QUAY_API_TOKEN", "quay-api-token")
        .env("TEST_S3_KEY", ACCESS_KEY)
        .env("TEST_S3_SECRET", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// How a bounded `loktar` ended: its status if it exited by itself, and what it printed.
struct Ended {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Ended {
    /// Asserts that it exited by itself with `code`; shows both streams otherwise.
    #[track_caller]
    fn expect_code(&self, code: i32) {
        assert!(self.status.is_some(), "loktar did not end and was killed\n{}\n{}", self.stdout, self.stderr);
        assert_eq!(
            self.status.and_then(|status| status.code()),
            Some(code),
            "\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// A started `loktar` whose output is read as it comes (a full pipe must not stall it).
struct Child {
    child: std::process::Child,
    readers: Vec<std::thread::JoinHandle<String>>,
}

impl Child {
    fn start(mut command: Command) -> Child {
        let mut child = command.spawn().expect("start loktar");
        let mut readers = Vec::new();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            readers.push(std::thread::spawn(move || {
                let (mut stream, mut text) = (stream, String::new());
                let _ = stream.read_to_string(&mut text);
                text
            }));
        }
        Child { child, readers }
    }

    /// Waits until it exits or `bound` passes; then kills it.
    fn wait(mut self, bound: Duration) -> Ended {
        let deadline = Instant::now() + bound;
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(exited)) = self.child.try_wait() {
                status = Some(exited);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let mut texts = self.readers.into_iter().map(|reader| reader.join().unwrap_or_default());
        Ended { status, stdout: texts.next().unwrap_or_default(), stderr: texts.next().unwrap_or_default() }
    }
}

/// The context archive a run stored, as (path, kind, mode, link target) per entry.
fn stored_context(s3: &S3Server, repo: &TestRepo) -> Vec<(String, tar::EntryType, u32, Option<String>)> {
    let head = repo.git(&["rev-parse", "HEAD"]);
    let gzipped = s3.read("contexts", &format!("build-contexts/pet_api/{head}.tar.gz"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzipped.as_slice()));
    let mut found = Vec::new();
    for entry in archive.entries().expect("a tar archive") {
        let entry = entry.expect("an entry");
        let path = entry.path().expect("a path").to_string_lossy().trim_end_matches('/').to_string();
        let link = entry.link_name().expect("a link name").map(|l| l.to_string_lossy().into_owned());
        let header = entry.header();
        found.push((path, header.entry_type(), header.mode().expect("a mode"), link));
    }
    found
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// How long any run here may take before it counts as hanging: far more
/// than a run takes, far less than the hangs these tests guard against.
const BOUND: Duration = Duration::from_secs(240);

#[test]
fn a_pathological_dockerignore_over_a_deep_folder_is_archived_at_once() {
    let s3 = S3Server::start(&["contexts"]);
    let (repo, host) = context_repo(&s3, 3600);
    // Ten `**` over 24 levels: billions of ways to spread the levels over
    // them for a backtracking matcher, on every entry; linear for a regex.
    let stars = "**/".repeat(10);
    repo.write(
        &format!("{PACKAGE}/.dockerignore"),
        &format!("{stars}nomatch\n{stars}*.tmp\n!{stars}keep.tmp\n{stars}x?y/{stars}z\n"),
    );
    let mut deep = PathBuf::from(PACKAGE);
    for level in 0..24 {
        deep.push(format!("d{level}"));
        repo.write(&deep.join("file.txt").to_string_lossy(), "x\n");
    }
    repo.write(&deep.join("cache.tmp").to_string_lossy(), "left out\n");
    repo.write(&deep.join("keep.tmp").to_string_lossy(), "brought back\n");
    repo.commit("a deep folder and a pathological .dockerignore");

    let ended = Child::start(run_command(&repo, &host)).wait(BOUND);
    // It fails at the registry's closed API, after the context was stored.
    ended.expect_code(1);
    assert!(!ended.stdout.contains("did not finish"), "{}", ended.stdout);
    let paths: Vec<String> = stored_context(&s3, &repo).into_iter().map(|entry| entry.0).collect();
    let deepest = deep.strip_prefix(PACKAGE).expect("inside the package").to_string_lossy().into_owned();
    assert!(paths.contains(&format!("{deepest}/file.txt")), "{paths:?}");
    assert!(paths.contains(&format!("{deepest}/keep.tmp")), "{paths:?}");
    assert!(!paths.iter().any(|path| path.ends_with("cache.tmp")), "{paths:?}");
}

#[test]
fn modes_are_kept_links_stay_links_and_an_ignored_fifo_is_left_out() {
    let s3 = S3Server::start(&["contexts"]);
    let (repo, host) = context_repo(&s3, 3600);
    let package = repo.path().join(PACKAGE);
    repo.write(&format!("{PACKAGE}/secret.key"), "key\n");
    std::fs::set_permissions(package.join("secret.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    repo.write(&format!("{PACKAGE}/bin/run.sh"), "#!/bin/sh\n");
    std::fs::set_permissions(package.join("bin/run.sh"), std::fs::Permissions::from_mode(0o750)).expect("chmod");
    symlink("../../../../../etc/passwd", package.join("passwd")).expect("a link");
    repo.write(&format!("{PACKAGE}/.dockerignore"), "tmp/pipe\n");
    std::fs::create_dir(package.join("tmp")).expect("a folder");
    mkfifo(&package.join("tmp/pipe"));

    let ended = Child::start(run_command(&repo, &host)).wait(BOUND);
    ended.expect_code(1);
    let entries = stored_context(&s3, &repo);
    let find = |path: &str| entries.iter().find(|entry| entry.0 == path).cloned();
    assert_eq!(find("secret.key").map(|e| (e.1, e.2)), Some((tar::EntryType::Regular, 0o600)), "{entries:?}");
    assert_eq!(find("bin/run.sh").map(|e| (e.1, e.2)), Some((tar::EntryType::Regular, 0o750)), "{entries:?}");
    assert_eq!(
        find("passwd").map(|e| (e.1, e.3)),
        Some((tar::EntryType::Symlink, Some("../../../../../etc/passwd".to_string()))),
        "a link is archived as a link, not as what it points at"
    );
    assert!(find("tmp/pipe").is_none(), "{entries:?}");
}

#[test]
fn a_fifo_in_the_context_is_refused_by_name() {
    let s3 = S3Server::start(&["contexts"]);
    let (repo, host) = context_repo(&s3, 3600);
    std::fs::create_dir_all(repo.path().join(PACKAGE).join("sub")).expect("a folder");
    mkfifo(&repo.path().join(PACKAGE).join("sub/pipe"));

    let ended = Child::start(run_command(&repo, &host)).wait(BOUND);
    ended.expect_code(1);
    for text in [
        "pet_api build: plugin `docker`: cannot archive the build context: `sub/pipe` is a named pipe (FIFO): \
         a build context holds only files, folders and links",
        "hint: remove it from the package, or add it to `.dockerignore`",
    ] {
        assert!(ended.stdout.contains(text), "stdout does not say {text:?}:\n{}", ended.stdout);
    }
}

/// A package with a sparse 1 TiB file: archiving it would take hours.
fn slow_context(s3: &S3Server, timeout_secs: u64) -> (TestRepo, tempfile::TempDir) {
    let (repo, host) = context_repo(s3, timeout_secs);
    let big = std::fs::File::create(repo.path().join(PACKAGE).join("big.bin")).expect("a file");
    big.set_len(1 << 40).expect("a sparse size");
    (repo, host)
}

#[test]
fn archiving_stops_at_the_plugin_deadline_and_loktar_exits() {
    let s3 = S3Server::start(&["contexts"]);
    let (repo, host) = slow_context(&s3, 5);
    let ended = Child::start(run_command(&repo, &host)).wait(BOUND);
    ended.expect_code(1);
    assert!(ended.stdout.contains("plugin `docker` did not finish within 5 s and was stopped"), "{}", ended.stdout);
}

#[test]
fn a_signal_stops_archiving_and_loktar_exits() {
    let s3 = S3Server::start(&["contexts"]);
    let (repo, host) = slow_context(&s3, 3600);
    let child = Child::start(run_command(&repo, &host));
    // Wait until the archive is being written, then interrupt.
    let started = Instant::now();
    let archiving = || files_below(&repo.path().join(".loktar")).iter().any(|f| f.ends_with("build-context.tar.gz"));
    while !archiving() && started.elapsed() < BOUND {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(archiving(), "the archive was never started");
    let pid = rustix::process::Pid::from_child(&child.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM");
    let ended = child.wait(BOUND);
    ended.expect_code(130);
    assert!(ended.stdout.contains("run 1 interrupted"), "{}", ended.stdout);
    assert!(ended.stdout.contains("pet_api  cancelled"), "{}", ended.stdout);
}

/// `FROM ${BASE}` with an `ARG` default and `FROM …/base-image:${TAG}` are
/// dependencies; `FROM acme/${NAME}`, whose name stays unknown, is none.
#[test]
fn dockerfile_discovery_resolves_args_and_keeps_names_with_variable_tags() {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [
  {"pkg_name": "pet_api", "dependencies_type": ["dockerfile"]},
  {"pkg_name": "awesome_lib"},
  {"pkg_name": "base-image"},
  {"pkg_name": "unknown"}
]}"#,
    );
    repo.write("awesome_lib/setup.py", "# lib\n");
    repo.write("base-image/Dockerfile", "FROM scratch\n");
    repo.write("unknown/README", "never a dependency\n");
    repo.write(
        "pet_api/Dockerfile",
        "ARG BASE=acme/awesome_lib\nARG NAME\nFROM ${BASE}:1.0 AS build\n\
         FROM registry.example.com/acme/base-image:${TAG}\nFROM acme/${NAME}\nCOPY --from=build /x /x\n",
    );
    repo.commit("ENH: variables in FROM");
    let graph = repo.loktar(&["graph", "--format", "json"]).json();
    let pet_api = graph["packages"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "pet_api").cloned());
    assert_eq!(pet_api.map(|p| p["depends_on"].clone()), Some(serde_json::json!(["awesome_lib", "base-image"])));
}
