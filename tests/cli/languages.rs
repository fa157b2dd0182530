//! Plugins in other languages, built the way their guides say
//! (docs/plugins/): the Python example (`examples/plugins/python-checklist`)
//! is built with componentize-py — installed by `scripts/setup` — and runs
//! as a tester of a real repository: a package that passes, one that fails
//! with what is missing in its log, and one whose error comes back with its
//! hint; the operator's settings reach it.

use std::path::PathBuf;
use std::process::Command;

use crate::support::TestRepo;

/// componentize-py as `scripts/setup` installs it.
fn componentize_py() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let tool = home.join(".cache/loktar/tools/componentize-py/bin/componentize-py");
    assert!(tool.is_file(), "{} is missing: scripts/setup installs it", tool.display());
    tool
}

/// The Python example built by componentize-py, once per content of its
/// source, the WIT and the tool (componentize-py's output differs from
/// build to build: a new build would be compiled anew by every test run).
fn python_checklist() -> PathBuf {
    use sha2::{Digest, Sha256};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let source = std::fs::read(root.join("examples/plugins/python-checklist/app.py")).expect("the example");
    let wit = std::fs::read(root.join("wit/loktar.wit")).expect("the WIT");
    let tool = componentize_py();
    let digest = hex::encode(
        Sha256::new()
            .chain_update(&source)
            .chain_update(&wit)
            .chain_update(tool.to_string_lossy().as_bytes())
            .finalize(),
    );
    let built = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("language-plugins")
        .join(format!("checklist-{}.wasm", &digest[..16]));
    if built.is_file() {
        return built;
    }
    // Built from a copy: nothing is written beside the example.
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::write(work.path().join("app.py"), &source).expect("copy the example");
    let wasm = work.path().join("checklist.wasm");
    let output = Command::new(&tool)
        .current_dir(work.path())
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", "tester", "componentize", "app", "-o"])
        .arg(&wasm)
        .output()
        .expect("run componentize-py");
    assert!(output.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::create_dir_all(built.parent().expect("a folder")).expect("the build folder");
    std::fs::rename(&wasm, &built).or_else(|_| std::fs::copy(&wasm, &built).map(drop)).expect("keep the build");
    built
}

#[test]
fn a_python_tester_built_as_its_guide_says_loads_and_tests_packages() {
    let component = python_checklist();
    let repo = TestRepo::new();
    // The operator's settings name the default checklist: `MANIFEST`.
    repo.host_config(&format!(
        "[plugins.checklist]\npath = {:?}\nrole = \"tester\"\ncapabilities = [\"log\", \"process\"]\n\n\
         [plugins.checklist.settings]\nchecklist = \"MANIFEST\"\n",
        component.display().to_string()
    ));
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "complete", "test_type": "checklist" },
  { "pkg_name": "partial", "test_type": "checklist", "build_info": { "checklist": "MUST_HAVE" } },
  { "pkg_name": "unlisted", "test_type": "checklist" } ] }"#,
    );
    repo.write("complete/MANIFEST", "# what a release holds\nREADME\nsrc/main.py\n");
    repo.write("complete/README", "hello\n");
    repo.write("complete/src/main.py", "print('hi')\n");
    repo.write("partial/MUST_HAVE", "README\nLICENSE\n");
    repo.write("partial/README", "hello\n");
    repo.write("unlisted/README", "hello\n");
    repo.commit("ENH: three packages");

    let run = repo.loktar(&["run", "--all", "--format", "json"]).expect_code(1);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON summary");
    let package = |name: &str| -> serde_json::Value {
        summary["packages"].as_array().into_iter().flatten().find(|p| p["name"] == name).cloned().expect(name)
    };
    assert_eq!(package("complete")["outcome"], "passed", "{}", run.stdout);
    assert_eq!(package("partial")["outcome"], "failed", "{}", run.stdout);
    assert_eq!(package("unlisted")["outcome"], "failed", "{}", run.stdout);
    let shown = repo.loktar(&["runs", "show", "1"]).ok();
    assert!(
        run.stderr.contains("complete: test passed in") && run.stderr.contains("— 2 of 2 present"),
        "{}",
        run.stderr
    );
    assert!(shown.contains("1 of 2 missing: LICENSE"), "{shown}");
    assert!(shown.contains("package `unlisted` has no `MANIFEST`"), "{shown}");
    // The log has each line the plugin wrote; the error keeps its hint.
    let logs = repo.path().join(".loktar/runs/1");
    let partial = std::fs::read_to_string(logs.join("partial/test.log")).expect("the log");
    assert!(partial.contains("found: README") && partial.contains("missing: LICENSE"), "{partial}");
    assert!(run.stderr.contains("hint: list the files the package must hold in `unlisted/MANIFEST`"), "{}", run.stderr);
}
