//! Test helpers: both servers on 127.0.0.1:0 over one `LocalCluster` (or over a
//! `DevCluster` of three in-process nodes), stopped on drop, and a minimal HTTP/1.1 client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use node::app::RaftSettings;
use rhizome_coordinator::cluster::Cluster;
use rhizome_coordinator::dev::DevCluster;
use rhizome_coordinator::executor::{Executor, ExecutorOptions};
use rhizome_coordinator::http::{serve_http, HttpState};
use rhizome_coordinator::local::LocalCluster;
use rhizome_coordinator::pg::serve_pg;

/// Raft timing for tests on a dev cluster: quick elections on loopback.
pub fn fast_raft_settings() -> RaftSettings {
    RaftSettings {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 400,
        election_timeout_max_ms: 800,
        ..RaftSettings::default()
    }
}

/// Bound on waiting for a dev cluster's leaders.
pub const DEV_READY_WAIT_MS_MAX: u64 = 60_000;

/// A dev cluster in a fresh temporary directory, with its leaders elected.
pub async fn start_dev(dir: &std::path::Path) -> DevCluster {
    let dev = DevCluster::start(dir, false, fast_raft_settings())
        .await
        .expect("dev cluster starts");
    assert!(
        dev.wait_ready(std::time::Duration::from_millis(DEV_READY_WAIT_MS_MAX))
            .await,
        "dev cluster elected no leaders in time"
    );
    dev
}

pub struct Servers {
    pub http: SocketAddr,
    pub pg: SocketAddr,
    /// The cluster of `start`; an unused empty one for `start_dev`.
    pub cluster: Arc<LocalCluster>,
    /// The nodes of `start_dev`.
    pub dev: Option<DevCluster>,
    pub executor: Arc<Executor>,
    pub ready: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl Servers {
    pub async fn start() -> Servers {
        let cluster = Arc::new(LocalCluster::new());
        Servers::start_over(cluster.clone(), cluster, None).await
    }

    /// Both servers over a `GrpcCluster` of three in-process nodes kept in `dir`.
    pub async fn start_dev(dir: &std::path::Path) -> Servers {
        let dev = start_dev(dir).await;
        let grpc: Arc<dyn Cluster> = dev.cluster.clone();
        Servers::start_over(grpc, Arc::new(LocalCluster::new()), Some(dev)).await
    }

    async fn start_over(
        over: Arc<dyn Cluster>,
        cluster: Arc<LocalCluster>,
        dev: Option<DevCluster>,
    ) -> Servers {
        let executor = Arc::new(Executor::new(over, ExecutorOptions::default()));
        let ready = Arc::new(AtomicBool::new(true));
        let (stop, _) = watch::channel(false);
        let stopped = |stop: &watch::Sender<bool>| {
            let mut receiver = stop.subscribe();
            async move {
                let _ = receiver.wait_for(|s| *s).await;
            }
        };
        let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let pg_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind pg");
        let http = http_listener.local_addr().expect("http addr");
        let pg = pg_listener.local_addr().expect("pg addr");
        let state = HttpState {
            executor: executor.clone(),
            ready: ready.clone(),
        };
        let tasks = vec![
            tokio::spawn(serve_http(http_listener, state, stopped(&stop))),
            tokio::spawn(serve_pg(pg_listener, executor.clone(), stopped(&stop))),
        ];
        Servers {
            http,
            pg,
            cluster,
            dev,
            executor,
            ready,
            stop,
            tasks,
        }
    }

    /// Stop both servers and wait for them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            task.await.expect("server task").expect("server ran");
        }
        if let Some(dev) = self.dev.take() {
            dev.shutdown().await;
        }
    }

    pub async fn pg_client(&self) -> tokio_postgres::Client {
        let config = format!(
            "host={} port={} user=anyone dbname=rhizome",
            self.pg.ip(),
            self.pg.port()
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .expect("pg connect");
        tokio::spawn(connection);
        client
    }
}

/// One HTTP request; answers the status and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect http");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read answer");
    let text = String::from_utf8_lossy(&answer).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Chunked bodies: keep only the payload lines (tests send small answers).
    (status, dechunk(&text, body))
}

fn dechunk(head: &str, body: String) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body;
    }
    let mut out = String::new();
    let mut rest = body.as_str();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(&after[..size.min(after.len())]);
        rest = after.get(size + 2..).unwrap_or("");
    }
    out
}

pub async fn sql(addr: SocketAddr, sql: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, "POST", "/v1/sql", sql.as_bytes()).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, json)
}
