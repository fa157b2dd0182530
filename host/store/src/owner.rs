//! Which process runs a run, as the store keeps it: its machine, its pid and
//! when it started — so that a run whose process is gone is known as such,
//! and a pid used again by another process is not taken for it.

/// The process that runs a run: machine, pid, and when the process started
/// (so that a pid used again by another process is not taken for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    host: String,
    pid: i32,
    started: u64,
}

impl Owner {
    pub(crate) fn this_process() -> Owner {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        Owner { host: host_name(), pid, started: process_start(pid).unwrap_or_default() }
    }

    /// `host pid started`, as stored.
    pub(crate) fn parse(text: &str) -> Option<Owner> {
        let mut parts = text.rsplitn(3, ' ');
        let started = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        Some(Owner { host: parts.next()?.to_string(), pid, started })
    }

    /// Whether the owner is known to be dead: on this machine, and its pid is
    /// free or belongs to a process started at another time. A run of
    /// another machine sharing the folder is never judged from here.
    pub(crate) fn is_gone(&self) -> bool {
        self.host == host_name() && process_start(self.pid) != Some(self.started)
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.host, self.pid, self.started)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_string()).unwrap_or_default()
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}
