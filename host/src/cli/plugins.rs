//! `loktar plugins`: every plugin the host knows, loaded and checked.

use std::collections::BTreeSet;

use super::context::{Options, block_on, find_root, plugin_runtime};
use crate::diagnostic::Diagnostics;
use crate::render::plan::to_json;
use crate::runtime::{Origin, PluginListing, Runtime, builtin_names, role_name};
use crate::settings::Settings;

/// Lists the built-in plugins and those the host configuration adds.
pub(super) fn list(options: &Options, json: bool) -> Result<String, Diagnostics> {
    // Outside a repository only the user's configuration applies.
    let root = find_root(options.repo.as_deref()).unwrap_or_default();
    let runtime = plugin_runtime(Settings::load(options.config.as_deref(), &root)?)?;
    let mut names: BTreeSet<String> = builtin_names().map(str::to_string).collect();
    names.extend(runtime.settings().plugins.keys().cloned());
    let listings = block_on(listings(&runtime, names))?;
    Ok(if json { to_json(&listings) } else { text(&listings) })
}

async fn listings(runtime: &Runtime, names: BTreeSet<String>) -> Vec<PluginListing> {
    let mut listings = Vec::new();
    for name in names {
        let settings = runtime.settings().plugins.get(&name).cloned().unwrap_or_default();
        let listing = match runtime.load(&name).await {
            Ok(plugin) => PluginListing {
                name,
                version: Some(plugin.version.clone()),
                roles: plugin.roles.clone(),
                requested: plugin.requested.iter().copied().collect(),
                granted: plugin.grants.capabilities.iter().copied().collect(),
                source: source(&plugin.origin),
                error: None,
            },
            Err(error) => PluginListing {
                name,
                version: None,
                roles: settings.role.into_iter().collect(),
                requested: Vec::new(),
                granted: settings.capabilities.clone().unwrap_or_default(),
                source: settings.path.as_ref().map_or(source(&Origin::BuiltIn), |p| source(&Origin::Path(p.clone()))),
                error: Some(error.message),
            },
        };
        listings.push(listing);
    }
    listings
}

fn source(origin: &Origin) -> String {
    match origin {
        Origin::BuiltIn => "built-in".to_string(),
        Origin::Path(path) => path.display().to_string(),
    }
}

fn text(listings: &[PluginListing]) -> String {
    let rows: Vec<[String; 6]> = listings
        .iter()
        .map(|l| {
            let caps = |c: &[crate::settings::Capability]| {
                if c.is_empty() { "-".to_string() } else { c.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ") }
            };
            [
                l.name.clone(),
                l.version.clone().unwrap_or_else(|| "-".into()),
                if l.roles.is_empty() {
                    "-".into()
                } else {
                    l.roles.iter().map(|r| role_name(*r)).collect::<Vec<_>>().join(", ")
                },
                caps(&l.requested),
                caps(&l.granted),
                match &l.error {
                    Some(error) => format!("{}  (error: {error})", l.source),
                    None => l.source.clone(),
                },
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "ROLES", "REQUESTS", "GRANTED", "SOURCE"].map(str::to_string);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
