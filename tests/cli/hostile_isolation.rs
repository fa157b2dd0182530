//! Hostile tests of program isolation: what a package's `make ci` can see
//! and leave behind, and what a plugin may set for the programs it runs.
//! Each attack is run once isolated (it must fail to see or touch
//! anything) and, where that proves the check could fail, once with
//! `mode = "none"` (it must then succeed).

use std::path::Path;
use std::time::Duration;

use crate::containers::DockerEngine;
use crate::support::{TestRepo, run_bounded, sleeping, test_plugin, wasm_cache_dir};

/// A secret in Loktar's environment that no program may read.
const SECRET: &str = "s3cr3t-canary-77d1e0";

/// A package `a` whose `make ci` prints `LEAK <what>` for everything
/// outside its sandbox it can reach, and fails if it reached anything;
/// `isolation` is the body of `[isolation]` in the host configuration.
fn snooping_repo(isolation: &str, outside: &Path) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&format!("[secrets.canary]\nenv = \"TEST_CANARY\"\n\n[isolation]\n{isolation}\n"));
    let config = repo.host_config_path();
    let checks = [
        ("environ", format!("grep -qs {SECRET} /proc/*/environ")),
        ("configuration", format!("test -e {}", config.display())),
        ("cache", format!("test -e {}", wasm_cache_dir().display())),
        ("outside-file", format!("test -e {}", outside.join("canary").display())),
        ("repository", "test -e ../loktar.json".to_string()),
        ("write-outside", format!("touch {}", outside.join("written").display())),
    ];
    // Where it runs: on this Debian host, or in an image without Debian's files.
    let mut makefile = String::from("ci:\n\t@test -e /etc/debian_version || echo NOT ON THE HOST\n");
    for (what, check) in &checks {
        makefile.push_str(&format!("\t@if {check} 2>/dev/null; then echo LEAK {what}; touch leaked; fi\n"));
    }
    makefile.push_str("\t@test ! -e leaked\n\nclean:\n\t@rm -f leaked\n");
    repo.write("a/Makefile", &makefile);
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.commit("ENH: a test that looks around");
    repo
}

#[test]
fn an_isolated_test_sees_nothing_of_loktar_the_operator_or_the_rest_of_the_machine() {
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("canary"), "canary").expect("write");
    let repo = snooping_repo("mode = \"namespaces\"", outside.path());
    let run = repo.loktar_with_env(&["run", "--all"], &[("TEST_CANARY", SECRET)]);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/a/test.log")).unwrap_or_default();
    assert_eq!(run.code, 0, "something leaked:\n{log}\n{}", run.stderr);
    assert!(!log.contains("LEAK"), "{log}");
    assert!(!outside.path().join("written").exists(), "the test wrote outside its folder");

    // The same test without isolation reaches all the rest: the checks can fail. Not
    // the secret: Loktar took it out of its environment before anything ran.
    let repo = snooping_repo("mode = \"none\"", outside.path());
    let run = repo.loktar_with_env(&["run", "--all"], &[("TEST_CANARY", SECRET)]).expect_code(1);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/a/test.log")).unwrap_or_default();
    for what in ["configuration", "cache", "outside-file", "repository", "write-outside"] {
        assert!(log.contains(&format!("LEAK {what}")), "`{what}` was not reached without isolation:\n{log}");
    }
    assert!(!log.contains("LEAK environ"), "the secret was still in Loktar's environment:\n{log}");
    assert_eq!(run.stderr.matches("program isolation is off").count(), 1, "warned once:\n{}", run.stderr);
    assert!(!run.stderr.contains(SECRET) && !log.contains(SECRET), "the secret itself is still never shown");
}

#[test]
fn a_read_only_folder_the_operator_grants_is_seen_even_below_tmp() {
    // Below the system's temp folder, where the sandbox has a `/tmp` of its own.
    let shared = tempfile::tempdir().expect("temp dir");
    std::fs::write(shared.path().join("tool"), "version 1\n").expect("write");
    let folder = shared.path().display().to_string();
    let repo = TestRepo::new();
    repo.host_config(&format!("[isolation]\nmode = \"namespaces\"\nread_only = [{folder:?}]\n"));
    repo.write(
        "a/Makefile",
        &format!(
            "ci:\n\t@grep -q 'version 1' {folder}/tool\n\t@! touch {folder}/written 2>/dev/null\n\nclean:\n\t@true\n"
        ),
    );
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.commit("ENH: a test that reads a shared folder");
    let run = repo.loktar(&["run", "--all"]);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/a/test.log")).unwrap_or_default();
    assert_eq!(run.code, 0, "the granted folder was not readable:\n{log}\n{}", run.stderr);
    assert!(!shared.path().join("written").exists(), "the read-only folder was written");
}

#[test]
fn what_a_test_leaves_running_ends_with_its_stage() {
    for isolation in ["mode = \"namespaces\"", "mode = \"none\""] {
        leaves_nothing_running(isolation);
    }
}

/// Runs `make ci` that leaves children behind; `isolation` is the body of `[isolation]`.
fn leaves_nothing_running(isolation: &str) {
    let repo = TestRepo::new();
    repo.host_config(&format!("[isolation]\n{isolation}\n"));
    // One child in the background, one more that keeps the output open.
    repo.write("a/Makefile", "ci:\n\t@sleep 313 &\n\t@(sleep 314; echo late) &\n\t@echo done\n\nclean:\n\t@true\n");
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.commit("ENH: a test that leaves children behind");
    // Bounded: a stage that waited for the children it left behind would not end.
    let run = run_bounded(repo.command().args(["run", "--all"]), Duration::from_secs(60), |_| {});
    assert_eq!(run.code, 0, "{isolation}: {}", run.stderr);
    assert_eq!((sleeping("313"), sleeping("314")), (vec![], vec![]), "{isolation}: children outlived their stage");
}

/// A repository whose package `a` is tested by the hostile plugin with `attack`.
fn hostile_repo(attack: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&format!(
        "[plugins.hostile]\npath = \"{}\"\nrole = \"tester\"\ncapabilities = [\"log\", \"process\"]\n\
         programs = [\"env\"]\n",
        test_plugin("hostile").display()
    ));
    repo.write(
        "loktar.json",
        &format!(
            r#"{{"packages": [{{"pkg_name": "a", "test_type": "hostile", "build_info": {{"attack": "{attack}"}}}}]}}"#
        ),
    );
    repo.write("a/README", "a");
    std::os::unix::fs::symlink("/", repo.path().join("a/rootlink")).expect("symlink");
    repo.commit("ENH: hostile");
    repo
}

#[test]
fn a_plugin_may_not_set_loader_variables_for_a_program() {
    let run = hostile_repo("ld-preload").loktar(&["run", "--all"]).expect_code(1);
    assert!(run.stderr.contains("plugin `hostile` may not set `LD_PRELOAD` for `env`"), "{}", run.stderr);
}

#[test]
fn a_program_cannot_be_started_in_a_link_out_of_the_package() {
    let run = hostile_repo("cwd-link").loktar(&["run", "--all"]).expect_code(1);
    assert!(run.stderr.contains("cannot run `env` there: `rootlink` is a link"), "{}", run.stderr);
}

/// A secret granted to a program (its own value: other tests look for [`SECRET`] in every process).
const GRANTED: &str = "granted-canary-4c9e21";

#[test]
fn a_secret_handed_to_a_program_is_in_no_command_line() {
    let repo = TestRepo::new();
    repo.host_config("[plugins.make]\nenv = [\"TEST_CANARY\"]\n\n[secrets.canary]\nenv = \"TEST_CANARY\"\n");
    // The program gets the secret (it is granted), and takes its time.
    repo.write("a/Makefile", "ci:\n\t@test -n \"$$TEST_CANARY\"\n\t@sleep 2\n\nclean:\n\t@true\n");
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.commit("ENH: a test with a token");
    let mut seen = Vec::new();
    let run =
        run_bounded(repo.command().args(["run", "--all"]).env("TEST_CANARY", GRANTED), Duration::from_secs(60), |_| {
            // Every process's command line: readable by every user of the machine.
            for entry in std::fs::read_dir("/proc").expect("list /proc").flatten() {
                let line = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&line).contains(GRANTED) {
                    seen.push(String::from_utf8_lossy(&line).replace('\0', " "));
                }
            }
        });
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(seen, Vec::<String>::new(), "the secret was on a command line");
}

/// The image container-isolated tests run in: busybox's applets, and
/// `make` with the libraries it loads, and nothing else of the host.
const MAKE_IMAGE: &str = "make:loktar";

#[test]
fn a_test_isolated_in_a_container_sees_only_its_image_and_its_folders() {
    let engine = DockerEngine::start();
    let ldd = std::process::Command::new("ldd").arg("/usr/bin/make").output().expect("ldd /usr/bin/make");
    let libraries: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(str::to_string)
        .collect();
    let mut files = vec!["/usr/bin/make"];
    files.extend(libraries.iter().map(String::as_str));
    engine.import_image(MAKE_IMAGE, &files, &["sh", "grep", "touch", "rm", "cat", "echo", "sleep", "test", "env"]);
    let container =
        |image: &str| format!("mode = \"container\"\nimage = \"{image}\"\n\n[engine]\nhost = \"{}\"", engine.host());

    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("canary"), "canary").expect("write");
    let repo = snooping_repo(&container(MAKE_IMAGE), outside.path());
    let run = repo.loktar_with_env(&["run", "--all"], &[("TEST_CANARY", SECRET)]);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/a/test.log")).unwrap_or_default();
    assert_eq!(run.code, 0, "something leaked:\n{log}\n{}", run.stderr);
    assert!(log.contains("NOT ON THE HOST"), "the test did not run in the image:\n{log}");
    assert!(!log.contains("LEAK"), "{log}");
    assert!(!outside.path().join("written").exists(), "the test wrote outside its folder");
    let left = engine.docker_ok(&["ps", "--all", "--quiet", "--filter", "label=loktar.program"]);
    assert_eq!(left, "", "program containers were left behind");

    leaves_nothing_running(&container(MAKE_IMAGE));

    // An image the engine does not have: a clear error, not the engine's words alone.
    let repo = snooping_repo(&container("missing:image"), outside.path());
    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    assert!(
        run.stderr.contains("the image `missing:image` of `[isolation]` is not on the container engine"),
        "{}",
        run.stderr
    );
}
