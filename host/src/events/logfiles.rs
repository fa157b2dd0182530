//! Writes each stage's log to `.loktar/runs/<run>/<package>/<stage>.log`,
//! ending with a line that says how the stage ended. Log lines hide secret
//! values when they are written; the ending hides them here.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::{Event, RunInfo, StageOutcome, Subscriber};
use crate::pipeline::stage::Stage;
use crate::runtime::stage_log::{Source, redact};

/// Writes the stage log files of a run.
#[derive(Debug, Default)]
pub struct LogFiles {
    run: Option<Arc<RunInfo>>,
    open: HashMap<(usize, Stage), BufWriter<File>>,
    warned: bool,
}

impl LogFiles {
    /// No files yet: they are made as stages start.
    pub fn new() -> LogFiles {
        LogFiles::default()
    }

    fn create(&mut self, run: &RunInfo, package: usize, stage: Stage) -> std::io::Result<BufWriter<File>> {
        let path = run.log_path(package, stage);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        Ok(BufWriter::new(File::create(path)?))
    }

    fn warn(&mut self, error: &std::io::Error) {
        if !self.warned {
            self.warned = true;
            tracing::warn!("cannot write a stage log file: {error}");
        }
    }
}

impl Subscriber for LogFiles {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(run) => self.run = Some(run.clone()),
            Event::StageStarted { package, stage } => {
                let Some(run) = self.run.clone() else { return };
                match self.create(&run, *package, *stage) {
                    Ok(file) => {
                        self.open.insert((*package, *stage), file);
                    }
                    Err(error) => self.warn(&error),
                }
            }
            Event::Log { package, stage, line } => {
                if let Some(file) = self.open.get_mut(&(*package, *stage)) {
                    let marker = if line.source == Source::Stderr { "stderr: " } else { "" };
                    let written = writeln!(file, "{marker}{}", line.text);
                    if let Err(error) = written {
                        self.warn(&error);
                    }
                }
            }
            Event::StageFinished { package, stage, outcome, duration } => {
                if let Some(mut file) = self.open.remove(&(*package, *stage)) {
                    let time = crate::timefmt::duration(*duration);
                    let ending = match outcome {
                        StageOutcome::Failed { message, hint, .. } => {
                            let hint = hint.as_ref().map(|h| format!("\n-- hint: {h}")).unwrap_or_default();
                            format!("-- loktar: {stage} failed after {time}: {message}{hint}")
                        }
                        other => format!("-- loktar: {stage} {} after {time}", other.name()),
                    };
                    if let Err(error) = writeln!(file, "{}", redact(&ending)).and_then(|()| file.flush()) {
                        self.warn(&error);
                    }
                }
            }
            Event::PackageFinished { .. } | Event::RunFinished { .. } => {}
        }
    }
}
