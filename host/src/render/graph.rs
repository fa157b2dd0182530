//! `loktar graph` as text and as JSON: every package and its dependencies.

use serde::Serialize;

use super::plan::{plural, to_json};
use super::{View, pad};
use crate::config::{PackageKind, show_dir};

/// The whole graph as aligned text, grouped by level.
pub fn text(view: &View<'_>) -> String {
    let packages = &view.workspace.packages;
    let mut out = format!("{}, {}\n", plural(view.nodes.len(), "package"), plural(view.edges.len(), "dependency"));
    let name_width = view.nodes.iter().map(|n| packages[n.package].name.chars().count()).max().unwrap_or(0);
    let type_width =
        view.nodes.iter().map(|n| packages[n.package].pkg_type.as_deref().unwrap_or("-").len()).max().unwrap_or(0);
    let mut current_level = None;
    for (i, node) in view.nodes.iter().enumerate() {
        if current_level != Some(node.level) {
            current_level = Some(node.level);
            out.push_str(&format!("\nlevel {}\n", node.level));
        }
        let package = &packages[node.package];
        let deps: Vec<&str> = view.dependencies(i).iter().map(|&d| view.name(d)).collect();
        let mut line = format!(
            "  {}  {}  {}",
            pad(&package.name, name_width),
            pad(package.pkg_type.as_deref().unwrap_or("-"), type_width),
            show_dir(&package.dir)
        );
        if !deps.is_empty() {
            line.push_str(&format!("  (depends on {})", deps.join(", ")));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The whole graph as JSON.
pub fn json(view: &View<'_>) -> String {
    let packages = &view.workspace.packages;
    let nodes = view
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let package = &packages[node.package];
            JsonPackage {
                name: &package.name,
                dir: show_dir(&package.dir),
                pkg_type: package.pkg_type.as_deref(),
                kind: package.kind,
                level: node.level,
                depends_on: view.dependencies(i).iter().map(|&d| view.name(d)).collect(),
            }
        })
        .collect();
    to_json(&JsonGraph { schema_version: super::plan::SCHEMA_VERSION, packages: nodes })
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    schema_version: u32,
    packages: Vec<JsonPackage<'a>>,
}

#[derive(Serialize)]
struct JsonPackage<'a> {
    name: &'a str,
    dir: &'a str,
    pkg_type: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<PackageKind>,
    level: usize,
    depends_on: Vec<&'a str>,
}
