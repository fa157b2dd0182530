//! Writes each stage's log to `.loktar/runs/<run>/<package>/<stage>.log`,
//! ending with a line that says how the stage ended. Log lines hide secret
//! values when they are written; the ending hides them here.
//!
//! A log that cannot be written (a full disk) is reported to the run's
//! [`WriteHealth`] once, naming the file and the system's error, and is
//! then left alone: the stage fails for it at its [`Checkpoint`], and
//! nothing more is tried on that file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap as HashMap;

use super::{
    Checkpoint, EventKind, PackageName, RunEvent, RunInfo, StageOutcome, Subscriber, WriteFailure, WriteHealth,
};
use crate::stage::Stage;
use loktar_protocol::Source;
use loktar_runtime::stage_log::redact;

/// Writes the stage log files of a run.
#[derive(Debug)]
pub struct LogFiles {
    run: Arc<RunInfo>,
    open: HashMap<(PackageName, Stage), BufWriter<File>>,
    health: WriteHealth,
}

impl LogFiles {
    /// Writes the logs of `run`, in its folder; no files yet: they are made
    /// as stages start. What cannot be written is reported to `health`.
    pub fn new(run: Arc<RunInfo>, health: WriteHealth) -> LogFiles {
        LogFiles { run, open: HashMap::default(), health }
    }

    /// Makes the log file below the run folder (made link-free when the run
    /// started) with no link on the way, replacing any file of that name.
    fn create(&self, package: &str, stage: Stage) -> std::io::Result<BufWriter<File>> {
        let path = self.run.log_path(package, stage);
        let relative = path.strip_prefix(&self.run.dir).map_err(std::io::Error::other)?;
        let file = loktar_support::beneath::Folder::open(&self.run.dir)?
            .create_file(relative)
            .map_err(std::io::Error::other)?;
        Ok(BufWriter::new(file))
    }

    /// Reports that the log of `stage` of `package` could not be written and
    /// closes it without writing what it still buffers: the disk said no already.
    fn failed(&mut self, package: &PackageName, stage: Stage, error: &std::io::Error) {
        if let Some(file) = self.open.remove(&(package.clone(), stage)) {
            discard(file);
        }
        let path = self.run.log_path(package, stage);
        self.health.report(WriteFailure::stage_log(package.clone(), stage, path, error));
    }

    /// Writes out what the log of `stage` of `package` buffers.
    fn flush(&mut self, package: &PackageName, stage: Stage) {
        let flushed = match self.open.get_mut(&(package.clone(), stage)) {
            Some(file) => file.flush(),
            None => Ok(()),
        };
        if let Err(error) = flushed {
            self.failed(package, stage, &error);
        }
    }
}

impl Subscriber for LogFiles {
    /// Writes out what the open logs buffer, so that a reader following a
    /// log (the server's `?follow=true`) sees lines within a tick.
    fn tick(&mut self) {
        let failed: Vec<(PackageName, Stage, std::io::Error)> = self
            .open
            .iter_mut()
            .filter_map(|((package, stage), file)| file.flush().err().map(|error| (package.clone(), *stage, error)))
            .collect();
        for (package, stage, error) in failed {
            self.failed(&package, stage, &error);
        }
    }

    fn on_event(&mut self, event: &RunEvent) {
        match &event.kind {
            EventKind::StageStarted { package, stage } => match self.create(package, *stage) {
                Ok(file) => {
                    self.open.insert((package.clone(), *stage), file);
                }
                Err(error) => self.failed(package, *stage, &error),
            },
            EventKind::Log { package, stage, line } => {
                if let Some(file) = self.open.get_mut(&(package.clone(), *stage)) {
                    let marker = if line.source == Source::Stderr { "stderr: " } else { "" };
                    if let Err(error) = writeln!(file, "{marker}{}", line.text) {
                        self.failed(package, *stage, &error);
                    }
                }
            }
            EventKind::StageFinished { package, stage, outcome, duration_ms } => {
                if let Some(mut file) = self.open.remove(&(package.clone(), *stage)) {
                    let time = loktar_support::timefmt::duration(Duration::from_millis(*duration_ms));
                    let ending = match outcome {
                        StageOutcome::Failed { message, hint, .. } => {
                            let hint = hint.as_ref().map(|h| format!("\n-- hint: {h}")).unwrap_or_default();
                            format!("-- loktar: {stage} failed after {time}: {message}{hint}")
                        }
                        other => format!("-- loktar: {stage} {} after {time}", other.name()),
                    };
                    if let Err(error) = writeln!(file, "{}", redact(&ending)).and_then(|()| file.flush()) {
                        discard(file);
                        self.failed(package, *stage, &error);
                    }
                }
            }
            EventKind::RunStarted { .. } | EventKind::PackageFinished { .. } | EventKind::RunFinished { .. } => {}
        }
    }

    fn checkpoint(&mut self, at: Checkpoint) {
        match at {
            Checkpoint::Stage { package, stage } => self.flush(&package, stage),
            Checkpoint::Run => {
                let open: Vec<(PackageName, Stage)> = self.open.keys().cloned().collect();
                for (package, stage) in open {
                    self.flush(&package, stage);
                }
            }
        }
    }
}

/// Closes `file` without another try at writing what it buffers (dropping
/// a `BufWriter` would try, and ignore the error).
fn discard(file: BufWriter<File>) {
    let (file, _unwritten) = file.into_parts();
    drop(file);
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::events::RunId;
    use loktar_protocol::{Level, Line};

    fn run_in(dir: &std::path::Path) -> Arc<RunInfo> {
        let plan = crate::plan::RunPlan::of_names(dir, &["pet_api"]);
        Arc::new(RunInfo::new(1, SystemTime::now(), plan, dir.to_path_buf(), None))
    }

    fn event(seq: u64, kind: EventKind) -> RunEvent {
        let at = time::OffsetDateTime::now_utc();
        RunEvent { schema_version: crate::events::SCHEMA_VERSION, run_id: RunId::new("r"), seq, at, kind }
    }

    fn pet_api() -> PackageName {
        PackageName::from("pet_api")
    }

    fn line(text: &str) -> RunEvent {
        let line = Line { source: Source::Program, level: Level::Info, text: text.into() };
        event(1, EventKind::Log { package: pet_api(), stage: Stage::Test, line })
    }

    #[test]
    fn a_log_that_cannot_be_written_is_reported_once_naming_the_file() {
        let dir = tempfile::tempdir().expect("a temp dir");
        // The package's folder is a file: its log cannot be made.
        std::fs::write(dir.path().join("pet_api"), "in the way").expect("a file");
        let health = WriteHealth::new();
        let mut logs = LogFiles::new(run_in(dir.path()), health.clone());
        logs.on_event(&event(0, EventKind::StageStarted { package: pet_api(), stage: Stage::Test }));
        logs.on_event(&line("hello"));
        logs.checkpoint(Checkpoint::Stage { package: pet_api(), stage: Stage::Test });
        let failure = health.stage_failure("pet_api", Stage::Test).expect("the failure is reported");
        let path = dir.path().join("pet_api/test.log");
        assert!(
            failure.to_string().starts_with(&format!("cannot write the stage log `{}`: ", path.display())),
            "{failure}"
        );
        assert_eq!(health.failures().len(), 1);
        assert!(health.stage_failure("pet_api", Stage::Build).is_none());
    }

    #[test]
    fn a_full_device_fails_at_the_checkpoint_as_a_full_disk() {
        // `/dev/full` answers every write with `ENOSPC`, as a full disk does.
        let full = File::options().write(true).open("/dev/full").expect("open /dev/full");
        let dir = tempfile::tempdir().expect("a temp dir");
        let health = WriteHealth::new();
        let mut logs = LogFiles::new(run_in(dir.path()), health.clone());
        logs.open.insert((pet_api(), Stage::Test), BufWriter::new(full));
        logs.on_event(&line("hello"));
        assert!(health.is_healthy(), "the line is only buffered so far");
        logs.checkpoint(Checkpoint::Stage { package: pet_api(), stage: Stage::Test });
        let failure = health.stage_failure("pet_api", Stage::Test).expect("the failure is reported");
        assert!(matches!(failure, WriteFailure::StageLog { full: true, .. }), "{failure:?}");
        assert!(failure.to_string().ends_with("No space left on device (os error 28)"), "{failure}");
        // The file is left alone from then on: its ending is not tried again.
        assert!(logs.open.is_empty());
        let outcome = StageOutcome::Passed { summary: None };
        let finished = EventKind::StageFinished { package: pet_api(), stage: Stage::Test, outcome, duration_ms: 0 };
        logs.on_event(&event(2, finished));
        assert_eq!(health.failures().len(), 1);
    }
}
