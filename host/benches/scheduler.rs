//! Benchmark: the scheduler's overhead. 10,000 no-op jobs over a random DAG
//! (each depending on up to three earlier ones) against a bare tokio
//! `JoinSet` running the same 10,000 no-op tasks, in one process; the ratio
//! of medians over repeated rounds. Run with `cargo bench --bench scheduler`.

use std::time::{Duration, Instant};

use loktar::pipeline::scheduler::{self, JobOutcome, Options};
use tokio_util::sync::CancellationToken;

const JOBS: usize = 10_000;
const ROUNDS: usize = 15;

fn main() {
    let dependencies = random_dag(JOBS);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut scheduled = Vec::with_capacity(ROUNDS);
    let mut bare = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let status = runtime.block_on(async {
            let cancel = CancellationToken::new();
            let options = Options { concurrency, fail_fast: false };
            scheduler::run(&dependencies, options, cancel, |_, _| async { JobOutcome::Succeeded }).await
        });
        scheduled.push(start.elapsed());
        assert_eq!(status.len(), JOBS);

        let start = Instant::now();
        let finished = runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..JOBS {
                tasks.spawn(async { JobOutcome::Succeeded });
            }
            let mut finished = 0;
            while tasks.join_next().await.is_some() {
                finished += 1;
            }
            finished
        });
        bare.push(start.elapsed());
        assert_eq!(finished, JOBS);
    }
    let scheduled = median(scheduled);
    let bare = median(bare);
    println!("{JOBS} no-op jobs, median of {ROUNDS} rounds (concurrency {concurrency})");
    println!("  scheduler over a random DAG {:>8.2} ms", scheduled.as_secs_f64() * 1e3);
    println!("  bare JoinSet                {:>8.2} ms", bare.as_secs_f64() * 1e3);
    println!("  ratio {:.2}", scheduled.as_secs_f64() / bare.as_secs_f64());
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Each node depends on up to three earlier nodes, chosen by a seeded xorshift.
fn random_dag(count: usize) -> Vec<Vec<usize>> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..count)
        .map(|node| {
            if node == 0 {
                return Vec::new();
            }
            let mut deps: Vec<usize> = (0..next(4)).map(|_| next(node)).collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect()
}
