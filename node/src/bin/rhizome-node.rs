//! `rhizome-node`: run one storage node.
//!
//! ```text
//! rhizome-node --id 1 --listen 127.0.0.1:7001 --data-dir /d0 --data-dir /d1 \
//!     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//! ```
//!
//! With `--initialize` (on one node) the node makes the cluster from `--peers` once they
//! answer. With `--join ADDR` a new node asks the cluster (any node of it, at `ADDR`) to add
//! it, retrying for up to [`JOIN_ATTEMPTS`] attempts; the cluster then moves the shards the
//! ring places on it. Stops on SIGTERM or Ctrl-C. Tables are created through the `Admin.CreateTable` RPC.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use rhizome_node::app::{serve_tcp, Node, NodeConfig, RaftSettings};
use rhizome_node::network::TcpTransport;
use rhizome_node::types::NodeId;

#[derive(Debug, Parser)]
#[command(name = "rhizome-node", about = "A Rhizome storage node")]
struct Args {
    /// This node's id (non-zero, unique in the cluster).
    #[arg(long)]
    id: NodeId,
    /// Address to listen on, `host:port`.
    #[arg(long)]
    listen: String,
    /// Address peers reach this node at; defaults to --listen.
    #[arg(long)]
    advertise: Option<String>,
    /// A data directory (spindle); repeat for several.
    #[arg(long = "data-dir", required = true)]
    data_dirs: Vec<PathBuf>,
    /// Every node of the cluster, this one included: `id=host:port,id=host:port,...`.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Applied entries between snapshots of a shard.
    #[arg(long, default_value_t = RaftSettings::default().snapshot_logs_since_last)]
    snapshot_every: u64,
    /// Bytes of rows applied since a shard's last snapshot that take the next one (or twice
    /// the last snapshot's bytes, if more).
    #[arg(long, default_value_t = RaftSettings::default().snapshot_log_bytes_min)]
    snapshot_log_bytes: u64,
    /// Log entries kept behind a snapshot, for followers slightly behind.
    #[arg(long, default_value_t = RaftSettings::default().logs_kept_behind_snapshot)]
    logs_kept: u64,
    /// Bytes of the shards' newest log entries the node keeps decoded in memory, shared by
    /// its shards (16 MiB each at most); older ones are read back from the log files when a
    /// follower far behind or a replay asks for them.
    #[arg(long, default_value_t = RaftSettings::default().log_cache_bytes)]
    log_cache_bytes: u64,
    /// Make the cluster from --peers (the meta group) once they answer, unless it was made
    /// before. Give it to one node only.
    #[arg(long)]
    initialize: bool,
    /// Join the cluster that the node at this address (`host:port`) belongs to, on start.
    /// Joining again (a restart with the same flag) is harmless.
    #[arg(long, value_name = "ADDR", conflicts_with = "initialize")]
    join: Option<String>,
}

/// Attempts of `--join` before giving up (one every [`JOIN_RETRY_MS`]).
const JOIN_ATTEMPTS: u32 = 60;
/// Pause between `--join` attempts.
const JOIN_RETRY_MS: u64 = 2_000;

/// Ask the cluster at `seed` to add this node, until it answers or the attempts run out.
async fn join(seed: String, id: NodeId, addr: String) {
    let transport: Arc<dyn rhizome_node::network::Transport> = Arc::new(TcpTransport::default());
    let client =
        rhizome_node::client::Client::new(0, BTreeMap::from([(0, seed.clone())]), transport);
    for attempt in 1..=JOIN_ATTEMPTS {
        match client.join(id, &addr).await {
            Ok(()) => {
                tracing::info!(%seed, "joined the cluster; its shards are rebalanced");
                return;
            }
            Err(
                e @ (rhizome_node::Error::InvalidArgument(_)
                | rhizome_node::Error::AlreadyExists(_)
                | rhizome_node::Error::FailedPrecondition(_)),
            ) => {
                tracing::error!(error = %e, "the cluster refused the join");
                return;
            }
            Err(e) => {
                tracing::info!(attempt, error = %e, "not joined yet; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(JOIN_RETRY_MS)).await;
            }
        }
    }
    tracing::error!(%seed, attempts = JOIN_ATTEMPTS, "gave up joining the cluster; call Admin.Join to retry");
}

fn parse_peers(peers: &[String]) -> Result<BTreeMap<NodeId, String>, String> {
    peers
        .iter()
        .map(|p| {
            let (id, addr) = p
                .split_once('=')
                .ok_or_else(|| format!("peer {p:?} is not id=host:port"))?;
            let id = id
                .parse::<NodeId>()
                .map_err(|e| format!("peer {p:?}: bad id: {e}"))?;
            Ok((id, addr.to_string()))
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    rhizome_node::allocator::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .init();
    let args = Args::parse();
    if args.id == 0 {
        return Err("--id must be non-zero".into());
    }
    let addr = args
        .advertise
        .clone()
        .unwrap_or_else(|| args.listen.clone());
    let mut peers = parse_peers(&args.peers)?;
    peers.entry(args.id).or_insert_with(|| addr.clone());
    let config = NodeConfig {
        id: args.id,
        addr,
        data_dirs: args.data_dirs,
        peers,
        raft: RaftSettings {
            snapshot_logs_since_last: args.snapshot_every,
            snapshot_log_bytes_min: args.snapshot_log_bytes,
            logs_kept_behind_snapshot: args.logs_kept,
            log_cache_bytes: args.log_cache_bytes,
            ..RaftSettings::default()
        },
        transport: Arc::new(TcpTransport::default()),
    };
    let node = Node::start(config).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    tracing::info!(id = args.id, listen = %args.listen, groups = node.groups().len(), "rhizome-node serving");
    if args.initialize {
        let node = node.clone();
        tokio::spawn(async move {
            loop {
                match node.initialize_cluster(node.config.peers.clone()).await {
                    Ok(()) => {
                        tracing::info!(peers = ?node.config.peers, "cluster initialised");
                        return;
                    }
                    Err(rhizome_node::Error::AlreadyExists(_)) => return,
                    Err(e) => {
                        tracing::info!(error = %e, "cluster not initialised yet; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    if let Some(seed) = args.join.clone() {
        tokio::spawn(join(seed, args.id, node.config.addr.clone()));
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    serve_tcp(node.clone(), listener, shutdown).await?;
    node.shutdown().await;
    Ok(())
}
