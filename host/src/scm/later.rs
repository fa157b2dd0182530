//! Git commands that can wait for a free core.
//!
//! Reading a range takes one long command, `git diff`, and short ones beside
//! it (`git log` for the commit messages, `git rev-parse` for the names).
//! Started all at once on a two-core machine, the short ones and the caller's
//! own work (reading loktar.json) take turns with the diff, which then ends
//! later: the plan waits for the diff, so every millisecond lost there is
//! lost for good. Queued in [`Later`], the short commands start when the
//! caller's thread has nothing left to do, or when their output is needed,
//! whichever comes first.

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
    /// Whether the caller has nothing left to do: a command then starts when queued.
    caller_idle: bool,
    command: Command,
}

#[derive(Debug)]
enum Command {
    None,
    /// Waiting for the caller to go idle, or for its output to be needed.
    Queued(Git, Vec<String>),
    Started(Result<Pending, Diagnostic>),
}

impl Later {
    /// Commands start as soon as they are queued: for callers with nothing
    /// else to do meanwhile.
    pub fn now() -> Later {
        Later { state: Mutex::new(State { caller_idle: true, command: Command::None }) }
    }

    /// Commands wait for [`Later::caller_idle`] or for their output.
    pub fn when_caller_idle() -> Later {
        Later { state: Mutex::new(State { caller_idle: false, command: Command::None }) }
    }

    /// Says that the caller's thread is about to wait: a queued command starts
    /// now, and commands queued from now on start at once.
    pub fn caller_idle(&self) {
        let mut state = self.lock();
        state.caller_idle = true;
        if let Command::Queued(git, args) = &state.command {
            state.command = Command::Started(start(git, args));
        }
    }

    /// Queues `git args…`, or starts it at once when the caller is idle.
    pub(super) fn queue(&self, git: &Git, args: &[&str]) -> Queued<'_> {
        let mut state = self.lock();
        state.command = if state.caller_idle {
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
    fn a_queued_command_waits_for_the_caller_to_go_idle() {
        let git = Git::new(Path::new("."));
        let later = Later::when_caller_idle();
        let queued = later.queue(&git, &["--version"]);
        assert!(matches!(later.lock().command, Command::Queued(..)));
        later.caller_idle();
        assert!(is_started(&later));
        assert!(version(queued).starts_with("git version"));
        // Once idle, the caller stays idle.
        let again = later.queue(&git, &["--version"]);
        assert!(is_started(&later));
        assert!(version(again).starts_with("git version"));
    }

    #[test]
    fn a_command_whose_output_is_needed_starts_while_the_caller_is_busy() {
        let git = Git::new(Path::new("."));
        let later = Later::when_caller_idle();
        assert!(version(later.queue(&git, &["--version"])).starts_with("git version"));
        assert!(matches!(later.lock().command, Command::None));
        let _next = later.queue(&git, &["--version"]);
        assert!(matches!(later.lock().command, Command::Queued(..)), "the caller is still busy");
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
