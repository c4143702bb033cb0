//! Replicated ingest of TPC-H `lineitem` into three `rhizome-node` processes with R = 3.
//!
//! ```text
//! cargo bench -p rhizome-node --bench replicated_ingest            # SF 1
//! RHIZOME_BENCH_SF=0.1 cargo bench -p rhizome-node --bench replicated_ingest
//! ```
//!
//! Rows are generated in-process with `tpchgen` and encoded before the clock starts (so the
//! figure is the cluster's, not the generator's), split round-robin over the table's 8 shards
//! (`lineitem` has no primary key) in batches of [`BATCH_ROWS`], and sent by [`IN_FLIGHT`]
//! writers per shard (`RHIZOME_BENCH_IN_FLIGHT=N` for another count; writer `k` of a shard
//! sends its batches `k`, `k + N`, …). Phases:
//!
//! 1. all three nodes up: ingest [`PHASE_ONE_FRACTION`] of the rows → rows/s;
//! 2. SIGKILL node 3; ingest the rest on two nodes → rows/s;
//! 3. restart node 3 → time until every shard of it has the leader's record count.
//!
//! Printed: rows/s per phase, the nodes' CPU time per row and replica in phase 1, bytes
//! written per row (from `/proc/<pid>/io`, and on disk: log files and segment files), peak
//! RSS per node (`VmHWM`).
//!
//! The nodes run with their default snapshot policy; `RHIZOME_BENCH_SNAPSHOT_EVERY=N`
//! (entries) and `RHIZOME_BENCH_SNAPSHOT_LOG_BYTES=B` override it (`--snapshot-every 32
//! --snapshot-log-bytes 18446744073709551615` is a snapshot every 32 entries, which the
//! bench used before snapshots were also taken by size).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rhizome_core::batch::ColumnBatch;
use rhizome_core::shard::{ColumnDef, Schema};
use rhizome_core::value::{DataType, Value};
use rhizome_node::client::Client;
use rhizome_node::network::TcpTransport;
use rhizome_node::types::{NodeId, ShardKey};
use tpchgen::generators::LineItemGenerator;

const SHARDS: u32 = 8;
const REPLICAS: u32 = 3;
/// Rows per insert batch (one Raft entry).
const BATCH_ROWS: usize = 8_192;
/// Batches in flight per shard: one writer each, one batch at a time (two, with the apply
/// as cheap as it is now, give the same rate; they did help when it cost twice as much).
const IN_FLIGHT: usize = 1;
/// Share of the rows ingested while all nodes are up.
const PHASE_ONE_FRACTION: f64 = 0.8;
/// Bound on waiting for the restarted node to catch up.
const CATCH_UP_WAIT_MS_MAX: u64 = 600_000;
/// Days from 1970-01-01 to 1992-01-01, where tpchgen's date indexes start.
const TPCH_EPOCH_DAYS: i32 = 8_035;

struct Processes {
    children: BTreeMap<NodeId, Child>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("bound")
        .port()
}

fn node_dirs(data: &Path, id: NodeId) -> Vec<PathBuf> {
    vec![data.join(format!("n{id}-a")), data.join(format!("n{id}-b"))]
}

/// Snapshot settings from the environment (the node's defaults otherwise):
/// `RHIZOME_BENCH_SNAPSHOT_EVERY` entries, `RHIZOME_BENCH_SNAPSHOT_LOG_BYTES` bytes of rows.
fn snapshot_args() -> Vec<String> {
    let mut args = Vec::new();
    for (variable, flag) in [
        ("RHIZOME_BENCH_SNAPSHOT_EVERY", "--snapshot-every"),
        ("RHIZOME_BENCH_SNAPSHOT_LOG_BYTES", "--snapshot-log-bytes"),
    ] {
        if let Ok(value) = std::env::var(variable) {
            args.extend([flag.to_string(), value]);
        }
    }
    args
}

fn spawn(id: NodeId, peers: &BTreeMap<NodeId, String>, data: &Path) -> Child {
    let peer_list: Vec<String> = peers.iter().map(|(id, a)| format!("{id}={a}")).collect();
    // RHIZOME_BENCH_NODE_BIN runs another build of the node (an older commit, side by side).
    let binary = std::env::var_os("RHIZOME_BENCH_NODE_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_rhizome-node").into());
    let mut command = Command::new(binary);
    command
        .args(["--id", &id.to_string(), "--listen", &peers[&id]])
        .args(["--peers", &peer_list.join(",")])
        .args(snapshot_args())
        .args(["--logs-kept", "4"])
        .env(
            "RUST_LOG",
            std::env::var("RHIZOME_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.join(format!("n{id}.log")))
                .expect("node log file"),
        ))
        .stderr(Stdio::inherit());
    for dir in node_dirs(data, id) {
        command.arg("--data-dir").arg(dir);
    }
    command.spawn().expect("rhizome-node starts")
}

fn proc_field(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// (peak RSS bytes, bytes written to storage) of a process.
fn process_figures(pid: u32) -> (u64, u64) {
    (
        proc_field(pid, "status", "VmHWM:") * 1024,
        proc_field(pid, "io", "write_bytes:"),
    )
}

/// (user, system) CPU seconds a process has used (`/proc/<pid>/stat`, in clock ticks of 1/100 s
/// on Linux).
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// CPU seconds (user, system) of all the processes.
fn cluster_cpu(processes: &Processes) -> (f64, f64) {
    processes
        .children
        .values()
        .map(|child| cpu_seconds(child.id()))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Bytes on disk under `dir`, split into (raft logs, everything else: segments and state).
fn disk_bytes(dir: &Path) -> (u64, u64) {
    let mut logs = 0;
    let mut other = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                if entry.file_name() == "raft.log" {
                    logs += meta.len();
                } else {
                    other += meta.len();
                }
            }
        }
    }
    (logs, other)
}

fn schema() -> Schema {
    let column = |name: &str, data_type| ColumnDef {
        name: name.into(),
        data_type,
        nullable: false,
    };
    let decimal = DataType::Decimal {
        precision: 15,
        scale: 2,
    };
    let text = |n| DataType::Text { max_chars: Some(n) };
    Schema::new(vec![
        column("l_orderkey", DataType::BigInt),
        column("l_partkey", DataType::BigInt),
        column("l_suppkey", DataType::BigInt),
        column("l_linenumber", DataType::Int),
        column("l_quantity", decimal),
        column("l_extendedprice", decimal),
        column("l_discount", decimal),
        column("l_tax", decimal),
        column("l_returnflag", text(1)),
        column("l_linestatus", text(1)),
        column("l_shipdate", DataType::Date),
        column("l_commitdate", DataType::Date),
        column("l_receiptdate", DataType::Date),
        column("l_shipinstruct", text(25)),
        column("l_shipmode", text(10)),
        column("l_comment", text(44)),
    ])
    .expect("lineitem schema")
}

/// How a batch travels: by column ([`ColumnBatch`], what the coordinator sends; the default)
/// or as bincode rows (`RHIZOME_BENCH_FORM=rows`, the older form, for comparison).
fn by_column() -> bool {
    std::env::var("RHIZOME_BENCH_FORM").map_or(true, |form| form != "rows")
}

/// Generate the rows, batched per shard (round-robin by batch) and encoded.
fn generate(scale_factor: f64) -> (Vec<Vec<Bytes>>, u64) {
    let schema = schema();
    let by_column = by_column();
    let decimal = |units: i64| Value::Decimal { units, scale: 2 };
    let date = |d: tpchgen::dates::TPCHDate| Value::Date(d.into_inner() + TPCH_EPOCH_DAYS);
    let mut per_shard: Vec<Vec<Bytes>> = vec![Vec::new(); SHARDS as usize];
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(BATCH_ROWS);
    let mut rows = 0u64;
    let mut next_shard = 0usize;
    let mut flush = |batch: &mut Vec<Vec<Value>>, next_shard: &mut usize| {
        let encoded = if by_column {
            ColumnBatch::from_rows(&schema, batch)
                .expect("generated rows fit")
                .encode()
        } else {
            bincode::serialize(&*batch).expect("encode")
        };
        per_shard[*next_shard].push(Bytes::from(encoded));
        *next_shard = (*next_shard + 1) % SHARDS as usize;
        batch.clear();
    };
    for item in LineItemGenerator::new(scale_factor, 1, 1) {
        batch.push(vec![
            Value::Int(item.l_orderkey),
            Value::Int(item.l_partkey),
            Value::Int(item.l_suppkey),
            Value::Int(i64::from(item.l_linenumber)),
            decimal(item.l_quantity * 100),
            decimal(item.l_extendedprice.0),
            decimal(item.l_discount.0),
            decimal(item.l_tax.0),
            Value::Text(item.l_returnflag.to_string()),
            Value::Text(item.l_linestatus.to_string()),
            date(item.l_shipdate),
            date(item.l_commitdate),
            date(item.l_receiptdate),
            Value::Text(item.l_shipinstruct.to_string()),
            Value::Text(item.l_shipmode.to_string()),
            Value::Text(item.l_comment.to_string()),
        ]);
        rows += 1;
        if batch.len() == BATCH_ROWS {
            flush(&mut batch, &mut next_shard);
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut next_shard);
    }
    (per_shard, rows)
}

/// Batches in flight per shard (`RHIZOME_BENCH_IN_FLIGHT`, default [`IN_FLIGHT`]).
fn in_flight() -> usize {
    std::env::var("RHIZOME_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(IN_FLIGHT)
}

/// Send `batches[shard][range]` with [`in_flight`] writers per shard; returns rows sent.
async fn ingest(client: &Arc<Client>, batches: &Arc<Vec<Vec<Bytes>>>, fraction: (f64, f64)) -> u64 {
    let mut writers = Vec::new();
    let in_flight = in_flight();
    for shard in 0..SHARDS {
        for lane in 0..in_flight {
            let client = client.clone();
            let batches = batches.clone();
            writers.push(tokio::spawn(async move {
                let mine = &batches[shard as usize];
                let from = (mine.len() as f64 * fraction.0) as usize;
                let to = (mine.len() as f64 * fraction.1) as usize;
                let key = ShardKey::new("lineitem", shard);
                let mut rows = 0;
                for encoded in mine[from..to].iter().skip(lane).step_by(in_flight) {
                    let batch = client.next_batch();
                    let outcome = if by_column() {
                        client.insert_columns(&key, batch, encoded.clone()).await
                    } else {
                        client.insert_encoded(&key, batch, encoded.clone()).await
                    }
                    .expect("batch acknowledged");
                    rows += outcome.count;
                }
                rows
            }));
        }
    }
    let mut rows = 0;
    for writer in writers {
        rows += writer.await.expect("writer");
    }
    rows
}

#[tokio::main]
async fn main() {
    let scale_factor: f64 = std::env::var("RHIZOME_BENCH_SF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    // RHIZOME_BENCH_DIR keeps the nodes' files and logs (n<id>.log) for a look afterwards.
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = std::env::var("RHIZOME_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    let started = Instant::now();
    let (batches, total_rows) = generate(scale_factor);
    let batches = Arc::new(batches);
    println!(
        "batches travel {}, {} in flight per shard",
        if by_column() {
            "by column"
        } else {
            "as bincode rows"
        },
        in_flight()
    );
    println!(
        "generated lineitem SF {scale_factor}: {total_rows} rows in {} batches of {BATCH_ROWS} in {:.1} s",
        batches.iter().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );

    // Reference: the same batches decoded and inserted into one in-memory store per shard,
    // on one thread, with no log, network or replication.
    let reference = Instant::now();
    let mut reference_rows = 0u64;
    for shard_batches in batches.iter() {
        let mut store = rhizome_core::shard::ShardStore::new(
            schema(),
            rhizome_core::shard::StoreOptions::in_memory(),
        );
        for encoded in shard_batches {
            let inserted = if by_column() {
                let batch = ColumnBatch::decode(encoded).expect("decode");
                store.insert_columns(&batch).expect("insert")
            } else {
                let rows: Vec<Vec<Value>> = bincode::deserialize(encoded).expect("decode");
                store.insert_batch(&rows).expect("insert")
            };
            reference_rows += inserted.count() as u64;
        }
    }
    let reference_seconds = reference.elapsed().as_secs_f64();
    let reference_rate = reference_rows as f64 / reference_seconds;
    println!(
        "reference, one in-memory store per shard, one thread, no replication: {reference_rate:.0} rows/s"
    );

    let peers: BTreeMap<NodeId, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut processes = Processes {
        children: peers
            .keys()
            .map(|&id| (id, spawn(id, &peers, &data_dir)))
            .collect(),
    };
    let client = Arc::new(Client::new(
        1,
        peers.clone(),
        Arc::new(TcpTransport::default()),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.initialize(&peers[&1], &peers).await {
            Ok(()) | Err(rhizome_node::Error::AlreadyExists(_)) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "initialize: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    while let Err(e) = client
        .create_table(&peers[&1], "lineitem", &schema(), SHARDS, REPLICAS)
        .await
    {
        assert!(Instant::now() < deadline, "create table: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let cpu_before = cluster_cpu(&processes);
    let phase_one = Instant::now();
    let rows_one = ingest(&client, &batches, (0.0, PHASE_ONE_FRACTION)).await;
    let seconds_one = phase_one.elapsed().as_secs_f64();
    let cpu_after = cluster_cpu(&processes);
    println!(
        "phase 1, 3 nodes up:  {rows_one} rows in {seconds_one:.2} s = {:.0} rows/s",
        rows_one as f64 / seconds_one
    );
    // CPU time is steadier than wall time on a shared machine, and on 2 cores it bounds the
    // rate: rows/s <= cores / (replicas x CPU per row and replica).
    let (user, system) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    let per_row = |seconds: f64| seconds * 1e6 / rows_one as f64 / f64::from(REPLICAS);
    println!(
        "  node CPU in phase 1: {:.2} us per row and replica ({:.2} user + {:.2} system)",
        per_row(user + system),
        per_row(user),
        per_row(system)
    );

    let pid_three = processes.children[&3].id();
    let (rss_three_before, written_three_before) = process_figures(pid_three);
    {
        let child = processes.children.get_mut(&3).expect("node 3");
        child.kill().expect("SIGKILL node 3");
        child.wait().expect("reaped");
    }
    let phase_two = Instant::now();
    let rows_two = ingest(&client, &batches, (PHASE_ONE_FRACTION, 1.0)).await;
    let seconds_two = phase_two.elapsed().as_secs_f64();
    println!(
        "phase 2, node 3 down: {rows_two} rows in {seconds_two:.2} s = {:.0} rows/s",
        rows_two as f64 / seconds_two
    );
    assert_eq!(rows_one + rows_two, total_rows);

    let restart = Instant::now();
    processes.children.insert(3, spawn(3, &peers, &data_dir));
    let deadline = restart + Duration::from_millis(CATCH_UP_WAIT_MS_MAX);
    loop {
        let mut behind = 0;
        for shard in 0..SHARDS {
            let key = ShardKey::new("lineitem", shard);
            let mut counts = Vec::new();
            for addr in peers.values() {
                counts.push(client.digest(addr, &key).await.map(|d| d.record_count).ok());
            }
            if counts.iter().any(|c| *c != counts[0]) || counts[0].is_none() {
                behind += 1;
            }
        }
        if behind == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "node 3 did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let catch_up = restart.elapsed().as_secs_f64();
    println!("node 3 restarted and caught up on all {SHARDS} shards in {catch_up:.2} s");

    let mut written_total = written_three_before;
    for (&id, child) in &processes.children {
        let (rss, written) = process_figures(child.id());
        let (rss, note) = if id == 3 {
            written_total += written;
            (
                rss_three_before.max(rss),
                " (before the kill and after the restart)",
            )
        } else {
            written_total += written;
            (rss, "")
        };
        let (log_bytes, segment_bytes) = node_dirs(&data_dir, id)
            .iter()
            .map(|d| disk_bytes(d))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        println!(
            "node {id}: peak RSS {:.0} MiB{note}; on disk: raft logs {:.1} B/row, segments+state {:.1} B/row",
            rss as f64 / (1 << 20) as f64,
            log_bytes as f64 / total_rows as f64,
            segment_bytes as f64 / total_rows as f64,
        );
    }
    println!(
        "bytes written to storage by the 3 nodes (/proc/<pid>/io): {:.1} B/row ({:.1} B/row per replica)",
        written_total as f64 / total_rows as f64,
        written_total as f64 / total_rows as f64 / f64::from(REPLICAS)
    );
    let overall = total_rows as f64 / (seconds_one + seconds_two);
    println!(
        "overall: {total_rows} rows replicated 3x in {:.2} s of ingest = {overall:.0} rows/s ({:.2}x the single-thread reference)",
        seconds_one + seconds_two,
        overall / reference_rate
    );
    drop(processes);
}
