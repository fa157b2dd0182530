//! `loktar graph`, the DOT and SVG formats, and dependency cycles.

use crate::support::TestRepo;

#[test]
fn the_whole_graph_as_text_json_and_dot() {
    let repo = TestRepo::seed();
    insta::assert_snapshot!("graph_text", repo.filter(&repo.loktar(&["graph"]).ok()));
    insta::assert_snapshot!("graph_dot", repo.filter(&repo.loktar(&["graph", "--format", "dot"]).ok()));
    let json = repo.loktar(&["graph", "--format", "json"]).json();
    assert_eq!(json["packages"][2]["name"], "webfront");
    assert_eq!(json["packages"][2]["depends_on"], serde_json::json!(["pet_api"]));
    assert_eq!(json["packages"][2]["level"], 2);
}

#[test]
fn the_plan_as_dot_holds_only_affected_packages() {
    let repo = TestRepo::seed();
    repo.write("rest_services/pet_api/app.py", "v2\n");
    repo.commit("ENH: api");
    insta::assert_snapshot!("plan_dot", repo.filter(&repo.loktar(&["plan", "--format", "dot"]).ok()));
}

#[test]
fn svg_is_drawn_without_tools() {
    let repo = TestRepo::seed();
    repo.write("rest_services/pet_api/app.py", "v2\n");
    repo.commit("ENH: api");
    let svg = repo.loktar(&["plan", "--format", "svg"]).ok();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">pet_api</text>") && svg.contains(">webfront</text>"));
    assert!(!svg.contains(">awesome_lib</text>"), "unaffected packages are not drawn");
    assert!(svg.contains("<title>webfront depends on pet_api</title>"));
    // Every opened element is closed: a cheap well-formedness check.
    assert_eq!(svg.matches("<g>").count(), svg.matches("</g>").count());
    let whole = repo.loktar(&["graph", "--format", "svg"]).ok();
    assert!(whole.contains(">awesome_lib</text>"));
}

#[test]
fn a_cycle_is_an_error_that_prints_the_loop() {
    let repo = TestRepo::new();
    repo.write(
        "loktar.json",
        r#"{"packages": [
  {"pkg_name": "a", "depends_on": ["b"]},
  {"pkg_name": "b", "depends_on": ["c"]},
  {"pkg_name": "c", "depends_on": ["a"]},
  {"pkg_name": "d", "depends_on": ["a"]}
]}"#,
    );
    for dir in ["a", "b", "c", "d"] {
        repo.write(&format!("{dir}/f"), "x\n");
    }
    repo.commit("ENH: loop");
    let run = repo.loktar(&["graph"]).expect_code(2);
    insta::assert_snapshot!("cycle", repo.filter(&run.stderr));

    let repo = TestRepo::new();
    repo.write("loktar.json", r#"{"packages": [{"pkg_name": "self", "depends_on": ["self"]}]}"#);
    repo.write("self/f", "x\n");
    repo.commit("ENH: self loop");
    let run = repo.loktar(&["plan"]).expect_code(2);
    assert!(run.stderr.contains("dependency cycle: `self` → `self`"), "{}", run.stderr);
}
