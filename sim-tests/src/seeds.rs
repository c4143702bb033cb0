//! Which seeds a test runs, and running them on a few threads.
//!
//! * `SIM_SEED=n`: only seed `n` (a replay of a reported failure);
//! * `SIM_SEEDS=N`: `N` seeds instead of the CI budget — the long (nightly) mode, e.g.
//!   `SIM_SEEDS=5000`; `SIM_SEED_START=s` starts them at `s` instead of at 1, so nightly runs
//!   can explore new seeds;
//! * `SIM_THREADS=t`: run seeds on `t` threads (default: the machine's parallelism);
//! * `SIM_TRACE_DIR=dir`: write the trace of each failing seed (and of a replayed one, and
//!   both traces of a seed whose two runs differ) to `dir`;
//! * `SIM_LOG=filter`: the nodes' `tracing` logs (e.g. `info`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Seeds every CI run checks.
pub const CI_SEED_COUNT: u64 = 100;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

/// The seeds to run: `SIM_SEED`, or `SIM_SEEDS` from `SIM_SEED_START`, or `default_count`
/// seeds from 1.
pub fn selected(default_count: u64) -> Vec<u64> {
    if let Some(seed) = env_u64("SIM_SEED") {
        return vec![seed];
    }
    let count = env_u64("SIM_SEEDS").unwrap_or(default_count);
    let start = env_u64("SIM_SEED_START").unwrap_or(1);
    (start..start + count).collect()
}

/// Whether one seed was asked for (`SIM_SEED`).
pub fn replaying() -> bool {
    std::env::var_os("SIM_SEED").is_some()
}

pub fn threads() -> usize {
    env_u64("SIM_THREADS")
        .map(|t| t.max(1) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Run `run` on every seed, on [`threads`] threads, and return the results in seed order.
/// With `stop_at_first_failure`, seeds not yet started when one fails are skipped.
pub fn run_all<T: Send, E: Send>(
    seeds: &[u64],
    stop_at_first_failure: bool,
    run: impl Fn(u64) -> Result<T, E> + Sync,
) -> Vec<(u64, Result<T, E>)> {
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads().min(seeds.len()) {
            scope.spawn(|| loop {
                if stop_at_first_failure && failed.load(Ordering::SeqCst) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(&seed) = seeds.get(index) else {
                    return;
                };
                // A panic (a node's, or a check's) ends the test; first say which seed.
                let result =
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed))) {
                        Ok(result) => result,
                        Err(panic) => {
                            eprintln!(
                                "seed {seed} panicked; replay with SIM_SEED={seed} cargo test -p \
                             sim-tests"
                            );
                            std::panic::resume_unwind(panic)
                        }
                    };
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                results.lock().expect("results lock").push((seed, result));
            });
        }
    });
    let mut results = results.into_inner().expect("results lock");
    results.sort_by_key(|(seed, _)| *seed);
    results
}
