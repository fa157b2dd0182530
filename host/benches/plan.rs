//! Benchmark: `loktar plan` against plain `git diff --name-only` on the same
//! range of a synthetic monorepo. The commands run in turns, and the ratio
//! reported is the median over the turns of each turn's loktar time ÷ its
//! git time: a shared virtual machine speeds up and slows down over
//! seconds, and a ratio taken within one turn compares the two commands on
//! the same machine, where a ratio of the two medians can compare a slow
//! spell of one with a quick spell of the other. The quartiles of the
//! per-turn ratios and the ratio of medians are shown beside it.
//!
//! CI meets another case: the first `loktar plan` in a fresh clone. So in
//! [`FRESH_RUNS`] more turns, each makes a new clone (untimed) and times
//! `git diff` in the repository against the first `loktar plan` in the clone.
//!
//! `cargo bench --bench plan` runs the two sizes the project tracks (1,000 and
//! 10,000 packages, 20 files each, 1,000 changed files); `cargo bench --bench
//! plan -- PACKAGES FILES_PER_PACKAGE CHANGED` runs one custom size.

#[allow(dead_code)]
mod common;

use common::{median, ms, ratio};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Timed turns, after one warm-up turn.
const RUNS: usize = 101;
/// Turns with a fresh clone each (a clone of 200,000 files takes seconds).
const FRESH_RUNS: usize = 11;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = match args[..] {
        [packages, files, changed] => vec![(packages, files, changed)],
        _ => vec![(1_000, 20, 1_000), (10_000, 20, 1_000)],
    };
    println!("loktar plan vs git diff --name-only ({RUNS} turns; ratio: median of each turn's loktar ÷ git)");
    println!(
        "{:>9} {:>9} {:>8} {:>12} {:>12} {:>18} {:>17}",
        "packages", "files", "changed", "git diff", "loktar plan", "ratio (p25–p75)", "ratio of medians"
    );
    for (packages, files_per_package, changed) in sizes {
        let temp = tempfile::Builder::new().prefix("loktar-bench").tempdir().expect("temp dir");
        let repo = temp.path().to_path_buf();
        // LOKTAR_BENCH_KEEP=1 keeps the generated repository for profiling.
        let _cleanup = if std::env::var_os("LOKTAR_BENCH_KEEP").is_some() {
            println!("keeping {}", temp.keep().display());
            None
        } else {
            Some(temp)
        };
        let synthetic = generate(&repo, packages, files_per_package, changed);
        let mut git_diff = Command::new("git");
        git_diff.current_dir(&repo).args(["diff", "--name-only", &synthetic.base, &synthetic.head]);
        let mut loktar_plan = Command::new(env!("CARGO_BIN_EXE_loktar"));
        loktar_plan.current_dir(&repo).args([
            "plan",
            "--format",
            "json",
            "--base",
            &synthetic.base,
            "--head",
            &synthetic.head,
        ]);
        let turns = measure_alternately(RUNS, &mut [(&mut git_diff, None), (&mut loktar_plan, None)]);
        let series = |index: usize| median(turns.iter().map(|turn| turn[index]).collect());
        let (git, loktar) = (series(0), series(1));
        let (low, middle, high) = per_turn_ratios(&turns, 1);
        println!(
            "{packages:>9} {:>9} {changed:>8} {:>10.1}ms {:>10.1}ms {middle:>7.2} ({low:.2}–{high:.2}) {:>17.2}",
            packages * files_per_package,
            ms(git),
            ms(loktar),
            ratio(loktar, git),
        );
        let _ = std::io::stdout().flush();
        let clone = repo.with_extension("clone");
        let fresh_clone = || {
            let _ = std::fs::remove_dir_all(&clone);
            let cloned = Command::new("git").args(["clone", "--quiet"]).arg(&repo).arg(&clone).status();
            assert!(cloned.is_ok_and(|status| status.success()), "git clone failed");
        };
        let mut first_plan = Command::new(env!("CARGO_BIN_EXE_loktar"));
        first_plan.current_dir(&clone).args(loktar_plan.get_args());
        let turns =
            measure_alternately(FRESH_RUNS, &mut [(&mut git_diff, Some(&fresh_clone)), (&mut first_plan, None)]);
        let (_, fresh_middle, _) = per_turn_ratios(&turns, 1);
        let fresh = median(turns.iter().map(|turn| turn[1]).collect());
        println!(
            "          (the first plan in a fresh clone, {FRESH_RUNS} turns: {:.1}ms, ratio {fresh_middle:.2})",
            ms(fresh)
        );
        let _ = std::fs::remove_dir_all(&clone);
        let _ = std::io::stdout().flush();
        check_plan(&repo, &synthetic);
    }
}

/// The quartiles of the ratios of command `index` to the first command (git) within each turn.
fn per_turn_ratios(turns: &[Vec<Duration>], index: usize) -> (f64, f64, f64) {
    let mut ratios: Vec<f64> = turns.iter().map(|turn| ratio(turn[index], turn[0])).collect();
    ratios.sort_by(f64::total_cmp);
    let quartile = |q: usize| ratios[(ratios.len() - 1) * q / 4];
    (quartile(1), quartile(2), quartile(3))
}

/// A command to time, and what to do before each of its runs, untimed.
type Benchmarked<'a> = (&'a mut Command, Option<&'a dyn Fn()>);

/// The wall times of `runs` turns of commands that must succeed, each turn
/// running each command once, in order, so that all see the same machine: a
/// shared virtual machine speeds up and slows down over seconds, which would
/// favour whichever command happened to run in a quiet spell. The spread of
/// the per-turn ratios shows how much the machine drifted. A command's
/// `before`, if any, runs untimed before each of its runs.
fn measure_alternately(runs: usize, commands: &mut [Benchmarked<'_>]) -> Vec<Vec<Duration>> {
    let mut turn = || {
        commands
            .iter_mut()
            .map(|(command, before)| {
                if let Some(before) = before {
                    before();
                }
                let start = Instant::now();
                let status = command.stdout(Stdio::null()).status().expect("start command");
                assert!(status.success(), "benchmarked command failed: {status}");
                start.elapsed()
            })
            .collect()
    };
    turn();
    (0..runs).map(|_| turn()).collect()
}

/// The benchmark must time a real plan: the affected set is not empty.
fn check_plan(repo: &Path, synthetic: &Synthetic) {
    let output = Command::new(env!("CARGO_BIN_EXE_loktar"))
        .current_dir(repo)
        .args(["plan", "--format", "json", "--base", &synthetic.base, "--head", &synthetic.head])
        .output()
        .expect("run loktar");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("plan is JSON");
    let affected = plan["packages"].as_array().map_or(0, Vec::len);
    assert!(affected > 0, "the synthetic change affects no package");
    println!("          (plan: {affected} affected packages, {} changed files)", plan["changed_files"]);
}

/// A generated repository: two commits, `head` changing some files of `base`.
struct Synthetic {
    base: String,
    head: String,
}

/// A small, seeded xorshift generator: the same repository every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Writes a monorepo of `packages` packages in 50 group folders, each package
/// depending on up to three earlier ones, then a second commit changing
/// `changed` distinct files. Uses `git fast-import`, then checks out the head.
fn generate(dir: &Path, packages: usize, files_per_package: usize, changed: usize) -> Synthetic {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let git = |args: &[&str]| {
        let status = Command::new("git").current_dir(dir).args(args).status().expect("git");
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "--quiet", "--initial-branch=main"]);
    let dir_of = |p: usize| format!("group{:02}/p{p:05}", p % 50);
    let mut manifest = String::from("{\"packages\": [\n");
    for p in 0..packages {
        let mut deps: Vec<String> = Vec::new();
        if p > 0 {
            for _ in 0..rng.below(4) {
                let dep = format!("\"p{:05}\"", rng.below(p));
                if !deps.contains(&dep) {
                    deps.push(dep);
                }
            }
        }
        let comma = if p + 1 < packages { "," } else { "" };
        manifest.push_str(&format!(
            "  {{\"pkg_name\": \"p{p:05}\", \"pkg_dir\": \"{}\", \"pkg_type\": \"whl\", \"test_type\": \"make\", \"depends_on\": [{}]}}{comma}\n",
            dir_of(p),
            deps.join(", ")
        ));
    }
    manifest.push_str("]}\n");

    let mut stream = Vec::new();
    let blob = |stream: &mut Vec<u8>, path: &str, content: &str| {
        stream.extend_from_slice(format!("M 100644 inline {path}\ndata {}\n{content}\n", content.len()).as_bytes());
    };
    stream.extend_from_slice(
        b"commit refs/heads/main\ncommitter Bench <bench@example.invalid> 1700000000 +0000\ndata 5\nbase\n",
    );
    blob(&mut stream, "loktar.json", &manifest);
    for p in 0..packages {
        for f in 0..files_per_package {
            blob(&mut stream, &format!("{}/src/f{f:03}.txt", dir_of(p)), &format!("package {p} file {f}\n"));
        }
    }
    stream.extend_from_slice(
        b"\ncommit refs/heads/main\ncommitter Bench <bench@example.invalid> 1700000100 +0000\ndata 5\nhead\n",
    );
    let mut touched = std::collections::HashSet::new();
    while touched.len() < changed.min(packages * files_per_package) {
        touched.insert((rng.below(packages), rng.below(files_per_package)));
    }
    for (p, f) in touched {
        blob(&mut stream, &format!("{}/src/f{f:03}.txt", dir_of(p)), &format!("package {p} file {f} changed\n"));
    }
    stream.extend_from_slice(b"\n");

    let mut import = Command::new("git")
        .current_dir(dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    import.stdin.take().expect("stdin").write_all(&stream).expect("feed fast-import");
    assert!(import.wait().expect("fast-import").success());
    git(&["checkout", "--quiet", "--force", "main"]);
    let rev = |name: &str| {
        let out = Command::new("git").current_dir(dir).args(["rev-parse", name]).output().expect("rev-parse");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    Synthetic { base: rev("main~1"), head: rev("main") }
}
