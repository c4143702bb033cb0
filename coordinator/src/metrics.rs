//! Counters of statements, errors and latency, rendered as Prometheus text for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Result;
use crate::executor::Output;
use crate::status::status_of;

/// Upper bounds of the latency histogram's buckets, in milliseconds.
const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 30_000];

#[derive(Debug, Default)]
pub struct Metrics {
    /// Statements answered, by command word.
    statements: Mutex<BTreeMap<&'static str, u64>>,
    /// Statements that failed, by error code.
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Statements at or below each bucket's bound (cumulative counts are made when rendering).
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, result: &Result<Output>, elapsed: Duration) {
        match result {
            Ok(output) => {
                let mut statements = self.statements.lock().unwrap_or_else(|e| e.into_inner());
                *statements.entry(output.command).or_default() += 1;
            }
            Err(error) => {
                let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
                *errors.entry(status_of(error).code).or_default() += 1;
            }
        }
        let elapsed_ms = elapsed.as_millis() as u64;
        if let Some(bucket) = LATENCY_BUCKETS_MS.iter().position(|&b| elapsed_ms <= b) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Statements that failed so far.
    pub fn errors_total(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP rhizome_statements_total Statements answered, by command.\n");
        out.push_str("# TYPE rhizome_statements_total counter\n");
        for (command, n) in self
            .statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "rhizome_statements_total{{command=\"{command}\"}} {n}");
        }
        out.push_str("# HELP rhizome_errors_total Statements that failed, by error code.\n");
        out.push_str("# TYPE rhizome_errors_total counter\n");
        for (code, n) in self.errors.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "rhizome_errors_total{{code=\"{code}\"}} {n}");
        }
        out.push_str("# HELP rhizome_statement_seconds Time from statement text to answer.\n");
        out.push_str("# TYPE rhizome_statement_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS_MS.iter().zip(&self.latency_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rhizome_statement_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1000.0
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "rhizome_statement_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "rhizome_statement_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "rhizome_statement_seconds_count {count}");
        out
    }
}
