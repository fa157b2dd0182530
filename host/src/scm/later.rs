//! Git commands that wait for the caller's word to start.
//!
//! Reading a range takes one long command, `git diff`, and a short one
//! beside it, `git log` for the commit messages. Started together, both
//! begin on the same core and the log takes turns with the diff there: the
//! plan waits for the diff, so every millisecond lost there is lost for
//! good. Queued in [`Later`], the log starts when the caller releases it —
//! from its own core, once it has time to spare for it — or when its output
//! is needed, whichever comes first.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::git::{Git, Pending};
use crate::diagnostic::Diagnostic;

/// When a queued git command starts: see the module documentation.
#[derive(Debug)]
pub struct Later {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Whether the caller has released the queue: a command then starts when queued.
    released: bool,
    command: Command,
}

#[derive(Debug)]
enum Command {
    None,
    /// Waiting for the release, or for its output to be needed.
    Queued(Git, Vec<String>),
    Started(Result<Pending, Diagnostic>),
}

impl Later {
    /// Commands start as soon as they are queued: for callers with nothing
    /// else to do meanwhile.
    pub fn now() -> Later {
        Later { state: Mutex::new(State { released: true, command: Command::None }) }
    }

    /// Commands wait for [`Later::release`] or for their output.
    pub fn when_released() -> Later {
        Later { state: Mutex::new(State { released: false, command: Command::None }) }
    }

    /// Lets queued commands run: a queued command starts now, and commands
    /// queued from now on start at once.
    pub fn release(&self) {
        let mut state = self.lock();
        state.released = true;
        if let Command::Queued(git, args) = &state.command {
            state.command = Command::Started(start(git, args));
        }
    }

    /// Queues `git args…`, or starts it at once when the queue is released.
    pub(super) fn queue(&self, git: &Git, args: &[&str]) -> Queued<'_> {
        let mut state = self.lock();
        state.command = if state.released {
            Command::Started(git.start(args))
        } else {
            Command::Queued(git.clone(), args.iter().map(|arg| (*arg).to_string()).collect())
        };
        Queued { later: self }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a thread panicked holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A command in [`Later`]'s queue.
#[must_use = "a queued command runs only once its output is asked for"]
pub(super) struct Queued<'a> {
    later: &'a Later,
}

impl Queued<'_> {
    /// The command, started now if it is still waiting.
    pub(super) fn started(self) -> Result<Pending, Diagnostic> {
        let command = std::mem::replace(&mut self.later.lock().command, Command::None);
        match command {
            Command::Queued(git, args) => start(&git, &args),
            Command::Started(started) => started,
            Command::None => Err(Diagnostic::new("internal error: a queued git command was lost")),
        }
    }
}

fn start(git: &Git, args: &[String]) -> Result<Pending, Diagnostic> {
    git.start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn is_started(later: &Later) -> bool {
        matches!(later.lock().command, Command::Started(Ok(_)))
    }

    fn version(queued: Queued<'_>) -> String {
        let output = queued.started().expect("git starts").finish().expect("git runs");
        String::from_utf8_lossy(&output).into_owned()
    }

    #[test]
    fn a_queued_command_waits_for_the_release() {
        let git = Git::new(Path::new("."));
        let later = Later::when_released();
        let queued = later.queue(&git, &["--version"]);
        assert!(matches!(later.lock().command, Command::Queued(..)));
        later.release();
        assert!(is_started(&later));
        assert!(version(queued).starts_with("git version"));
        // Once released, commands start when queued.
        let again = later.queue(&git, &["--version"]);
        assert!(is_started(&later));
        assert!(version(again).starts_with("git version"));
    }

    #[test]
    fn a_command_whose_output_is_needed_starts_before_the_release() {
        let git = Git::new(Path::new("."));
        let later = Later::when_released();
        assert!(version(later.queue(&git, &["--version"])).starts_with("git version"));
        assert!(matches!(later.lock().command, Command::None));
        let _next = later.queue(&git, &["--version"]);
        assert!(matches!(later.lock().command, Command::Queued(..)), "still not released");
    }

    #[test]
    fn now_starts_commands_when_queued() {
        let git = Git::new(Path::new("."));
        let later = Later::now();
        let queued = later.queue(&git, &["--version"]);
        assert!(is_started(&later));
        assert!(version(queued).starts_with("git version"));
    }
}
