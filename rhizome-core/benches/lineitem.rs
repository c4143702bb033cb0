//! TPC-H `lineitem` in one shard store: load rate, bytes per record, Rhizome decode rates and
//! the six public queries (P1–P6), each checked against the expected results before it is
//! timed. One thread.
//!
//! `cargo bench -p rhizome-core --bench lineitem` runs scale factor 1; set
//! `RHIZOME_BENCH_SF=0.1` for a quick run. Latencies are the median of
//! `RHIZOME_BENCH_RUNS` (default 15) runs after one warm-up, and are printed beside the goals
//! of the storage-engine issue and as ratios to DuckDB's reference times on this machine
//! size. With `RHIZOME_BENCH_CSV=path` the generated rows are also written there as CSV, and
//! `RHIZOME_BENCH_DUCKDB_MS=a,b,c,d,e,f` replaces the reference times by ones measured in the
//! same run (`ops/bench/lineitem-vs-duckdb.sh` does both).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use rhizome_core::query::{Aggregate, CompareOp, Condition, OrderBy, ShardQuery};
use rhizome_core::shard::{Schema, ShardStore, StoreOptions};
use rhizome_core::value::{DataType, Value};
use tpchgen::generators::LineItemGenerator;

mod tpch;

/// Rows per insert batch (one Raft entry in the replicated store).
const BATCH_ROWS: usize = 100_000;

/// Query name, DuckDB's time in ms at SF1 (shared/bench/README.md), our goal in ms at SF1.
const REFERENCES: [(&str, f64, f64); 6] = [
    ("P1", 48.0, 1.0),
    ("P2", 57.0, 1.0),
    ("P3", 77.0, 20.0),
    ("P4", 14.0, 5.0),
    ("P5", 106.0, 10.0),
    ("P6", 10.0, 0.05),
];

fn schema() -> Schema {
    tpch::schema_of(&tpch::columns())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn cents(units: i64) -> Value {
    Value::Decimal { units, scale: 2 }
}

fn date(s: &str) -> Value {
    DataType::Date.parse(s).expect("a valid date")
}

/// The public queries of `bench/tpch-lineitem-queries.sql`, as shard queries, with
/// the ORDER BY of the final result.
fn queries() -> Vec<(&'static str, ShardQuery, Vec<OrderBy>)> {
    let eq = |c: &str, v: Value| Condition::eq(c, v);
    let count = vec![Aggregate::CountStar];
    vec![
        (
            "P1",
            ShardQuery {
                filter: Condition::And(vec![
                    eq("l_returnflag", text("R")),
                    eq("l_shipmode", text("AIR")),
                ]),
                group_by: vec![],
                aggregates: count.clone(),
            },
            vec![],
        ),
        (
            "P2",
            ShardQuery {
                filter: Condition::And(vec![
                    eq("l_shipmode", text("MAIL")),
                    eq("l_shipinstruct", text("DELIVER IN PERSON")),
                    eq("l_quantity", Value::Int(24)),
                ]),
                group_by: vec![],
                aggregates: count.clone(),
            },
            vec![],
        ),
        (
            "P3",
            ShardQuery {
                filter: Condition::compare("l_shipdate", CompareOp::LtEq, date("1998-09-02")),
                group_by: vec!["l_returnflag".into(), "l_linestatus".into()],
                aggregates: vec![
                    Aggregate::CountStar,
                    Aggregate::Sum("l_quantity".into()),
                    Aggregate::Avg("l_discount".into()),
                ],
            },
            vec![
                OrderBy {
                    column_index: 0,
                    descending: false,
                },
                OrderBy {
                    column_index: 1,
                    descending: false,
                },
            ],
        ),
        (
            "P4",
            ShardQuery {
                filter: Condition::And(vec![
                    Condition::compare("l_shipdate", CompareOp::GtEq, date("1994-01-01")),
                    Condition::compare("l_shipdate", CompareOp::Lt, date("1995-01-01")),
                    Condition::Between {
                        column: "l_discount".into(),
                        low: cents(5),
                        high: cents(7),
                    },
                    Condition::compare("l_quantity", CompareOp::Lt, Value::Int(24)),
                ]),
                group_by: vec![],
                aggregates: vec![
                    Aggregate::CountStar,
                    Aggregate::Sum("l_extendedprice".into()),
                ],
            },
            vec![],
        ),
        (
            "P5",
            ShardQuery {
                filter: Condition::In {
                    column: "l_shipinstruct".into(),
                    values: vec![text("COLLECT COD"), text("NONE")],
                },
                group_by: vec!["l_shipmode".into()],
                aggregates: count.clone(),
            },
            vec![
                OrderBy {
                    column_index: 1,
                    descending: true,
                },
                OrderBy {
                    column_index: 0,
                    descending: false,
                },
            ],
        ),
        (
            "P6",
            ShardQuery {
                filter: Condition::And(vec![
                    eq("l_suppkey", Value::Int(4242)),
                    eq("l_returnflag", text("A")),
                ]),
                group_by: vec![],
                aggregates: count,
            },
            vec![],
        ),
    ]
}

fn render(value: &Value) -> String {
    match value {
        Value::Double(v) => format!("{v:.6}"),
        other => other.render(),
    }
}

/// Expected rows per query name, from `bench/expected-sf*.tsv` at the repository root.
fn expected(scale_factor: f64) -> BTreeMap<String, Vec<String>> {
    let file = if scale_factor == 1.0 {
        include_str!("../../bench/expected-sf1.tsv")
    } else if scale_factor == 0.1 {
        include_str!("../../bench/expected-sf0.1.tsv")
    } else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in file
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, row) = line.split_once('\t').expect("name<TAB>row");
        out.entry(name.to_string())
            .or_default()
            .push(row.to_string());
    }
    out
}

fn same_rows(actual: &[String], expected: &[String]) -> bool {
    let close = |a: &str, e: &str| {
        a.split('|').zip(e.split('|')).all(|(x, y)| {
            x == y || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(x), Ok(y)) if (x - y).abs() <= 1e-6)
        }) && a.split('|').count() == e.split('|').count()
    };
    actual.len() == expected.len() && actual.iter().zip(expected).all(|(a, e)| close(a, e))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let scale_factor: f64 = std::env::var("RHIZOME_BENCH_SF")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let runs: usize = std::env::var("RHIZOME_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let schema = schema();
    let dir = tempfile::tempdir().expect("a temp dir");
    // RHIZOME_BENCH_STORE=DIR keeps the loaded store in DIR; when DIR already holds one, it is
    // opened and only the queries run (quick turns when profiling a query).
    let kept = std::env::var_os("RHIZOME_BENCH_STORE").map(std::path::PathBuf::from);
    let options = StoreOptions::on_disk(vec![kept
        .clone()
        .unwrap_or_else(|| dir.path().to_path_buf())]);
    if kept.is_some() && ShardStore::exists(&options) {
        let start = Instant::now();
        let store = ShardStore::open(options).expect("the kept store opens");
        println!(
            "opened the kept store: {} records in {:.2} s",
            store.record_count(),
            start.elapsed().as_secs_f64()
        );
        decode_rates(&store, &schema);
        run_queries(&store, &schema, scale_factor, runs);
        return;
    }
    let mut store = ShardStore::new(schema.clone(), options);

    // ---- load -------------------------------------------------------------------------
    let mut insert_time = Duration::ZERO;
    let mut generate_time = Duration::ZERO;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut rows = 0u64;
    let mut csv = std::env::var("RHIZOME_BENCH_CSV").ok().map(|path| {
        let file = std::fs::File::create(&path).expect("the CSV file can be created");
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "{}", tpchgen::csv::LineItemCsv::header()).expect("write the CSV header");
        out
    });
    let mut generated = LineItemGenerator::new(scale_factor, 1, 1)
        .into_iter()
        .peekable();
    while generated.peek().is_some() {
        let start = Instant::now();
        batch.clear();
        for l in generated.by_ref().take(BATCH_ROWS) {
            if let Some(out) = csv.as_mut() {
                writeln!(out, "{}", tpchgen::csv::LineItemCsv::new(l.clone()))
                    .expect("write a CSV row");
            }
            batch.push(tpch::row(&l));
        }
        generate_time += start.elapsed();
        let start = Instant::now();
        store
            .insert_batch(&batch)
            .expect("generated rows are valid");
        insert_time += start.elapsed();
        rows += batch.len() as u64;
    }
    println!("lineitem SF{scale_factor}: {rows} rows");
    println!(
        "load: {:.0} rows/s into one shard store ({:.2} s; generating the rows took {:.2} s more)",
        rows as f64 / insert_time.as_secs_f64(),
        insert_time.as_secs_f64(),
        generate_time.as_secs_f64()
    );

    // ---- size ---------------------------------------------------------------------------
    let bytes = store.bytes();
    println!(
        "\nbytes per record (in memory)        dictionary   rhizomes    records     values      total"
    );
    for (name, b) in &bytes.columns {
        let per = |x: u64| x as f64 / rows as f64;
        println!(
            "  {name:<32} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            per(b.dictionary),
            per(b.rhizomes),
            per(b.records),
            per(b.values),
            per(b.total())
        );
    }
    println!(
        "  total: {:.1} B/record, {:.1} MB",
        bytes.total() as f64 / rows as f64,
        bytes.total() as f64 / 1e6
    );
    let start = Instant::now();
    let written = store.save().expect("save");
    println!(
        "  segment files: {:.1} MB ({:.1} B/record), written in {:.2} s (Parquet of the same data: about 232 MB at SF1)",
        written as f64 / 1e6,
        written as f64 / rows as f64,
        start.elapsed().as_secs_f64()
    );

    decode_rates(&store, &schema);

    // ---- queries ------------------------------------------------------------------------
    if let Some(mut out) = csv.take() {
        out.flush().expect("flush the CSV file");
    }
    run_queries(&store, &schema, scale_factor, runs);
}

/// Full-decode rates of three Rhizomes: two sparse, one dense.
fn decode_rates(store: &ShardStore, schema: &Schema) {
    let decode = |column: &str, value: Value, label: &str| {
        let (index, _) = schema.column(column).expect("column");
        let column = store.column(index);
        let symbol = column
            .dictionary()
            .lookup(&value)
            .expect("typed")
            .expect("present");
        let rhizome = column.rhizome(symbol);
        // 20 rounds of about 1M ids each; the best round is the rate (a busy machine only
        // slows some rounds down), the mean over all rounds is printed beside it.
        let repeats = (1_000_000 / rhizome.cardinality().max(1)).max(1);
        let rounds = 20;
        let mut best = f64::MAX;
        let mut total = 0.0;
        let mut checksum = 0u64;
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..repeats {
                rhizome.for_each(|id| checksum = checksum.wrapping_add(id));
            }
            let seconds = start.elapsed().as_secs_f64();
            best = best.min(seconds);
            total += seconds;
        }
        std::hint::black_box(checksum);
        let ids = (rhizome.cardinality() * repeats) as f64;
        println!(
            "decode {label}: {column_name}={value:?}: {} ids, {} bytes, {:.2} G ids/s (best of {rounds} rounds; mean {:.2})",
            rhizome.cardinality(),
            rhizome.encoded_len(),
            ids / best / 1e9,
            ids * rounds as f64 / total / 1e9,
            column_name = schema.columns[index].name,
        );
    };
    println!();
    decode("l_suppkey", Value::Int(42), "sparse");
    decode("l_quantity", cents(2400), "sparse (2%)");
    decode("l_returnflag", text("R"), "dense (25%)");
}

/// Time P1–P6 on `store` and check their answers; exits with 1 on a wrong answer.
fn run_queries(store: &ShardStore, schema: &Schema, scale_factor: f64, runs: usize) {
    let duckdb_measured: Option<Vec<f64>> =
        std::env::var("RHIZOME_BENCH_DUCKDB_MS").ok().map(|list| {
            list.split(',')
                .map(|ms| ms.trim().parse().expect("milliseconds"))
                .collect()
        });
    let expected = expected(scale_factor);
    println!(
        "\nquery   median      min   goal(SF1)  vs DuckDB ({})  result",
        if duckdb_measured.is_some() {
            "measured in this run"
        } else {
            "reference at SF1"
        }
    );
    let mut failures = 0;
    // RHIZOME_BENCH_ONLY=P3 times one query (for profiling).
    let only = std::env::var("RHIZOME_BENCH_ONLY").ok();
    for (index, ((name, query, order_by), (_, reference_ms, goal_ms))) in
        queries().into_iter().zip(REFERENCES).enumerate()
    {
        let duckdb_ms = duckdb_measured.as_ref().map_or(reference_ms, |m| m[index]);
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        let answer = |store: &ShardStore| {
            let partial = store.query(&query).expect("query runs");
            let mut result = partial.finish(&query, schema).expect("finish");
            result.order_and_limit(&order_by, None);
            result
        };
        // The first run meets cold caches: a store just loaded or reopened.
        let first = Instant::now();
        let result = answer(store);
        let first_ms = first.elapsed().as_secs_f64() * 1e3;
        let rows: Vec<String> = result
            .rows
            .iter()
            .map(|row| row.iter().map(render).collect::<Vec<_>>().join("|"))
            .collect();
        let verdict = match expected.get(name) {
            None => "unchecked".to_string(),
            Some(e) if same_rows(&rows, e) => "ok".to_string(),
            Some(e) => {
                failures += 1;
                format!("WRONG: got {rows:?}, expected {e:?}")
            }
        };
        let samples: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(answer(store));
                start.elapsed()
            })
            .collect();
        let min = *samples.iter().min().expect("runs > 0");
        let median = median(samples);
        let ms = median.as_secs_f64() * 1e3;
        // DuckDB's reference times are at SF1: a ratio at another scale would mislead.
        let ratio = if duckdb_measured.is_some() || scale_factor == 1.0 {
            format!("{:>10.1}x faster", duckdb_ms / ms)
        } else {
            format!("{:>17}", "-")
        };
        println!(
            "{name:<4} {ms:>9.3}ms {:>7.3}ms {goal_ms:>8.2}ms {ratio}  {verdict} (first run {first_ms:.3}ms)",
            min.as_secs_f64() * 1e3
        );
    }
    if failures > 0 {
        eprintln!("{failures} queries gave wrong answers");
        std::process::exit(1);
    }
}
