//! `loktar plan` on real repositories: which packages a change affects and why.

use serde_json::{Value, json};

use crate::support::TestRepo;

/// The names of the planned packages, in plan order.
fn planned(plan: &Value) -> Vec<&str> {
    plan["packages"].as_array().expect("packages").iter().map(|p| p["name"].as_str().expect("name")).collect()
}

fn package<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["packages"].as_array().expect("packages").iter().find(|p| p["name"] == name).expect("package in plan")
}

#[test]
fn a_library_change_reaches_every_dependent_in_order() {
    let repo = TestRepo::seed();
    repo.git(&["switch", "--quiet", "-c", "feature"]);
    repo.write("awesome_lib/awesome_lib/__init__.py", "# lib v2\n");
    repo.commit("ENH: better lib");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["awesome_lib", "pet_api", "webfront"]);
    assert_eq!(plan["levels"], json!([["awesome_lib"], ["pet_api"], ["webfront"]]));
    assert_eq!(plan["base_origin"], json!({"kind": "merge_base", "branch": "main"}));
    assert_eq!(package(&plan, "awesome_lib")["files"], json!(["awesome_lib/awesome_lib/__init__.py"]));
    assert_eq!(package(&plan, "pet_api")["because_of"], json!(["awesome_lib"]));
    assert_eq!(package(&plan, "pet_api")["changed"], json!(false));
    assert_eq!(package(&plan, "webfront")["because_of"], json!(["pet_api"]));
    insta::assert_snapshot!("seed_library_change", repo.filter(&repo.loktar(&["plan"]).ok()));
}

#[test]
fn a_service_change_affects_only_that_service() {
    let repo = TestRepo::seed();
    repo.write("webfront/index.html", "<p>more pets</p>\n");
    repo.commit("ENH: front");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["webfront"]);
    // On the default branch the base is the previous commit.
    assert_eq!(plan["base_origin"], json!({"kind": "parent", "branch": "main"}));
}

#[test]
fn files_outside_every_package_affect_nothing() {
    let repo = TestRepo::seed();
    repo.write("rest_services/stock_api/app.py", "# still not in CI\n");
    repo.write("README.md", "# docs\n");
    repo.commit("DOC: outside");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), Vec::<&str>::new());
    assert_eq!(plan["unowned_files"], json!(["README.md", "rest_services/stock_api/app.py"]));
    let text = repo.loktar(&["plan"]).ok();
    assert!(text.contains("0 of 3 packages affected"), "{text}");
    assert!(text.contains("2 changed files outside every package"), "{text}");
}

#[test]
fn nested_packages_and_prefix_named_siblings_are_told_apart() {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [
            {"pkg_name": "api"},
            {"pkg_name": "api-gw"},
            {"pkg_name": "nested", "pkg_dir": "api/plugins/nested"},
            {"pkg_name": "user", "depends_on": ["nested"]}]}"#,
    );
    for file in ["api/main.py", "api-gw/main.py", "api/plugins/nested/lib.py", "user/main.py"] {
        repo.write(file, "# v1\n");
    }
    repo.commit("ENH: initial");
    let base = repo.git(&["rev-parse", "HEAD"]);
    repo.write("api-gw/main.py", "# v2\n");
    repo.write("api/plugins/nested/lib.py", "# v2\n");
    repo.commit("ENH: change");
    let plan = repo.loktar(&["plan", "--format", "json", "--base", &base]).json();
    assert_eq!(planned(&plan), ["api-gw", "nested", "user"]);
    assert_eq!(package(&plan, "nested")["files"], json!(["api/plugins/nested/lib.py"]));
    assert_eq!(plan["base_origin"], json!({"kind": "given"}));

    repo.write("api/plugins/other.py", "# owned by api, not nested\n");
    repo.commit("ENH: api");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["api"]);
}

#[test]
fn a_rename_across_packages_marks_both() {
    let repo = TestRepo::seed();
    repo.git(&["mv", "awesome_lib/setup.py", "webfront/setup.py"]);
    repo.commit("RFR: move");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["awesome_lib", "pet_api", "webfront"]);
    assert_eq!(package(&plan, "awesome_lib")["files"], json!(["awesome_lib/setup.py"]));
    assert_eq!(package(&plan, "webfront")["files"], json!(["webfront/setup.py"]));
    assert_eq!(package(&plan, "webfront")["changed"], json!(true));
}

#[test]
fn deleted_files_count_and_a_removed_package_is_reported() {
    let repo = TestRepo::seed();
    repo.remove("webfront/index.html");
    repo.commit("CLN: remove page");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(package(&plan, "webfront")["files"], json!(["webfront/index.html"]));

    // Remove a whole package: its folder and its entry.
    let repo = TestRepo::seed();
    repo.remove("webfront");
    let manifest = std::fs::read_to_string(repo.path().join("loktar.json")).expect("read");
    let start = manifest.find(",\n  { \"pkg_type\": \"docker\", \"pkg_name\": \"webfront\"").expect("webfront entry");
    let end = manifest[start..].find('}').expect("entry end") + start + 1;
    repo.write("loktar.json", &format!("{}{}", &manifest[..start], &manifest[end..]));
    repo.commit("CLN: drop webfront");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), Vec::<&str>::new());
    assert_eq!(plan["removed_packages"], json!([{"name": "webfront", "files": ["webfront/index.html"]}]));
    assert_eq!(plan["unowned_files"], json!([]));
    let text = repo.loktar(&["plan"]).ok();
    assert!(text.contains("removed from loktar.json: `webfront` (1 changed file)"), "{text}");
}

#[test]
fn a_package_folder_deleted_but_still_listed_is_a_clear_error() {
    let repo = TestRepo::seed();
    repo.remove("webfront");
    repo.commit("CLN: oops");
    let run = repo.loktar(&["plan"]).expect_code(2);
    assert!(run.stderr.contains("package `webfront`: folder `webfront` does not exist"), "{}", run.stderr);
    assert!(run.stderr.contains("pkg_dir"), "{}", run.stderr);
}

#[test]
fn a_folder_deleted_after_a_successful_check_is_reported() {
    let repo = TestRepo::seed();
    repo.loktar(&["graph"]).ok();
    repo.remove("rest_services/pet_api");
    let run = repo.loktar(&["graph"]).expect_code(2);
    assert!(run.stderr.contains("folder `rest_services/pet_api` does not exist"), "{}", run.stderr);
}

#[test]
fn a_missing_folder_is_reported_first_by_plan_as_by_every_command() {
    // `plan` checks the folders beside its other work; what it reports must not change.
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [{"pkg_name": "a", "depends_on": ["b"]}, {"pkg_name": "b"}, {"pkg_name": "gone"}]}"#,
    );
    repo.write("a/x", "v1\n");
    repo.write("b/x", "v1\n");
    repo.commit("ENH: initial");
    let graph = repo.loktar(&["graph"]).expect_code(2).stderr;
    assert!(graph.contains("package `gone`: folder `gone` does not exist"), "{graph}");
    let head = repo.git(&["rev-parse", "HEAD"]);
    let head = head.trim();
    // Before a problem with git, and before a dependency cycle.
    for args in
        [&["plan", "--format", "json", "--base", head][..], &["plan", "--base", "no-such-commit"], &["why", "a"]]
    {
        let run = repo.loktar(args).expect_code(2);
        assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", graph.as_str()), "{args:?}");
    }
    repo.write(
        "loktar.json",
        r#"{"packages": [{"pkg_name": "a", "depends_on": ["b"]}, {"pkg_name": "b", "depends_on": ["a"]}, {"pkg_name": "gone"}]}"#,
    );
    let run = repo.loktar(&["plan", "--base", head]).expect_code(2);
    assert_eq!(run.stderr, repo.loktar(&["graph"]).expect_code(2).stderr);
    assert!(run.stderr.contains("folder `gone` does not exist") && !run.stderr.contains("cycle"), "{}", run.stderr);
    // Once the folder exists, the cycle is what is wrong.
    repo.write("gone/x", "v1\n");
    let run = repo.loktar(&["plan", "--base", head]).expect_code(2);
    assert!(run.stderr.contains("dependency cycle"), "{}", run.stderr);
}

#[test]
fn paths_with_spaces_unicode_and_quotes_work() {
    let repo = TestRepo::new();
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "odd", "pkg_dir": "odd dir/çà"}, {"pkg_name": "plain"}]}"#);
    repo.write("odd dir/çà/readme.txt", "v1\n");
    repo.write("plain/x", "v1\n");
    repo.commit("ENH: initial");
    let tricky = "odd dir/çà/it's \"quoted\" & spaced\tname.txt";
    repo.write(tricky, "v1\n");
    repo.write("odd dir/çà/日本語.txt", "v1\n");
    repo.commit("ENH: odd names");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["odd"]);
    let files = package(&plan, "odd")["files"].as_array().expect("files").clone();
    assert!(files.contains(&json!(tricky)), "{files:?}");
    assert!(files.contains(&json!("odd dir/çà/日本語.txt")), "{files:?}");
}

#[test]
fn nobuild_in_a_commit_message_empties_the_plan() {
    let repo = TestRepo::seed();
    repo.git(&["switch", "--quiet", "-c", "feature"]);
    repo.write("awesome_lib/setup.py", "# v2\n");
    repo.commit("ENH: lib");
    repo.write("webfront/index.html", "v2\n");
    repo.commit("DOC: typo NOBUILD");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), Vec::<&str>::new());
    assert_eq!(plan["nobuild"]["subject"], json!("DOC: typo NOBUILD"));
    let text = repo.filter(&repo.loktar(&["plan"]).ok());
    assert!(text.contains("nothing to do: commit `[SHA]` says NOBUILD (DOC: typo NOBUILD)"), "{text}");
}

#[test]
fn exclusion_keywords_keep_dependents_out_only_when_every_commit_carries_them() {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [
            {"pkg_name": "lib", "exclude_dependencies_only_on_keywords": ["CLN", "DOC"]},
            {"pkg_name": "app", "depends_on": ["lib"]},
            {"pkg_name": "other"}]}"#,
    );
    for file in ["lib/a.py", "lib/b.py", "app/main.py", "other/x"] {
        repo.write(file, "v1\n");
    }
    repo.commit("ENH: initial");
    repo.git(&["switch", "--quiet", "-c", "docs"]);
    repo.write("lib/a.py", "v2\n");
    repo.commit("DOC: comments");
    repo.write("lib/b.py", "v2\n");
    repo.commit("CLN/DOC: tidy");
    repo.write("other/x", "v2\n");
    repo.commit("ENH: other work does not count against lib");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["lib", "other"]);
    assert_eq!(package(&plan, "lib")["held_back_by"], json!(["CLN", "DOC"]));
    let text = repo.loktar(&["plan"]).ok();
    assert!(text.contains("dependents not rebuilt: only CLN/DOC commits"), "{text}");

    repo.write("lib/a.py", "v3\n");
    repo.commit("ENH: a real change");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["lib", "other", "app"]);
    assert_eq!(package(&plan, "lib")["held_back_by"], json!(null));
}

#[test]
fn a_changed_manifest_entry_marks_that_package() {
    let repo = TestRepo::seed();
    let manifest = std::fs::read_to_string(repo.path().join("loktar.json")).expect("read");
    // Change pet_api's entry, and only reformat awesome_lib's.
    let changed = manifest.replace(r#""build_type": "url""#, r#""build_type": "local""#).replace(
        r#"{ "pkg_type": "whl", "pkg_name": "awesome_lib", "test_type": "make", "type": "library" }"#,
        "{\"pkg_name\":\"awesome_lib\",\n\"pkg_type\":\"whl\",\"test_type\":\"make\",\"type\":\"library\"}",
    );
    assert_ne!(changed, manifest);
    repo.write("loktar.json", &changed);
    repo.commit("ENH: tweak pet_api");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["pet_api", "webfront"]);
    assert_eq!(package(&plan, "pet_api")["manifest"], json!("modified"));

    // A new package is marked as added.
    let with_new = changed.replace(
        "\"packages\": [",
        "\"packages\": [\n  { \"pkg_name\": \"stock_api\", \"pkg_dir\": \"rest_services/stock_api\" },",
    );
    repo.write("loktar.json", &with_new);
    repo.commit("ENH: stock_api joins CI");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["stock_api"]);
    assert_eq!(package(&plan, "stock_api")["manifest"], json!("added"));
}

#[test]
fn an_unreadable_base_manifest_marks_every_package() {
    let repo = TestRepo::seed();
    repo.write("loktar.json", "{ not json");
    repo.commit("BUG: broken");
    let broken = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["checkout", "--quiet", "HEAD~1", "--", "loktar.json"]);
    repo.commit("BUG: fixed");
    let plan = repo.loktar(&["plan", "--format", "json", "--base", &broken]).json();
    assert_eq!(planned(&plan), ["awesome_lib", "pet_api", "webfront"]);
    assert_eq!(package(&plan, "webfront")["manifest"], json!("uncomparable"));
}

#[test]
fn text_plan_of_a_worktree_change() {
    let repo = TestRepo::seed();
    repo.write("rest_services/pet_api/app.py", "# edited, not committed\n");
    repo.write("webfront/new.css", "/* untracked */\n");
    let plan = repo.loktar(&["plan", "--worktree", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["pet_api", "webfront"]);
    assert_eq!(package(&plan, "webfront")["files"], json!(["webfront/new.css"]));
    assert_eq!(plan["head"], json!(null));
    insta::assert_snapshot!("worktree_plan", repo.filter(&repo.loktar(&["plan", "--worktree"]).ok()));
}

#[test]
fn why_prints_the_chain_from_a_changed_file() {
    let repo = TestRepo::seed();
    repo.write("awesome_lib/setup.py", "# v2\n");
    repo.write("awesome_lib/awesome_lib/__init__.py", "# v2\n");
    repo.commit("ENH: lib");
    insta::assert_snapshot!("why_webfront", repo.filter(&repo.loktar(&["why", "webfront"]).ok()));

    repo.write("webfront/index.html", "v2\n");
    repo.commit("ENH: front");
    let out = repo.loktar(&["why", "pet_api"]).ok();
    assert!(out.contains("`pet_api` is not affected"), "{out}");

    let run = repo.loktar(&["why", "pet-api"]).expect_code(2);
    assert!(run.stderr.contains("no package named `pet-api`"), "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `pet_api`?"), "{}", run.stderr);
}

#[test]
fn runs_from_a_subfolder_and_with_repo() {
    let repo = TestRepo::seed();
    repo.write("webfront/index.html", "v2\n");
    repo.commit("ENH: front");
    let from_sub = repo.loktar_in(&repo.path().join("rest_services/pet_api"), &["plan", "--format", "json"]).json();
    assert_eq!(planned(&from_sub), ["webfront"]);
    let elsewhere = std::env::temp_dir();
    let repo_arg = repo.path().join("webfront").display().to_string();
    let with_repo = repo.loktar_in(&elsewhere, &["plan", "--format", "json", "--repo", &repo_arg]).json();
    assert_eq!(with_repo, from_sub);
}

#[test]
fn a_package_at_the_root_owns_what_no_other_package_owns() {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [{"pkg_name": "monolith", "pkg_dir": "."}, {"pkg_name": "tool", "depends_on": ["monolith"]}]}"#,
    );
    repo.write("src/main.c", "int main;\n");
    repo.write("tool/tool.sh", "echo\n");
    repo.commit("ENH: initial");
    repo.write("tool/tool.sh", "echo v2\n");
    repo.commit("ENH: tool");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["tool"]);
    repo.write("src/main.c", "int main(void);\n");
    repo.commit("ENH: root");
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(planned(&plan), ["monolith", "tool"]);
    assert_eq!(package(&plan, "monolith")["dir"], json!("."));
    assert_eq!(package(&plan, "monolith")["files"], json!(["src/main.c"]));
}
