//! Sharing the cores between Loktar's own work and the git processes it waits for.
//!
//! On a virtual machine with few cores, the scheduler often leaves a program
//! just spawned on the core of the thread that spawned it, even with another
//! core idle (an idle virtual CPU can look busy to it), and the two then take
//! turns for a scheduling slice (several milliseconds) or more. A plan waits for `git diff`, so every
//! such turn is lost for good. [`spawn_apart`] gives the thread that runs
//! git a core of its own, which the calling thread keeps off for as long as
//! it works beside it.

use std::marker::PhantomData;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// Starts `work` on a thread of its own, on another core than the calling
/// thread's, and keeps the calling thread off that core while the returned
/// [`Apart`] lives; processes the new thread starts run on its core too.
///
/// The new thread must start on the other core: a thread or process just
/// started may wait a whole scheduling slice on its parent's core before
/// the scheduler moves either, and a parent that waits for its child
/// (`posix_spawn` does) may then wait as long behind it. So this thread
/// moves to the other core, starts the new one there, which inherits that
/// core alone, and leaves it to it. On a single core there is nowhere to
/// go: `work` simply starts, and there is no [`Apart`].
pub fn spawn_apart<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    work: impl FnOnce() -> T + Send + 'scope,
) -> (std::thread::ScopedJoinHandle<'scope, T>, Option<Apart>) {
    let Some((original, other)) = another_core() else {
        return (scope.spawn(work), None);
    };
    let mut there = CpuSet::new();
    there.set(other);
    let mut elsewhere = original;
    elsewhere.unset(other);
    if sched_setaffinity(None, &there).is_err() {
        return (scope.spawn(work), None);
    }
    let handle = scope.spawn(work);
    // Nothing to undo if this fails: the thread keeps working, on one core.
    let _ = sched_setaffinity(None, &elsewhere);
    (handle, Some(Apart { original, _same_thread: PhantomData }))
}

/// The calling thread's cores, and one of them it is not running on.
fn another_core() -> Option<(CpuSet, usize)> {
    let original = sched_getaffinity(None).ok()?;
    let here = rustix::thread::sched_getcpu();
    let other = (0..CpuSet::MAX_CPU).find(|&core| core != here && original.is_set(core))?;
    Some((original, other))
}

/// While alive, keeps the calling thread off one core; dropping it restores
/// the cores the thread had.
#[derive(Debug)]
#[must_use = "the thread returns to every core when this is dropped"]
pub struct Apart {
    original: CpuSet,
    /// Affinity belongs to a thread: restored on the one that changed it.
    _same_thread: PhantomData<*const ()>,
}

impl Drop for Apart {
    fn drop(&mut self) {
        // Nothing to undo if this fails: the thread keeps working, on fewer cores.
        let _ = sched_setaffinity(None, &self.original);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_thread_gets_a_core_of_its_own_and_this_one_gets_every_core_back() {
        let before = sched_getaffinity(None).expect("affinity");
        std::thread::scope(|scope| {
            let (new_thread, apart) = spawn_apart(scope, || {
                let cores = sched_getaffinity(None).expect("affinity");
                // Processes it starts run on its core too.
                let output =
                    std::process::Command::new("sh").args(["-c", "grep Cpus_allowed_list /proc/self/status"]).output();
                (cores, String::from_utf8_lossy(&output.expect("sh runs").stdout).into_owned())
            });
            let (theirs, child) = new_thread.join().expect("thread");
            match apart {
                Some(apart) => {
                    let ours = sched_getaffinity(None).expect("affinity");
                    let core = (0..CpuSet::MAX_CPU).find(|&core| theirs.is_set(core)).expect("a core");
                    assert_eq!(theirs.count(), 1);
                    assert!(!ours.is_set(core) && before.is_set(core));
                    assert_eq!(ours.count() + 1, before.count());
                    assert_eq!(child.split_whitespace().last(), Some(core.to_string().as_str()), "{child}");
                    drop(apart);
                }
                // On a single core there is nowhere else to go.
                None => assert_eq!((before.count(), theirs), (1, before)),
            }
        });
        assert_eq!(sched_getaffinity(None).expect("affinity"), before);
    }
}
