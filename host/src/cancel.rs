//! Cancelling a run: one [`Canceller`] held by whoever may stop the run (the
//! scheduler on a failure with `--fail-fast`, the signal handler), and a
//! [`Cancel`] token in every job and plugin call, which stop their work and
//! clean up when it fires.

use tokio::sync::watch;

/// Tells running jobs to stop; cloned into every job.
#[derive(Debug, Clone)]
pub struct Cancel(watch::Receiver<bool>);

impl Cancel {
    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the run is cancelled.
    pub async fn cancelled(&mut self) {
        // An error means the scheduler is gone: nothing will cancel any more.
        if self.0.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Cancels a run from outside (a signal handler, say).
#[derive(Debug, Clone)]
pub struct Canceller(watch::Sender<bool>);

impl Canceller {
    /// A canceller and the token its run's jobs watch.
    pub fn new() -> (Canceller, Cancel) {
        let (sender, receiver) = watch::channel(false);
        (Canceller(sender), Cancel(receiver))
    }

    /// Stops starting jobs and tells running ones to stop.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
}

impl Canceller {
    /// Another token watching this canceller.
    pub fn token(&self) -> Cancel {
        Cancel(self.0.subscribe())
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
}
