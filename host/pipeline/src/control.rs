//! How a run is stopped from outside: its cancellation, the programs it
//! runs (for a caller that must stop them at once), and whether — and why —
//! it was interrupted. One per run; the front end that started the run
//! (a signal handler, a server that saw a newer push) holds it too.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use loktar_runtime::RunningPrograms;

/// The handle that stops one run.
#[derive(Debug, Default)]
pub struct RunControl {
    cancel: CancellationToken,
    programs: RunningPrograms,
    interrupted: AtomicBool,
    reason: OnceLock<String>,
}

impl RunControl {
    /// A run not stopped.
    pub fn new() -> RunControl {
        RunControl::default()
    }

    /// Interrupts the run: nothing new starts, running stages are cancelled
    /// (clean-up still runs), what had not passed ends `cancelled` — because
    /// of `reason`, when given — and the run ends `interrupted`. Returns
    /// whether it had been interrupted before (the first reason given stays).
    pub fn interrupt(&self, reason: Option<&str>) -> bool {
        // The reason first: whoever sees the cancellation sees why.
        if !self.interrupted.load(Ordering::SeqCst)
            && let Some(reason) = reason
        {
            let _ = self.reason.set(reason.to_string());
        }
        let before = self.interrupted.swap(true, Ordering::SeqCst);
        self.cancel.cancel();
        before
    }

    /// Whether the run was interrupted.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Why the run was interrupted, when its interrupter said.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// Cancelled when the run is: by an interruption, or by its own first failure with `fail_fast`.
    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The programs the run runs.
    pub fn programs(&self) -> &RunningPrograms {
        &self.programs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_interruption_cancels_and_gives_the_reason() {
        let control = RunControl::new();
        assert!(!control.is_interrupted() && !control.token().is_cancelled());
        assert!(!control.interrupt(Some("superseded by `abc`")));
        assert!(control.interrupt(Some("cancelled through the API")), "interrupted before");
        assert!(control.is_interrupted() && control.token().is_cancelled());
        assert_eq!(control.reason(), Some("superseded by `abc`"));
    }
}
