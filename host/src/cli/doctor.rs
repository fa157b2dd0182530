//! `loktar doctor`: one line per check, ✓ or ✗, the fix under each ✗, and
//! exit code 1 when anything failed.

use std::process::ExitCode;

use super::{Done, ListFormat, Output, to_json};
use crate::app::context::Options;
use crate::app::doctor::{self, Check, Kind, Report};
use crate::diagnostic::Diagnostics;
use crate::terminal::escaped;

/// Packages named after a check, at most.
const SHOWN_PACKAGES: usize = 3;

/// Runs the checks and prints them.
pub(super) fn doctor(options: &Options, format: ListFormat, timeout_secs: u64) -> Result<Done, Diagnostics> {
    let report = doctor::examine(options, std::time::Duration::from_secs(timeout_secs))?;
    let code = if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) };
    let output = match format {
        ListFormat::Json => to_json(&report),
        ListFormat::Text => text(&report),
    };
    Ok(Done::printing(Output::Text(output), code))
}

fn text(report: &Report) -> String {
    let label = |check: &Check| {
        if check.kind == Kind::Configuration {
            check.subject.clone()
        } else if check.subject.is_empty() {
            check.kind.name().to_string()
        } else {
            format!("{} {}", check.kind.name(), escaped(&check.subject))
        }
    };
    let width = report.checks.iter().map(|check| label(check).chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for check in &report.checks {
        let mark = if check.ok { '✓' } else { '✗' };
        // Details and fixes may quote what a plugin, a server or a file said: escaped for the terminal.
        out.push_str(&format!("{mark} {:width$}  {}{}\n", label(check), escaped(&check.detail), needed_by(check)));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("  {:width$}  fix: {}\n", "", escaped(fix)));
        }
    }
    let failed = report.checks.iter().filter(|check| !check.ok).count();
    let count = report.checks.len();
    let plural = if count == 1 { "" } else { "s" };
    out.push_str(&format!("{count} check{plural}: {} passed, {failed} failed\n", count - failed));
    out
}

/// ` (for a, b and 2 more)`, or nothing.
fn needed_by(check: &Check) -> String {
    let packages = &check.needed_by;
    if packages.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = packages.iter().take(SHOWN_PACKAGES).map(|name| escaped(name).into_owned()).collect();
    let more = match packages.len().saturating_sub(SHOWN_PACKAGES) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("  (for {}{more})", shown.join(", "))
}
