//! Progress on stderr. Every stage start and end is one timestamped line,
//! suited to CI logs; a failed stage also shows its last log lines (each
//! cut to [`TAIL_LINE`] bytes: a flood of one giant line stays in its log
//! file). On a terminal a live footer below those lines shows what runs now
//! (package, stage, elapsed) and the overall counts. Secret values are
//! hidden from everything it prints, and control characters escaped.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anstyle::Style;

use super::{EventKind, PackageName, PackageOutcome, RunEvent, RunInfo, RunOutcome, StageOutcome, Subscriber};
use crate::stage::Stage;
use loktar_runtime::stage_log::redact;
use loktar_support::terminal::{CYAN, DIM, GREEN, RED, YELLOW, escaped, painted};
use loktar_support::timefmt;

/// Log lines shown under a failed stage.
const TAIL: usize = 15;

/// Bytes of one log line shown under a failed stage.
const TAIL_LINE: usize = 500;

/// The progress display.
#[derive(Debug)]
pub struct Console {
    live: bool,
    color: bool,
    run: Arc<RunInfo>,
    /// Stages running now, in start order.
    running: Vec<(PackageName, Stage, Instant)>,
    /// The last lines of each running stage.
    tails: Vec<((PackageName, Stage), VecDeque<String>)>,
    finished: usize,
    failed: usize,
    /// Lines of the live footer drawn last time.
    footer: usize,
    dirty: bool,
}

impl Console {
    /// Shows the progress of `run`. `live`: draw the footer (stderr is a
    /// terminal); `color`: ANSI colours.
    pub fn new(run: Arc<RunInfo>, live: bool, color: bool) -> Console {
        Console {
            live,
            color,
            run,
            running: Vec::new(),
            tails: Vec::new(),
            finished: 0,
            failed: 0,
            footer: 0,
            dirty: false,
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        painted(self.color, style, text)
    }

    /// Prints lines above the footer.
    fn print(&mut self, lines: &[String]) {
        let mut out = std::io::stderr().lock();
        let mut text = self.erase_footer();
        let stamp = self.paint(DIM, &timefmt::time_of_day(SystemTime::now()));
        for line in lines {
            text.push_str(&format!("{stamp} {line}\n"));
        }
        let _ = out.write_all(text.as_bytes());
        self.dirty = true;
    }

    fn erase_footer(&mut self) -> String {
        let erase = if self.footer > 0 { format!("\x1b[{}F\x1b[J", self.footer) } else { String::new() };
        self.footer = 0;
        erase
    }

    fn draw_footer(&mut self) {
        if !self.live {
            return;
        }
        let total = self.run.plan.packages.len();
        let width = terminal_width();
        let mut lines = Vec::new();
        for (package, stage, started) in &self.running {
            let elapsed = timefmt::duration(started.elapsed());
            let line = format!("  ▸ {:<24} {:<8} {elapsed}", escaped(package), stage.name());
            lines.push(line.chars().take(width).collect::<String>());
        }
        let failed = if self.failed > 0 { format!(", {} failed", self.failed) } else { String::new() };
        lines.push(format!("  [{}/{total}] {} running{failed}", self.finished, self.running.len()));
        let mut text = self.erase_footer();
        for line in &lines {
            text.push_str(&self.paint(CYAN, line));
            text.push('\n');
        }
        self.footer = lines.len();
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
        self.dirty = false;
    }

    fn stage_finished(&mut self, package: &PackageName, stage: Stage, outcome: &StageOutcome, duration_ms: u64) {
        self.running.retain(|(p, s, _)| (p, *s) != (package, stage));
        let tail = self
            .tails
            .iter()
            .position(|((p, s), _)| (p, *s) == (package, stage))
            .map(|at| self.tails.remove(at).1)
            .unwrap_or_default();
        let name = escaped(package).into_owned();
        let time = timefmt::duration(Duration::from_millis(duration_ms));
        let mut lines = Vec::new();
        match outcome {
            StageOutcome::Passed { summary } => {
                let summary = summary.as_deref().map(|s| format!(" — {}", shown(s))).unwrap_or_default();
                lines.push(format!("{} {name}: {stage} passed in {time}{summary}", self.paint(GREEN, "✓")));
            }
            // The summary shows them; a line each would bury what ran.
            StageOutcome::Skipped { .. } => return,
            StageOutcome::Cancelled => {
                lines.push(format!("{} {name}: {stage} cancelled after {time}", self.paint(YELLOW, "⊘")));
            }
            StageOutcome::Failed { message, hint, .. } => {
                let message = shown(message);
                lines.push(format!("{} {name}: {stage} failed in {time}: {message}", self.paint(RED, "✗")));
                if let Some(hint) = hint {
                    lines.push(format!("    hint: {}", shown(hint)));
                }
                if !tail.is_empty() {
                    let log = loktar_support::terminal::shown_path(&self.run.log_path(package, stage));
                    lines.push(format!("    last lines of {log}:"));
                    lines.extend(tail.iter().map(|line| format!("    │ {}", escaped(line))));
                }
            }
        }
        self.print(&lines);
    }
}

impl Subscriber for Console {
    fn on_event(&mut self, event: &RunEvent) {
        match &event.kind {
            EventKind::RunStarted { packages, .. } => {
                let count = packages.len();
                let packages = if count == 1 { "1 package".to_string() } else { format!("{count} packages") };
                self.print(&[format!(
                    "run {}: {packages}, {} at once, logs in {}",
                    self.run.number,
                    self.run.plan.options.concurrency,
                    loktar_support::terminal::shown_path(&self.run.dir)
                )]);
            }
            EventKind::StageStarted { package, stage } => {
                self.running.push((package.clone(), *stage, Instant::now()));
                self.tails.push(((package.clone(), *stage), VecDeque::new()));
                if !self.live {
                    self.print(&[format!("  {}: {stage} started", escaped(package))]);
                }
                self.dirty = true;
            }
            EventKind::Log { package, stage, line } => {
                if let Some((_, tail)) = self.tails.iter_mut().find(|((p, s), _)| (p, s) == (package, stage)) {
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(shortened(&line.text));
                }
            }
            EventKind::StageFinished { package, stage, outcome, duration_ms } => {
                self.stage_finished(package, *stage, outcome, *duration_ms);
            }
            EventKind::PackageFinished { package, outcome, .. } => {
                self.finished += 1;
                match outcome {
                    PackageOutcome::Failed { .. } => self.failed += 1,
                    PackageOutcome::Skipped { dependency } => {
                        let line = format!(
                            "{} {}: skipped: dependency `{}` failed",
                            self.paint(YELLOW, "⊘"),
                            escaped(package),
                            escaped(dependency)
                        );
                        self.print(&[line]);
                    }
                    PackageOutcome::Passed | PackageOutcome::Cancelled { .. } => {}
                }
            }
            EventKind::RunFinished { outcome, duration_ms, .. } => {
                self.live = false;
                let (style, word) = match outcome {
                    RunOutcome::Passed => (GREEN, "passed"),
                    RunOutcome::Failed => (RED, "failed"),
                    RunOutcome::Interrupted => (YELLOW, "was interrupted"),
                };
                let took = timefmt::duration(Duration::from_millis(*duration_ms));
                let line = self.paint(style, &format!("run {} {word} after {took}", self.run.number));
                self.print(&[line]);
                let erase = self.erase_footer();
                let _ = std::io::stderr().lock().write_all(erase.as_bytes());
            }
        }
        if self.live && self.dirty {
            self.draw_footer();
        }
    }

    fn tick(&mut self) {
        if self.live && !self.running.is_empty() {
            self.draw_footer();
        }
    }
}

/// A plugin's text as shown: secrets hidden first (a multi-line secret is
/// found across its newlines), then control characters escaped.
fn shown(text: &str) -> String {
    escaped(&redact(text)).into_owned()
}

/// A log line as shown under a failed stage: at most [`TAIL_LINE`] bytes.
/// (Log lines hide secrets already, when they are written.)
fn shortened(text: &str) -> String {
    if text.len() <= TAIL_LINE {
        return text.to_string();
    }
    let mut end = TAIL_LINE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// Columns of the terminal (`COLUMNS`), else 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100).max(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tail_lines_are_cut_on_a_character_boundary() {
        assert_eq!(shortened("short"), "short");
        let long = format!("{}é{}", "x".repeat(TAIL_LINE - 1), "y".repeat(1000));
        let shown = shortened(&long);
        assert_eq!(shown, format!("{}… (1002 more bytes)", "x".repeat(TAIL_LINE - 1)));
    }
}
