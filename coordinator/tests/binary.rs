//! The `rhizome dev` binary as a process: it loads the sample table, answers /ready only
//! after, serves HTTP and PostgreSQL on the addresses it is given, and stops on SIGTERM.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, sql};

/// Most time the sample load may take before the test gives up.
const READY_WAIT_MS_MAX: u64 = 120_000;

fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhizome_dev_serves_the_sample_and_stops_on_sigterm() {
    // Proves the binary wires both endpoints over LocalCluster with the sample lineitem.
    let http_address = free_address();
    let pg_address = free_address();
    let data_dir = std::env::temp_dir().join(format!("rhizome-dev-test-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rhizome"))
        .args(["dev", "--data-dir"])
        .arg(&data_dir)
        .args([
            "--http",
            &http_address.to_string(),
            "--pg",
            &pg_address.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rhizome dev");
    let started = Instant::now();
    loop {
        let answer = tokio::net::TcpStream::connect(http_address).await;
        if answer.is_ok() && http(http_address, "GET", "/ready", b"").await.0 == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(READY_WAIT_MS_MAX),
            "not ready in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = sql(http_address, "SELECT COUNT(*) FROM lineitem").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], 60_175);
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
        .query_one(
            "SELECT COUNT(*) FROM lineitem WHERE l_returnflag = 'R'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert!(count > 0);
    drop(client);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(killed.success());
    let stopped = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(data_dir.is_dir());
    let _ = std::fs::remove_dir_all(&data_dir);
}
