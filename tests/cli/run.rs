//! `loktar run` on real repositories whose Makefiles append `start`, `end`
//! and `clean` lines with nanosecond timestamps to timelines in their folders: the
//! order of those lines is what the scheduler really did.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::TestRepo;

/// One package of a test repository: its name, what it depends on, and its `make ci` recipe.
struct Pkg {
    name: &'static str,
    depends_on: &'static [&'static str],
    ci: &'static str,
    clean: &'static str,
}

const fn pkg(name: &'static str, depends_on: &'static [&'static str], ci: &'static str) -> Pkg {
    Pkg { name, depends_on, ci, clean: "" }
}

/// A repository whose packages record what they do in a `timeline` file in their folders.
fn repo(packages: &[Pkg]) -> TestRepo {
    let repo = TestRepo::new();
    let entries: Vec<String> = packages
        .iter()
        .map(|p| {
            let deps: Vec<String> = p.depends_on.iter().map(|d| format!("\"{d}\"")).collect();
            format!(r#"{{ "pkg_name": "{}", "test_type": "make", "depends_on": [{}] }}"#, p.name, deps.join(", "))
        })
        .collect();
    repo.write("loktar.json", &format!("{{ \"packages\": [\n  {}\n] }}\n", entries.join(",\n  ")));
    for p in packages {
        // Each package writes in its own folder: programs see nothing else of the repository.
        let mark = |what: &str| format!("\t@echo \"{what} {} $$(date +%s%N)\" >> timeline\n", p.name);
        let mut makefile = format!("ci:\n{}\t@echo hello-from-{}\n", mark("start"), p.name);
        for line in p.ci.lines().filter(|l| !l.is_empty()) {
            makefile.push_str(&format!("\t{line}\n"));
        }
        makefile.push_str(&mark("end"));
        makefile.push_str(&format!("\nclean:\n{}", mark("clean-start")));
        for line in p.clean.lines().filter(|l| !l.is_empty()) {
            makefile.push_str(&format!("\t{line}\n"));
        }
        makefile.push_str(&mark("clean"));
        repo.write(&format!("{}/Makefile", p.name), &makefile);
    }
    repo.write(".gitignore", "timeline\n");
    repo.commit("packages");
    repo
}

/// The timeline: (event, package, nanoseconds), in the order written —
/// the packages' own `timeline` files merged by time.
fn timeline(repo: &TestRepo) -> Vec<(String, String, u128)> {
    let mut events: Vec<(String, String, u128)> = Vec::new();
    for entry in std::fs::read_dir(repo.path()).expect("list the repository").flatten() {
        let text = std::fs::read_to_string(entry.path().join("timeline")).unwrap_or_default();
        events.extend(text.lines().filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            // A line being written when read is left for the next look.
            Some((parts.first()?.to_string(), parts.get(1)?.to_string(), parts.get(2)?.parse().ok()?))
        }));
    }
    events.sort_by_key(|(_, _, at)| *at);
    events
}

#[track_caller]
fn at(events: &[(String, String, u128)], event: &str, package: &str) -> u128 {
    events
        .iter()
        .find(|(e, p, _)| e == event && p == package)
        .map(|(_, _, time)| *time)
        .unwrap_or_else(|| panic!("no `{event} {package}` in {events:?}"))
}

fn happened(events: &[(String, String, u128)], event: &str, package: &str) -> bool {
    events.iter().any(|(e, p, _)| e == event && p == package)
}

#[test]
fn no_package_starts_before_its_dependencies_end_and_independent_ones_overlap() {
    let repo = repo(&[pkg("a", &[], "@sleep 0.6"), pkg("b", &["a"], "@sleep 0.1"), pkg("c", &[], "@sleep 0.6")]);
    let stdout = repo.loktar(&["run", "--all", "-j", "2"]).ok();
    let events = timeline(&repo);
    assert!(at(&events, "end", "a") <= at(&events, "start", "b"), "b started before a ended: {events:?}");
    assert!(at(&events, "start", "c") < at(&events, "end", "a"), "a and c did not overlap: {events:?}");
    assert!(at(&events, "start", "a") < at(&events, "end", "c"), "a and c did not overlap: {events:?}");
    for name in ["a", "b", "c"] {
        assert!(at(&events, "end", name) <= at(&events, "clean", name), "clean runs after ci: {events:?}");
    }
    assert!(stdout.contains("run 1 passed"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("b ")).expect("a row for b");
    assert!(row.split_whitespace().collect::<Vec<_>>()[..3] == ["b", "passed", "passed"], "{stdout}");

    // The log files and the run record hold what happened.
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/a/test.log")).expect("a's test log");
    assert!(log.contains("running `make ci`") && log.contains("hello-from-a"), "{log}");
    assert!(log.lines().last().is_some_and(|l| l.starts_with("-- loktar: test passed after")), "{log}");
    let record = repo.loktar(&["runs", "show", "1", "--format", "json"]).json();
    assert_eq!(record["run"]["status"], "passed");
    assert_eq!(record["run"]["packages"], 3);
    let stages = record["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 3 * 5, "five stages per package, the unconfigured ones skipped: {stages:?}");
    let a_test = stages.iter().find(|s| s["package"] == "a" && s["stage"] == "test").expect("a test");
    assert_eq!(a_test["status"], "passed");
    assert!(a_test["log"].as_str().is_some_and(|l| l.ends_with(".loktar/runs/1/a/test.log")), "{a_test}");
    let a_build = stages.iter().find(|s| s["package"] == "a" && s["stage"] == "build").expect("a build");
    assert_eq!((&a_build["status"], &a_build["detail"]), (&"skipped".into(), &"no `pkg_type`".into()));

    // The run folder is ignored by git, so it never shows up as a change.
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_failure_skips_exactly_its_dependents() {
    let repo =
        repo(&[pkg("a", &[], "@exit 3"), pkg("b", &["a"], ""), pkg("d", &["b"], ""), pkg("c", &[], "@sleep 0.2")]);
    let run = repo.loktar(&["run", "--all", "-j", "2", "--format", "json"]).expect_code(1);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON summary");
    let outcome = |name: &str| {
        let package = summary["packages"].as_array().and_then(|p| p.iter().find(|p| p["name"] == name)).cloned();
        package.map(|p| (p["outcome"].as_str().unwrap_or("").to_string(), p["detail"].clone()))
    };
    assert_eq!(outcome("a").map(|o| o.0).as_deref(), Some("failed"));
    assert_eq!(outcome("b"), Some(("skipped".into(), "dependency `a` failed".into())));
    assert_eq!(outcome("d"), Some(("skipped".into(), "dependency `a` failed".into())));
    assert_eq!(outcome("c").map(|o| o.0).as_deref(), Some("passed"));
    assert_eq!(summary["outcome"], "failed");
    let events = timeline(&repo);
    assert!(!happened(&events, "start", "b") && !happened(&events, "start", "d"), "{events:?}");
    assert!(happened(&events, "clean", "a"), "a failed and was still cleaned: {events:?}");
    assert!(run.stderr.contains("✗ a: test failed") && run.stderr.contains("`make ci` failed with exit code 2"));
    assert!(run.stderr.contains("b: skipped: dependency `a` failed"), "{}", run.stderr);
}

#[test]
fn fail_fast_cancels_running_stages_and_still_cleans() {
    let repo = repo(&[pkg("a", &[], "@sleep 0.5\n@exit 1"), pkg("b", &["a"], ""), pkg("c", &[], "@sleep 60")]);
    let run = repo.loktar(&["run", "--all", "-j", "2", "--fail-fast"]).expect_code(1);
    let events = timeline(&repo);
    assert!(happened(&events, "start", "c") && !happened(&events, "end", "c"), "c was stopped: {events:?}");
    assert!(happened(&events, "clean", "c"), "the cancelled package was cleaned: {events:?}");
    let row = |name: &str| run.stdout.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or("").to_string();
    assert_eq!(
        row("c").split_whitespace().take(3).collect::<Vec<_>>(),
        ["c", "cancelled", "cancelled"],
        "{}",
        run.stdout
    );
    assert!(row("a").contains("failed"), "{}", run.stdout);
    assert!(run.stderr.contains("⊘ c: test cancelled"), "{}", run.stderr);
    let log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/c/test.log")).expect("c's log");
    assert!(log.contains("`make` stopped: the run was cancelled") && log.contains("running `make clean`"), "{log}");
}

/// A `loktar run` in the background, interrupted and reaped if the test fails before it ends.
struct Background(Option<std::process::Child>);

impl Background {
    fn child(&self) -> &std::process::Child {
        self.0.as_ref().expect("running")
    }

    fn wait(mut self) -> std::process::Output {
        self.0.take().expect("running").wait_with_output().expect("loktar ends")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // Twice: loktar then stops the programs it started, and exits.
            interrupt(&child);
            std::thread::sleep(Duration::from_millis(200));
            interrupt(&child);
            std::thread::sleep(Duration::from_millis(200));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `loktar run` in the background and waits until `mark` of `package` is in the timeline.
fn start_and_wait(repo: &TestRepo, args: &[&str], package: &str, mark: &str) -> Background {
    let child = repo.command().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start loktar");
    let child = Background(Some(child));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !happened(&timeline(repo), mark, package) {
        assert!(Instant::now() < deadline, "`{mark} {package}` never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()) || std::thread::panicking(), "kill -INT failed");
}

#[test]
fn sigint_cancels_cleans_records_the_run_and_exits_130() {
    let repo = repo(&[pkg("a", &[], "@sleep 60"), pkg("b", &["a"], "")]);
    let child = start_and_wait(&repo, &["run", "--all"], "a", "start");
    interrupt(child.child());
    let output = child.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: cancelling"), "{stderr}");
    let events = timeline(&repo);
    assert!(!happened(&events, "end", "a") && happened(&events, "clean", "a"), "{events:?}");
    assert!(!happened(&events, "start", "b"), "{events:?}");
    let record = repo.loktar(&["runs", "show", "1", "--format", "json"]).json();
    assert_eq!(record["run"]["status"], "interrupted");
    let statuses: Vec<(String, String)> = record["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter(|s| s["status"] != "skipped" || s["stage"].is_null())
        .map(|s| (s["package"].as_str().unwrap_or("").into(), s["status"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(statuses, [("a".to_string(), "cancelled".to_string()), ("b".into(), "cancelled".into())]);
}

#[test]
fn a_second_sigint_quits_at_once() {
    let slow_clean = Pkg { name: "a", depends_on: &[], ci: "@sleep 60", clean: "@sleep 67" };
    let repo = repo(&[slow_clean]);
    let child = start_and_wait(&repo, &["run", "--all"], "a", "start");
    interrupt(child.child());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !happened(&timeline(&repo), "clean-start", "a") {
        assert!(Instant::now() < deadline, "clean never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(child.child());
    let output = child.wait();
    assert_eq!(output.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted again: stopped at once"));
    assert!(!happened(&timeline(&repo), "clean", "a"), "the clean-up was abandoned");
    let gone = crate::support::within(5, || crate::support::sleeping("67").is_empty());
    assert!(gone, "the clean-up was left running: {:?}", crate::support::sleeping("67"));
    let record = repo.loktar(&["runs", "show", "1", "--format", "json"]).json();
    assert_eq!(record["run"]["status"], "interrupted");
}

#[test]
fn selection_dry_run_and_stages() {
    let repo = repo(&[pkg("a", &[], ""), pkg("b", &["a"], ""), pkg("c", &[], "")]);
    let all = repo.loktar(&["run", "--all", "--dry-run", "-j", "2"]).ok();
    assert_eq!(
        all,
        "would run 3 packages, 2 at once:\n    1. a  test (make)\n    2. c  test (make)\n    3. b  test (make)   after `a`\n"
    );
    let with_deps = repo.loktar(&["run", "--package", "b", "--with-deps", "--dry-run", "-j", "1"]).ok();
    assert_eq!(
        with_deps,
        "would run 2 packages, 1 at once:\n    1. a  test (make)\n    2. b  test (make)   after `a`\n"
    );
    let only = repo.loktar(&["run", "-p", "b", "-p", "c", "--dry-run", "-j", "1"]).ok();
    assert_eq!(only, "would run 2 packages, 1 at once:\n    1. c  test (make)\n    2. b  test (make)\n");
    let unknown = repo.loktar(&["run", "--package", "bb"]).expect_code(2);
    assert!(unknown.stderr.contains("no package named `bb`") && unknown.stderr.contains("did you mean `b`?"));
    assert!(timeline(&repo).is_empty(), "a dry run runs nothing");
    assert!(!repo.path().join(".loktar").exists(), "a dry run records nothing");

    // A failing build fails its package clearly; `--stage test` stops before it.
    repo.write("loktar.json", r#"{ "packages": [ { "pkg_name": "a", "test_type": "make", "pkg_type": "docker" } ] }"#);
    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    assert!(run.stdout.contains("a build: plugin `docker`: package `a` has no `Dockerfile` in `a`"), "{}", run.stdout);
    assert!(run.stdout.contains("hint: add a Dockerfile to the package folder"), "{}", run.stdout);
    let tested = repo.loktar(&["run", "--all", "--stage", "test"]).ok();
    assert!(tested.starts_with("package  result  test\na        passed  passed "), "{tested}");
}

#[test]
fn run_takes_its_packages_from_git_and_honours_nobuild() {
    let repo = repo(&[pkg("a", &[], ""), pkg("b", &["a"], ""), pkg("c", &[], "")]);
    repo.write("a/notes.txt", "changed");
    repo.commit("change a");
    let run = repo.loktar(&["run", "--dry-run", "-j", "1"]).ok();
    assert_eq!(run, "would run 2 packages, 1 at once:\n    1. a  test (make)\n    2. b  test (make)   after `a`\n");
    repo.write("c/notes.txt", "changed");
    repo.commit("NOBUILD: notes only");
    let run = repo.loktar(&["run"]).ok();
    assert!(run.starts_with("nothing to run: commit `") && run.contains("says NOBUILD"), "{run}");
}

#[test]
fn runs_lists_the_history_and_bad_input_is_a_usage_error() {
    let repo = repo(&[pkg("a", &[], "")]);
    assert_eq!(repo.loktar(&["runs"]).ok(), "no runs yet: `loktar run` starts one\n");
    repo.loktar(&["run", "--all"]).ok();
    repo.loktar(&["run", "--all"]).ok();
    let listed = repo.loktar(&["runs"]).ok();
    let ids: Vec<&str> = listed.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(ids, ["2", "1"], "{listed}");
    assert!(listed.lines().nth(1).is_some_and(|l| l.contains("passed") && l.contains("all")), "{listed}");
    let missing = repo.loktar(&["runs", "show", "9"]).expect_code(2);
    assert!(missing.stderr.contains("no run number 9"), "{}", missing.stderr);
    repo.write("loktar.json", "{ \"packages\": [ { \"pkg_name\": \"a\", \"tset_type\": \"make\" } ] }");
    let broken = repo.loktar(&["run", "--all"]).expect_code(2);
    assert!(broken.stderr.contains("unknown key `tset_type`"), "{}", broken.stderr);
    assert!(Path::new(&repo.path().join(".loktar/loktar.db")).exists());
}

#[test]
fn artifacts_go_from_build_to_publish_to_store_and_notifiers_never_fail_a_package() {
    let repo = TestRepo::new();
    let mut toml = String::new();
    for (name, role) in [("zip", "builder"), ("shelf", "registry"), ("vault", "storage"), ("bell", "notifier")] {
        let path = crate::support::test_plugin(name);
        toml.push_str(&format!(
            "[plugins.{name}]\npath = \"{}\"\nrole = \"{role}\"\ncapabilities = [\"log\"]\n\n",
            path.display()
        ));
    }
    repo.host_config(&toml);
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "a", "pkg_type": "zip", "build_info": { "registry_type": "shelf", "storage_type": "vault" } },
  { "pkg_name": "bell-fails", "test_type": "no-test", "depends_on": ["a"] } ] }"#,
    );
    repo.write("a/README", "a");
    repo.write("bell-fails/README", "b");
    repo.commit("two packages");
    let summary = repo.loktar(&["run", "--all", "-j", "1", "--format", "json"]).json();
    let package = |name: &str| {
        summary["packages"].as_array().and_then(|p| p.iter().find(|p| p["name"] == name)).cloned().expect("package")
    };
    let a = package("a");
    assert_eq!(a["outcome"], "passed");
    assert_eq!(
        a["artifacts"],
        serde_json::json!([{ "kind": "file", "name": "a", "version": "1", "location": "vault://a/a", "digest": "sha256:1" }])
    );
    let stages: Vec<(&str, &str)> = a["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| (s["stage"].as_str().unwrap_or(""), s["outcome"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        stages,
        [("test", "skipped"), ("build", "passed"), ("publish", "passed"), ("store", "passed"), ("notify", "passed")]
    );
    // The storage plugin read the file the builder wrote, through the artifact folder.
    let head = repo.git(&["rev-parse", "HEAD"]);
    let store_log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/a/store.log")).expect("store log");
    assert!(store_log.contains(&format!("stored: built a at {head}")), "{store_log}");
    let notify_log = std::fs::read_to_string(repo.path().join(".loktar/runs/1/a/notify.log")).expect("notify log");
    assert!(notify_log.contains(r#""package":"a""#) && notify_log.contains(r#""location":"vault://a/a""#));

    // A failing notifier is reported on its stage; the package and the run still pass.
    let failing = package("bell-fails");
    assert_eq!(failing["outcome"], "passed");
    let notify = failing["stages"].as_array().and_then(|s| s.iter().find(|s| s["stage"] == "notify")).expect("notify");
    assert_eq!(notify["outcome"], "failed");
    assert_eq!(notify["message"], "plugin `bell`: the bell is broken");
    assert_eq!(summary["outcome"], "passed");
}

#[test]
fn on_a_terminal_a_live_footer_shows_what_runs() {
    let repo = repo(&[pkg("a", &[], "@sleep 0.5")]);
    // `script` gives loktar a terminal; what it drew comes back on stdout.
    let command = format!("{} run --all -j 1", crate::support::loktar_bin().display());
    let output = loktar_command_in_terminal(&repo, &command);
    assert!(output.contains("▸ a"), "no live line for the running package:\n{output}");
    assert!(output.contains("[0/1] 1 running"), "no overall counts:\n{output}");
    assert!(output.contains("\u{1b}[J"), "the footer is never redrawn in place:\n{output}");
    assert!(output.contains("run 1 passed after"), "{output}");
}

/// Runs `command` under `script`, in a pseudo-terminal, and returns what it printed there.
fn loktar_command_in_terminal(repo: &TestRepo, command: &str) -> String {
    let template = repo.command();
    let mut script = std::process::Command::new("script");
    script.args(["--quiet", "--return", "--command", command, "/dev/null"]).current_dir(repo.path());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let output = script.env("COLUMNS", "80").stdin(Stdio::null()).output().expect("run script");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
