//! Graphviz DOT: dependencies on the left, arrows read "depends on".

use super::{State, View};

/// Fill colours by state, shared with the SVG renderer.
pub fn fill(state: State) -> &'static str {
    match state {
        State::Changed => "#f4a261",
        State::Dependent => "#ffe8a3",
        State::Unaffected => "#ffffff",
    }
}

/// The view as a DOT digraph, deterministic for snapshot tests.
pub fn render(view: &View<'_>) -> String {
    let mut out = String::from("digraph loktar {\n");
    out.push_str("  rankdir=RL;\n");
    out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
    for (i, node) in view.nodes.iter().enumerate() {
        let package = &view.workspace.packages[node.package];
        let label = match &package.pkg_type {
            Some(kind) => format!("{}\\n{}", escape(&package.name), escape(kind)),
            None => escape(&package.name),
        };
        out.push_str(&format!(
            "  \"{}\" [label=\"{label}\", fillcolor=\"{}\"];\n",
            escape(view.name(i)),
            fill(node.state)
        ));
    }
    for &(from, to) in &view.edges {
        out.push_str(&format!("  \"{}\" -> \"{}\";\n", escape(view.name(from)), escape(view.name(to))));
    }
    out.push_str("}\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
