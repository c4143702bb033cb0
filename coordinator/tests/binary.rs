//! The `rhizome dev` binary as a process: it loads the sample table into a new data
//! directory, answers /ready only after, serves HTTP and PostgreSQL on the addresses it is
//! given, keeps every acknowledged row across a SIGKILL and a restart on the same
//! directory (without loading the sample again), and stops on SIGTERM.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, sql};

/// Most time the cluster's elections and the sample load may take before the test gives up.
const READY_WAIT_MS_MAX: u64 = 180_000;
/// Rows per INSERT statement of the write load.
const ROWS_PER_STATEMENT: i64 = 50;
/// Sample rows at scale factor 0.01.
const SAMPLE_ROWS: u64 = 60_175;

fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A `rhizome dev` process, killed when dropped (a failing test leaves none behind).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(data_dir: &Path, http: SocketAddr, pg: SocketAddr) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_rhizome"))
            .args(["dev", "--data-dir"])
            .arg(data_dir)
            .args(["--http", &http.to_string(), "--pg", &pg.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rhizome dev"),
    )
}

/// Wait for /ready to answer 200; returns whether it answered 503 before.
async fn wait_ready(address: SocketAddr, process: &mut Process) -> bool {
    let child = &mut process.0;
    let started = Instant::now();
    let mut saw_unready = false;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("rhizome dev exited early: {status}");
        }
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            match http(address, "GET", "/ready", b"").await.0 {
                200 => return saw_unready,
                503 => saw_unready = true,
                other => panic!("/ready answered {other}"),
            }
        }
        assert!(
            started.elapsed() < Duration::from_millis(READY_WAIT_MS_MAX),
            "not ready in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The INSERT statement of one batch: rows (batch, v) with v = batch * 1000 + i.
fn insert_statement(batch: i64) -> String {
    let values: Vec<String> = (0..ROWS_PER_STATEMENT)
        .map(|i| format!("({batch}, {})", batch * 1_000 + i))
        .collect();
    format!("INSERT INTO acked VALUES {}", values.join(", "))
}

/// (count, sum of v) of one batch, as sent.
fn sent(batch: i64) -> (i64, i64) {
    (
        ROWS_PER_STATEMENT,
        (0..ROWS_PER_STATEMENT).map(|i| batch * 1_000 + i).sum(),
    )
}

async fn count_lineitem(address: SocketAddr) -> u64 {
    let (status, body) = sql(address, "SELECT COUNT(*) FROM lineitem").await;
    assert_eq!(status, 200, "{body}");
    body["rows"][0][0].as_u64().expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhizome_dev_keeps_acknowledged_rows_across_sigkill_and_loads_the_sample_once() {
    // Proves: a new data directory gets the sample through the insert path and /ready is 503
    // until then; rows acknowledged before a SIGKILL — some while writes were in flight —
    // are all there after a restart on the same directory (per batch, count and sum equal
    // what was sent), the sample is not loaded a second time, and SIGTERM stops the process.
    let http_address = free_address();
    let pg_address = free_address();
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = data.path().join("dev");
    let mut child = spawn(&data_dir, http_address, pg_address);
    assert!(
        wait_ready(http_address, &mut child).await,
        "/ready answered 503 while the sample loaded"
    );
    assert_eq!(count_lineitem(http_address).await, SAMPLE_ROWS);
    let (status, body) = sql(
        http_address,
        "CREATE TABLE acked (batch INT NOT NULL, v BIGINT NOT NULL) WITH (shards = 4)",
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let acknowledged: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::new()));
    for batch in 0..10 {
        let (status, body) = sql(http_address, &insert_statement(batch)).await;
        assert_eq!(status, 200, "{body}");
        acknowledged.lock().expect("lock").push(batch);
    }
    // Writes in flight when the process is killed: only those answered 200 count.
    let writer = {
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            for batch in 10.. {
                let sent = tokio::spawn(async move {
                    common::http(
                        http_address,
                        "POST",
                        "/v1/sql",
                        insert_statement(batch).as_bytes(),
                    )
                    .await
                })
                .await;
                match sent {
                    Ok((200, _)) => acknowledged.lock().expect("lock").push(batch),
                    _ => return,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    let _ = tokio::time::timeout(Duration::from_secs(30), writer).await;
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 10,
        "some writes in flight were acknowledged"
    );

    let mut child = spawn(&data_dir, http_address, pg_address);
    wait_ready(http_address, &mut child).await;
    assert_eq!(
        count_lineitem(http_address).await,
        SAMPLE_ROWS,
        "the sample is kept and not loaded again"
    );
    let (status, body) = sql(
        http_address,
        "SELECT batch, COUNT(*), SUM(v) FROM acked GROUP BY batch ORDER BY batch",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let found: BTreeMap<i64, (i64, i64)> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let field = |i: usize| r[i].as_i64().unwrap_or_else(|| panic!("integer: {r}"));
            (field(0), (field(1), field(2)))
        })
        .collect();
    for batch in &acknowledged {
        assert_eq!(
            found.get(batch),
            Some(&sent(*batch)),
            "acknowledged batch {batch}"
        );
    }
    let last_sent = acknowledged.iter().max().expect("batches") + 1;
    for (batch, (count, _)) in &found {
        assert!(*batch <= last_sent, "batch {batch} was never sent");
        assert!(*count <= ROWS_PER_STATEMENT, "batch {batch} applied twice");
    }

    let config = format!(
        "host={} port={} user=someone",
        pg_address.ip(),
        pg_address.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .expect("pg connect");
    tokio::spawn(connection);
    let count: i64 = client
        .query_one("SELECT COUNT(*) FROM acked", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, found.values().map(|(c, _)| c).sum::<i64>());
    drop(client);

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(killed.success());
    let stopped = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(stopped.elapsed() < Duration::from_secs(30), "did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(data_dir.join("cluster.json").is_file());
}
