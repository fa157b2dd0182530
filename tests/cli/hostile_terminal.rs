//! Hostile names: file names, folders, commit messages and program output
//! holding control characters — a screen clear (`ESC[2J`), a window title
//! (`ESC]0;…BEL`), a newline that would split a line of the plan, a `\x01`
//! that would pass for a commit in git's output.
//!
//! Text output must show each of them escaped (`\n`, `\u{1b}`, `\u{7}`) and
//! hold no raw control character but the newlines that end its lines; JSON
//! must keep every name exactly; and a name with a newline must not change
//! which package a commit touches, so the exclusion keywords still work.

use serde_json::{Value, json};

use crate::support::TestRepo;

/// A file whose name clears the screen and sets the window's title.
const SCREEN: &str = "awesome_lib/\u{1b}[2J\u{1b}]0;pwned\u{7}.py";
/// How text output shows [`SCREEN`].
const SCREEN_SHOWN: &str = "awesome_lib/\\u{1b}[2J\\u{1b}]0;pwned\\u{7}.py";
/// A file outside every package whose name starts with a newline and then
/// reads like a file of `pet_api`.
const NEWLINE: &str = "\nrest_services/pet_api/x";
/// How text output shows [`NEWLINE`].
const NEWLINE_SHOWN: &str = "\\nrest_services/pet_api/x";

/// Asserts that `text` holds no control character but line ends.
#[track_caller]
fn no_raw_controls(what: &str, text: &str) {
    let raw: Vec<char> = text.chars().filter(|&c| c.is_control() && c != '\n').collect();
    assert!(raw.is_empty(), "{what} holds raw control characters {raw:?}:\n{text:?}");
}

fn planned(plan: &Value) -> Vec<&str> {
    plan["packages"].as_array().expect("packages").iter().map(|p| p["name"].as_str().expect("name")).collect()
}

fn package<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["packages"].as_array().expect("packages").iter().find(|p| p["name"] == name).expect("package in plan")
}

#[test]
fn plan_and_why_show_hostile_file_names_escaped_and_json_keeps_them_exact() {
    let repo = TestRepo::seed();
    repo.write(SCREEN, "# clears the screen\n");
    repo.write(NEWLINE, "# owned by no package\n");
    repo.commit("ENH: hostile names");

    let text = repo.loktar(&["plan"]).ok();
    no_raw_controls("the plan", &text);
    assert_eq!(
        repo.filter(&text),
        format!(
            "range: `[SHA]`..`[SHA]` (parent commit, on `main`), 2 changed files in 1 commit\n\
             3 of 3 packages affected\n\
             \n\
             level 0\n  awesome_lib  changed: `{SCREEN_SHOWN}`\n\
             \n\
             level 1\n  pet_api      depends on `awesome_lib`\n\
             \n\
             level 2\n  webfront     depends on `pet_api`\n\
             \n\
             1 changed file outside every package: `{NEWLINE_SHOWN}`\n"
        )
    );

    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["awesome_lib", "pet_api", "webfront"]);
    assert_eq!(package(&plan, "awesome_lib")["files"], json!([SCREEN]));
    assert_eq!(package(&plan, "pet_api")["changed"], json!(false));
    assert_eq!(plan["unowned_files"], json!([NEWLINE]));

    let why = repo.loktar(&["why", "webfront"]).ok();
    no_raw_controls("`loktar why`", &why);
    assert!(why.contains(&format!("  `{SCREEN_SHOWN}` changed\n  → `awesome_lib` owns it\n")), "{why}");
}

#[test]
fn a_commit_subject_with_control_characters_is_escaped_in_the_nobuild_line() {
    let repo = TestRepo::seed();
    repo.write("webfront/index.html", "<p>quiet</p>\n");
    repo.commit("NOBUILD \u{1b}]0;pwned\u{7}\u{1b}[2J\rdone");
    let text = repo.loktar(&["plan"]).ok();
    no_raw_controls("the plan", &text);
    assert!(
        repo.filter(&text)
            .contains("nothing to do: commit `[SHA]` says NOBUILD (NOBUILD \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\rdone)\n"),
        "{text}"
    );
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(plan["nobuild"]["subject"], json!("NOBUILD \u{1b}]0;pwned\u{7}\u{1b}[2J\rdone"));
}

#[test]
fn graph_text_escapes_a_hostile_package_folder_and_json_keeps_it() {
    let repo = TestRepo::new();
    let dir = "evil\u{1b}]0;pwned\u{7}\nlevel 9";
    repo.write(
        "loktar.json",
        r#"{"packages": [{"pkg_name": "evil", "pkg_dir": "evil\u001b]0;pwned\u0007\nlevel 9"}, {"pkg_name": "lib"}]}"#,
    );
    repo.write(&format!("{dir}/x"), "x\n");
    repo.write("lib/x", "x\n");
    repo.commit("ENH: initial");
    let text = repo.loktar(&["graph"]).ok();
    no_raw_controls("the graph", &text);
    assert_eq!(
        text,
        "2 packages, 0 dependencies\n\nlevel 0\n  evil  -  evil\\u{1b}]0;pwned\\u{7}\\nlevel 9\n  lib   -  lib\n"
    );
    let graph = repo.loktar(&["graph", "--format", "json"]).json();
    assert_eq!(graph["packages"][0]["dir"], json!(dir));
}

#[test]
fn errors_on_stderr_escape_what_the_user_wrote() {
    let repo = TestRepo::seed();
    let run = repo.loktar(&["plan", "--base", "x\u{1b}[2J\u{1b}]0;pwned\u{7}"]).expect_code(2);
    no_raw_controls("the error", &run.stderr);
    assert!(run.stderr.contains("error: base `x\\u{1b}[2J\\u{1b}]0;pwned\\u{7}` is not a commit"), "{}", run.stderr);

    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a\u001b[2J\nb"}]}"#);
    let run = repo.loktar(&["graph"]).expect_code(2);
    no_raw_controls("the error", &run.stderr);
    assert!(run.stderr.contains("the name contains `\\u{1b}`"), "{}", run.stderr);
}

/// A library that only `DOC:` commits touch, and an application that depends on it.
fn keyword_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [
            {"pkg_name": "lib", "exclude_dependencies_only_on_keywords": ["DOC"]},
            {"pkg_name": "app", "depends_on": ["lib"]}]}"#,
    );
    for file in ["lib/a.py", "lib/b.py", "app/main.py"] {
        repo.write(file, "v1\n");
    }
    repo.commit("ENH: initial");
    repo.git(&["switch", "--quiet", "-c", "docs"]);
    repo
}

#[test]
fn a_path_starting_with_a_newline_does_not_defeat_the_exclusion_keywords() {
    let repo = keyword_repo();
    repo.write("lib/a.py", "v2\n");
    repo.commit("DOC: comments");
    // Outside every package: its first folder is "\nlib", not "lib".
    repo.write("\nlib/elsewhere.py", "x\n");
    repo.commit("ENH: work elsewhere");

    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["lib"]);
    assert_eq!(package(&plan, "lib")["files"], json!(["lib/a.py"]));
    assert_eq!(package(&plan, "lib")["held_back_by"], json!(["DOC"]));
    assert_eq!(plan["unowned_files"], json!(["\nlib/elsewhere.py"]));
    let text = repo.loktar(&["plan"]).ok();
    no_raw_controls("the plan", &text);
    assert!(text.contains("  lib  changed: `lib/a.py`; dependents not rebuilt: only DOC commits\n"), "{text}");
    assert!(text.contains("1 changed file outside every package: `\\nlib/elsewhere.py`\n"), "{text}");
}

#[test]
fn a_path_that_looks_like_a_commit_does_not_hold_a_real_change_back() {
    let repo = keyword_repo();
    repo.write("lib/a.py", "v2\n");
    let doc = repo.commit("DOC: comments");
    // Beside a real change of `lib`, a file named as git's output would
    // name the `DOC:` commit: read by position, it stays a file.
    repo.write(&format!("\u{1}{doc}"), "x\n");
    repo.write("lib/b.py", "v2\n");
    repo.commit("ENH: a real change");

    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["lib", "app"]);
    assert_eq!(package(&plan, "lib")["held_back_by"], json!(null));
    assert_eq!(plan["unowned_files"], json!([format!("\u{1}{doc}")]));
    let text = repo.loktar(&["plan"]).ok();
    no_raw_controls("the plan", &text);
    assert!(text.contains(&format!("outside every package: `\\u{{1}}{doc}`\n")), "{text}");
}

#[test]
fn run_progress_summary_and_records_escape_what_a_program_printed() {
    let repo = TestRepo::new();
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "a", "test_type": "make"}]}"#);
    repo.write("a/Makefile", "ci:\n\t@printf 'title \\033]0;pwned\\007 clear \\033[2J\\rback\\n'\n\t@exit 3\n");
    repo.commit("ENH: a noisy test");

    let run = repo.loktar(&["run", "--all"]).expect_code(1);
    no_raw_controls("the progress on stderr", &run.stderr);
    no_raw_controls("the summary", &run.stdout);
    assert!(
        run.stderr.contains("│ title \\u{1b}]0;pwned\\u{7} clear \\u{1b}[2J\\rback\n"),
        "the failed stage's last lines are shown escaped:\n{}",
        run.stderr
    );
    let record = repo.loktar(&["runs", "show", "1"]).ok();
    no_raw_controls("the run record", &record);
    let listed = repo.loktar(&["runs"]).ok();
    no_raw_controls("the list of runs", &listed);
    assert!(listed.lines().nth(1).is_some_and(|line| line.contains("failed")), "{listed}");
}
