//! The apply path of an insert, alone: TPC-H `lineitem` in column batches of 8,192 rows (what a
//! replica decodes from a log entry), appended to 8 shard stores in memory on one thread, as
//! every replica of the replicated-ingest benchmark does. Reports the whole rate and then
//! each column's share, appended to a store of that column alone.
//!
//! `cargo bench -p rhizome-core --bench column_ingest`; `RHIZOME_BENCH_SF` (default 1) sets the
//! scale factor, `RHIZOME_BENCH_RUNS` (default 3) the runs of the whole load, of which the
//! best is reported; `RHIZOME_BENCH_PER_COLUMN=0` skips the columns alone, and
//! `RHIZOME_BENCH_ONLY=<column>` loads only that column, `RHIZOME_BENCH_RUNS` times (for
//! profiles). Every run checks the stores' record counts and, per column, that every
//! generated value counts its rows exactly (against counts taken from the generated rows).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rhizome_core::batch::ColumnBatch;
use rhizome_core::query::{CompareOp, Condition};
use rhizome_core::shard::{Schema, ShardStore, StoreOptions};
use rhizome_core::value::Value;
use tpch::{columns, schema_of};
use tpchgen::generators::LineItemGenerator;

mod tpch;

/// Rows per batch (one Raft entry).
const BATCH_ROWS: usize = 8192;
/// Shards the rows are spread over, a batch at a time, as in the replicated benchmark.
const SHARDS: usize = 8;

fn rows(scale_factor: f64) -> Vec<Vec<Value>> {
    LineItemGenerator::new(scale_factor, 1, 1)
        .into_iter()
        .map(|l| tpch::row(&l))
        .collect()
}

/// The rows as encoded batches of the columns `picked`, dealt to the shards a batch at a time.
fn batches(schema: &Schema, rows: &[Vec<Value>], picked: &[usize]) -> Vec<Vec<Vec<u8>>> {
    let mut per_shard = vec![Vec::new(); SHARDS];
    for (n, chunk) in rows.chunks(BATCH_ROWS).enumerate() {
        let projected: Vec<Vec<Value>> = chunk
            .iter()
            .map(|row| picked.iter().map(|&c| row[c].clone()).collect())
            .collect();
        let batch = ColumnBatch::from_rows(schema, &projected).expect("generated rows fit");
        per_shard[n % SHARDS].push(batch.encode());
    }
    per_shard
}

/// Decode, check and append every batch as a replica applies a log entry; the time taken and
/// the stores.
fn load(schema: &Schema, batches: &[Vec<Vec<u8>>]) -> (Duration, Vec<ShardStore>) {
    let start = Instant::now();
    let stores = batches
        .iter()
        .map(|shard| {
            let mut store = ShardStore::new(schema.clone(), StoreOptions::in_memory());
            for encoded in shard {
                let batch = ColumnBatch::decode(encoded).expect("decodes");
                store.insert_columns(&batch).expect("inserts");
            }
            store
        })
        .collect();
    (start.elapsed(), stores)
}

/// Check column `c` of the rows, `column` in the stores: every distinct generated value counts
/// exactly its rows, summed over the shards.
fn check_counts(stores: &[ShardStore], column: &str, rows: &[Vec<Value>], c: usize) {
    // Values by their rendering (a `Value` is not `Hash`), with their row counts.
    let mut expected: HashMap<String, (&Value, u64)> = HashMap::new();
    for row in rows {
        expected
            .entry(format!("{:?}", row[c]))
            .or_insert((&row[c], 0))
            .1 += 1;
    }
    // Every value of a low-cardinality column, a sample of the others.
    let step = (expected.len() / 200).max(1);
    let mut values: Vec<&(&Value, u64)> = expected.values().collect();
    values.sort_by_key(|(value, _)| format!("{value:?}"));
    for &&(value, count) in values.iter().step_by(step) {
        let condition = Condition::Compare {
            column: column.to_string(),
            op: CompareOp::Eq,
            value: value.clone(),
        };
        let counted: u64 = stores
            .iter()
            .map(|store| {
                store
                    .select_ids(&condition, usize::MAX)
                    .expect("select")
                    .len() as u64
            })
            .sum();
        assert_eq!(counted, count, "count of {value:?} in column {c}");
    }
}

fn main() {
    let scale_factor: f64 = std::env::var("RHIZOME_BENCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let runs: usize = std::env::var("RHIZOME_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let columns = columns();
    let schema = schema_of(&columns);
    let rows = rows(scale_factor);
    let n = rows.len() as f64;
    let all: Vec<usize> = (0..columns.len()).collect();
    let batches = batches(&schema, &rows, &all);
    let bytes: usize = batches.iter().flatten().map(Vec::len).sum();
    println!(
        "lineitem SF {scale_factor}: {} rows in batches of {BATCH_ROWS} over {SHARDS} shards, {:.1} B/row encoded",
        rows.len(),
        bytes as f64 / n
    );

    // RHIZOME_BENCH_ONLY=<column> loads that column alone, RHIZOME_BENCH_RUNS times (for
    // profiling).
    let only = std::env::var("RHIZOME_BENCH_ONLY").ok();
    if only.is_none() {
        let mut best = Duration::MAX;
        for _ in 0..runs {
            let (took, stores) = load(&schema, &batches);
            let records: u64 = stores.iter().map(ShardStore::record_count).sum();
            assert_eq!(records, rows.len() as u64, "every row is a record");
            if best == Duration::MAX {
                print_memory(&stores, &columns, n);
            }
            drop(stores);
            best = best.min(took);
        }
        println!(
            "all 16 columns: {:.0} rows/s, {:.3} us/row (best of {runs})",
            n / best.as_secs_f64(),
            best.as_secs_f64() * 1e6 / n
        );
    }

    if std::env::var("RHIZOME_BENCH_PER_COLUMN").is_ok_and(|v| v == "0") {
        return;
    }
    println!("\ncolumn              us/row   ns/value");
    let mut sum = 0.0;
    for (c, (name, data_type)) in columns.iter().enumerate() {
        if only.as_ref().is_some_and(|only| only != name) {
            continue;
        }
        let one = schema_of(&[(name, *data_type)]);
        let batches = batches_of(&one, &rows, c);
        // A column picked alone is loaded `runs` times (the best counts), for profiles that
        // the loads dominate.
        let mut best = Duration::MAX;
        for run in 0..if only.is_some() { runs } else { 1 } {
            let (took, stores) = load(&one, &batches);
            if run == 0 {
                check_counts(&stores, name, &rows, c);
            }
            best = best.min(took);
        }
        let us = best.as_secs_f64() * 1e6 / n;
        sum += us;
        println!("{name:<18} {us:>7.3}   {:>8.0}", us * 1e3);
    }
    println!("{:<18} {sum:>7.3}", "sum of columns");
}

/// What the stores hold in memory, per column summed over the shards: bytes per row of the
/// dictionaries, the Rhizomes (arenas and their entries) and the values by record, and the
/// Rhizomes per row (a replica holds all of it).
fn print_memory(stores: &[ShardStore], columns: &[(&str, rhizome_core::value::DataType)], n: f64) {
    println!("\nin memory, B/row     dictionary   rhizomes    records     values  rhizomes/row");
    let mut total = 0;
    for (c, (name, _)) in columns.iter().enumerate() {
        let (mut dictionary, mut rhizomes, mut records, mut values, mut count) = (0, 0, 0, 0, 0);
        for store in stores {
            let column = store.column(c);
            let bytes = column.bytes();
            dictionary += bytes.dictionary;
            rhizomes += bytes.rhizomes;
            records += bytes.records;
            values += bytes.values;
            count += column.dictionary().symbol_count();
            total += bytes.total();
        }
        let per = |x: u64| x as f64 / n;
        println!(
            "{name:<18} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>13.3}",
            per(dictionary),
            per(rhizomes),
            per(records),
            per(values),
            count as f64 / n
        );
    }
    println!(
        "total: {:.1} B/row, {:.0} MiB",
        total as f64 / n,
        total as f64 / (1 << 20) as f64
    );
}

fn batches_of(schema: &Schema, rows: &[Vec<Value>], c: usize) -> Vec<Vec<Vec<u8>>> {
    batches(schema, rows, &[c])
}
