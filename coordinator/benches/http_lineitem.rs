//! End-to-end benchmark of `rhizome dev` over HTTP: the built binary (three Raft nodes and
//! the coordinator in one process) is started on a fresh data directory, TPC-H `lineitem`
//! is generated in-process with `tpchgen` and loaded through multi-row INSERT statements
//! over HTTP (the normal insert path: parse, validate, route, one Raft entry per shard and
//! statement), then the public queries P1–P6 are timed over HTTP — the first run and the
//! minimum of a few — and every answer is checked against `bench/expected-sf*.tsv` (a wrong
//! answer fails the run). Last, P1 is sent by concurrent clients for a while and the
//! answered queries per second are printed.
//!
//! Environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RHIZOME_BENCH_SF` | scale factor (0.1 or 1: the expected answers exist for those) | 1 |
//! | `RHIZOME_BENCH_RUNS` | timed runs per query after the first | 5 |
//! | `RHIZOME_BENCH_CLIENTS` | concurrent clients of the throughput run | 16 |
//! | `RHIZOME_BENCH_SECONDS` | length of the throughput run | 10 |
//! | `RHIZOME_BENCH_DUCKDB_PYTHON` | a Python with `duckdb`: after Rhizome has stopped, time P1–P6 in DuckDB on the same rows (`ops/bench/duckdb_lineitem.py`) and print ratios | none |
//! | `RHIZOME_BENCH_DUCKDB_MS` | or DuckDB's times of P1–P6, comma-separated | none |
//! | `RHIZOME_BENCH_DIR` | data directory (kept) instead of a temporary one; one that holds `lineitem` already is not loaded again | none |
//! | `RHIZOME_BENCH_BIN` | the `rhizome` binary to run (to compare two builds) | this build's |
//! | `RHIZOME_BENCH_SETTLE` | `idle`: before the first query, wait until the server has finished what the load left it (for two seconds in a row its process uses less than a tenth of a core and the machine has less than 16 MB of file data to write back: snapshots written and fsynced, followers caught up; at most 2 minutes); `none`: query right after the load | `idle` |
//! | `RUST_LOG` | the server's log filter (its log is `rhizome.log` in the data directory); `info,rhizome_node::services=debug` logs each shard query's read wait and evaluation time | `info,openraft=warn` |
//!
//! `ops/bench/http-vs-duckdb.sh` runs it with DuckDB timed on the same rows.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use rhizome_coordinator::sample::{lineitem_queries, LINEITEM_DDL};

/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 1_000;
/// INSERT statements in flight while loading.
const LOAD_STATEMENTS_IN_FLIGHT: usize = 4;
/// Bound on the cluster's start.
const READY_WAIT_MS_MAX: u64 = 120_000;
/// Longest wait for the server to go idle after the load (`RHIZOME_BENCH_SETTLE=idle`).
const SETTLE_WAIT_MS_MAX: u64 = 120_000;
/// Share of one core under which the server counts as idle.
const IDLE_CPU_SHARE: f64 = 0.1;
/// File data still to be written back below which the machine counts as idle.
const IDLE_UNWRITTEN_BYTES: u64 = 16 << 20;
/// Quiet seconds in a row after which the server counts as idle.
const IDLE_SECONDS: u32 = 2;
/// Floats (AVG) in the expected files are rounded to 6 decimals.
const FLOAT_TOLERANCE: f64 = 1e-6;
/// Goals end to end, in ms, P1–P6.
const GOALS_MS: [f64; 6] = [2.0, 2.0, 25.0, 8.0, 12.0, 1.0];
/// Throughput goal of P1, queries per second.
const THROUGHPUT_GOAL_QPS: f64 = 2_000.0;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A keep-alive HTTP/1.1 connection that posts SQL.
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    async fn open(address: SocketAddr) -> Connection {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            stream: BufReader::new(stream),
        }
    }

    /// POST the statement; the status and the body.
    async fn sql(&mut self, sql: &str) -> (u16, String) {
        let head = format!(
            "POST /v1/sql HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n",
            sql.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(sql.as_bytes()).await.expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await.expect("chunk size");
                let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.expect("chunk");
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            let mut chunk = vec![0; length.expect("a content length")];
            self.stream.read_exact(&mut chunk).await.expect("body");
            body = chunk;
        }
        (status, String::from_utf8(body).expect("UTF-8 body"))
    }
}

/// The `rhizome dev` process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Process(Child);

/// The server's CPU time so far (user and system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which may hold spaces, so split after its `)`):
    // utime and stime are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat has a command") + 2..]
        .split(' ')
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// Bytes of file data the kernel has yet to write back, machine-wide (`Dirty` and
/// `Writeback` of `/proc/meminfo`).
fn unwritten_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    meminfo
        .lines()
        .filter(|l| l.starts_with("Dirty:") || l.starts_with("Writeback:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

/// Wait until the server is idle for [`IDLE_SECONDS`] seconds in a row: less than
/// [`IDLE_CPU_SHARE`] of a core over each second, and less than [`IDLE_UNWRITTEN_BYTES`] of
/// file data still to be written back (a bulk
/// load leaves snapshots to write and fsync, followers to catch up); at most
/// [`SETTLE_WAIT_MS_MAX`].
async fn settle(pid: u32) {
    let started = Instant::now();
    let mut last = cpu_time(pid);
    let mut quiet_seconds = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_time(pid);
        let share = (now - last).as_secs_f64();
        last = now;
        let unwritten = unwritten_bytes();
        if share < IDLE_CPU_SHARE && unwritten < IDLE_UNWRITTEN_BYTES {
            quiet_seconds += 1;
        } else {
            quiet_seconds = 0;
        }
        if quiet_seconds == IDLE_SECONDS {
            println!(
                "server idle {:.1} s after the load ({:.0} % of a core over the last second, {:.1} MB not yet written back)",
                started.elapsed().as_secs_f64(),
                share * 100.0,
                unwritten as f64 / 1e6
            );
            return;
        }
        if started.elapsed() > Duration::from_millis(SETTLE_WAIT_MS_MAX) {
            println!(
                "server still busy {:.0} s after the load ({:.0} % of a core, {:.1} MB not yet written back): querying anyway",
                started.elapsed().as_secs_f64(),
                share * 100.0,
                unwritten as f64 / 1e6
            );
            return;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

fn expected(scale_factor: f64) -> BTreeMap<String, Vec<Vec<String>>> {
    let text = if (scale_factor - 1.0).abs() < 1e-9 {
        include_str!("../../bench/expected-sf1.tsv")
    } else if (scale_factor - 0.1).abs() < 1e-9 {
        include_str!("../../bench/expected-sf0.1.tsv")
    } else {
        panic!("no expected answers at scale factor {scale_factor}: use 0.1 or 1");
    };
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, row) = line.split_once('\t').expect("name<TAB>row");
        out.entry(name.to_string())
            .or_default()
            .push(row.split('|').map(str::to_string).collect());
    }
    out
}

fn same_field(actual: &str, expected: &str) -> bool {
    if actual == expected {
        return true;
    }
    match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(a), Ok(e)) if expected.split('.').nth(1).is_some_and(|f| f.len() == 6) => {
            (a - e).abs() <= FLOAT_TOLERANCE
        }
        _ => false,
    }
}

/// Check one answer against the expected rows; panics naming the query when they differ.
fn check(name: &str, body: &str, expected: &[Vec<String>]) {
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON answer");
    let rows: Vec<Vec<String>> = json["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no rows in {body}"))
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let same = rows.len() == expected.len()
        && rows
            .iter()
            .zip(expected)
            .all(|(a, e)| a.len() == e.len() && a.iter().zip(e).all(|(x, y)| same_field(x, y)));
    assert!(same, "{name}: wrong answer {rows:?}, expected {expected:?}");
}

fn write_csv(path: &str, scale_factor: f64) {
    let file = std::fs::File::create(path).expect("the CSV file can be created");
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "{}", tpchgen::csv::LineItemCsv::header()).expect("write the CSV header");
    for item in tpchgen::generators::LineItemGenerator::new(scale_factor, 1, 1) {
        writeln!(out, "{}", tpchgen::csv::LineItemCsv::new(item)).expect("write a CSV row");
    }
    out.flush().expect("flush the CSV file");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale_factor: f64 = env("RHIZOME_BENCH_SF", 1.0);
    let runs: usize = env("RHIZOME_BENCH_RUNS", 5);
    let clients: usize = env("RHIZOME_BENCH_CLIENTS", 16);
    let seconds: u64 = env("RHIZOME_BENCH_SECONDS", 10);
    let expected = expected(scale_factor);
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = std::env::var("RHIZOME_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| temp.path().join("dev"));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let http = free_address();
    let pg = free_address();
    let log = std::fs::File::create(data_dir.join("rhizome.log")).expect("log file");
    let process = Process(
        Command::new(
            std::env::var("RHIZOME_BENCH_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_rhizome").into()),
        )
        .args(["dev", "--no-sample", "--data-dir"])
        .arg(&data_dir)
        .args(["--http", &http.to_string(), "--pg", &pg.to_string()])
        // The server's log filter: `RUST_LOG` when set (say, `info,rhizome_node::services=debug`
        // for each shard query's read wait and evaluation time), else info without openraft's.
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".to_string()),
        )
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start rhizome dev"),
    );
    wait_ready(http, &data_dir).await;

    let mut connection = Connection::open(http).await;
    // A kept data directory that holds the table already (an earlier run's) is not loaded
    // again: its row count is checked instead.
    let (status, body) = connection.sql("SELECT COUNT(*) FROM lineitem").await;
    let kept_rows = (status == 200)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|json| json["rows"][0][0].as_u64());
    if let Some(rows) = kept_rows {
        println!(
            "lineitem already loaded in {}: {rows} rows",
            data_dir.display()
        );
    }
    let started = Instant::now();
    if kept_rows.is_none() {
        let (status, body) = connection.sql(LINEITEM_DDL).await;
        assert_eq!(status, 200, "{body}");
    }
    let statements: Box<dyn Iterator<Item = String>> = match kept_rows {
        Some(_) => Box::new(std::iter::empty()),
        None => Box::new(rhizome_coordinator::sample::lineitem_inserts(
            scale_factor,
            ROWS_PER_STATEMENT,
        )),
    };
    let loaded: u64 = futures::stream::iter(statements)
        .map(|statement| async move {
            let mut connection = Connection::open(http).await;
            let (status, body) = connection.sql(&statement).await;
            assert_eq!(status, 200, "{body}");
            let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            json["rows_affected"].as_u64().expect("rows_affected")
        })
        .buffer_unordered(LOAD_STATEMENTS_IN_FLIGHT)
        .fold(0, |sum, rows| async move { sum + rows })
        .await;
    let load_seconds = started.elapsed().as_secs_f64();
    if kept_rows.is_none() {
        println!(
        "loaded {loaded} rows of lineitem SF{scale_factor} through INSERT over HTTP ({ROWS_PER_STATEMENT} rows per statement, {LOAD_STATEMENTS_IN_FLIGHT} in flight) in {load_seconds:.1} s: {:.0} rows/s",
            loaded as f64 / load_seconds
        );
    }

    match std::env::var("RHIZOME_BENCH_SETTLE").as_deref() {
        Ok("none") => println!("first queries right after the load"),
        Ok("idle") | Err(_) => settle(process.0.id()).await,
        Ok(other) => panic!("RHIZOME_BENCH_SETTLE is `idle` or `none`, not {other:?}"),
    }
    let queries = lineitem_queries();
    assert_eq!(queries.len(), 6, "P1–P6");
    let mut timings = Vec::new();
    for (name, query) in &queries {
        let timed = Instant::now();
        let (status, body) = connection.sql(query).await;
        let first_ms = timed.elapsed().as_secs_f64() * 1e3;
        assert_eq!(status, 200, "{name}: {body}");
        check(name, &body, &expected[name]);
        let mut min_ms = f64::MAX;
        for _ in 0..runs {
            let timed = Instant::now();
            let (status, body) = connection.sql(query).await;
            min_ms = min_ms.min(timed.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200, "{name}: {body}");
            check(name, &body, &expected[name]);
        }
        println!("{name}: first {first_ms:.2} ms, min of {runs} {min_ms:.2} ms; answer checked");
        timings.push((name.clone(), first_ms, min_ms));
    }

    let (p1_name, p1) = queries[0].clone();
    let p1_expected = expected[&p1_name].clone();
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (answered, stop, p1, p1_name, p1_expected) = (
            answered.clone(),
            stop.clone(),
            p1.clone(),
            p1_name.clone(),
            p1_expected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(http).await;
            let mut first_body: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = connection.sql(&p1).await;
                assert_eq!(status, 200, "{body}");
                // Every answer is checked: the first in full, the others equal to it.
                match &first_body {
                    None => {
                        check(&p1_name, &body, &p1_expected);
                        first_body = Some(body);
                    }
                    Some(first) => {
                        let rows = |b: &str| {
                            serde_json::from_str::<serde_json::Value>(b).expect("JSON")["rows"]
                                .clone()
                        };
                        assert_eq!(rows(&body), rows(first), "P1 answer changed");
                    }
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let timed = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }
    let qps = answered.load(Ordering::Relaxed) as f64 / timed.elapsed().as_secs_f64();
    println!(
        "P1 from {clients} concurrent clients over {seconds} s: {qps:.0} queries/s, every answer checked"
    );
    // Rhizome stops before DuckDB runs, so they do not share the cores.
    drop(process);

    let duckdb_ms = duckdb_times(scale_factor, temp.path());
    println!();
    println!(
        "{:<4} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "", "first ms", "min ms", "goal ms", "DuckDB ms", "DuckDB/min"
    );
    let mut ratios = Vec::new();
    for (index, (name, first_ms, min_ms)) in timings.iter().enumerate() {
        let (duck, ratio) = match &duckdb_ms {
            Some(ms) => {
                let ratio = ms[index] / min_ms;
                ratios.push(ratio);
                (format!("{:.2}", ms[index]), format!("{ratio:.2}×"))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{name:<4} {first_ms:>10.2} {min_ms:>10.2} {:>8} {duck:>10} {ratio:>10}",
            GOALS_MS[index]
        );
    }
    if !ratios.is_empty() {
        let geometric_mean =
            (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        println!("geometric mean of DuckDB / Rhizome (min): {geometric_mean:.2}× (goal ≥ 10×)");
    }
    println!("P1 throughput: {qps:.0} queries/s from {clients} clients (goal ≥ {THROUGHPUT_GOAL_QPS:.0})");
}

/// DuckDB's times of P1–P6 (median of a few runs, in memory, same rows): given, or measured
/// with `ops/bench/duckdb_lineitem.py` when a Python with `duckdb` is named.
fn duckdb_times(scale_factor: f64, scratch: &Path) -> Option<Vec<f64>> {
    if let Ok(given) = std::env::var("RHIZOME_BENCH_DUCKDB_MS") {
        return Some(
            given
                .split(',')
                .map(|m| m.trim().parse().expect("DuckDB ms"))
                .collect(),
        );
    }
    let python = std::env::var("RHIZOME_BENCH_DUCKDB_PYTHON").ok()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let csv = scratch.join("lineitem.csv");
    write_csv(&csv.display().to_string(), scale_factor);
    let output = Command::new(python)
        .arg(root.join("ops/bench/duckdb_lineitem.py"))
        .arg(&csv)
        .arg(root.join("bench/tpch-lineitem-queries.sql"))
        .arg("5")
        .stderr(Stdio::inherit())
        .output()
        .expect("run DuckDB");
    assert!(output.status.success(), "DuckDB failed");
    let _ = std::fs::remove_file(&csv);
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("DUCKDB_MS="))
        .expect("DuckDB times");
    Some(
        line.split(',')
            .map(|m| m.trim().parse().expect("DuckDB ms"))
            .collect(),
    )
}

async fn wait_ready(http: SocketAddr, data_dir: &Path) {
    let started = Instant::now();
    loop {
        if let Ok(stream) = TcpStream::connect(http).await {
            drop(stream);
            let mut connection = Connection::open(http).await;
            let head = "GET /ready HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n";
            connection
                .stream
                .get_mut()
                .write_all(head.as_bytes())
                .await
                .expect("write");
            let mut line = String::new();
            connection
                .stream
                .read_line(&mut line)
                .await
                .expect("status");
            if line.contains(" 200 ") {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_millis(READY_WAIT_MS_MAX),
            "rhizome dev not ready; see {}",
            data_dir.join("rhizome.log").display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
