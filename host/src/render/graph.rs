//! `loktar graph` as text and as JSON: every package and its dependencies.

use std::borrow::Cow;

use serde::Serialize;

use super::plan::{plural, to_json};
use super::{View, pad};
use crate::config::{PackageKind, show_dir};
use crate::terminal::escaped;

/// The whole graph as aligned text, grouped by level.
pub fn text(view: &View<'_>) -> String {
    let packages = &view.workspace.packages;
    let mut out = format!("{}, {}\n", plural(view.nodes.len(), "package"), plural(view.edges.len(), "dependency"));
    let rows: Vec<[Cow<'_, str>; 3]> = view
        .nodes
        .iter()
        .map(|node| {
            let package = &packages[node.package];
            [
                escaped(&package.name),
                escaped(package.pkg_type.as_deref().unwrap_or("-")),
                escaped(show_dir(&package.dir)),
            ]
        })
        .collect();
    let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
    let (name_width, type_width) = (width(0), width(1));
    let mut current_level = None;
    for (i, (node, [name, pkg_type, dir])) in view.nodes.iter().zip(&rows).enumerate() {
        if current_level != Some(node.level) {
            current_level = Some(node.level);
            out.push_str(&format!("\nlevel {}\n", node.level));
        }
        let deps: Vec<Cow<'_, str>> = view.dependencies(i).iter().map(|&d| escaped(view.name(d))).collect();
        let mut line = format!("  {}  {}  {dir}", pad(name, name_width), pad(pkg_type, type_width));
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
