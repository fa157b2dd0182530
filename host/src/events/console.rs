//! Progress on stderr. Every stage start and end is one timestamped line,
//! suited to CI logs; a failed stage also shows its last log lines (each
//! cut to [`TAIL_LINE`] bytes: a flood of one giant line stays in its log
//! file). On a terminal a live footer below those lines shows what runs now
//! (package, stage, elapsed) and the overall counts. Secret values are
//! hidden from everything it prints, and control characters escaped.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anstyle::Style;

use super::{Event, PackageOutcome, RunInfo, RunOutcome, StageOutcome, Subscriber};
use crate::pipeline::stage::Stage;
use crate::runtime::stage_log::redact;
use crate::terminal::{CYAN, DIM, GREEN, RED, YELLOW, escaped, painted};
use crate::timefmt;

/// Log lines shown under a failed stage.
const TAIL: usize = 15;

/// Bytes of one log line shown under a failed stage.
const TAIL_LINE: usize = 500;

/// The progress display.
#[derive(Debug)]
pub struct Console {
    live: bool,
    color: bool,
    run: Option<Arc<RunInfo>>,
    /// Stages running now, in start order.
    running: Vec<(usize, Stage, Instant)>,
    /// The last lines of each running stage.
    tails: Vec<((usize, Stage), VecDeque<String>)>,
    finished: usize,
    failed: usize,
    /// Lines of the live footer drawn last time.
    footer: usize,
    dirty: bool,
}

impl Console {
    /// `live`: draw the footer (stderr is a terminal); `color`: ANSI colours.
    pub fn new(live: bool, color: bool) -> Console {
        Console {
            live,
            color,
            run: None,
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

    fn name(&self, package: usize) -> Cow<'_, str> {
        escaped(self.run.as_ref().map_or("?", |run| run.package_name(package)))
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
        if !self.live || self.run.is_none() {
            return;
        }
        let total = self.run.as_ref().map_or(0, |run| run.plan.packages.len());
        let width = terminal_width();
        let mut lines = Vec::new();
        for (package, stage, started) in &self.running {
            let elapsed = timefmt::duration(started.elapsed());
            let line = format!("  ▸ {:<24} {:<8} {elapsed}", self.name(*package), stage.name());
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

    fn stage_finished(&mut self, package: usize, stage: Stage, outcome: &StageOutcome, duration: std::time::Duration) {
        self.running.retain(|(p, s, _)| (*p, *s) != (package, stage));
        let tail = self
            .tails
            .iter()
            .position(|(key, _)| *key == (package, stage))
            .map(|at| self.tails.remove(at).1)
            .unwrap_or_default();
        let name = self.name(package).to_string();
        let time = timefmt::duration(duration);
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
                    let log = self.run.as_ref().map(|run| crate::render::shown_path(&run.log_path(package, stage)));
                    lines.push(format!("    last lines of {}:", log.unwrap_or_default()));
                    lines.extend(tail.iter().map(|line| format!("    │ {}", escaped(line))));
                }
            }
        }
        self.print(&lines);
    }
}

impl Subscriber for Console {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(run) => {
                self.run = Some(run.clone());
                let count = run.plan.packages.len();
                let packages = if count == 1 { "1 package".to_string() } else { format!("{count} packages") };
                self.print(&[format!(
                    "run {}: {packages}, {} at once, logs in {}",
                    run.id,
                    run.plan.options.concurrency,
                    crate::render::shown_path(&run.dir)
                )]);
            }
            Event::StageStarted { package, stage } => {
                self.running.push((*package, *stage, Instant::now()));
                self.tails.push(((*package, *stage), VecDeque::new()));
                if !self.live {
                    let name = self.name(*package).to_string();
                    self.print(&[format!("  {name}: {stage} started")]);
                }
                self.dirty = true;
            }
            Event::Log { package, stage, line } => {
                if let Some((_, tail)) = self.tails.iter_mut().find(|(key, _)| *key == (*package, *stage)) {
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(shortened(&line.text));
                }
            }
            Event::StageFinished { package, stage, outcome, duration } => {
                self.stage_finished(*package, *stage, outcome, *duration);
            }
            Event::PackageFinished { package, outcome } => {
                self.finished += 1;
                let name = self.name(*package).to_string();
                match outcome {
                    PackageOutcome::Failed { .. } => self.failed += 1,
                    PackageOutcome::Skipped { dependency } => {
                        let line = format!(
                            "{} {name}: skipped: dependency `{}` failed",
                            self.paint(YELLOW, "⊘"),
                            escaped(dependency)
                        );
                        self.print(&[line]);
                    }
                    PackageOutcome::Passed | PackageOutcome::Cancelled => {}
                }
            }
            Event::RunFinished { outcome, duration } => {
                self.live = false;
                let (style, word) = match outcome {
                    RunOutcome::Passed => (GREEN, "passed"),
                    RunOutcome::Failed => (RED, "failed"),
                    RunOutcome::Interrupted => (YELLOW, "was interrupted"),
                };
                let id = self.run.as_ref().map_or(0, |run| run.id);
                let line = self.paint(style, &format!("run {id} {word} after {}", timefmt::duration(*duration)));
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
