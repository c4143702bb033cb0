//! Wiring: a [`Node`] hosts shard groups (log store + state machine + network + openraft), and
//! [`serve`] exposes them over gRPC. Nothing here decides policy; it only connects the parts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::{BasicNode, Config, SnapshotPolicy};
use proto::v1::admin_server::AdminServer;
use proto::v1::raft_server::RaftServer;
use proto::v1::shard_query_server::ShardQueryServer;
use proto::v1::shard_write_server::ShardWriteServer;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::log_store::LogStore;
use crate::network::{NetworkFactory, Transport, MESSAGE_BYTES_MAX};
use crate::services::{AdminService, RaftService, ShardQueryService, ShardWriteService};
use crate::state_machine::{write_atomic, GroupDirs, ShardShared, ShardStateMachine};
use crate::status::from_fatal;
use crate::types::{GroupSpec, NodeId, Raft, ShardKey};

/// File, in a group's first directory, naming the group and its schema (bincode
/// [`GroupSpec`]): how a restarted node knows which groups it hosts.
pub const GROUP_FILE: &str = "GROUP";

/// Raft timing and log-compaction settings, injectable so tests and simulations choose them.
///
/// openraft 0.9 gives an append-entries RPC the heartbeat interval as its deadline, so the
/// interval must cover sending and fsyncing [`RaftSettings::append_entries_max`] entries of
/// up to [`crate::services::WRITE_BATCH_BYTES_MAX`] each on a loaded machine.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is built after this many applied entries since the last.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind a snapshot (for followers slightly behind).
    pub logs_kept_behind_snapshot: u64,
    /// Bytes of a snapshot chunk on the wire.
    pub snapshot_chunk_bytes: u64,
    /// Deadline of one snapshot chunk, the last one including opening the received store.
    /// openraft's default (200 ms) restarts big snapshots forever on a loaded machine.
    pub snapshot_chunk_timeout_ms: u64,
    /// Entries in one append-entries message.
    pub append_entries_max: u64,
    /// `None`: openraft draws each election timeout at random between the bounds. `Some`:
    /// each group's timeout is fixed, derived from the seed and the group's name, so a
    /// simulation replays the same elections (openraft's own draw is not injectable).
    pub election_timeout_seed: Option<u64>,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_interval_ms: 500,
            election_timeout_min_ms: 2_000,
            election_timeout_max_ms: 4_000,
            snapshot_logs_since_last: 2_000,
            logs_kept_behind_snapshot: 200,
            snapshot_chunk_bytes: 4 << 20,
            snapshot_chunk_timeout_ms: 60_000,
            append_entries_max: 2,
            election_timeout_seed: None,
        }
    }
}

impl RaftSettings {
    /// The election timeout bounds handed to openraft for a group. With a seed, the range is
    /// one millisecond wide, so openraft's draw from it can only give the derived value.
    fn election_timeout_ms(&self, group_name: &str) -> (u64, u64) {
        let (min, max) = (self.election_timeout_min_ms, self.election_timeout_max_ms);
        match self.election_timeout_seed {
            None => (min, max),
            Some(seed) => {
                // FNV-1a over the seed and the name: stable across runs and platforms.
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for byte in seed.to_le_bytes().iter().chain(group_name.as_bytes()) {
                    hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
                }
                let timeout = min + hash % max.saturating_sub(min).max(1);
                (timeout, timeout + 1)
            }
        }
    }

    fn openraft_config(&self, cluster_name: &str) -> Result<Config> {
        let (election_timeout_min, election_timeout_max) = self.election_timeout_ms(cluster_name);
        Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min,
            election_timeout_max,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.logs_kept_behind_snapshot,
            snapshot_max_chunk_size: self.snapshot_chunk_bytes,
            install_snapshot_timeout: self.snapshot_chunk_timeout_ms,
            max_payload_entries: self.append_entries_max,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::InvalidArgument(format!("raft settings: {e}")))
    }
}

/// Everything a node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// The address peers and clients reach this node at (`host:port`).
    pub addr: String,
    /// Data directories (spindles); the first holds logs and snapshot pointers.
    pub data_dirs: Vec<PathBuf>,
    /// Every node of the cluster (this one included), by id.
    pub peers: BTreeMap<NodeId, String>,
    pub raft: RaftSettings,
    pub transport: Arc<dyn Transport>,
}

/// One hosted shard group.
pub struct Group {
    pub key: ShardKey,
    pub raft: Raft,
    pub state: Arc<ShardShared>,
    pub log: LogStore,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A node: its configuration and the groups it hosts.
#[derive(Debug)]
pub struct Node {
    pub config: NodeConfig,
    groups: RwLock<BTreeMap<ShardKey, Arc<Group>>>,
    /// Serialises group creation, so two requests cannot open the same files twice.
    opening: tokio::sync::Mutex<()>,
}

impl Node {
    /// Start a node: reopen every group found in its first data directory.
    pub async fn start(config: NodeConfig) -> Result<Arc<Node>> {
        if config.data_dirs.is_empty() {
            return Err(Error::InvalidArgument(
                "a node needs a data directory".into(),
            ));
        }
        let node = Arc::new(Node {
            config,
            groups: RwLock::new(BTreeMap::new()),
            opening: tokio::sync::Mutex::new(()),
        });
        let groups_dir = node.config.data_dirs[0].join("groups");
        let mut specs = Vec::new();
        if groups_dir.exists() {
            for entry in std::fs::read_dir(&groups_dir).map_err(|e| Error::io(&groups_dir, e))? {
                let path = entry
                    .map_err(|e| Error::io(&groups_dir, e))?
                    .path()
                    .join(GROUP_FILE);
                if path.exists() {
                    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                    let spec: GroupSpec = bincode::deserialize(&bytes)
                        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
                    specs.push(spec);
                }
            }
        }
        // In key order, not the directory's: a simulation replays the same opening order.
        specs.sort_by(|a, b| a.key.cmp(&b.key));
        for spec in specs {
            node.open_group(spec).await?;
        }
        Ok(node)
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The group of a shard hosted here.
    pub fn group(&self, key: &ShardKey) -> Result<Arc<Group>> {
        self.groups
            .read()
            .expect("group map lock poisoned")
            .get(key)
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(format!("shard {key} is not hosted on node {}", self.id()))
            })
    }

    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .expect("group map lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Open a group (creating its files if new). Opening a hosted group returns it.
    pub async fn open_group(&self, spec: GroupSpec) -> Result<Arc<Group>> {
        let _opening = self.opening.lock().await;
        if let Ok(group) = self.group(&spec.key) {
            return Ok(group);
        }
        let dirs = GroupDirs::new(&self.config.data_dirs, &spec.key.dir_name());
        let group_file = dirs.first().join(GROUP_FILE);
        if !group_file.exists() {
            std::fs::create_dir_all(dirs.first()).map_err(|e| Error::io(dirs.first(), e))?;
            write_atomic(
                &group_file,
                &bincode::serialize(&spec).expect("a group spec serialises"),
            )
            .map_err(|e| Error::io(&group_file, e))?;
        }
        let group_name = spec.key.group_name();
        let storage = |e: openraft::StorageError<NodeId>| Error::Io {
            path: dirs.first().display().to_string(),
            source: std::io::Error::other(e.to_string()),
        };
        let log = LogStore::open(dirs.first()).map_err(storage)?;
        let sm = ShardStateMachine::open(dirs.clone(), spec.schema.clone()).map_err(storage)?;
        let state = sm.shared();
        let network = NetworkFactory {
            group: group_name.clone(),
            transport: self.config.transport.clone(),
        };
        let config = Arc::new(self.config.raft.openraft_config(&group_name)?);
        let raft = Raft::new(self.id(), config, network, log.clone(), sm)
            .await
            .map_err(|e| from_fatal(&group_name, e))?;
        let group = Arc::new(Group {
            key: spec.key.clone(),
            raft,
            state,
            log,
        });
        self.groups
            .write()
            .expect("group map lock poisoned")
            .insert(spec.key, group.clone());
        Ok(group)
    }

    /// Initialise a group's membership with `members` (once, on one member). A group that
    /// was initialised before is left as it is.
    pub async fn initialize_group(
        &self,
        key: &ShardKey,
        members: &BTreeMap<NodeId, String>,
    ) -> Result<()> {
        let group = self.group(key)?;
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .iter()
            .map(|(&id, addr)| (id, BasicNode { addr: addr.clone() }))
            .collect();
        match group.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    /// Stop every group's Raft core. Files stay as they are.
    pub async fn shutdown(&self) {
        for group in self.groups() {
            if let Err(e) = group.raft.shutdown().await {
                tracing::warn!(group = %group.key, error = %e, "raft shutdown");
            }
        }
        self.groups
            .write()
            .expect("group map lock poisoned")
            .clear();
    }

    /// How long a node waits for a group to have a leader before answering unavailable.
    pub fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.config.raft.election_timeout_max_ms * 4)
    }
}

/// Serve the node's gRPC services on `incoming` until `shutdown` resolves. `incoming` is a
/// stream of accepted connections: TCP in production ([`serve_tcp`]), anything else in a
/// simulation.
pub async fn serve<I, IO, IE>(
    node: Arc<Node>,
    incoming: I,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()>
where
    I: futures::Stream<Item = std::result::Result<IO, IE>> + Send,
    IO: AsyncRead + AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tonic::transport::Server::builder()
        .add_service(
            RaftServer::new(RaftService::new(node.clone()))
                .max_decoding_message_size(MESSAGE_BYTES_MAX)
                .max_encoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(
            ShardWriteServer::new(ShardWriteService::new(node.clone()))
                .max_decoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(
            ShardQueryServer::new(ShardQueryService::new(node.clone()))
                .max_encoding_message_size(MESSAGE_BYTES_MAX),
        )
        .add_service(AdminServer::new(AdminService::new(node)))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Transport {
            addr: "server".into(),
            reason: e.to_string(),
        })
}

/// Serve on a bound TCP listener.
pub async fn serve_tcp(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    serve(node, incoming, shutdown).await
}
