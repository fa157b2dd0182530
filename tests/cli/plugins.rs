//! The plugin host: the `make` tester on real Makefiles, hostile plugins
//! contained by the sandbox, capability grants, and a third-party plugin
//! swapped in by configuration alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use loktar::config::{Package, Providers, SourceFile, parse};
use loktar::runtime::bindings::types::{RunContext, TestReport};
use loktar::runtime::{CallEnv, Mounts, Outcome, PluginEngine, PluginError, PluginSession};
use loktar::settings::Settings;

use crate::support::{TestRepo, test_plugin, wasm_cache_dir};

/// The plugin engine these tests share, as a process's runs do: each
/// component is compiled (or read from the cache) once.
fn engine() -> Arc<PluginEngine> {
    static ENGINE: OnceLock<Arc<PluginEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| Arc::new(PluginEngine::new(Some(&wasm_cache_dir())).expect("plugin engine"))).clone()
}

/// A plugin session whose host configuration is `toml` (written to a file in `dir`).
fn session(dir: &Path, toml: &str) -> PluginSession {
    let config = dir.join("loktar.toml");
    std::fs::write(&config, toml).expect("write loktar.toml");
    let settings = Settings::load(Some(&config), dir).expect("valid host configuration");
    PluginSession::new(engine(), settings)
}

/// A package named `name` with `build_info` settings `settings` (a JSON object).
fn package(name: &str, settings: &str) -> Package {
    let json = format!(r#"{{"packages": [{{"pkg_name": "{name}", "build_info": {settings}}}]}}"#);
    let mut packages = parse(&SourceFile::new("loktar.json", json), &Providers::builtin()).expect("valid package");
    packages.remove(0)
}

fn context() -> RunContext {
    RunContext {
        run_id: "test".into(),
        commit: "0".repeat(40),
        branch: Some("main".into()),
        base: None,
        default_branch: "main".into(),
        on_default_branch: true,
        commit_time: None,
        repository_url: None,
        author: None,
        settings: "{}".into(),
    }
}

fn run_test(
    session: &PluginSession,
    provider: &str,
    dir: &Path,
    settings: &str,
) -> Result<Outcome<TestReport>, PluginError> {
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let env = CallEnv::with_mounts(Mounts { root: dir.to_path_buf(), package: String::new(), artifacts: None });
    tokio.block_on(session.test(provider, &context(), &package("pkg", settings), &env))
}

fn logged(lines: &[loktar::runtime::stage_log::Line]) -> String {
    lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
}

fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("write file");
    }
    dir
}

const TRACE_MAKEFILE: &str = "ci:\n\techo ci >> trace.txt\n\t{CI}\n\nclean:\n\techo clean >> trace.txt\n";

fn makefile(ci: &str) -> String {
    TRACE_MAKEFILE.replace("{CI}", ci)
}

fn trace(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("trace.txt")).unwrap_or_default()
}

#[test]
fn make_runs_ci_then_clean() {
    let repo = folder_with(&[("Makefile", &makefile("echo tests pass"))]);
    let host = tempfile::tempdir().expect("temp dir");
    let outcome = run_test(&session(host.path(), ""), "make", repo.path(), "{}").expect("make ran");
    assert!(outcome.value.passed, "{:?}", outcome.value);
    assert_eq!(outcome.value.summary, "`make ci` passed");
    assert_eq!(trace(repo.path()), "ci\nclean\n");
    let log = logged(&outcome.log);
    assert!(log.contains("running `make ci`") && log.contains("tests pass"), "{log}");
}

#[test]
fn a_failing_ci_rule_fails_and_still_cleans() {
    let repo = folder_with(&[("Makefile", &makefile("exit 3"))]);
    let host = tempfile::tempdir().expect("temp dir");
    let outcome = run_test(&session(host.path(), ""), "make", repo.path(), "{}").expect("make ran");
    assert!(!outcome.value.passed);
    assert_eq!(outcome.value.summary, "`make ci` failed with exit code 2");
    assert_eq!(trace(repo.path()), "ci\nclean\n");
}

#[test]
fn a_ci_rule_that_runs_too_long_is_stopped_and_cleaned() {
    let repo = folder_with(&[("Makefile", &makefile("sleep 30 && echo never >> trace.txt"))]);
    let host = tempfile::tempdir().expect("temp dir");
    let session = session(host.path(), "[limits]\nprocess_timeout_secs = 1\n");
    let outcome = run_test(&session, "make", repo.path(), "{}").expect("make ran");
    assert!(!outcome.value.passed);
    assert_eq!(outcome.value.summary, "`make ci` did not finish in time and was stopped");
    assert_eq!(trace(repo.path()), "ci\nclean\n", "the whole process group was stopped, then clean ran");
}

#[test]
fn make_without_a_ci_rule_or_a_makefile_is_a_clear_error() {
    let host = tempfile::tempdir().expect("temp dir");
    let session = session(host.path(), "");
    let repo = folder_with(&[("Makefile", "build:\n\ttrue\n")]);
    let error = run_test(&session, "make", repo.path(), "{}").expect_err("no ci rule");
    assert_eq!(error.problem.message, "plugin `make`: the Makefile of package `pkg` has no `ci` rule");
    // A `ci` rule that only make knows (from an included file) is found too.
    let repo = folder_with(&[("Makefile", "include rules.mk\n"), ("rules.mk", "ci:\n\techo from-include\n")]);
    let outcome = run_test(&session, "make", repo.path(), "{}").expect("ci from an included file");
    assert!(outcome.value.passed && logged(&outcome.log).contains("from-include"), "{}", logged(&outcome.log));
    assert!(logged(&outcome.log).contains("no `clean` rule"), "{}", logged(&outcome.log));
    let repo = folder_with(&[("README.md", "no makefile")]);
    let error = run_test(&session, "make", repo.path(), "{}").expect_err("no Makefile");
    assert_eq!(error.problem.message, "plugin `make`: package `pkg` has no Makefile");
    assert!(error.problem.hint.as_deref().is_some_and(|h| h.contains("no-test")), "{:?}", error.problem.hint);
}

/// The host configuration for the hostile plugin: short limits, `make` allowed.
fn hostile_session(dir: &Path) -> PluginSession {
    let toml = format!(
        "[plugins.hostile]\npath = {:?}\nrole = \"tester\"\ncapabilities = [\"log\", \"process\"]\nprograms = [\"make\", \"env\"]\nenv = [\"CARGO_PKG_NAME\"]\n\n[limits]\ntimeout_secs = 2\nmemory_mib = 64\nlog_kib = 64\n",
        test_plugin("hostile").display().to_string()
    );
    session(dir, &toml)
}

fn attack(session: &PluginSession, package_dir: &Path, attack: &str) -> Result<Outcome<TestReport>, PluginError> {
    run_test(session, "hostile", package_dir, &format!(r#"{{"attack": "{attack}"}}"#))
}

#[test]
fn hostile_plugins_are_contained_and_the_host_goes_on() {
    let host = tempfile::tempdir().expect("temp dir");
    let session = hostile_session(host.path());
    let package = folder_with(&[("Makefile", "ci:\n\ttrue\n")]);
    let refused = |name: &str| {
        let error = attack(&session, package.path(), name).expect_err("the sandbox refuses");
        assert!(
            error.problem.message.starts_with("plugin `hostile`: attack failed:"),
            "{name}: {}",
            error.problem.message
        );
        error.problem.message
    };
    refused("read-passwd");
    refused("read-ssh");
    refused("escape-package");
    refused("write-package");
    assert!(!package.path().join("owned.txt").exists());
    let forbidden = refused("run-forbidden");
    assert!(forbidden.contains("plugin `hostile` may not run `cat`"), "{forbidden}");

    let stopped = |name: &str| attack(&session, package.path(), name).expect_err("stopped").problem.message;
    assert_eq!(stopped("loop"), "plugin `hostile` did not finish within 2 s and was stopped");
    let memory = stopped("memory");
    assert!(memory.starts_with("plugin `hostile` tried to use more than 64 MiB of memory"), "{memory}");
    let recursion = stopped("recursion");
    assert!(recursion.contains("overflowing its stack") || recursion.contains("overflowed its stack"), "{recursion}");
    assert_eq!(stopped("flood"), "plugin `hostile` wrote more than 64 KiB of log output and was stopped");
    let panic = stopped("panic");
    assert!(panic.starts_with("plugin `hostile` crashed (it panicked or aborted)"), "{panic}");
    assert!(panic.contains("the hostile plugin panics on purpose"), "{panic}");

    // Same session, same plugin: everything still works.
    let fine = attack(&session, package.path(), "none").expect("a well-behaved call");
    assert!(fine.value.passed);
}

#[test]
fn the_artifact_folder_is_the_one_writable_place() {
    let host = tempfile::tempdir().expect("temp dir");
    let session = hostile_session(host.path());
    let package = tempfile::tempdir().expect("temp dir");
    let artifacts = host.path().join("artifacts");
    let env = CallEnv::with_mounts(Mounts {
        root: package.path().to_path_buf(),
        package: String::new(),
        artifacts: Some(artifacts.clone()),
    });
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let hostile = package_with("write-artifacts");
    let outcome = tokio.block_on(session.test("hostile", &context(), &hostile, &env)).expect("writing artifacts works");
    assert!(outcome.value.passed);
    assert_eq!(std::fs::read_to_string(artifacts.join("built.txt")).ok().as_deref(), Some("artifact"));
    let refused = tokio.block_on(session.test("hostile", &context(), &package_with("write-package"), &env));
    assert!(refused.is_err_and(|e| e.problem.message.contains("attack failed")));
}

fn package_with(attack: &str) -> Package {
    package("pkg", &format!(r#"{{"attack": "{attack}"}}"#))
}

#[test]
fn programs_run_with_a_scrubbed_environment() {
    let host = tempfile::tempdir().expect("temp dir");
    let session = hostile_session(host.path());
    let outcome = attack(&session, host.path(), "print-env").expect("env ran");
    let environment: Vec<&str> = outcome
        .log
        .iter()
        .filter(|line| line.source == loktar::runtime::stage_log::Source::Program)
        .map(|line| line.text.as_str())
        .collect();
    let has = |name: &str| environment.iter().any(|line| line.starts_with(&format!("{name}=")));
    assert!(has("PATH") && has("HOME"), "{environment:?}");
    assert!(has("CARGO_PKG_NAME"), "variables granted with `env` pass: {environment:?}");
    // cargo sets these for the test process; nothing the host has leaks unless granted.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(!has("CARGO_MANIFEST_DIR") && !has("LOKTAR_CACHE_DIR"), "{environment:?}");
}

#[test]
fn raw_sockets_load_and_stay_closed_at_run_time_and_ungranted_capabilities_refuse_to_load() {
    let host = tempfile::tempdir().expect("temp dir");
    // Something to reach on 127.0.0.1, over TCP and UDP: nothing may arrive.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("a TCP port");
    let port = tcp.local_addr().expect("address").port();
    let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the same UDP port");
    let sockets = format!(
        "[plugins.sockets]\npath = {:?}\nrole = \"tester\"\ncapabilities = [\"log\"]\n",
        test_plugin("sockets").display().to_string()
    );
    let settings = format!("{{\"target\":\"127.0.0.1:{port}\"}}");
    let outcome =
        run_test(&session(host.path(), &sockets), "sockets", host.path(), &settings).expect("it loads and runs");
    let log = logged(&outcome.log);
    assert_eq!(outcome.value.summary, "the network stayed closed", "{log}");
    assert!(!outcome.value.passed);
    // The host denies each (access denied, no resolver): not a platform without sockets.
    for attempt in [
        "tcp refused: Permission denied",
        "udp refused: Permission denied",
        "lookup refused: failed to lookup address information: Non-recoverable",
    ] {
        assert!(log.contains(attempt), "{attempt} in {log}");
    }
    tcp.set_nonblocking(true).expect("non-blocking");
    assert!(tcp.accept().is_err(), "no connection arrived");
    udp.set_nonblocking(true).expect("non-blocking");
    assert!(udp.recv_from(&mut [0u8; 16]).is_err(), "no datagram arrived");

    let ungranted = format!(
        "[plugins.hostile]\npath = {:?}\nrole = \"tester\"\ncapabilities = [\"log\"]\n",
        test_plugin("hostile").display().to_string()
    );
    let error = run_test(&session(host.path(), &ungranted), "hostile", host.path(), "{}").expect_err("refused");
    assert_eq!(
        error.problem.message,
        "plugin `hostile` needs capability `process`, which the host configuration does not grant"
    );
    assert!(error.problem.hint.as_deref().is_some_and(|h| h.contains("[plugins.hostile]")), "{:?}", error.problem.hint);
}

fn shout_config(name: &str) -> String {
    format!(
        "[plugins.{name}]\npath = {:?}\nrole = \"tester\"\ncapabilities = [\"log\"]\n",
        test_plugin("shout").display().to_string()
    )
}

#[test]
fn a_third_party_plugin_from_a_path_is_a_test_type() {
    let host = tempfile::tempdir().expect("temp dir");
    let package = folder_with(&[("shout.txt", "LOKTAR!\n")]);
    let outcome = run_test(&session(host.path(), &shout_config("shout")), "shout", package.path(), "{}").expect("ran");
    assert_eq!(outcome.value.summary, "loud enough");
    assert!(logged(&outcome.log).contains("shout.txt says LOKTAR!"));

    // Swapping a provider by configuration alone: `make` now means this plugin.
    let swapped = session(host.path(), &shout_config("make"));
    let outcome = run_test(&swapped, "make", package.path(), "{}").expect("ran");
    assert_eq!(outcome.value.summary, "loud enough");
}

#[test]
fn loktar_json_accepts_configured_providers_and_plugins_lists_them() {
    let repo = TestRepo::new();
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "app", "test_type": "shout"}]}"#);
    repo.write("app/shout.txt", "LOKTAR\n");
    repo.commit("ENH: app");
    let run = repo.loktar(&["graph"]).expect_code(2);
    assert!(run.stderr.contains("`test_type` names `shout`, which is not a known plugin"), "{}", run.stderr);

    repo.host_config(&shout_config("shout"));
    repo.loktar(&["graph"]).ok();
    let listing = repo.loktar(&["plugins", "--format", "json"]).json();
    let shout = listing.as_array().and_then(|l| l.iter().find(|p| p["name"] == "shout")).expect("shout listed");
    assert_eq!(shout["version"], "2.3.4");
    assert_eq!(shout["roles"], serde_json::json!(["tester"]));
    assert_eq!(shout["requested"], serde_json::json!(["log"]));
    assert_eq!(shout["source"], test_plugin("shout").display().to_string());
    let text = repo.loktar(&["plugins"]).ok();
    let builtins: String = text.lines().filter(|l| !l.starts_with("shout")).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!("plugins_listing", builtins);
}

#[test]
fn a_broken_plugin_file_is_reported_by_name() {
    let repo = TestRepo::new();
    repo.write("loktar.json", r#"{"packages": []}"#);
    // A secret-looking text file, a core module and a truncated component.
    let cases: [(&str, &[u8], &str); 3] = [
        ("key.pem", b"-----BEGIN PRIVATE KEY----- hunter2", "is not a WebAssembly file"),
        ("module.wasm", b"\0asm\x01\0\0\0", "is a WebAssembly module, not a component"),
        ("broken.wasm", b"\0asm\x0d\0\x01\0\xff", "is not a valid WebAssembly component"),
    ];
    for (file, bytes, says) in cases {
        let path = repo.path().join(file);
        std::fs::write(&path, bytes).expect("write");
        repo.host_config(&format!("[plugins.broken]\npath = \"{}\"\nrole = \"tester\"\n", path.display()));
        let listing = repo.loktar(&["plugins", "--format", "json"]).json();
        let broken = listing.as_array().and_then(|l| l.iter().find(|p| p["name"] == "broken")).expect("listed");
        let error = broken["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("plugin `broken`") && error.contains(says), "{file}: {error}");
        assert!(!error.contains("BEGIN") && !error.contains("hunter2"), "the file's bytes are shown: {error}");
    }
}

/// Where the built-in discovery plugins find dependencies.
fn discovery_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [
  {"pkg_name": "awesome_lib"},
  {"pkg_name": "pet_api", "dependencies_type": ["python_requirements", "dockerfile"]},
  {"pkg_name": "webfront", "dependencies_type": "docker_compose"},
  {"pkg_name": "base-image"}
]}"#,
    );
    repo.write("awesome_lib/setup.py", "# lib\n");
    repo.write("base-image/Dockerfile", "FROM scratch\n");
    repo.write(
        "pet_api/requirements.txt",
        "# pinned\n-e ../awesome_lib\nrequests[socks]>=2.0 ; python_version > '3.8'\n--index-url https://pypi.invalid/simple\n",
    );
    repo.write("pet_api/Dockerfile", "FROM quay.io/acme/base-image:3 AS build\nFROM build\nFROM scratch\n");
    repo.write(
        "webfront/docker-compose.yml",
        "services:\n  web:\n    build: .\n  api:\n    image: registry.invalid/team/pet_api:latest\n",
    );
    repo.commit("ENH: discovery");
    repo
}

#[test]
fn discovery_plugins_add_edges_to_the_graph_and_the_plan() {
    let repo = discovery_repo();
    let graph = repo.loktar(&["graph", "--format", "json"]).json();
    let depends = |name: &str| {
        graph["packages"].as_array().and_then(|p| p.iter().find(|p| p["name"] == name)).map(|p| p["depends_on"].clone())
    };
    assert_eq!(depends("pet_api"), Some(serde_json::json!(["awesome_lib", "base-image"])));
    assert_eq!(depends("webfront"), Some(serde_json::json!(["pet_api"])));
    assert_eq!(depends("awesome_lib"), Some(serde_json::json!([])));

    repo.write("awesome_lib/setup.py", "# lib v2\n");
    repo.commit("ENH: lib");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(plan["levels"], serde_json::json!([["awesome_lib"], ["pet_api"], ["webfront"]]));
}

#[test]
fn malformed_files_make_discovery_fail_clearly() {
    let repo = discovery_repo();
    repo.write("webfront/docker-compose.yml", "services:\n  web:\n    image: [unclosed\n");
    repo.write("pet_api/requirements.txt", "requests>=2\n=== nonsense\n");
    let run = repo.loktar(&["graph"]).expect_code(2);
    assert!(
        run.stderr.contains("package `pet_api`: dependency discovery failed: plugin `python_requirements`: requirements.txt:2: `=== nonsense` is not a requirement"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "package `webfront`: dependency discovery failed: plugin `docker_compose`: `docker-compose.yml`: line"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(not valid YAML)"), "{}", run.stderr);
}

/// Compiled components in a cache folder, with their modification times.
fn compiled(cache: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut files: Vec<(PathBuf, std::time::SystemTime)> = crate::support::files_below(cache)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|extension| extension == "cwasm"))
        .filter_map(|path| Some((path.clone(), std::fs::metadata(&path).ok()?.modified().ok()?)))
        .collect();
    files.sort();
    files
}

#[test]
fn a_second_start_takes_compiled_plugins_from_the_cache() {
    let repo = TestRepo::new();
    let cache = tempfile::tempdir().expect("temp dir");
    let start = || {
        let output = crate::support::loktar_command()
            .current_dir(repo.path())
            .args(["plugins"])
            .env("LOKTAR_CACHE_DIR", cache.path())
            .output()
            .expect("run loktar");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    start();
    let first = compiled(cache.path());
    let builtins = loktar::runtime::builtin_names().count();
    assert_eq!(first.len(), builtins, "one compiled component per built-in plugin: {first:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    start();
    assert_eq!(compiled(cache.path()), first, "nothing was compiled or rewritten the second time");
}

#[test]
fn the_json_plan_says_what_a_repository_plugin_asked_for_and_was_granted() {
    let repo = TestRepo::new();
    std::fs::create_dir_all(repo.path().join("ci")).expect("mkdir");
    std::fs::copy(test_plugin("zip"), repo.path().join("ci/zip.wasm")).expect("copy the plugin");
    let manifest = serde_json::json!({
        "plugins": {"zip": {"path": "ci/zip.wasm", "role": "builder",
                            "capabilities": ["process", "secrets"], "programs": ["zip", "curl"]}},
        "packages": [{"pkg_name": "app", "pkg_type": "zip"}]
    });
    repo.write("loktar.json", &manifest.to_string());
    repo.write("app/README", "app\n");
    repo.commit("ENH: our own builder");
    repo.host_config("[policy.repository_plugins]\ncapabilities = [\"log\", \"process\"]\nprograms = [\"zip\"]\n");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(
        plan["repository_plugins"],
        serde_json::json!([{
            "name": "zip",
            "path": "ci/zip.wasm",
            "role": "builder",
            "asked": {"capabilities": ["log", "process", "secrets"], "programs": ["zip", "curl"]},
            "granted": {"capabilities": ["log", "process"], "programs": ["zip"]}
        }])
    );
    // The text plan says the same.
    let text = repo.loktar(&["plan"]).ok();
    assert!(
        text.ends_with(
            "repository plugin `zip` (ci/zip.wasm): asked for `log`, `process`, `secrets`, program `zip`, \
             program `curl`; granted `log`, `process`, program `zip`\n"
        ),
        "{text}"
    );
}

#[test]
fn the_json_plan_lists_no_repository_plugin_when_none_is_declared() {
    let repo = TestRepo::seed();
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(plan["repository_plugins"], serde_json::json!([]));
}

/// `loktar plugin check FILE` with a compile cache of its own: its output, exit code and the cache.
fn plugin_check(file: &Path, format: &str) -> (String, i32, tempfile::TempDir) {
    let cache = tempfile::tempdir().expect("temp dir");
    let output = crate::support::loktar_command()
        .env("LOKTAR_CACHE_DIR", cache.path())
        .args(["plugin", "check", "--format", format])
        .arg(file)
        .output()
        .expect("run loktar plugin check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty() || output.status.code() == Some(2), "{stderr}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), output.status.code().unwrap_or(-1), cache)
}

/// Files the compile cache in `cache` holds.
fn cached_files(cache: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 })
            .sum()
    }
    count(cache)
}

#[test]
fn plugin_check_reports_what_a_component_is_imports_and_needs_with_the_lines_that_load_it() {
    let sockets = test_plugin("sockets");
    let (text, code, cache) = plugin_check(&sockets, "text");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("plugin    sockets 0.1.0\nroles     tester\ndeclares  log\n"), "{text}");
    assert!(
        regex::Regex::new(r"(?m)^  wasi:sockets/tcp@0\.2\.\d+ +closed: every socket is denied at run time$")
            .expect("regex")
            .is_match(&text),
        "{text}"
    );
    assert!(
        regex::Regex::new(r"(?m)^  loktar:plugin/log@0\.1\.\d+ +capability `log`, declared$")
            .expect("regex")
            .is_match(&text),
        "{text}"
    );
    let (_, snippet) = text.split_once("(nothing is granted by default):\n\n").expect("the lines that load it");
    let table: toml::Table = toml::from_str(snippet).expect("TOML");
    let entry = &table["plugins"]["sockets"];
    assert_eq!(
        (entry["path"].as_str(), entry["role"].as_str(), entry["capabilities"].as_array().map(Vec::len)),
        (Some(sockets.to_str().expect("UTF-8")), Some("tester"), Some(1)),
        "{snippet}"
    );
    assert!(cached_files(cache.path()) > 0, "a component that may load is compiled (and cached)");

    // The lines load it as they are, wherever the file is: `loktar plugins` lists it, granted `log`.
    let dir = tempfile::tempdir().expect("temp dir");
    let odd = dir.path().join("quote\" back\\slash\ttab e\u{301}");
    std::fs::create_dir(&odd).expect("an oddly named folder");
    std::fs::copy(&sockets, odd.join("sockets.wasm")).expect("copy the component");
    let (text, code, _cache) = plugin_check(&odd.join("sockets.wasm"), "text");
    assert_eq!(code, 0, "{text}");
    let (_, snippet) = text.split_once("(nothing is granted by default):\n\n").expect("the lines that load it");
    std::fs::write(dir.path().join("loktar.toml"), snippet).expect("write loktar.toml");
    let listed = crate::support::loktar_command()
        .arg("--config")
        .arg(dir.path().join("loktar.toml"))
        .args(["plugins", "--format", "json"])
        .current_dir(dir.path())
        .output()
        .expect("loktar plugins");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let entry = listed.as_array().into_iter().flatten().find(|p| p["name"] == "sockets").expect("listed");
    assert_eq!((&entry["granted"], &entry["error"]), (&serde_json::json!(["log"]), &serde_json::Value::Null));

    let (json, code, _cache) = plugin_check(&sockets, "json");
    assert_eq!(code, 0, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(report["plugin"]["declares"], serde_json::json!(["log"]));
    assert_eq!(report["refusal"], serde_json::Value::Null);
    let tcp = report["imports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"].as_str().is_some_and(|name| name.starts_with("wasi:sockets/tcp@")));
    assert_eq!(tcp.map(|i| &i["use"]), Some(&serde_json::json!("closed")), "{json}");
}

#[test]
fn plugin_check_refuses_a_component_importing_what_loktar_lacks_naming_each_without_compiling_it() {
    use wasm_encoder::{Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType};
    let mut component = Component::new();
    let mut types = ComponentTypeSection::new();
    let mut callable = InstanceType::new();
    callable.ty().function().params([("path", wasm_encoder::PrimitiveValType::String)]).result(None);
    callable.export("read", ComponentTypeRef::Func(0));
    types.instance(&callable);
    component.section(&types);
    let mut imports = ComponentImportSection::new();
    for name in ["wasi:cli/environment@0.2.0", "jco:node/fs", "wasi:keyvalue/store@0.2.0"] {
        imports.import(name, ComponentTypeRef::Instance(0));
    }
    component.section(&imports);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("js-plugin.wasm");
    std::fs::write(&file, component.finish()).expect("write the component");

    let (text, code, cache) = plugin_check(&file, "text");
    assert_eq!(code, 2, "{text}");
    assert!(
        regex::Regex::new(r"(?m)^  jco:node/fs +REFUSED: Loktar does not provide it$").expect("regex").is_match(&text),
        "{text}"
    );
    assert!(text.contains("  wasi:cli/environment@0.2.0  provided\n"), "{text}");
    assert!(
        text.ends_with(
            "refused: plugin `js-plugin` imports what Loktar does not provide: `jco:node/fs`, `wasi:keyvalue/store@0.2.0`\n"
        ),
        "{text}"
    );
    assert!(!text.contains("[plugins."), "no lines to load what cannot load: {text}");
    assert_eq!(cached_files(cache.path()), 0, "refused before any compile");

    // Not a component at all: an error that says so, exit 2.
    std::fs::write(&file, b"\0asm\x01\x00\x00\x00").expect("write a module");
    let output = crate::support::loktar_command().args(["plugin", "check"]).arg(&file).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is a WebAssembly module, not a component"), "{output:?}");
}
