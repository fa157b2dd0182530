//! `loktar plugins`: every plugin the host knows, loaded and checked; and
//! `loktar plugin check`: one component file, with no configuration.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use super::{Done, Output};
use crate::app::context::{Options, find_root, plugin_engine, plugin_session};
use crate::blocking::wait_for;
use crate::config::{MANIFEST, Workspace, plugins};
use crate::diagnostic::Diagnostics;
use crate::render::plan::to_json;
use crate::runtime::{
    ComponentReport, ImportUse, Origin, PluginListing, PluginSession, builtin_names, check_component,
};
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

/// `loktar plugin check FILE.wasm`: what the component is and needs; exit 2
/// when Loktar refuses it whatever the configuration.
pub(super) fn check(file: &Path, json: bool) -> Result<Done, Diagnostics> {
    let report = wait_for(check_component(plugin_engine()?, file))?.map_err(|e| Diagnostics::from(e.problem))?;
    let code = if report.refusal.is_some() { ExitCode::from(2) } else { ExitCode::SUCCESS };
    let text = if json { to_json(&report) } else { check_text(&report) };
    Ok(Done::printing(Output::Text(text), code))
}

fn check_text(report: &ComponentReport) -> String {
    let mut out = format!(
        "{}: a component of {:.1} MB\n",
        escaped(&report.path.display().to_string()),
        report.bytes as f64 / 1_000_000.0
    );
    if let Some(plugin) = &report.plugin {
        let names = |list: Vec<&str>| if list.is_empty() { "none".to_string() } else { list.join(", ") };
        out.push_str(&format!("plugin    {} {}\n", escaped(&plugin.name), escaped(&plugin.version)));
        out.push_str(&format!("roles     {}\n", names(plugin.roles.iter().map(|r| r.name()).collect())));
        out.push_str(&format!("declares  {}\n", names(plugin.declares.iter().map(|c| c.name()).collect())));
    }
    out.push_str(&format!("imports   {}\n", report.imports.len()));
    let imports: Vec<(String, String)> = report
        .imports
        .iter()
        .map(|import| {
            let what = match import.use_ {
                ImportUse::Provided => "provided".to_string(),
                ImportUse::Closed => "closed: every socket is denied at run time".to_string(),
                ImportUse::Capability { capability, declared } => format!(
                    "capability `{}`{}",
                    capability.name(),
                    match declared {
                        Some(true) => ", declared",
                        Some(false) => ", NOT declared",
                        None => "",
                    }
                ),
                ImportUse::Refused => "REFUSED: Loktar does not provide it".to_string(),
            };
            (escaped(&import.name).into_owned(), what)
        })
        .collect();
    let width = imports.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
    for (name, what) in &imports {
        out.push_str(&format!("  {name:width$}  {what}\n"));
    }
    match (&report.refusal, &report.plugin) {
        (Some(refusal), _) => out.push_str(&format!("refused: {}\n", escaped(refusal))),
        (None, Some(plugin)) => match loading_lines(report, plugin) {
            Some(lines) => out
                .push_str(&format!("\nIt loads once loktar.toml names it (nothing is granted by default):\n\n{lines}")),
            None => out.push_str("\nIts path is not UTF-8: loktar.toml cannot name it; move it to one that is\n"),
        },
        (None, None) => {}
    }
    out
}

/// The `loktar.toml` table that loads the plugin: its absolute path, its
/// first role and what it declares — written by the TOML library, so that
/// any name or path comes out quoted as TOML wants. `None` for a path TOML
/// cannot hold (not UTF-8).
fn loading_lines(report: &ComponentReport, plugin: &crate::runtime::Described) -> Option<String> {
    let path = std::path::absolute(&report.path).unwrap_or_else(|_| report.path.clone());
    let mut table = toml::Table::new();
    table.insert("path".into(), toml::Value::String(path.to_str()?.to_string()));
    if let Some(role) = plugin.roles.first() {
        table.insert("role".into(), toml::Value::String(role.name().to_string()));
    }
    if !plugin.declares.is_empty() {
        let declared = plugin.declares.iter().map(|c| toml::Value::String(c.name().to_string())).collect();
        table.insert("capabilities".into(), toml::Value::Array(declared));
    }
    let plugins = toml::Table::from_iter([(plugin.name.clone(), toml::Value::Table(table))]);
    let document = toml::Table::from_iter([("plugins".to_string(), toml::Value::Table(plugins))]);
    let mut lines = toml::to_string(&document).ok()?;
    if plugin.roles.len() > 1 {
        let others: Vec<&str> = plugin.roles[1..].iter().map(|r| r.name()).collect();
        lines.push_str(&format!("# it also plays: {}\n", others.join(", ")));
    }
    // TOML's strings and keys escape every control character a name or path may hold.
    Some(lines)
}
