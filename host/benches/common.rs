//! What the benchmarks share: a timed piece of work, the median of rounds,
//! figures in milliseconds and ratios, and incompressible test data.

use std::time::{Duration, Instant};

/// How long `work` took.
pub fn timed(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

/// The median of some timings (at least one).
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// A duration in milliseconds.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `measured ÷ baseline`.
pub fn ratio(measured: Duration, baseline: Duration) -> f64 {
    measured.as_secs_f64() / baseline.as_secs_f64()
}

/// `size` bytes of noise (xorshift from `seed`): no compression shrinks them.
pub fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..size.div_ceil(8))
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .take(size)
        .collect()
}

/// Runs git in `dir` as the benchmarks' author: what it printed.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Commits everything in `repo` on a new `main` with `message`, and pushes
/// it to a new bare repository, its `origin`: returned.
pub fn commit_and_publish(repo: &std::path::Path, message: &str) -> tempfile::TempDir {
    git(repo, &["init", "--quiet", "--initial-branch", "main"]);
    git(repo, &["add", "--all"]);
    git(repo, &["commit", "--quiet", "-m", message]);
    let origin = tempfile::Builder::new().prefix("loktar-bench-origin").tempdir().expect("temp dir");
    let bare = origin.path().display().to_string();
    git(repo, &["init", "--quiet", "--bare", "--initial-branch", "main", &bare]);
    git(repo, &["remote", "add", "origin", &bare]);
    git(repo, &["push", "--quiet", "origin", "main"]);
    origin
}

/// Makes `root` a git repository with everything in it committed.
pub fn commit_all(root: &std::path::Path) {
    for args in [
        &["init", "--quiet"][..],
        &["add", "--all"],
        &["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"],
    ] {
        let status = std::process::Command::new("git").args(args).current_dir(root).status().expect("git");
        assert!(status.success());
    }
}
