//! Sharing the cores between Loktar's own work and the git processes it waits for.
//!
//! On a virtual machine with few cores, the scheduler often leaves a program
//! just spawned on the core of the thread that spawned it, even with another
//! core idle (an idle virtual CPU can look busy to it), and the two then take
//! turns for a scheduling slice (several milliseconds) or more. A plan waits for `git diff`, so every
//! such turn is lost for good. [`Apart`] moves the calling thread off the
//! child's core for as long as it works beside the child.
//!
//! Work that is needed only later, such as the short `git log` beside the
//! diff, should not take turns with either: [`yield_to_others`] makes a
//! thread, and the processes it starts, run only when a core has nothing
//! more urgent to do.

use std::marker::PhantomData;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// While alive, keeps the calling thread off one core; dropping it restores
/// the cores the thread had.
#[derive(Debug)]
#[must_use = "the thread returns to every core when this is dropped"]
pub struct Apart {
    original: CpuSet,
    /// Affinity belongs to a thread: restored on the one that changed it.
    _same_thread: PhantomData<*const ()>,
}

impl Apart {
    /// Moves the calling thread off the core the process `pid` last ran on;
    /// `None` when that core is unknown or is the only one the thread has.
    pub fn from_process(pid: u32) -> Option<Apart> {
        let original = sched_getaffinity(None).ok()?;
        let core = last_core(pid)?;
        if core >= CpuSet::MAX_CPU || !original.is_set(core) || original.count() < 2 {
            return None;
        }
        let mut elsewhere = original;
        elsewhere.unset(core);
        sched_setaffinity(None, &elsewhere).ok()?;
        Some(Apart { original, _same_thread: PhantomData })
    }
}

impl Apart {
    /// The cores the thread had before it moved. Threads it starts meanwhile
    /// inherit its fewer cores; see [`use_cores`].
    pub fn cores_before(&self) -> CpuSet {
        self.original
    }
}

/// Lets the calling thread run on `cores`. Failing leaves it where it was.
pub fn use_cores(cores: &CpuSet) {
    let _ = sched_setaffinity(None, cores);
}

impl Drop for Apart {
    fn drop(&mut self) {
        // Nothing to undo if this fails: the thread keeps working, on fewer cores.
        let _ = sched_setaffinity(None, &self.original);
    }
}

/// Gives the calling thread, and the processes it starts from now on, the
/// lowest priority (nice 19): they run when no other work wants the core.
/// For a thread that only waits and ends with its job: an unprivileged
/// thread cannot raise its priority again. Failing leaves the priority as it was.
pub fn yield_to_others() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), LOWEST_PRIORITY);
}

/// The highest nice value: the lowest priority.
const LOWEST_PRIORITY: i32 = 19;

/// The core a process last ran on: field 39 of `/proc/<pid>/stat`.
fn last_core(pid: u32) -> Option<usize> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    processor_field(&stat)
}

/// Field 39 of a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses, so fields are counted
/// from its last `)`: the next one is field 3.
fn processor_field(stat: &str) -> Option<usize> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(39 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_processor_after_an_odd_command_name() {
        let rest = (3..=52).map(|field| if field == 39 { "1".to_string() } else { format!("{}", field * 10) });
        let stat = format!("4242 (a b) (c)) {}\n", rest.collect::<Vec<_>>().join(" "));
        assert_eq!(processor_field(&stat), Some(1));
        assert_eq!(processor_field("4242 (short) S 1 2"), None);
    }

    #[test]
    fn the_thread_leaves_the_core_and_gets_every_core_back() {
        let before = sched_getaffinity(None).expect("affinity");
        let here = std::process::id();
        let core = last_core(here).expect("this process ran somewhere");
        match Apart::from_process(here) {
            Some(apart) => {
                let during = sched_getaffinity(None).expect("affinity");
                assert!(!during.is_set(core));
                assert_eq!(during.count() + 1, before.count());
                assert_eq!(apart.cores_before(), before);
                // A thread started meanwhile keeps apart too, until it takes the cores back.
                let cores_before = apart.cores_before();
                let (inherited, taken_back) = std::thread::spawn(move || {
                    let inherited = sched_getaffinity(None).expect("affinity");
                    use_cores(&cores_before);
                    (inherited, sched_getaffinity(None).expect("affinity"))
                })
                .join()
                .expect("thread");
                assert_eq!((inherited, taken_back), (during, before));
                drop(apart);
            }
            // A single core is kept: there is nowhere else to go.
            None => assert_eq!(before.count(), 1),
        }
        assert_eq!(sched_getaffinity(None).expect("affinity"), before);
    }

    #[test]
    fn a_yielding_thread_and_its_children_get_the_lowest_priority() {
        let niceness = |pid: Option<rustix::process::Pid>| rustix::process::getpriority_process(pid).expect("priority");
        let this_thread = niceness(None);
        let (thread, child) = std::thread::spawn(move || {
            yield_to_others();
            let output = std::process::Command::new("sh").args(["-c", "cut -d' ' -f19 /proc/self/stat"]).output();
            let child = String::from_utf8_lossy(&output.expect("sh runs").stdout).trim().parse::<i32>();
            (niceness(Some(rustix::thread::gettid())), child.expect("a nice value"))
        })
        .join()
        .expect("thread");
        assert_eq!((thread, child), (LOWEST_PRIORITY, LOWEST_PRIORITY));
        // Only that thread yielded.
        assert_eq!(niceness(None), this_thread);
    }
}
