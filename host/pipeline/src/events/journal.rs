//! Keeps a run's events — all but its log lines, which the stage logs hold —
//! as JSON lines in `<run folder>/events.jsonl`, each written out as it
//! comes: a server replays them (`GET /api/runs/{id}/events`) from the
//! beginning or from any event, and they outlive the process. A run
//! started again (a server resuming it) appends its new events: the
//! journal only grows.
//!
//! A journal that cannot be written (a full disk) is reported to the run's
//! [`WriteHealth`] once and then left alone.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use super::{EventKind, RunEvent, RunInfo, Subscriber, WriteFailure, WriteHealth};

/// The journal's file name in the run folder.
pub const JOURNAL: &str = "events.jsonl";

/// Writes a run's journal.
#[derive(Debug)]
pub struct Journal {
    file: Option<File>,
    path: PathBuf,
    health: WriteHealth,
}

impl Journal {
    /// Opens the journal of `run` in its folder (made link-free when the
    /// run began) to append to it, refusing a link in its place.
    pub fn new(run: &RunInfo, health: WriteHealth) -> Journal {
        use std::os::unix::fs::OpenOptionsExt;
        let path = run.dir.join(JOURNAL);
        let made = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path);
        let mut journal = Journal { file: None, path, health };
        match made {
            Ok(file) => journal.file = Some(file),
            Err(error) => journal.failed(&error),
        }
        journal
    }

    fn failed(&mut self, error: &std::io::Error) {
        self.file = None;
        let message = format!("its events `{}`: {error}", self.path.display());
        self.health.report(WriteFailure::Record { message });
    }
}

impl Subscriber for Journal {
    fn on_event(&mut self, event: &RunEvent) {
        if matches!(event.kind, EventKind::Log { .. }) {
            return;
        }
        let Some(file) = &mut self.file else { return };
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(error) => return self.failed(&std::io::Error::other(error)),
        };
        line.push(b'\n');
        if let Err(error) = file.write_all(&line) {
            self.failed(&error);
        }
    }
}
