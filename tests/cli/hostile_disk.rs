//! Hostile faults: a full disk, made for real with a small tmpfs (the tests
//! run as root, as CI does; without the right to mount they fail, never
//! skip). A stage whose log cannot be written fails, naming the file and
//! the system's error; the run ends `failed` with exit code 1, says so on
//! stderr with a hint to free space, and its record says `failed` when it
//! can still be written. A disk full before the run, or one that leaves
//! the record unfinished, ends with a clear error and a non-zero exit code —
//! never a panic, never `passed`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{Run, TestRepo, run_bounded};

/// The longest one `loktar` command may take here.
const DEADLINE: Duration = Duration::from_secs(120);

/// What the system says when a disk is full.
const NO_SPACE: &str = "No space left on device (os error 28)";

/// A tmpfs mounted on a folder, unmounted on drop.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`1m`) on the folder `at`, which must exist.
    #[track_caller]
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap_or_else(|e| panic!("these tests need root to mount a tmpfs: cannot run `mount`: {e}"));
        assert!(
            output.status.success(),
            "these tests need root to mount a tmpfs (CI runs them as root): `mount` said: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Tmpfs { at: at.to_path_buf() }
    }

    /// Gives it room: `size` (`8m`) from now on.
    #[track_caller]
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.at)
            .status()
            .expect("run `mount`");
        assert!(status.success(), "cannot grow the tmpfs at `{}`", self.at.display());
    }

    /// Fills it up with one file, until the system says it is full; returns that file.
    #[track_caller]
    fn fill(&self) -> PathBuf {
        let path = self.at.join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![b'x'; 64 * 1024];
        let error = loop {
            if let Err(error) = file.write_all(&chunk) {
                break error;
            }
        };
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "filling the tmpfs: {error}");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.at).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it open: detach it now, it goes when released.
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

/// A repository in `parent` with one package `flood` whose `make ci`
/// prints about 3 MB in 109-byte lines (under the log caps of 4096 KiB and
/// 65 536 lines, over what the disks here hold).
fn flood_repo(parent: &Path) -> TestRepo {
    let repo = TestRepo::new_in(parent);
    repo.write("loktar.json", r#"{ "packages": [ { "pkg_name": "flood", "test_type": "make" } ] }"#);
    repo.write("flood/Makefile", "ci:\n\t@yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz | head -c 3000000\n");
    repo.commit("a package that prints a lot");
    repo
}

/// Runs `loktar args…` in `repo`, killing it after [`DEADLINE`].
#[track_caller]
fn loktar(repo: &TestRepo, args: &[&str]) -> Run {
    run_bounded(repo.command().args(args), DEADLINE, |_| {})
}

/// The status `loktar runs` lists for run `id`.
#[track_caller]
fn listed_status(repo: &TestRepo, id: &str) -> String {
    let listed = loktar(repo, &["runs"]).ok();
    let line = listed
        .lines()
        .find(|line| line.split_whitespace().next() == Some(id))
        .unwrap_or_else(|| panic!("run {id} is not listed:\n{listed}"));
    let status = ["passed", "failed", "running", "interrupted"].into_iter().find(|status| line.contains(status));
    status.unwrap_or_else(|| panic!("run {id} has no status:\n{listed}")).to_string()
}

#[track_caller]
fn assert_no_panic(run: &Run) {
    assert!(!run.stderr.contains("panicked"), "loktar panicked:\n{}", run.stderr);
}

#[test]
fn a_stage_log_that_fills_the_disk_fails_the_stage_and_the_run() {
    let outer = tempfile::Builder::new().prefix("loktar-disk").tempdir().expect("temp dir");
    let _repo_disk = Tmpfs::mount(outer.path(), "32m");
    let repo = flood_repo(outer.path());
    // The logs go to a disk of their own, too small for them; the record has room.
    let runs = repo.path().join(".loktar/runs");
    std::fs::create_dir_all(&runs).expect("the runs folder");
    let logs_disk = Tmpfs::mount(&runs, "1m");

    let run = loktar(&repo, &["run", "--all"]);
    assert_no_panic(&run);
    let run = run.expect_code(1);
    let log = runs.join("1/flood/test.log");
    let named = format!("cannot write the stage log `{}`: {NO_SPACE}", log.display());
    assert!(run.stderr.contains("✗ flood: test failed in"), "{}", run.stderr);
    assert!(run.stderr.contains(&named), "stderr does not name the log and the error:\n{}", run.stderr);
    assert!(run.stderr.contains("run `1` failed: its logs or record could not be written"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: free space on the disk that holds"), "{}", run.stderr);
    assert!(run.stdout.contains("run 1 failed") && run.stdout.contains("0 passed, 1 failed"), "{}", run.stdout);
    // What fit was written: the log is not empty, the disk is full.
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    assert!(size > 512 * 1024, "the log holds {size} bytes");

    // The record had room: it says failed, and shows why.
    assert_eq!(listed_status(&repo, "1"), "failed");
    let shown = loktar(&repo, &["runs", "show", "1"]).ok();
    assert!(shown.contains("cannot write the stage log") && shown.contains(NO_SPACE), "{shown}");

    // With room again, the same run passes: nothing was left broken.
    logs_disk.grow("8m");
    let again = loktar(&repo, &["run", "--all"]);
    assert_no_panic(&again);
    again.expect_code(0);
    assert_eq!(listed_status(&repo, "2"), "passed");
}

#[test]
fn a_disk_full_before_the_run_is_a_clear_error() {
    let outer = tempfile::Builder::new().prefix("loktar-disk").tempdir().expect("temp dir");
    let disk = Tmpfs::mount(outer.path(), "8m");
    // One repository that never ran (no `.loktar` yet), one whose record exists.
    let fresh = flood_repo(outer.path());
    let used = flood_repo(outer.path());
    loktar(&used, &["run", "--all"]).expect_code(0);
    let filler = disk.fill();

    for (repo, shape) in [(&fresh, "a repository that never ran"), (&used, "a repository that ran before")] {
        let run = loktar(repo, &["run", "--all"]);
        assert_no_panic(&run);
        assert_ne!(run.code, 0, "{shape}: a run on a full disk passed:\n{}", run.stderr);
        assert!(run.stderr.contains("error: ") && run.stderr.contains(".loktar"), "{shape}: {}", run.stderr);
        let hint = format!("hint: free space on the disk that holds `{}`", repo.path().join(".loktar").display());
        assert!(run.stderr.contains(&hint), "{shape}: no hint to free space:\n{}", run.stderr);
        assert!(!run.stdout.contains("passed"), "{shape}: {}", run.stdout);
    }

    // Room again: nothing is listed as passed or running that did not pass, and runs work.
    std::fs::remove_file(filler).expect("free the space");
    let listed = loktar(&fresh, &["runs"]).ok();
    assert!(!listed.contains("passed") && !listed.contains("running"), "{listed}");
    assert_eq!(listed_status(&used, "1"), "passed");
    let listed = loktar(&used, &["runs"]).ok();
    let later = listed.lines().skip(1).filter(|line| !line.starts_with("1 "));
    assert!(later.into_iter().all(|line| !line.contains("passed") && !line.contains("running")), "{listed}");
}

#[test]
fn a_disk_that_fills_during_the_run_fails_it_even_when_the_record_cannot_be_finished() {
    let outer = tempfile::Builder::new().prefix("loktar-disk").tempdir().expect("temp dir");
    // The repository, its record and its logs on one disk the log fills.
    let _disk = Tmpfs::mount(outer.path(), "2m");
    let repo = flood_repo(outer.path());

    let run = loktar(&repo, &["run", "--all"]);
    assert_no_panic(&run);
    let run = run.expect_code(1);
    let log = repo.path().join(".loktar/runs/1/flood/test.log");
    let named = format!("cannot write the stage log `{}`: {NO_SPACE}", log.display());
    assert!(run.stderr.contains(&named), "stderr does not name the log and the error:\n{}", run.stderr);
    assert!(
        run.stderr.contains("cannot write the run record")
            && run.stderr.contains("the record of run `1` is incomplete"),
        "stderr does not say the record is incomplete:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: free space on the disk that holds"), "{}", run.stderr);

    // Space again: whatever the record got to, it does not say passed.
    std::fs::remove_file(&log).expect("free the space");
    let status = listed_status(&repo, "1");
    assert_ne!(status, "passed", "a run that could not write its log is listed as passed");
}

#[test]
fn a_record_that_cannot_be_written_fails_a_run_whose_stages_passed() {
    let outer = tempfile::Builder::new().prefix("loktar-disk").tempdir().expect("temp dir");
    // The repository and its record on a small disk; the logs on a roomy one.
    let _disk = Tmpfs::mount(outer.path(), "2m");
    let repo = TestRepo::new_in(outer.path());
    repo.write("loktar.json", r#"{ "packages": [ { "pkg_name": "greedy", "test_type": "make" } ] }"#);
    // The test fills the disk the record is on, and passes.
    repo.write("greedy/Makefile", "ci:\n\t@echo filling\n\t-@head -c 4000000 /dev/zero > junk\n\t@echo filled\n");
    repo.write(".gitignore", "junk\n");
    repo.commit("a package whose test fills the disk");
    let runs = repo.path().join(".loktar/runs");
    std::fs::create_dir_all(&runs).expect("the runs folder");
    let _logs_disk = Tmpfs::mount(&runs, "8m");

    let run = loktar(&repo, &["run", "--all"]);
    assert_no_panic(&run);
    let run = run.expect_code(1);
    assert!(run.stderr.contains("✓ greedy: test passed"), "the stage itself passed:\n{}", run.stderr);
    let record =
        format!("cannot write the run record: run store `{}`", repo.path().join(".loktar/loktar.db").display());
    assert!(run.stderr.contains(&record), "stderr does not name the record:\n{}", run.stderr);
    assert!(run.stderr.contains("the record of run `1` is incomplete"), "{}", run.stderr);
    assert!(run.stderr.contains("run `1` failed: its logs or record could not be written"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: free space on the disk that holds"), "{}", run.stderr);
    assert!(run.stdout.contains("run 1 failed"), "{}", run.stdout);
    let log = std::fs::read_to_string(runs.join("1/greedy/test.log")).expect("the log was written");
    assert!(log.contains("filled") && log.contains("-- loktar: test passed"), "{log}");

    // Room again: the run is not listed as passed.
    std::fs::remove_file(repo.path().join("greedy/junk")).expect("free the space");
    let status = listed_status(&repo, "1");
    assert_ne!(status, "passed", "a run whose record could not be written is listed as passed");
}
