//! Faults of Loktar's own process: a `kill -9` in the middle of a run must
//! leave no program running and no run that says `running` forever.

use std::process::Stdio;

use crate::support::{TestRepo, sleeping, within};

#[test]
fn a_killed_run_is_shown_interrupted_and_its_programs_die_with_it() {
    let repo = TestRepo::new();
    repo.write("a/Makefile", "ci:\n\t@touch started\n\t@sleep 315\n\nclean:\n\t@true\n");
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.write(".gitignore", "started\n");
    repo.commit("ENH: a test that takes its time");
    let mut child =
        repo.command().args(["run", "--all"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start");
    let started = within(60, || repo.path().join("a/started").exists());
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    assert!(started, "the test never started");

    assert!(within(10, || sleeping("315").is_empty()), "the test's program outlived Loktar: {:?}", sleeping("315"));
    let runs = repo.loktar(&["runs", "--format", "json"]).json();
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#}");
    // The next run goes on as usual, and the interrupted one stays so.
    repo.write("a/Makefile", "ci:\n\t@true\n\nclean:\n\t@true\n");
    repo.commit("ENH: quicker");
    repo.loktar(&["run", "--all"]).expect_code(0);
    let runs = repo.loktar(&["runs", "--format", "json"]).json();
    assert_eq!((runs[0]["status"].as_str(), runs[1]["status"].as_str()), (Some("passed"), Some("interrupted")));
}
