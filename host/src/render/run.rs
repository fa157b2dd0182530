//! `loktar run` on stdout — what would run (`--dry-run`), the summary table
//! and its JSON — and the run records of `loktar runs`.

use std::time::Duration;

use serde_json::json;

use super::pad;
use crate::events::{PackageOutcome, StageOutcome};
use crate::pipeline::plan::RunPlan;
use crate::pipeline::run::RunReport;
use crate::pipeline::stage::Stage;
use crate::store::{RunRow, StageRow};
use crate::terminal::escaped;
use crate::terminal::shown_path;
use crate::timefmt;

/// The packages in run order, with the stages each would go through.
pub fn dry_run(plan: &RunPlan) -> String {
    let (packages, concurrency) = (&plan.packages, plan.options.concurrency);
    let count = packages.len();
    let mut out =
        format!("would run {} {}, {concurrency} at once:\n", count, if count == 1 { "package" } else { "packages" });
    let names: Vec<_> = packages.iter().map(|package| escaped(package.name())).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (position, package) in packages.iter().enumerate() {
        let stages: Vec<String> = package
            .stages
            .iter()
            .filter(|plan| !plan.is_skipped())
            .map(|plan| format!("{} ({})", plan.stage, escaped(&plan.providers.join(", "))))
            .collect();
        let stages = if stages.is_empty() { "nothing to do".to_string() } else { stages.join(" → ") };
        let after = match package.dependencies.as_slice() {
            [] => String::new(),
            deps => {
                format!("   after {}", deps.iter().map(|&d| format!("`{}`", names[d])).collect::<Vec<_>>().join(", "))
            }
        };
        out.push_str(&format!("  {:>3}. {}  {stages}{after}\n", position + 1, pad(&names[position], width)));
    }
    out
}

/// A stage's cell in the summary table.
fn cell(outcome: &StageOutcome, duration: Duration) -> String {
    match outcome {
        StageOutcome::Passed { .. } | StageOutcome::Failed { .. } | StageOutcome::Cancelled => {
            format!("{} {}", outcome.name(), timefmt::duration(duration))
        }
        StageOutcome::Skipped { .. } => "skipped".to_string(),
    }
}

/// The summary table: one row per package, one column per stage, then the failures.
pub fn summary(report: &RunReport) -> String {
    let stages: Vec<Stage> = {
        let mut seen: Vec<Stage> =
            report.info.plan.packages.iter().flat_map(|p| p.stages.iter().map(|s| s.stage)).collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    };
    let mut rows: Vec<Vec<String>> = vec![
        ["package", "result"]
            .iter()
            .map(|s| (*s).to_string())
            .chain(stages.iter().map(|s| s.name().to_string()))
            .collect(),
    ];
    let mut notes = Vec::new();
    for package in &report.packages {
        let mut row = vec![package.name.clone(), package.outcome.name().to_string()];
        match &package.outcome {
            PackageOutcome::Skipped { .. } => row.push(package.outcome.detail()),
            _ => {
                for stage in &stages {
                    let found = package.stages.iter().find(|s| s.stage == *stage);
                    row.push(found.map_or_else(String::new, |s| cell(&s.outcome, s.duration)));
                }
            }
        }
        rows.push(row);
        for stage in &package.stages {
            if let StageOutcome::Failed { message, hint, .. } = &stage.outcome {
                let mut note = format!("{} {}: {}", escaped(&package.name), stage.stage, escaped(message));
                if let Some(hint) = hint {
                    note.push_str(&format!("\n  hint: {}", escaped(hint)));
                }
                if let Some(log) = &stage.log {
                    note.push_str(&format!("\n  log: {}", shown_path(log)));
                }
                notes.push(note);
            }
        }
    }
    for failure in &report.notify_failures {
        notes.push(format!("notify: {}", escaped(failure)));
    }
    let mut out = table(&rows);
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }
    let count = |name: &str| report.packages.iter().filter(|p| p.outcome.name() == name).count();
    let mut counts = Vec::new();
    for name in ["passed", "failed", "skipped", "cancelled"] {
        let n = count(name);
        if n > 0 || name == "passed" {
            counts.push(format!("{n} {name}"));
        }
    }
    out.push_str(&format!(
        "\nrun {} {} in {}: {} · logs in {} · `loktar runs show {}`\n",
        report.info.number,
        report.outcome.name(),
        timefmt::duration(report.duration),
        counts.join(", "),
        shown_path(&report.info.dir),
        report.info.number
    ));
    out
}

/// The summary as JSON.
pub fn json(report: &RunReport) -> String {
    let packages: Vec<serde_json::Value> = report
        .packages
        .iter()
        .map(|package| {
            let stages: Vec<serde_json::Value> = package
                .stages
                .iter()
                .map(|stage| {
                    let (message, hint) = match &stage.outcome {
                        StageOutcome::Failed { message, hint, .. } => (Some(message.clone()), hint.clone()),
                        other => (other.detail().map(str::to_string), None),
                    };
                    json!({
                        "stage": stage.stage,
                        "outcome": stage.outcome.name(),
                        "message": message,
                        "hint": hint,
                        "duration_ms": stage.duration.as_millis(),
                        "log": stage.log.as_ref().map(|p| p.display().to_string()),
                    })
                })
                .collect();
            let artifacts: Vec<serde_json::Value> = package
                .artifacts
                .iter()
                .map(|a| json!({"kind": a.kind, "name": a.name, "version": a.version, "location": a.location, "digest": a.digest}))
                .collect();
            let detail = package.outcome.detail();
            json!({
                "name": package.name,
                "outcome": package.outcome.name(),
                "detail": if detail.is_empty() { None } else { Some(detail) },
                "stages": stages,
                "artifacts": artifacts,
            })
        })
        .collect();
    let value = json!({
        "run": report.info.number,
        "outcome": report.outcome.name(),
        "duration_ms": report.duration.as_millis(),
        "concurrency": report.info.plan.options.concurrency,
        "log_dir": report.info.dir.display().to_string(),
        "packages": packages,
    });
    format!("{value:#}\n")
}

/// `loktar runs`: one line per run, newest first.
pub fn runs(rows: &[RunRow]) -> String {
    if rows.is_empty() {
        return "no runs yet: `loktar run` starts one\n".to_string();
    }
    let mut table_rows = vec![
        ["run", "started (UTC)", "result", "time", "packages", "failed", "selection", "commit"]
            .iter()
            .map(|s| (*s).to_string())
            .collect::<Vec<_>>(),
    ];
    for row in rows {
        table_rows.push(vec![
            row.id.to_string(),
            timefmt::datetime(row.started_ms),
            row.status.clone(),
            row.duration_ms.map_or_else(|| "-".to_string(), |ms| timefmt::duration(millis(ms))),
            row.packages.to_string(),
            row.failed.to_string(),
            row.selection.clone(),
            short_commit(row),
        ]);
    }
    table(&table_rows)
}

/// `loktar runs show`: the run, then each package's stages with their log files.
pub fn run_record(run: &RunRow, stages: &[StageRow]) -> String {
    let time = run
        .duration_ms
        .map_or_else(|| "still running or stopped abruptly".to_string(), |ms| timefmt::duration(millis(ms)));
    let mut out = format!(
        "run {}: {} · started {} UTC · {time}\n",
        run.id,
        escaped(&run.status),
        timefmt::datetime(run.started_ms)
    );
    out.push_str(&format!("selection: {} · commit {}", escaped(&run.selection), escaped(&short_commit(run))));
    if let Some(base) = &run.base {
        out.push_str(&format!(" · base {}", escaped(&base.chars().take(10).collect::<String>())));
    }
    out.push_str("\n\n");
    let mut rows =
        vec![["package", "stage", "result", "time", "log"].iter().map(|s| (*s).to_string()).collect::<Vec<_>>()];
    let mut details = Vec::new();
    for stage in stages {
        rows.push(vec![
            stage.package.clone(),
            stage.stage.clone().unwrap_or_else(|| "-".to_string()),
            stage.status.clone(),
            stage.duration_ms.map_or_else(String::new, |ms| timefmt::duration(millis(ms))),
            stage.log.as_deref().map_or_else(String::new, |log| shown_path(std::path::Path::new(log))),
        ]);
        if let Some(detail) = &stage.detail
            && stage.status != "passed"
        {
            let what = stage.stage.as_deref().map_or(stage.package.clone(), |s| format!("{} {s}", stage.package));
            // A failure's detail is its message, then its hint on a line of
            // its own: each line escaped, the hint indented as in the summary.
            let lines: Vec<_> = detail.split('\n').map(escaped).collect();
            details.push(format!("{}: {}", escaped(&what), lines.join("\n  ")));
        }
    }
    out.push_str(&table(&rows));
    if !details.is_empty() {
        out.push('\n');
        for detail in details {
            out.push_str(&detail);
            out.push('\n');
        }
    }
    out
}

fn short_commit(run: &RunRow) -> String {
    let commit: String = run.head.as_deref().unwrap_or("-").chars().take(10).collect();
    match &run.branch {
        Some(branch) => format!("{commit} ({branch})"),
        None => commit,
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or_default())
}

/// Left-aligned columns separated by two spaces; the last column is not
/// padded. Cells are shown escaped: most hold names, paths and messages.
fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<_>> = rows.iter().map(|row| row.iter().map(|cell| escaped(cell)).collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter(|r| r.len() > c + 1).map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, value) in row.iter().enumerate() {
            if c + 1 < row.len() {
                line.push_str(&pad(value, widths[c]));
                line.push_str("  ");
            } else {
                line.push_str(value);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
