//! `loktar completions` and `loktar man`: made from the command line's own
//! definition, and loaded by the tools that use them — bash's `complete`,
//! `man` itself.

use std::process::Command;

use crate::support::{TestRepo, loktar_bin};

#[test]
fn bash_loads_the_completions_and_every_shell_gets_its_own() {
    let loaded = Command::new("bash")
        .args(["-c", &format!("source <('{}' completions bash) && complete -p loktar", loktar_bin().display())])
        .output()
        .expect("bash");
    let shown = String::from_utf8_lossy(&loaded.stdout);
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    assert!(shown.starts_with("complete ") && shown.trim_end().ends_with("-F _loktar loktar"), "{shown}");

    let repo = TestRepo::new();
    let bash = repo.loktar(&["completions", "bash"]).ok();
    for command in ["run", "plan", "remote", "server", "completions", "man"] {
        assert!(bash.contains(command), "the bash completions know nothing of `{command}`");
    }
    for (shell, marker) in
        [("zsh", "#compdef loktar"), ("fish", "complete -c loktar"), ("powershell", "Register-ArgumentCompleter")]
    {
        let script = repo.loktar(&["completions", shell]).ok();
        assert!(script.contains(marker), "{shell}: {script}");
    }
    let unknown = repo.loktar(&["completions", "tcsh"]).expect_code(2);
    assert!(unknown.stderr.contains("possible values: bash, elvish, fish, powershell, zsh"), "{}", unknown.stderr);
}

#[test]
fn man_pages_describe_loktar_and_each_command() {
    let repo = TestRepo::new();
    let page = repo.loktar(&["man"]).ok();
    assert!(page.contains(".TH loktar 1"), "{page}");
    assert!(page.contains("Continuous integration for polyglot monorepos"), "{page}");

    let dir = tempfile::tempdir().expect("temp dir");
    let listed = repo.loktar(&["man", "--dir", &dir.path().display().to_string()]).ok();
    let run_page = dir.path().join("loktar-run.1");
    assert!(listed.lines().any(|line| line == run_page.display().to_string()), "{listed}");
    for page in ["loktar.1", "loktar-remote.1", "loktar-remote-runs.1"] {
        assert!(dir.path().join(page).is_file(), "no {page}: {listed}");
    }
    assert_eq!(listed.lines().count(), std::fs::read_dir(dir.path()).expect("pages").count(), "{listed}");
    // `man` renders it: its full name, its own options and the global ones.
    let rendered = Command::new("man").arg("-l").arg(&run_page).env("MANWIDTH", "100").output().expect("man");
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    for expected in ["loktar-run", "loktar run", "--fail-fast", "--config"] {
        assert!(text.contains(expected), "no {expected}: {text}");
    }
}
