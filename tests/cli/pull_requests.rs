//! GitHub's side of change detection, against a recording server playing
//! its REST API: `--github-pr N` reads a pull request's files and commits
//! from the API — every page, past GitHub's caps, merge commits ignored,
//! `NOBUILD` and exclusion keywords applied — and `run --rebuild` leaves
//! out packages already green, posting `<pkg> - Not rebuilt`.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use crate::recorder::{Recorded, Recorder, Reply};
use crate::support::{Run, TestRepo};

const TOKEN: &str = "canary-github-token-pr-91c3";
const BASE: &str = "1111111111111111111111111111111111111111";
const HEAD: &str = "2222222222222222222222222222222222222222";

/// `a`, `b` depending on `a`, and `c`; `a` holds back its dependents on
/// `DOC` commits. `origin` is `acme/monorepo` on GitHub; `[github]` is the recorder.
fn repo(api_url: &str) -> TestRepo {
    repo_with(api_url, "")
}

/// [`repo`] with more lines under `[github]`.
fn repo_with(api_url: &str, github: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.host_config(&format!(
            "[github]\n{github}api_url = \"{api_url}\"\ntoken_secret = \"gh\"\nretries = 0\n\n[secrets.gh]\nenv = \"TEST_GITHUB_TOKEN\"\n\n\
             [plugins.github]\nrole = \"notifier\"\n"
        ),
    );
    repo.write(
        "loktar.json",
        r#"{ "packages": [
  { "pkg_name": "a", "test_type": "make", "exclude_dependencies_only_on_keywords": ["DOC"] },
  { "pkg_name": "b", "test_type": "make", "depends_on": ["a"] },
  { "pkg_name": "c", "test_type": "make" } ] }"#,
    );
    for package in ["a", "b", "c"] {
        repo.write(&format!("{package}/Makefile"), "ci:\n\t@echo ok\n");
    }
    repo.git(&["remote", "add", "origin", "git@github.com:acme/monorepo.git"]);
    repo.commit("three packages");
    repo
}

fn loktar(repo: &TestRepo, args: &[&str]) -> Run {
    repo.loktar_with_env(args, &[("TEST_GITHUB_TOKEN", TOKEN)])
}

fn pull(commits: u64, changed_files: u64) -> Value {
    json!({"number": 7, "commits": commits, "changed_files": changed_files,
           "base": {"sha": BASE, "ref": "main"}, "head": {"sha": HEAD, "ref": "feature"}})
}

fn commit(sha: &str, message: &str, parents: usize) -> Value {
    let parents: Vec<Value> = (0..parents).map(|n| json!({"sha": format!("{n}").repeat(40)})).collect();
    json!({"sha": sha, "commit": {"message": message}, "parents": parents})
}

fn file(name: &str) -> Value {
    json!({"filename": name, "status": "modified"})
}

/// A recorder whose handler sees its own URL (for `Link` headers).
fn server(handler: impl Fn(&Recorded, &str) -> Reply + Send + Sync + 'static) -> Recorder {
    let url = Arc::new(OnceLock::<String>::new());
    let known = url.clone();
    let recorder = Recorder::start(move |request| handler(request, known.get().map_or("", String::as_str)));
    url.set(recorder.url()).expect("set once");
    recorder
}

fn paths(recorder: &Recorder) -> Vec<String> {
    recorder.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

#[test]
fn a_pull_requests_files_come_from_every_page_and_merge_commits_are_ignored() {
    let recorder = server(|request, url| match request.path.as_str() {
        "/repos/acme/monorepo/pulls/7" => Reply::json(200, pull(3, 150)),
        "/repos/acme/monorepo/pulls/7/files?per_page=100" => {
            let first: Vec<Value> = (0..100).map(|n| file(&format!("c/f{n}.txt"))).collect();
            Reply::json(200, json!(first))
                .with_header("link", &format!("<{url}/repositories/1/pulls/7/files?per_page=100&page=2>; rel=\"next\""))
        }
        "/repositories/1/pulls/7/files?per_page=100&page=2" => {
            let mut second: Vec<Value> = (100..149).map(|n| file(&format!("c/f{n}.txt"))).collect();
            second.push(json!({"filename": "a/new name.py", "previous_filename": "a/old.py", "status": "renamed"}));
            Reply::json(200, json!(second))
        }
        "/repos/acme/monorepo/pulls/7/commits?per_page=100" => Reply::json(
            200,
            json!([
                commit(&"3".repeat(40), "ENH: first", 1),
                commit(&"4".repeat(40), "Merge branch 'main' into feature\n\nNOBUILD came from main", 2),
                commit(HEAD, "BUG: fix", 1),
            ]),
        ),
        _ => Reply::json(404, json!({"message": "Not Found"})),
    });
    let repo = repo(&recorder.url());
    let plan = loktar(&repo, &["plan", "--github-pr", "7", "--format", "json"]).json();
    assert_eq!((plan["base"].as_str(), plan["head"].as_str()), (Some(BASE), Some(HEAD)));
    assert_eq!(plan["base_origin"], json!({"kind": "pull_request", "number": 7, "branch": "main"}));
    assert_eq!((plan["changed_files"].as_u64(), plan["commits"].as_u64()), (Some(150), Some(2)), "merge left out");
    assert_eq!(plan["nobuild"], Value::Null, "a merge commit's NOBUILD does not count");
    assert_eq!(plan["levels"], json!([["a", "c"], ["b"]]));
    assert_eq!(plan["packages"][0]["files"], json!(["a/new name.py", "a/old.py"]), "from the second page");
    for request in recorder.requests() {
        assert_eq!(request.method, "GET");
        assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(request.header("accept"), Some("application/vnd.github+json"));
    }
    assert_eq!(
        paths(&recorder),
        [
            "GET /repos/acme/monorepo/pulls/7",
            "GET /repos/acme/monorepo/pulls/7/commits?per_page=100",
            "GET /repos/acme/monorepo/pulls/7/files?per_page=100",
            "GET /repositories/1/pulls/7/files?per_page=100&page=2",
        ]
    );
    let text = loktar(&repo, &["plan", "--github-pr", "7"]).ok();
    assert!(text.contains("(pull request #7 into `main`), 150 changed files in 2 commits"), "{text}");
}

#[test]
fn past_githubs_caps_commits_come_from_the_comparison_and_files_from_each_commit() {
    let (first, second) = ("5".repeat(40), "6".repeat(40));
    let (first_c, second_c) = (first.clone(), second.clone());
    let recorder = server(move |request, url| match request.path.as_str() {
        // GitHub counts 4 commits and 3 files, but lists fewer.
        "/repos/acme/monorepo/pulls/7" => Reply::json(200, pull(4, 3)),
        "/repos/acme/monorepo/pulls/7/commits?per_page=100" => {
            Reply::json(200, json!([commit(&first_c, "ENH: one", 1)]))
        }
        "/repos/acme/monorepo/pulls/7/files?per_page=100" => Reply::json(200, json!([file("c/only.txt")])),
        path if path == format!("/repos/acme/monorepo/compare/{BASE}...{HEAD}?per_page=100") => Reply::json(
            200,
            json!({"status": "ahead", "commits": [commit(&first_c, "ENH: one", 1), commit(&second_c, "ENH: two", 1)],
                   "files": []}),
        )
        .with_header("link", &format!("<{url}/repositories/1/compare/x?page=2>; rel=\"next\"")),
        "/repositories/1/compare/x?page=2" => Reply::json(
            200,
            json!({"commits": [commit(&"7".repeat(40), "Merge main", 2), commit(HEAD, "NOBUILD: release notes", 1)]}),
        ),
        path if path.starts_with("/repos/acme/monorepo/commits/") => {
            let sha = path.trim_start_matches("/repos/acme/monorepo/commits/").trim_end_matches("?per_page=100");
            let files =
                if sha == first_c { json!([file("c/only.txt")]) } else { json!([file("a/lib.py"), file("b/x.py")]) };
            Reply::json(200, json!({"sha": sha, "files": files}))
        }
        _ => Reply::json(404, json!({"message": "Not Found"})),
    });
    let repo = repo(&recorder.url());
    // The last commit, only in the comparison's second page, says NOBUILD.
    let plan = loktar(&repo, &["plan", "--github-pr", "7", "--format", "json"]).json();
    assert_eq!(plan["commits"].as_u64(), Some(3), "every non-merge commit of both pages");
    assert_eq!(plan["nobuild"]["sha"].as_str(), Some(HEAD), "{plan}");
    assert!(plan["packages"].as_array().is_some_and(Vec::is_empty));
    let requested = paths(&recorder);
    assert!(requested.contains(&format!("GET /repos/acme/monorepo/compare/{BASE}...{HEAD}?per_page=100")));
    assert!(requested.contains(&"GET /repositories/1/compare/x?page=2".to_string()));
    // Past the file cap, each commit's files are joined: `a` and `b` come from them.
    for sha in [&first, &second, &HEAD.to_string()] {
        assert!(requested.contains(&format!("GET /repos/acme/monorepo/commits/{sha}?per_page=100")), "{requested:#?}");
    }
    assert_eq!(plan["changed_files"].as_u64(), Some(3), "{plan}");
}

#[test]
fn exclusion_keywords_apply_to_the_pull_requests_commits() {
    let recorder = server(|request, _| match request.path.as_str() {
        "/repos/acme/monorepo/pulls/7" => Reply::json(200, pull(2, 1)),
        "/repos/acme/monorepo/pulls/7/files?per_page=100" => Reply::json(200, json!([file("a/README.md")])),
        "/repos/acme/monorepo/pulls/7/commits?per_page=100" => {
            Reply::json(200, json!([commit(&"3".repeat(40), "DOC: usage", 1), commit(HEAD, "DOC: typo", 1)]))
        }
        path if path.starts_with("/repos/acme/monorepo/commits/") => {
            Reply::json(200, json!({"files": [file("a/README.md")]}))
        }
        _ => Reply::json(404, json!({"message": "Not Found"})),
    });
    let repo = repo(&recorder.url());
    let plan = loktar(&repo, &["plan", "--github-pr", "7", "--format", "json"]).json();
    assert_eq!(plan["levels"], json!([["a"]]), "`b` is held back: every commit is DOC");
    assert_eq!(plan["packages"][0]["held_back_by"], json!(["DOC"]));
}

#[test]
fn a_pull_request_github_does_not_know_is_an_error_naming_it() {
    let recorder = server(|_, _| Reply::json(404, json!({"message": "Not Found"})));
    let repo = repo(&recorder.url());
    let run = loktar(&repo, &["plan", "--github-pr", "9"]).expect_code(2);
    let said = "error: cannot read pull request #9 of `acme/monorepo`: GitHub answered `GET /repos/acme/monorepo/pulls/9` with HTTP 404 (Not Found)";
    assert!(run.stderr.contains(said), "{}", run.stderr);
    assert!(run.stderr.contains("hint: check the repository, the number"), "{}", run.stderr);
}

#[test]
fn rebuild_leaves_out_packages_already_green_and_posts_not_rebuilt() {
    let statuses: Arc<OnceLock<(String, String)>> = Arc::new(OnceLock::new());
    let known = statuses.clone();
    let recorder = server(move |request, _| {
        let (older, head) = known.get().cloned().unwrap_or_default();
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", _) => Reply::json(201, json!({"state": "ok"})),
            // Newest first, as GitHub lists them: `a` and `b` went green on the head commit.
            ("GET", path) if path == format!("/repos/acme/monorepo/commits/{head}/statuses?per_page=100") => {
                Reply::json(
                    200,
                    json!([
                        {"context": "a - test", "state": "success"},
                        {"context": "b - test", "state": "success"},
                        {"context": "a - test", "state": "failure"},
                    ]),
                )
            }
            // `c` was green on the older commit, but the head commit touched it.
            ("GET", path) if path == format!("/repos/acme/monorepo/commits/{older}/statuses?per_page=100") => {
                Reply::json(200, json!([{"context": "c - test", "state": "success"}]))
            }
            _ => Reply::json(200, json!([])),
        }
    });
    let repo = repo(&recorder.url());
    repo.write("a/lib.txt", "1\n");
    let older = repo.commit("ENH: a");
    repo.write("c/lib.txt", "1\n");
    let head = repo.commit("ENH: c");
    statuses.set((older.clone(), head.clone())).expect("set once");
    let base = repo.git(&["rev-parse", "HEAD~2"]);
    let run = loktar(&repo, &["run", "--base", &base, "--rebuild"]).expect_code(0);
    run.says(&[&format!("not rebuilt: `a` is green on `{}`", &head[..7]), "not rebuilt: `b` is green on"]);
    assert!(run.stdout.contains("c "), "`c` ran: {}", run.stdout);
    let posted: Vec<(String, String)> = recorder
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            assert_eq!(r.path, format!("/repos/acme/monorepo/statuses/{head}"));
            let body = r.json();
            (
                body["context"].as_str().unwrap_or_default().to_string(),
                body["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let owned = |c: &str, s: &str| (c.to_string(), s.to_string());
    assert_eq!(
        posted,
        [
            owned("a - Not rebuilt", "success"),
            owned("b - Not rebuilt", "success"),
            owned("c - test", "pending"),
            owned("c - test", "success"),
        ]
    );
    let described = recorder.requests().iter().find(|r| r.method == "POST").map(|r| r.json()["description"].clone());
    assert_eq!(described, Some(json!(format!("already green on {}: not run again", &head[..7]))));

    // When every affected package is green, nothing runs and the checks still settle.
    let all_green = Recorder::start(|request| match request.method.as_str() {
        "POST" => Reply::json(201, json!({})),
        _ => Reply::json(
            200,
            json!([{"context": "a - test", "state": "success"}, {"context": "b - test", "state": "success"}, {"context": "c - test", "state": "success"}]),
        ),
    });
    let repo = self::repo(&all_green.url());
    repo.write("a/lib.txt", "2\n");
    repo.commit("ENH: a again");
    let run = loktar(&repo, &["run", "--rebuild"]).expect_code(0);
    run.says(&["nothing to run: every affected package is already green"]);
    let contexts: Vec<String> = all_green
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.json()["context"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(contexts, ["a - Not rebuilt", "b - Not rebuilt", "loktar"]);
}

#[test]
fn with_pr_changes_git_only_base_and_head_come_from_github() {
    let shas: Arc<OnceLock<(String, String)>> = Arc::new(OnceLock::new());
    let known = shas.clone();
    let recorder = server(move |request, _| match request.path.as_str() {
        "/repos/acme/monorepo/pulls/7" => {
            let (base, head) = known.get().cloned().unwrap_or_default();
            Reply::json(
                200,
                json!({"number": 7, "commits": 1, "changed_files": 1,
                                    "base": {"sha": base, "ref": "main"}, "head": {"sha": head, "ref": "feature"}}),
            )
        }
        _ => Reply::json(404, json!({"message": "Not Found"})),
    });
    let repo = repo_with(&recorder.url(), "pr_changes = \"git\"\n");
    let base = repo.git(&["rev-parse", "HEAD"]);
    repo.write("c/lib.txt", "1\n");
    let head = repo.commit("ENH: c");
    shas.set((base.clone(), head.clone())).expect("set once");
    let plan = loktar(&repo, &["plan", "--github-pr", "7", "--format", "json"]).json();
    assert_eq!((plan["base"].as_str(), plan["head"].as_str()), (Some(base.as_str()), Some(head.as_str())));
    assert_eq!(plan["levels"], json!([["c"]]));
    assert_eq!(plan["base_origin"]["kind"], "pull_request");
    assert_eq!(paths(&recorder), ["GET /repos/acme/monorepo/pulls/7"], "the range came from git");
}
