//! [`DevCluster`]: the cluster `rhizome dev` runs — [`DEV_NODES`] storage nodes in this
//! process, each serving real gRPC on a loopback port, each with its own data directory,
//! and a [`GrpcCluster`] over them.
//!
//! ## The data directory
//!
//! ```text
//! DIR/
//!     cluster.json    the saved configuration: node ids and addresses, sample state
//!     node-<id>/      one node's data directory (meta group, shard groups)
//! ```
//!
//! A new directory gets free ports from the kernel, which are saved; a restart binds the
//! same ports again, so the Raft memberships (which hold addresses) stay valid.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use node::app::{serve_tcp, Node, NodeConfig, RaftSettings};
use node::client::Client;
use node::network::{TcpTransport, Transport};
use node::state_machine::write_atomic;
use node::types::NodeId;

use crate::grpc::GrpcCluster;

/// Nodes of a development cluster.
pub const DEV_NODES: u64 = 3;
/// The saved configuration, in the data directory.
pub const CONFIG_FILE: &str = "cluster.json";
/// How long a restart keeps trying to bind a saved port (a previous process may still be
/// letting it go).
pub const REBIND_WAIT_MS_MAX: u64 = 10_000;

/// Whether the sample table was loaded into a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleState {
    /// Not wanted (`--no-sample` when the directory was new).
    Skipped,
    /// To be loaded, or a load was cut short (the partial table is dropped and loaded again).
    Pending,
    Loaded,
}

/// What `cluster.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevConfig {
    /// Every node's loopback address, by id.
    pub nodes: BTreeMap<NodeId, String>,
    /// Whether the meta group was initialised.
    pub initialized: bool,
    pub sample: SampleState,
}

impl DevConfig {
    fn read(path: &Path) -> Result<Option<DevConfig>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn write(&self, path: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).expect("the configuration serialises");
        write_atomic(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

struct RunningNode {
    node: Arc<Node>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<node::Result<()>>,
}

/// A development cluster: nodes in this process and the [`GrpcCluster`] over them.
pub struct DevCluster {
    pub dir: PathBuf,
    pub config: DevConfig,
    pub cluster: Arc<GrpcCluster>,
    running: Vec<RunningNode>,
}

impl std::fmt::Debug for DevCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCluster")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Raft timing of a development cluster: every message crosses loopback inside one process.
pub fn dev_raft_settings() -> RaftSettings {
    RaftSettings {
        heartbeat_interval_ms: 250,
        election_timeout_min_ms: 1_000,
        election_timeout_max_ms: 2_000,
        ..RaftSettings::default()
    }
}

async fn bind(addr: &str) -> Result<TcpListener, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(REBIND_WAIT_MS_MAX);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%addr, error = %e, "port busy; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
        }
    }
}

impl DevCluster {
    /// Start (or restart) the cluster kept in `dir`. `sample` says whether a new directory
    /// wants the sample table; a directory that exists keeps what it recorded.
    pub async fn start(
        dir: &Path,
        sample: bool,
        settings: RaftSettings,
    ) -> Result<DevCluster, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
        let config_path = dir.join(CONFIG_FILE);
        let mut listeners = BTreeMap::new();
        let mut config = match DevConfig::read(&config_path)? {
            Some(config) => {
                for (&id, addr) in &config.nodes {
                    listeners.insert(id, bind(addr).await?);
                }
                tracing::info!(dir = %dir.display(), nodes = ?config.nodes, "reopening the cluster kept in the data directory");
                config
            }
            None => {
                let mut nodes = BTreeMap::new();
                for id in 1..=DEV_NODES {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
                    let addr: SocketAddr = listener
                        .local_addr()
                        .map_err(|e| format!("listener address: {e}"))?;
                    nodes.insert(id, addr.to_string());
                    listeners.insert(id, listener);
                }
                let config = DevConfig {
                    nodes,
                    initialized: false,
                    sample: if sample {
                        SampleState::Pending
                    } else {
                        SampleState::Skipped
                    },
                };
                config.write(&config_path)?;
                tracing::info!(dir = %dir.display(), nodes = ?config.nodes, "new cluster in the data directory");
                config
            }
        };
        // The nodes read their shards at the same time (each from its own directory): a
        // restart on a large data directory takes the time of the slowest node, not the sum.
        let started = futures::future::try_join_all(listeners.keys().map(|&id| {
            let node_dir = dir.join(format!("node-{id}"));
            let node_config = NodeConfig {
                id,
                addr: config.nodes[&id].clone(),
                data_dirs: vec![node_dir],
                peers: config.nodes.clone(),
                raft: settings.clone(),
                transport: Arc::new(TcpTransport::default()),
            };
            async move {
                Node::start(node_config)
                    .await
                    .map_err(|e| format!("starting node {id}: {e}"))
            }
        }))
        .await?;
        let mut running = Vec::new();
        for (node, (id, listener)) in started.into_iter().zip(listeners) {
            tracing::info!(node = id, addr = %config.nodes[&id], data = %node.config.data_dirs[0].display(), groups = node.groups().len(), "node serving");
            let (stop, stopped) = oneshot::channel();
            let server = tokio::spawn(serve_tcp(node.clone(), listener, async {
                let _ = stopped.await;
            }));
            running.push(RunningNode { node, stop, server });
        }
        let transport: Arc<dyn Transport> = Arc::new(TcpTransport::default());
        if !config.initialized {
            let first = config.nodes.values().next().expect("a cluster has nodes");
            let client = Client::new(0, config.nodes.clone(), transport.clone());
            match client.initialize(first, &config.nodes).await {
                Ok(()) | Err(node::Error::AlreadyExists(_)) => {}
                Err(e) => return Err(format!("initialising the cluster: {e}")),
            }
            config.initialized = true;
            config.write(&config_path)?;
        }
        let cluster = GrpcCluster::connect(config.nodes.clone(), transport);
        Ok(DevCluster {
            dir: dir.to_path_buf(),
            config,
            cluster,
            running,
        })
    }

    /// Wait until the meta group and every shard have a leader; false after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        use crate::cluster::Cluster;
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.cluster.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Record the sample table's state in `cluster.json`.
    pub fn set_sample(&mut self, sample: SampleState) -> Result<(), String> {
        self.config.sample = sample;
        self.config.write(&self.dir.join(CONFIG_FILE))
    }

    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.running.iter().map(|r| r.node.clone()).collect()
    }

    /// Stop every node (servers, then Raft groups). Files stay.
    pub async fn shutdown(self) {
        for running in self.running {
            let _ = running.stop.send(());
            running.node.shutdown().await;
            let _ = tokio::time::timeout(Duration::from_secs(10), running.server).await;
        }
    }
}
