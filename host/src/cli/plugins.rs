//! `loktar plugins`: every plugin the host knows, loaded and checked.

use std::collections::BTreeSet;

use crate::app::context::{Options, find_root, plugin_session};
use crate::blocking::wait_for;
use crate::config::{MANIFEST, Workspace, plugins};
use crate::diagnostic::Diagnostics;
use crate::render::plan::to_json;
use crate::runtime::{Origin, PluginListing, PluginSession, builtin_names};
use crate::settings::Settings;
use crate::terminal::escaped;

/// Lists the built-in plugins and those the host configuration adds.
pub(super) fn list(options: &Options, json: bool) -> Result<String, Diagnostics> {
    // Outside a repository only the user's configuration applies.
    let root = find_root(options.repo.as_deref()).unwrap_or_default();
    let mut settings = Settings::load(options.config.as_deref(), &root)?;
    // Inside a repository, its own plugins too, granted what the policy allows.
    if let Ok(source) = Workspace::read_source(&root, MANIFEST) {
        let declared = plugins::declared(&source)?;
        for note in plugins::grant(&mut settings, &root, &source, declared)? {
            tracing::warn!("{note}");
        }
    }
    let session = plugin_session(settings)?;
    let mut names: BTreeSet<String> = builtin_names().map(str::to_string).collect();
    names.extend(session.settings().plugins.keys().cloned());
    let listings = wait_for(listings(&session, names))?;
    Ok(if json { to_json(&listings) } else { text(&listings) })
}

async fn listings(session: &PluginSession, names: BTreeSet<String>) -> Vec<PluginListing> {
    let mut listings = Vec::new();
    for name in names {
        let settings = session.settings().plugins.get(&name).cloned().unwrap_or_default();
        let listing = match session.load(&name).await {
            Ok(plugin) => PluginListing {
                name,
                version: Some(plugin.version.clone()),
                roles: plugin.roles.clone(),
                requested: plugin.requested.iter().copied().collect(),
                granted: plugin.grants.capabilities().into_iter().collect(),
                source: source(&plugin.origin),
                error: None,
            },
            Err(error) => PluginListing {
                name,
                version: None,
                roles: settings.role.into_iter().collect(),
                requested: Vec::new(),
                granted: settings.capabilities.clone().unwrap_or_default(),
                source: match (&settings.path, &settings.declared_in) {
                    (Some(path), Some(_)) => source(&Origin::Repository(path.clone())),
                    (Some(path), None) => source(&Origin::Path(path.clone())),
                    (None, _) => source(&Origin::BuiltIn),
                },
                error: Some(error.problem.message),
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
        Origin::Repository(path) => format!("repository: {}", path.display()),
    }
}

fn text(listings: &[PluginListing]) -> String {
    let rows: Vec<[String; 6]> = listings
        .iter()
        .map(|l| {
            let caps = |c: &[crate::settings::Capability]| {
                if c.is_empty() { "-".to_string() } else { c.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ") }
            };
            // Names and versions come from plugins' own `describe()`: escaped for the terminal.
            [
                escaped(&l.name).into_owned(),
                l.version.as_deref().map_or_else(|| "-".into(), |v| escaped(v).into_owned()),
                if l.roles.is_empty() {
                    "-".into()
                } else {
                    l.roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
                },
                caps(&l.requested),
                caps(&l.granted),
                match &l.error {
                    Some(error) => format!("{}  (error: {})", escaped(&l.source), escaped(error)),
                    None => escaped(&l.source).into_owned(),
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
        // The last column is not padded: it may be long (a refusal naming many imports).
        let last = row.len() - 1;
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| if column == last { cell.clone() } else { format!("{cell:width$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
