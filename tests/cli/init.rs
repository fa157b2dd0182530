//! `loktar init` on repositories made here: the README's example monorepo
//! without its `loktar.json`, nested packages beside vendored and ignored
//! folders, an empty repository, and one that has a `loktar.json` already.

use std::path::Path;

use serde_json::Value;

use crate::support::TestRepo;

/// The README's example monorepo, committed, without its `loktar.json`.
fn example_without_manifest() -> TestRepo {
    let repo = TestRepo::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monorepo");
    let mut pending = vec![example.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("the example").map_while(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(&example) {
                let relative = relative.display().to_string();
                if relative != "loktar.json" && !relative.ends_with(".pyc") {
                    repo.write(&relative, &std::fs::read_to_string(&path).expect("a text file"));
                }
            }
        }
    }
    repo.commit("ENH: the example without loktar.json");
    repo
}

#[test]
fn the_example_monorepo_gets_its_packages_back_and_nothing_is_written_unasked() {
    let repo = example_without_manifest();
    let shown = repo.loktar(&["init"]).ok();
    assert!(shown.starts_with("3 package(s) found\n"), "{shown}");
    for (name, kind, why) in [
        ("awesome_lib", "whl", "`awesome_lib/setup.py`, `make ci`"),
        ("pet_api", "docker", "`rest_services/pet_api/Dockerfile`, `make ci`"),
        ("webfront", "docker", "`webfront/Dockerfile`, `make ci`"),
    ] {
        let row = shown.lines().find(|line| line.split_whitespace().next() == Some(name)).expect(name);
        assert!(row.contains(kind) && row.ends_with(why), "{row}");
    }
    // What the discovery plugins find between them, before anything is written.
    assert!(shown.contains("2 dependencies found by the discovery plugins\n"), "{shown}");
    assert!(shown.contains("  pet_api → awesome_lib  (python_requirements: `requirements.txt`)\n"), "{shown}");
    assert!(shown.contains("  webfront → pet_api  (docker_compose: `compose.yaml`)\n"), "{shown}");
    // `stock_api` has an app.py and nothing to build: not a package.
    assert!(!shown.contains("stock_api"), "{shown}");
    assert!(shown.ends_with("nothing written: `loktar init --write` writes this loktar.json\n"), "{shown}");
    assert!(!repo.path().join("loktar.json").exists());

    // For tools: the same proposal as JSON.
    let json: Value = serde_json::from_str(&repo.loktar(&["init", "--format", "json"]).ok()).expect("JSON");
    let packages = json["loktar_json"]["packages"].as_array().expect("packages");
    let pet_api = packages.iter().find(|p| p["pkg_name"] == "pet_api").expect("pet_api");
    assert_eq!(pet_api["pkg_dir"], "rest_services/pet_api");
    assert_eq!(pet_api["pkg_type"], "docker");
    assert_eq!(pet_api["test_type"], "make");
    assert_eq!(pet_api["dependencies_type"], serde_json::json!(["dockerfile", "python_requirements"]));
    assert_eq!(json["written"], false);
    assert_eq!(json["dependencies"].as_array().map(Vec::len), Some(2), "{json}");

    // Written, it loads, and `loktar graph` has the original's dependencies: pet_api's on
    // awesome_lib from its requirements, webfront's on pet_api (a `depends_on` in the
    // original) from the compose file webfront runs its API with.
    let written = repo.loktar(&["init", "--write"]).ok();
    assert!(written.contains("written: "), "{written}");
    let graph: Value = serde_json::from_str(&repo.loktar(&["graph", "--format", "json"]).ok()).expect("graph JSON");
    let depends_on = |name: &str| -> Value {
        graph["packages"].as_array().into_iter().flatten().find(|p| p["name"] == name).expect(name)["depends_on"]
            .clone()
    };
    assert_eq!(depends_on("pet_api"), serde_json::json!(["awesome_lib"]));
    assert_eq!(depends_on("awesome_lib"), serde_json::json!([]));
    assert_eq!(depends_on("webfront"), serde_json::json!(["pet_api"]));
    let original: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monorepo/loktar.json"))
            .expect("the original"),
    )
    .expect("JSON");
    let kinds = |packages: &Value| -> Vec<(String, String)> {
        let mut kinds: Vec<(String, String)> = packages["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (p["pkg_name"].as_str().unwrap_or("").to_string(), p["pkg_type"].as_str().unwrap_or("").to_string())
            })
            .collect();
        kinds.sort();
        kinds
    };
    assert_eq!(kinds(&json["loktar_json"]), kinds(&original), "the original's packages and types");
}

#[test]
fn nested_packages_are_found_and_vendored_and_ignored_folders_are_not() {
    let repo = TestRepo::new();
    repo.write("services/api/Dockerfile", "FROM busybox\n");
    repo.write("services/api/Makefile", "ci:\n\t@true\n");
    repo.write("services/api/plugins/auth/pyproject.toml", "[project]\nname = \"auth\"\n");
    repo.write("vendor/left_pad/setup.py", "");
    repo.write("web/node_modules/react/Dockerfile", "FROM x\n");
    repo.write(".gitignore", "generated/\n");
    repo.write("generated/tool/setup.py", "");
    repo.commit("ENH: services");
    let json: Value = serde_json::from_str(&repo.loktar(&["init", "--format", "json"]).ok()).expect("JSON");
    let found: Vec<(String, String)> = json["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or("").to_string(), p["dir"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        found,
        [
            ("api".to_string(), "services/api".to_string()),
            ("auth".to_string(), "services/api/plugins/auth".to_string())
        ]
    );
    let notes = json["notes"].to_string();
    assert!(notes.contains("`services/api/Makefile` has no `clean` rule"), "{notes}");
    // The nested proposal loads as written.
    repo.loktar(&["init", "--write"]).ok();
    repo.loktar(&["graph"]).ok();
}

#[test]
fn an_empty_repository_and_an_existing_manifest_are_refused_with_the_way_out() {
    let repo = TestRepo::new();
    repo.write("README.md", "nothing to build\n");
    repo.commit("DOC: readme");
    let empty = repo.loktar(&["init"]).expect_code(2);
    assert!(empty.stderr.contains("no package found"), "{}", empty.stderr);

    repo.write("app/Dockerfile", "FROM busybox\n");
    repo.write("loktar.json", "{\"packages\": []}\n");
    repo.commit("ENH: an app");
    let refused = repo.loktar(&["init", "--write"]).expect_code(2);
    assert!(refused.stderr.contains("exists already"), "{}", refused.stderr);
    assert!(refused.stderr.contains("`loktar init --write --force` replaces it"), "{}", refused.stderr);
    assert_eq!(std::fs::read_to_string(repo.path().join("loktar.json")).expect("kept"), "{\"packages\": []}\n");
    repo.loktar(&["init", "--write", "--force"]).ok();
    let replaced = std::fs::read_to_string(repo.path().join("loktar.json")).expect("replaced");
    assert!(replaced.contains("\"pkg_name\": \"app\""), "{replaced}");
}

#[test]
fn a_discovery_plugin_failing_on_a_file_is_a_note_and_the_others_findings_stay() {
    let repo = TestRepo::new();
    repo.write("services/api/Dockerfile", "FROM busybox\n");
    repo.write("services/api/requirements.txt", "lib==1.0\n");
    repo.write("services/api/compose.yaml", "services: [\n");
    repo.write("lib/setup.py", "");
    repo.commit("ENH: an api");
    let shown = repo.loktar(&["init"]).ok();
    assert!(shown.contains("  api → lib  (python_requirements: `requirements.txt`)\n"), "{shown}");
    let note = shown.lines().find(|line| line.starts_with("note: ") && line.contains("docker_compose")).expect(&shown);
    assert!(note.contains("`api`") && note.contains("not valid YAML"), "{note}");
    // A host configuration that cannot be read: the proposal still stands, with why no dependency is listed.
    repo.host_config("[plugins.make\n");
    let shown = repo.loktar(&["init"]).ok();
    assert!(shown.starts_with("2 package(s) found\n"), "{shown}");
    assert!(shown.contains("note: dependencies not listed: not a valid host configuration"), "{shown}");
}
