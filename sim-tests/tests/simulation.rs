//! Simulations of a whole cluster under faults. Each test prints the seeds it ran; a failing
//! seed is printed with the command that replays it (`SIM_SEED=n cargo test -p sim-tests`).

use std::io::Write;
use std::time::Instant;

#[cfg(feature = "canary")]
use node::canary::Canary;
use sim_tests::harness::{self, Report, SimConfig};
use sim_tests::seeds;

fn init_logs() {
    // SIM_LOG=info (or any filter) shows the nodes' logs; off by default.
    if let Ok(filter) = std::env::var("SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A line for the test output even when it is captured (cargo test shows captured output only
/// for failing tests): how many seeds ran is part of what CI reports.
fn report_line(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn summary(report: &Report) -> String {
    format!(
        "{} writes ({} acknowledged, {} unacknowledged but applied; {} through the coordinator, \
         {} of them acknowledged), queries {} checked ({} through the coordinator) / {} errors \
         / {} unchecked, {} fault episodes, {} joins, {} leaves, {} terms with two leaders, \
         {:.1} s simulated",
        report.writes,
        report.acknowledged,
        report.applied_unacknowledged,
        report.sql_writes,
        report.sql_acknowledged,
        report.queries.checked,
        report.queries.through_coordinator,
        report.queries.errors,
        report.queries.unchecked,
        report.episodes,
        report.joins,
        report.leaves,
        report.shared_terms,
        report.simulated.as_secs_f64()
    )
}

#[test]
fn a_healthy_cluster_acknowledges_every_write_and_answers_every_query_right() {
    // Proves: with no faults, 3 nodes serving 4 shards over the simulated network, and the
    // coordinator serving SQL over HTTP, acknowledge every write (direct and SQL), the final
    // contents hold every acknowledged row exactly once, every query (one shard, or a whole
    // table through the coordinator) equals the model's answer at some point of its interval
    // (per shard), replicas converge.
    init_logs();
    let mut config = SimConfig::new(7);
    config.faults = false;
    let report = harness::run(&config).unwrap_or_else(|failure| panic!("{failure}"));
    println!("healthy: {}", summary(&report));
    assert_eq!(
        report.acknowledged, report.writes,
        "no write fails without faults"
    );
    assert!(report.writes > 40, "the workload wrote");
    assert!(report.queries.checked > 10, "queries were checked");
    assert!(
        report.sql_writes > 20,
        "SQL clients wrote through the coordinator"
    );
    assert!(
        report.queries.through_coordinator > 5,
        "coordinator queries were checked"
    );
    assert_eq!(report.queries.errors + report.queries.unchecked, 0);
}

/// Seeds the determinism test runs twice each.
const DETERMINISM_SEED_COUNT: u64 = 6;

#[test]
fn the_same_seed_gives_the_same_trace() {
    // Proves: a run under faults is a function of its seed — the trace (every client answer,
    // every fault, every replica's Raft state change with its simulated time, the converged
    // digests) is identical when each seed is run twice in one process, the second time in
    // the other order and so on other threads with other task ids; and differs across seeds.
    init_logs();
    let seeds = seeds::selected(DETERMINISM_SEED_COUNT);
    let run = |seed| harness::run(&SimConfig::new(seed));
    let first = seeds::run_all(&seeds, false, run);
    let reversed: Vec<u64> = seeds.iter().rev().copied().collect();
    let second = seeds::run_all(&reversed, false, run);
    let mut traces = Vec::new();
    for ((seed, first), (_, second)) in first.iter().zip(&second) {
        let first = first.as_ref().unwrap_or_else(|f| panic!("{f}"));
        let second = second.as_ref().unwrap_or_else(|f| panic!("{f}"));
        if let Some(at) = first
            .trace
            .iter()
            .zip(&second.trace)
            .position(|(a, b)| a != b)
        {
            if let Ok(dir) = std::env::var("SIM_TRACE_DIR") {
                for (name, trace) in [("first", &first.trace), ("second", &second.trace)] {
                    let path = std::path::Path::new(&dir).join(format!("seed-{seed}-{name}.trace"));
                    std::fs::write(&path, trace.join("\n")).expect("trace written");
                }
            }
            panic!(
                "seed {seed}: traces differ at line {at} (SIM_TRACE_DIR=dir writes both):\n  \
                 first:  {}\n  second: {}",
                first.trace[at], second.trace[at]
            );
        }
        assert_eq!(first.trace.len(), second.trace.len(), "seed {seed}");
        assert!(first.episodes > 0, "seed {seed}: faults were injected");
        println!(
            "seed {seed}: {} trace lines identical in two runs; {}",
            first.trace.len(),
            summary(first)
        );
        traces.push(first.trace.clone());
    }
    traces.dedup();
    assert_eq!(traces.len(), seeds.len(), "each seed its own run");
    report_line(&format!(
        "sim determinism: {} seeds each run twice, identical traces",
        seeds.len()
    ));
}

#[test]
fn seeds_under_faults_lose_nothing_and_never_answer_wrong() {
    // Proves: for every seed of the CI budget (or SIM_SEED / SIM_SEEDS), under crashes that
    // lose what was not fsynced, partitions, held links, loss and latency, every check of the
    // harness holds: no acknowledged write lost or duplicated, unacknowledged writes
    // all-or-nothing, no row nobody wrote, queries right as of a point in their interval,
    // replicas converged, Raft's invariants held; with nodes joining (all seeds but 0 mod 4)
    // and leaving (seeds 2 and 3 mod 4) meanwhile, each shard's replicas are the ones the
    // metadata records and no other node hosts it.
    init_logs();
    let seeds = seeds::selected(seeds::CI_SEED_COUNT);
    let started = Instant::now();
    let results = seeds::run_all(&seeds, false, |seed| harness::run(&SimConfig::new(seed)));
    let mut failures = Vec::new();
    let mut totals = (0, 0, 0, 0, 0);
    let mut through_coordinator = (0, 0, 0);
    let mut membership = (0, 0);
    for (seed, result) in &results {
        match result {
            Ok(report) => {
                totals.0 += report.writes;
                totals.1 += report.acknowledged;
                totals.2 += report.queries.checked;
                totals.3 += report.queries.errors;
                totals.4 += report.episodes;
                through_coordinator.0 += report.sql_writes;
                through_coordinator.1 += report.sql_acknowledged;
                through_coordinator.2 += report.queries.through_coordinator;
                membership.0 += report.joins;
                membership.1 += report.leaves;
                if seeds::replaying() {
                    println!("seed {seed}: {}", summary(report));
                    if let Ok(dir) = std::env::var("SIM_TRACE_DIR") {
                        let path = std::path::Path::new(&dir).join(format!("seed-{seed}.trace"));
                        std::fs::write(&path, report.trace.join("\n")).expect("trace written");
                    }
                }
            }
            Err(failure) => {
                eprintln!("{failure}");
                if let Ok(dir) = std::env::var("SIM_TRACE_DIR") {
                    let path = std::path::Path::new(&dir).join(format!("seed-{seed}.trace"));
                    std::fs::write(&path, failure.trace.join("\n")).expect("trace written");
                }
                failures.push(*seed);
            }
        }
    }
    report_line(&format!(
        "sim: {} seeds in {:.0} s, {} passed, {} failed {:?}; {} writes ({} acknowledged), \
         {} queries checked, {} query errors, {} fault episodes, {} joins, {} leaves; through \
         the coordinator {} writes ({} acknowledged), {} queries checked",
        results.len(),
        started.elapsed().as_secs_f64(),
        results.len() - failures.len(),
        failures.len(),
        failures,
        totals.0,
        totals.1,
        totals.2,
        totals.3,
        totals.4,
        membership.0,
        membership.1,
        through_coordinator.0,
        through_coordinator.1,
        through_coordinator.2
    ));
    assert!(
        failures.is_empty(),
        "seeds {failures:?} failed; replay one with SIM_SEED=<seed> cargo test -p sim-tests"
    );
}

/// Run the CI seeds with `canary` on until one fails; the failure found.
#[cfg(feature = "canary")]
fn catch(canary: Canary) -> (u64, usize, harness::Failure) {
    // Always the CI seeds: SIM_SEED and SIM_SEEDS choose what the other tests run.
    let seeds: Vec<u64> = (1..=seeds::CI_SEED_COUNT).collect();
    let results = seeds::run_all(&seeds, true, |seed| {
        let mut config = SimConfig::new(seed);
        config.canary = Some(canary);
        harness::run(&config)
    });
    let run = results.len();
    let (seed, failure) = results
        .into_iter()
        .find_map(|(seed, r)| r.err().map(|f| (seed, f)))
        .unwrap_or_else(|| panic!("the {canary:?} canary survived {run} seeds"));
    report_line(&format!(
        "sim canary {canary:?}: caught at seed {seed} after {run} seeds run"
    ));
    println!("canary problems: {}", failure.problems.join("; "));
    (seed, run, failure)
}

#[cfg(feature = "canary")]
#[test]
fn the_canary_acknowledging_writes_before_commit_is_caught() {
    // Proves: the simulation catches a durability bug — a node that acknowledges an insert
    // when it hands it to Raft, before it is committed — within the CI seed budget, by its
    // effect: an acknowledged insert missing, a later delete of its rows finding nothing, or
    // a query not seeing it.
    init_logs();
    let (_, _, failure) = catch(Canary::AckBeforeCommit);
    assert!(
        failure
            .problems
            .iter()
            .any(|p| p.contains("acknowledged insert")
                || (p.contains("acknowledged delete") && p.contains("reported"))
                || p.contains("no choice of the")),
        "caught for the expected reason: {failure}"
    );
}

#[cfg(feature = "canary")]
#[test]
fn the_canary_answering_queries_without_confirming_leadership_is_caught() {
    // Proves: the checks catch stale reads — replicas answering from their own state without
    // the leader confirming it still leads — within the CI seed budget: some query (on one
    // shard, or a whole table through the coordinator) misses a write acknowledged before it
    // started, or the final read, which takes the same read path, misses acknowledged writes
    // (a replica moved off a shard answering for it).
    init_logs();
    let (_, _, failure) = catch(Canary::StaleReads);
    assert!(
        failure
            .problems
            .iter()
            .any(|p| p.contains("no choice of the")
                || p.contains("no sum of one answer per shard")
                || (p.contains("acknowledged insert") && p.contains("lost"))
                || (p.contains("acknowledged delete") && p.contains("left"))),
        "caught by the query check or the final read: {failure}"
    );
}

#[cfg(feature = "canary")]
#[test]
fn the_canary_acknowledging_log_appends_before_fsync_is_caught() {
    // Proves: a crash in the simulation loses what was never fsynced — a node that tells Raft
    // its log appends are durable without fsyncing them is caught within the CI seed budget:
    // a crash takes entries a quorum counted on, and a replica that never had them leads, so
    // an acknowledged write is lost, or replicas apply different entries at one index, or a
    // group converges below what was applied.
    init_logs();
    let (_, _, failure) = catch(Canary::AckBeforeFsync);
    assert!(
        failure
            .problems
            .iter()
            .any(|p| p.contains("acknowledged insert")
                || (p.contains("acknowledged delete") && p.contains("left"))
                || p.contains("no choice of the")
                || p.contains("applied from leader")
                || p.contains("below the")
                || p.contains("applied index went back")),
        "caught for a lost commit: {failure}"
    );
}
