//! Hostile tests of the sandbox's edges that are paths and configuration:
//! links a plugin makes in its artifact folder, package folders that are
//! links, and a host configuration a pull request commits. Each asserts
//! that nothing outside was read or written (a canary's content searched in
//! every output and file of the run) and that the run ends with a clear
//! message and the right exit code.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::recorder::{Recorder, Reply};
use crate::support::{TestRepo, files_below, test_plugin};

/// The canary's content: it must never show anywhere Loktar writes.
const CANARY: &str = "canary-9f2c1d-never-copied";

/// A file outside the repository holding [`CANARY`].
fn canary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("shadow");
    std::fs::write(&file, CANARY).expect("write canary");
    let file = file.canonicalize().expect("canonical");
    (dir, file)
}

/// Asserts that [`CANARY`] is in none of `outputs` and no file below `dir`
/// (links the attack left there are not followed: they are not copies).
#[track_caller]
fn assert_no_canary(outputs: &[&str], dir: &Path) {
    assert!(!outputs.iter().any(|output| output.contains(CANARY)), "the canary leaked into the output");
    let mut files = 0;
    for file in files_below(dir) {
        if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        files += 1;
        let text = std::fs::read(&file).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&text).contains(CANARY), "the canary leaked into {}", file.display());
    }
    assert!(files > 0, "the run wrote no file below {}: nothing was searched", dir.display());
}

/// A repository whose package `a` is built by the `zip` test builder with
/// `build_info` `settings`, then stored by the built-in `fs` storage.
fn zip_repo(settings: serde_json::Value) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&format!(
        "[plugins.zip]\npath = \"{}\"\nrole = \"builder\"\ncapabilities = [\"log\"]\n",
        test_plugin("zip").display()
    ));
    let mut build_info = settings;
    build_info["storage_type"] = json!("fs");
    let manifest = json!({"packages": [{"pkg_name": "a", "pkg_type": "zip", "build_info": build_info}]});
    repo.write("loktar.json", &manifest.to_string());
    repo.write("a/README", "a");
    repo.commit("ENH: a");
    repo
}

#[test]
fn a_relative_link_in_the_artifact_folder_is_refused_not_followed() {
    let (_outside, canary) = canary();
    let repo = zip_repo(json!({}));
    // The run's artifact folder is `.loktar/runs/1/a/artifacts`: climb from there to `/`.
    let artifacts = repo.path().canonicalize().expect("canonical").join(".loktar/runs/1/a/artifacts");
    let climb = "../".repeat(artifacts.components().count() - 1);
    let target = format!("{climb}{}", canary.display().to_string().trim_start_matches('/'));
    let manifest = json!({"packages": [{"pkg_name": "a", "pkg_type": "zip",
        "build_info": {"storage_type": "fs", "link": target}}]});
    repo.write("loktar.json", &manifest.to_string());
    repo.commit("ENH: link to the canary");

    let run = repo.loktar(&["run", "--all", "-j", "1"]).expect_code(1);
    assert!(run.stderr.contains("`a.txt` is a link: links are not followed here"), "{}", run.stderr);
    assert!(run.stderr.contains("write a plain file under `/artifacts`"), "{}", run.stderr);
    assert_no_canary(&[&run.stdout, &run.stderr], repo.path());
    assert_eq!(std::fs::read_to_string(&canary).expect("canary"), CANARY, "the canary was changed");
}

#[test]
fn an_absolute_link_in_the_artifact_folder_leads_nowhere() {
    let (_outside, canary) = canary();
    let repo = zip_repo(json!({ "link": canary.display().to_string() }));
    // WASI itself refuses an absolute target, or the host refuses the link: either way nothing is copied.
    let run = repo.loktar(&["run", "--all", "-j", "1"]).expect_code(1);
    assert!(run.stderr.contains("a: build failed") || run.stderr.contains("a: store failed"), "{}", run.stderr);
    assert_no_canary(&[&run.stdout, &run.stderr], repo.path());
}

/// A repository with package `pkg` in `pkg_dir`, a `make ci` that leaves a
/// marker where it runs, and a folder outside the repository that holds
/// such a package too.
fn repo_with_package_in(pkg_dir: &str) -> (TestRepo, tempfile::TempDir) {
    let outside = tempfile::tempdir().expect("temp dir");
    let makefile = "ci:\n\t@touch ran-here\n\t@cat /dev/null\n\nclean:\n\t@true\n";
    std::fs::create_dir_all(outside.path().join("inner")).expect("mkdir");
    std::fs::write(outside.path().join("Makefile"), makefile).expect("write");
    std::fs::write(outside.path().join("inner/Makefile"), makefile).expect("write");
    let repo = TestRepo::new();
    let manifest = json!({"packages": [
        {"pkg_name": "ok", "test_type": "make"},
        {"pkg_name": "pkg", "pkg_dir": pkg_dir, "test_type": "make"}
    ]});
    repo.write("loktar.json", &manifest.to_string());
    repo.write("ok/Makefile", makefile);
    (repo, outside)
}

#[test]
fn a_package_folder_that_is_a_link_is_refused_by_name() {
    let (repo, outside) = repo_with_package_in("linked");
    std::os::unix::fs::symlink(outside.path(), repo.path().join("linked")).expect("symlink");
    repo.commit("ENH: a package folder that is a link");
    for command in [&["plan"][..], &["run", "--all"]] {
        let run = repo.loktar(command).expect_code(2);
        assert!(run.stderr.contains("package `pkg`: folder `linked` is a link"), "{}", run.stderr);
        assert!(run.stderr.contains("must be a real folder inside the repository"), "{}", run.stderr);
    }
    assert!(!outside.path().join("ran-here").exists(), "make ran in the folder the link points to");
}

#[test]
fn a_link_on_the_way_to_a_package_folder_is_refused_by_name() {
    let (repo, outside) = repo_with_package_in("outer/inner");
    std::os::unix::fs::symlink(outside.path(), repo.path().join("outer")).expect("symlink");
    repo.commit("ENH: a parent folder that is a link");
    let run = repo.loktar(&["run", "--all"]).expect_code(2);
    assert!(
        run.stderr.contains("package `pkg`: `outer` on the way to its folder `outer/inner` is a link"),
        "{}",
        run.stderr
    );
    assert!(!outside.path().join("inner/ran-here").exists(), "make ran in the folder the link points to");
}

#[test]
fn a_host_configuration_committed_in_the_repository_is_not_read() {
    let repo = TestRepo::new();
    // The pull request's own configuration: a plugin of its choosing, more programs, no limits.
    repo.write(
        "loktar.toml",
        &format!(
            "[plugins.shout]\npath = \"{}\"\nrole = \"tester\"\ncapabilities = [\"log\"]\n\n\
             [plugins.make]\nprograms = [\"make\", \"cat\"]\n\n[limits]\ntimeout_secs = 99999\n",
            test_plugin("shout").display()
        ),
    );
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "app", "test_type": "shout"}]}"#);
    repo.write("app/shout.txt", "LOKTAR\n");
    repo.commit("ENH: bring my own host configuration");
    let run = repo.loktar(&["run", "--all"]).expect_code(2);
    assert!(run.stderr.contains("`test_type` names `shout`, which is not a known plugin"), "{}", run.stderr);
    assert!(run.stderr.contains("`loktar.toml` in the repository is not read"), "{}", run.stderr);
    assert!(run.stderr.contains("--config loktar.toml"), "{}", run.stderr);
}

#[test]
fn a_committed_configuration_cannot_send_the_operators_token_elsewhere() {
    let operator = Recorder::start(|_| Reply::json(201, json!({})));
    let attacker = Recorder::start(|_| Reply::json(201, json!({})));
    let repo = TestRepo::new();
    repo.host_config(&format!(
        "[plugins.github]\nrole = \"notifier\"\n\n[github]\napi_url = \"{}\"\ntoken_secret = \"gh\"\n\n\
         [secrets.gh]\nenv = \"TEST_GITHUB_TOKEN\"\n",
        operator.url()
    ));
    repo.write(
        "loktar.toml",
        &format!("[plugins.github]\nrole = \"notifier\"\n\n[github]\napi_url = \"{}\"\n", attacker.url()),
    );
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.write("a/Makefile", "ci:\n\t@echo ok\n\nclean:\n\t@true\n");
    repo.git(&["remote", "add", "origin", "git@github.com:acme/monorepo.git"]);
    repo.commit("ENH: send the token to me");
    let run = repo.loktar_with_env(&["run", "--all"], &[("TEST_GITHUB_TOKEN", "ghp_operator_token_1234")]);
    let run = run.expect_code(0);
    assert!(attacker.requests().is_empty(), "the repository's configuration was used: {:?}", attacker.requests());
    let sent = operator.requests();
    assert!(!sent.is_empty(), "no status reached the operator's GitHub\n{}", run.stderr);
    assert!(sent.iter().all(|r| r.header("authorization") == Some("Bearer ghp_operator_token_1234")));
}

#[test]
fn a_plugin_cache_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let repo = TestRepo::new();
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.write("a/Makefile", "ci:\n\t@true\n\nclean:\n\t@true\n");
    repo.commit("ENH: a");
    let output = repo.command().args(["run", "--all"]).env("LOKTAR_CACHE_DIR", shared.path()).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("not using the plugin cache"), "{stderr}");
    assert!(stderr.contains("can be changed by others than you"), "{stderr}");
    let cached: Vec<_> = files_below(shared.path()).into_iter().filter(|f| f.is_file()).collect();
    assert_eq!(cached, Vec::<PathBuf>::new(), "compiled plugins were written to the shared folder");
}

/// A repository that commits the hostile test plugin as `ci/hostile.wasm`,
/// declares it in `loktar.json` asking for `process` and `env`, and tests
/// package `a` with it, printing the environment.
fn repository_plugin_repo() -> TestRepo {
    let repo = TestRepo::new();
    std::fs::create_dir_all(repo.path().join("ci")).expect("mkdir");
    std::fs::copy(test_plugin("hostile"), repo.path().join("ci/hostile.wasm")).expect("copy the plugin");
    let manifest = json!({
        "plugins": {"hostile": {"path": "ci/hostile.wasm", "role": "tester",
                                "capabilities": ["log", "process"], "programs": ["env"]}},
        "packages": [{"pkg_name": "a", "test_type": "hostile", "build_info": {"attack": "print-env"}}]
    });
    repo.write("loktar.json", &manifest.to_string());
    repo.write("a/README", "a");
    repo.commit("ENH: our own tester");
    repo
}

#[test]
fn a_repository_plugin_gets_no_more_than_the_operators_policy() {
    let repo = repository_plugin_repo();
    // No policy: a repository plugin gets `log` alone.
    let run = repo.loktar(&["run", "--all"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "repository plugin `hostile` asked for `process`, program `env`, which the host's policy does not grant"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("attack succeeded"), "{}", run.stderr);
    // Asked for in loktar.json, refused by the policy: the fix is the operator's.
    assert!(run.stderr.contains("gets at most `capabilities` under `[policy.repository_plugins]`"), "{}", run.stderr);
    let plan = repo.loktar(&["plan"]).ok();
    assert!(
        plan.ends_with(
            "repository plugin `hostile` (ci/hostile.wasm): asked for `log`, `process`, program `env`; granted `log`\n"
        ),
        "{plan}"
    );

    // The operator allows it: now it runs, and `loktar plugins` says where it comes from.
    repo.host_config("[policy.repository_plugins]\ncapabilities = [\"log\", \"process\"]\nprograms = [\"env\"]\n");
    repo.loktar(&["run", "--all"]).expect_code(0);
    let plan = repo.loktar(&["plan"]).ok();
    assert!(plan.contains("granted `log`, `process`, program `env`\n"), "{plan}");
    let listing = repo.loktar(&["plugins", "--format", "json"]).json();
    let hostile = listing.as_array().and_then(|l| l.iter().find(|p| p["name"] == "hostile")).expect("listed");
    assert_eq!(hostile["source"], "repository: ci/hostile.wasm");
    assert_eq!(hostile["granted"], json!(["log", "process"]));

    // Not asked for in loktar.json, whatever the policy: the fix is the repository's.
    let manifest = std::fs::read_to_string(repo.path().join("loktar.json")).expect("read");
    repo.write(
        "loktar.json",
        &manifest.replace("\"capabilities\":[\"log\",\"process\"]", "\"capabilities\":[\"log\"]"),
    );
    let run = repo.loktar(&["run", "--all"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("add `\"process\"` to `capabilities` of plugin `hostile` under `plugins` in loktar.json"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_repository_plugin_cannot_take_a_provided_name_or_live_behind_a_link() {
    let repo = repository_plugin_repo();
    let manifest = std::fs::read_to_string(repo.path().join("loktar.json")).expect("read");
    repo.write("loktar.json", &manifest.replace("\"hostile\"", "\"make\""));
    repo.commit("ENH: replace make");
    let run = repo.loktar(&["plan"]).expect_code(2);
    assert!(run.stderr.contains("plugin `make` is provided by Loktar or the host configuration"), "{}", run.stderr);

    // The component as a link to a file outside the repository.
    let (_outside, canary) = canary();
    repo.write("loktar.json", &manifest);
    std::fs::remove_file(repo.path().join("ci/hostile.wasm")).expect("rm");
    std::os::unix::fs::symlink(&canary, repo.path().join("ci/hostile.wasm")).expect("symlink");
    repo.commit("ENH: our tester, elsewhere");
    repo.host_config("[policy.repository_plugins]\ncapabilities = [\"log\", \"process\"]\nprograms = [\"env\"]\n");
    let run = repo.loktar(&["run", "--all"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("`ci/hostile.wasm` is a link"), "{}", run.stderr);
    assert!(!run.stderr.contains(CANARY), "{}", run.stderr);
}

#[test]
fn links_committed_under_loktar_are_never_written_through() {
    let (outside, canary) = canary();
    let victim = outside.path().join("victim");
    std::fs::create_dir(&victim).expect("mkdir");
    let repo = zip_repo(json!({}));
    let manifest = json!({"packages": [{"pkg_name": "a", "pkg_type": "zip", "test_type": "make",
        "build_info": {"storage_type": "fs"}}]});
    repo.write("loktar.json", &manifest.to_string());
    repo.write("a/Makefile", "ci:\n\t@echo written-through-the-link\n\nclean:\n\t@true\n");
    // The pull request commits Loktar's own folder, with links where it writes.
    std::fs::create_dir_all(repo.path().join(".loktar/runs/1/a")).expect("mkdir");
    std::os::unix::fs::symlink(&canary, repo.path().join(".loktar/runs/1/a/test.log")).expect("symlink");
    std::os::unix::fs::symlink(&victim, repo.path().join(".loktar/runs/1/a/artifacts")).expect("symlink");
    repo.git(&["add", "--all", "--force"]);
    repo.commit("ENH: bring my own .loktar");
    let run = repo.loktar(&["run", "--all"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("is a link"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&canary).expect("canary"), CANARY, "the log was written through a link");
    assert_eq!(std::fs::read_dir(&victim).expect("victim").count(), 0, "an artifact was written through a link");
}

#[test]
fn a_package_at_the_root_cannot_touch_git_or_loktar() {
    let repo = TestRepo::new();
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "root", "pkg_dir": ".", "test_type": "make"}]}"#);
    let makefile = "ci:\n\t-@echo '[core]' >> .git/config\n\t-@touch .git/hooks/post-checkout\n\
                    \t-@mkdir -p .loktar/runs && touch .loktar/planted\n\t@true\n\nclean:\n\t@true\n";
    repo.write("Makefile", makefile);
    repo.commit("ENH: a package at the root");
    let config = std::fs::read(repo.path().join(".git/config")).expect("config");
    repo.loktar(&["run", "--all"]).expect_code(0);
    assert_eq!(std::fs::read(repo.path().join(".git/config")).expect("config"), config, ".git/config was changed");
    assert!(!repo.path().join(".git/hooks/post-checkout").exists(), "a hook was planted");
    assert!(!repo.path().join(".loktar/planted").exists(), "the test wrote into .loktar");
    let bad = json!({"packages": [{"pkg_name": "inside", "pkg_dir": ".loktar/runs", "test_type": "make"}]});
    repo.write("loktar.json", &bad.to_string());
    repo.commit("ENH: a package in .loktar");
    let run = repo.loktar(&["plan"]).expect_code(2);
    assert!(run.stderr.contains("points into `.loktar`"), "{}", run.stderr);
}
