//! Choosing the git range: defaults, explicit revisions, shallow clones and
//! the errors a user can run into.

use serde_json::json;

use crate::support::TestRepo;

#[test]
fn the_first_commit_changes_every_package() {
    let repo = TestRepo::seed();
    let plan = repo.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(plan["base_origin"], json!({"kind": "root_commit"}));
    assert_eq!(plan["base"], json!(null));
    assert_eq!(plan["packages"].as_array().map(Vec::len), Some(3));
}

#[test]
fn base_and_head_come_from_flags_or_environment() {
    let repo = TestRepo::seed();
    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.write("webfront/index.html", "v2\n");
    let second = repo.commit("ENH: front");
    repo.write("awesome_lib/setup.py", "v2\n");
    repo.commit("ENH: lib");
    let plan = repo.loktar(&["plan", "--format", "json", "--base", &first, "--head", &second]).json();
    assert_eq!(plan["packages"][0]["name"], json!("webfront"));
    assert_eq!(plan["head"], json!(second));
    let output = crate::support::loktar_command()
        .current_dir(repo.path())
        .args(["plan", "--format", "json"])
        .env("LOKTAR_BASE", &first)
        .env("LOKTAR_HEAD", &second)
        .output()
        .expect("run");
    let from_env: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(from_env, plan);
}

#[test]
fn an_unknown_revision_is_a_clear_error() {
    let repo = TestRepo::seed();
    let run = repo.loktar(&["plan", "--base", "no-such-branch"]).expect_code(2);
    insta::assert_snapshot!("unknown_base", repo.filter(&run.stderr));
}

#[test]
fn a_full_hash_that_is_not_in_the_repository_is_a_clear_error() {
    let repo = TestRepo::seed();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let run = repo.loktar(&["plan", "--base", missing, "--head", &head]).expect_code(2);
    assert!(run.stderr.contains(&format!("base `{missing}` is not a commit in this repository")), "{}", run.stderr);
    // A tree is not a commit either.
    let tree = repo.git(&["rev-parse", "HEAD^{tree}"]);
    let run = repo.loktar(&["plan", "--base", &head, "--head", &tree]).expect_code(2);
    assert!(run.stderr.contains("head `"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn without_a_default_branch_the_user_is_told_to_pass_base() {
    let repo = TestRepo::seed();
    repo.git(&["branch", "-m", "main", "trunk"]);
    repo.write("webfront/index.html", "v2\n");
    repo.commit("ENH: front");
    let run = repo.loktar(&["plan"]).expect_code(2);
    assert!(run.stderr.contains("cannot tell which branch is the default branch"), "{}", run.stderr);
    let plan = repo.loktar(&["plan", "--format", "json", "--default-branch", "trunk"]).json();
    assert_eq!(plan["base_origin"], json!({"kind": "parent", "branch": "trunk"}));
}

#[test]
fn origin_head_names_the_default_branch() {
    let upstream = TestRepo::seed();
    upstream.git(&["branch", "-m", "main", "develop"]);
    let clone = TestRepo::new();
    clone.git(&["fetch", "--quiet", &upstream.path().display().to_string(), "develop:refs/remotes/origin/develop"]);
    clone.git(&["symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/develop"]);
    clone.git(&["switch", "--quiet", "-c", "topic", "origin/develop"]);
    clone.write("webfront/index.html", "v2\n");
    clone.commit("ENH: front");
    let plan = clone.loktar(&["plan", "--format", "json"]).json();
    assert_eq!(plan["base_origin"], json!({"kind": "merge_base", "branch": "origin/develop"}));
    assert_eq!(plan["packages"][0]["name"], json!("webfront"));
}

#[test]
fn a_shallow_clone_without_the_base_says_how_to_fetch_it() {
    let upstream = TestRepo::seed();
    upstream.git(&["switch", "--quiet", "-c", "feature"]);
    upstream.write("webfront/index.html", "v2\n");
    upstream.commit("ENH: one");
    upstream.write("webfront/index.html", "v3\n");
    upstream.commit("ENH: two");
    upstream.git(&["switch", "--quiet", "main"]);
    let clone_dir = tempfile::tempdir().expect("temp dir");
    let url = format!("file://{}", upstream.path().display());
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet", "--depth=1", "--branch=feature", "--no-single-branch", &url])
        .arg(clone_dir.path().join("repo"))
        .status()
        .expect("clone");
    assert!(status.success());
    let repo_dir = clone_dir.path().join("repo");
    let run = crate::support::loktar_command().current_dir(&repo_dir).args(["plan"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("history is cut short"), "{stderr}");
    assert!(stderr.contains("git fetch --deepen"), "{stderr}");
    assert!(stderr.contains("--unshallow"), "{stderr}");
    assert!(run.stdout.is_empty(), "no partial plan on stdout");

    // On the default branch itself, the parent commit is what is missing.
    let clone = TestRepo::new();
    clone.git(&["fetch", "--quiet", "--depth=1", &url, "main:refs/remotes/origin/main"]);
    clone.git(&["checkout", "--quiet", "-B", "main", "origin/main"]);
    let run = clone.loktar(&["plan"]).expect_code(2);
    assert!(run.stderr.contains("the parent of `HEAD` is not in this shallow clone's history"), "{}", run.stderr);
    assert!(run.stderr.contains("git fetch --unshallow"), "{}", run.stderr);
}

#[test]
fn outside_a_repository_or_without_loktar_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = crate::support::loktar_command().current_dir(dir.path()).args(["plan"]).output().expect("run");
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("is not inside a git repository"));

    let repo = TestRepo::new();
    let run = repo.loktar(&["plan"]).expect_code(2);
    insta::assert_snapshot!("no_manifest", repo.filter(&run.stderr));
}
