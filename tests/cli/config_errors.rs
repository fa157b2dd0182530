//! Every kind of bad `loktar.json` gives exit code 2 and a message with the
//! file, line and column, the package, and the fix. Messages are snapshots.

use crate::support::TestRepo;

/// Writes `manifest` and the folders `dirs`, and returns what `loktar graph` says.
fn errors(manifest: &str, dirs: &[&str]) -> String {
    let repo = TestRepo::new();
    repo.write("loktar.json", manifest);
    for dir in dirs {
        repo.write(&format!("{dir}/.keep"), "");
    }
    let run = repo.loktar(&["graph"]).expect_code(2);
    assert!(run.stdout.is_empty(), "nothing on stdout when the config is bad: {}", run.stdout);
    repo.filter(&run.stderr)
}

#[test]
fn the_seed_example_without_pkg_dir_names_pkg_dir() {
    // Loktar's own example: package `web-front` lives in folder `webfront`.
    let stderr = errors(
        r#"{ "packages": [
  { "pkg_type": "docker", "pkg_name": "web-front", "test_type": "make", "type": "service" },
  { "pkg_type": "whl", "pkg_name": "awesome_lib", "test_type": "make", "type": "library" }
] }"#,
        &["webfront", "awesome_lib"],
    );
    insta::assert_snapshot!("seed_web_front", stderr);
}

#[test]
fn invalid_json() {
    insta::assert_snapshot!("invalid_json", errors("{\n  \"packages\": [\n    { \"pkg_name\": \"a\", }\n  ]\n}", &[]));
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let stderr = errors(
        r#"{"packages": [{"pkg_name": "api", "pkg_nmae": "x", "depend_on": ["b"], "colour": "red"}], "pakages": []}"#,
        &["api"],
    );
    insta::assert_snapshot!("unknown_keys", stderr);
}

#[test]
fn wrong_types() {
    let stderr = errors(
        r#"{"packages": [
  {"pkg_name": "api", "pkg_dir": 3, "depends_on": "lib", "build_info": [], "type": "daemon"},
  {"pkg_name": "lib", "exclude_dependencies_only_on_keywords": [1], "build_info": {"storage_type": false}},
  "not an object"
]}"#,
        &["api", "lib"],
    );
    insta::assert_snapshot!("wrong_types", stderr);
}

#[test]
fn missing_name_and_bad_names() {
    let stderr = errors(r#"{"packages": [{"pkg_type": "whl"}, {"pkg_name": ""}, {"pkg_name": "has space"}]}"#, &[]);
    insta::assert_snapshot!("missing_name", stderr);
}

#[test]
fn duplicate_names_and_shared_folders() {
    let stderr = errors(
        r#"{"packages": [
  {"pkg_name": "api"},
  {"pkg_name": "api"},
  {"pkg_name": "api2", "pkg_dir": "api/"},
  {"pkg_name": "x", "pkg_name": "y"}
]}"#,
        &["api", "x", "y"],
    );
    insta::assert_snapshot!("duplicates", stderr);
}

#[test]
fn unknown_dependency_and_plugin_names() {
    let stderr = errors(
        r#"{"packages": [
  {"pkg_name": "pet_api", "depends_on": ["awesome-lib", "nothing_like_it"], "pkg_type": "dokcer",
   "test_type": "pytest", "build_info": {"registry_type": "quya", "build_type": "remote"}},
  {"pkg_name": "awesome_lib", "dependencies_type": ["python_requirement"]}
]}"#,
        &["pet_api", "awesome_lib"],
    );
    insta::assert_snapshot!("unknown_names", stderr);
}

#[test]
fn aliases_and_folders() {
    let stderr = errors(
        r#"{"packages": [
  {"artifact_name": "old", "pkg_name": "new"},
  {"pkg_name": "a", "pkg_dir": "../outside"},
  {"pkg_name": "b", "pkg_dir": "servcies/b"},
  {"artifact_name": "c", "artifact_dir": "libs", "artifact_type": "jar"}
]}"#,
        &["new", "services/b", "libs/c"],
    );
    insta::assert_snapshot!("aliases_and_folders", stderr);
}

#[test]
fn not_an_object_at_the_top() {
    insta::assert_snapshot!("top_level_array", errors("[1, 2]", &[]));
    insta::assert_snapshot!("no_packages", errors("{}", &[]));
}

#[test]
fn garbage_never_panics() {
    let repo = TestRepo::new();
    let inputs = [
        "",
        "\u{feff}",
        "null",
        "\"\\ud800\"",
        "{\"packages\": [{\"pkg_name\": \"\\u0000\"}]}",
        "{\"packages\": 1e999}",
        "{\"packages\": [[[[[]]]]]}",
        "\u{1}",
        "{\"packages\": [{\"pkg_name\": \"a\", \"build_info\": {\"x\": {\"y\": [null]}}}]}",
    ];
    for input in inputs {
        repo.write("loktar.json", input);
        let run = repo.loktar(&["graph"]);
        assert!(run.code == 0 || run.code == 2, "input {input:?}: exit {} {}", run.code, run.stderr);
        assert!(!run.stderr.contains("panicked"), "input {input:?}: {}", run.stderr);
    }
    let deep = format!("{{\"packages\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    repo.write("loktar.json", &deep);
    let run = repo.loktar(&["graph"]).expect_code(2);
    assert!(run.stderr.contains("nested more than"), "{}", run.stderr);
}

#[test]
fn schema_is_json_schema_covering_every_key() {
    let repo = TestRepo::new();
    let schema = repo.loktar(&["schema"]).json();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let properties = &schema["properties"]["packages"]["items"]["properties"];
    for key in [
        "pkg_name",
        "pkg_type",
        "test_type",
        "type",
        "pkg_dir",
        "build_info",
        "depends_on",
        "dependencies_type",
        "exclude_dependencies_only_on_keywords",
        "artifact_name",
        "artifact_dir",
        "artifact_type",
    ] {
        assert!(properties[key].is_object(), "schema lacks `{key}`");
    }
    assert_eq!(properties["test_type"]["enum"], serde_json::json!(["make", "no-test"]));
    assert_eq!(properties["build_info"]["properties"]["registry_type"]["enum"], serde_json::json!(["quay"]));
    assert_eq!(properties["artifact_name"]["deprecated"], true);
}
