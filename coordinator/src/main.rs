//! The `rhizome` binary: `rhizome dev` runs three storage nodes (Raft over loopback gRPC,
//! persistent in the data directory) and the coordinator in one process, and serves the
//! HTTP and PostgreSQL endpoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::watch;

use rhizome_coordinator::dev::{dev_raft_settings, DevCluster, SampleState};
use rhizome_coordinator::executor::{Executor, ExecutorOptions};
use rhizome_coordinator::http::{serve_http, HttpState};
use rhizome_coordinator::pg::serve_pg;
use rhizome_coordinator::sample::{load_lineitem, SAMPLE_SCALE_FACTOR};

/// How long the cluster may take to elect its leaders before `rhizome dev` gives up.
const READY_WAIT_MS_MAX: u64 = 120_000;

#[derive(Debug, Parser)]
#[command(
    name = "rhizome",
    version,
    about = "Rhizome: a distributed analytics database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a development server: three storage nodes (each shard a Raft group replicated
    /// over loopback gRPC) and the coordinator in this process, with the HTTP and PostgreSQL
    /// endpoints.
    ///
    /// Everything is kept in --data-dir: starting again on the same directory brings back
    /// every table and row. A new directory gets the sample table unless --no-sample.
    Dev {
        /// Directory for data (created if missing).
        #[arg(long, default_value = "rhizome-data")]
        data_dir: PathBuf,
        /// Address of the HTTP endpoint (POST /v1/sql, /health, /ready, /metrics).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// Address of the PostgreSQL wire-protocol endpoint (any user, no password).
        #[arg(long, default_value = "127.0.0.1:5432")]
        pg: SocketAddr,
        /// Do not create the sample TPC-H `lineitem` table (scale factor 0.01) in a new
        /// data directory.
        #[arg(long)]
        no_sample: bool,
    },
}

fn main() -> std::process::ExitCode {
    node::allocator::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rhizome: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rhizome: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let Command::Dev {
        data_dir,
        http,
        pg,
        no_sample,
    } = cli.command;
    let http_listener = TcpListener::bind(http)
        .await
        .map_err(|e| format!("cannot listen for HTTP on {http}: {e}"))?;
    let pg_listener = TcpListener::bind(pg)
        .await
        .map_err(|e| format!("cannot listen for PostgreSQL on {pg}: {e}"))?;
    tracing::info!(data_dir = %data_dir.display(), "starting the nodes");
    let mut dev = DevCluster::start(&data_dir, !no_sample, dev_raft_settings()).await?;
    let executor = Arc::new(Executor::new(
        dev.cluster.clone(),
        ExecutorOptions::default(),
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let (stop, _) = watch::channel(false);
    let stopped = |stop: &watch::Sender<bool>| {
        let mut receiver = stop.subscribe();
        async move {
            let _ = receiver.wait_for(|s| *s).await;
        }
    };
    let state = HttpState {
        executor: executor.clone(),
        ready: ready.clone(),
    };
    let http_task = tokio::spawn(serve_http(http_listener, state, stopped(&stop)));
    let pg_task = tokio::spawn(serve_pg(pg_listener, executor.clone(), stopped(&stop)));
    tracing::info!(%http, %pg, data_dir = %data_dir.display(), nodes = ?dev.config.nodes, "rhizome dev serving; waiting for leaders");

    let prepare = async {
        if !dev
            .wait_ready(std::time::Duration::from_millis(READY_WAIT_MS_MAX))
            .await
        {
            return Err(format!(
                "the cluster elected no leaders within {READY_WAIT_MS_MAX} ms"
            ));
        }
        if dev.config.sample == SampleState::Pending {
            load_sample(&mut dev, &executor).await?;
        }
        Ok::<(), String>(())
    };
    tokio::select! {
        prepared = prepare => prepared?,
        signal = stop_signal() => {
            signal?;
            tracing::info!("shutting down before ready");
            let _ = stop.send(true);
            dev.shutdown().await;
            return Ok(());
        }
    }
    ready.store(true, Ordering::Release);
    tracing::info!(%http, %pg, "ready");

    let outcome = tokio::select! {
        signal = stop_signal() => {
            tracing::info!("shutting down");
            signal
        }
        finished = first_server_end(http_task, pg_task) => finished,
    };
    let _ = stop.send(true);
    dev.shutdown().await;
    outcome
}

/// Load the sample `lineitem` through the normal insert path, once per data directory. A
/// load that was cut short (the state still says pending and the table exists) is dropped
/// and done again, so the sample is never half there.
async fn load_sample(dev: &mut DevCluster, executor: &Executor) -> Result<(), String> {
    let started = Instant::now();
    executor
        .execute("DROP TABLE IF EXISTS lineitem")
        .await
        .map_err(|e| format!("dropping a partial sample table: {e}"))?;
    let rows = load_lineitem(executor, SAMPLE_SCALE_FACTOR)
        .await
        .map_err(|e| format!("loading the sample lineitem table: {e}"))?;
    dev.set_sample(SampleState::Loaded)?;
    tracing::info!(
        rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sample table lineitem loaded"
    );
    Ok(())
}

/// Wait for Ctrl-C or SIGTERM.
async fn stop_signal() -> Result<(), String> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("waiting for SIGTERM: {e}"))?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.map_err(|e| format!("waiting for Ctrl-C: {e}")),
        _ = terminate.recv() => Ok(()),
    }
}

/// Wait for the first server task to end, which only happens on an error.
async fn first_server_end(
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    pg: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<(), String> {
    let (result, _, _) = futures::future::select_all([http, pg]).await;
    match result {
        Ok(Ok(())) => Err("a server stopped".into()),
        Ok(Err(e)) => Err(format!("a server failed: {e}")),
        Err(e) => Err(format!("a server task failed: {e}")),
    }
}
