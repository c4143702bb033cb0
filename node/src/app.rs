//! Wiring: a [`Node`] hosts shard groups (log store + state machine + network + openraft), and
//! [`serve`] exposes them over gRPC. Nothing here decides policy; it only connects the parts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::{BasicNode, Config, SnapshotPolicy};
use proto::v1::admin_client::AdminClient;
use proto::v1::admin_server::AdminServer;
use proto::v1::raft_server::RaftServer;
use proto::v1::shard_query_server::ShardQueryServer;
use proto::v1::shard_write_server::ShardWriteServer;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::lease::LeaseClock;
use crate::log_store::{CacheLimit, LogStore};
use crate::meta::{
    MetaCommand, MetaOutcome, MetaShared, MetaStateMachine, Metadata, META_DIR, META_GROUP,
    META_VOTERS_MAX,
};
use crate::network::{NetworkFactory, Transport, MESSAGE_BYTES_MAX};
use crate::services::{AdminService, RaftService, ShardQueryService, ShardWriteService};
use crate::state_machine::{write_atomic, GroupDirs, ShardShared, ShardStateMachine};
use crate::status::{error_from_status, from_fatal, from_read_error, from_write_error};
use crate::types::{Command, CommandResponse, GroupSpec, NodeId, Raft, ShardKey};

/// Pause between attempts of a metadata operation while the meta group has no leader.
pub const META_RETRY_BACKOFF_MS: u64 = 50;
/// Deadline of one metadata operation, retries included.
pub const META_TIMEOUT_MS: u64 = 15_000;

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
    /// A snapshot is also built once the rows applied since the last one hold this many
    /// bytes, or twice the last snapshot's, whichever is more (`u64::MAX`: never by size).
    pub snapshot_log_bytes_min: u64,
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
    /// Serve linearizable reads under the leader's lease ([`crate::lease`]) when a quorum
    /// acknowledged it recently, instead of a round of messages per read.
    pub lease_reads: bool,
    /// Bytes of shard groups' newest log entries a node keeps decoded in memory, shared
    /// evenly by its groups, each taking at most [`crate::log_store::ENTRY_CACHE_BYTES`];
    /// older entries are read back from the log files when asked for.
    pub log_cache_bytes: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_interval_ms: 500,
            election_timeout_min_ms: 2_000,
            election_timeout_max_ms: 4_000,
            snapshot_logs_since_last: 2_000,
            snapshot_log_bytes_min: 64 << 20,
            logs_kept_behind_snapshot: 200,
            snapshot_chunk_bytes: 4 << 20,
            snapshot_chunk_timeout_ms: 60_000,
            append_entries_max: 2,
            election_timeout_seed: None,
            lease_reads: true,
            log_cache_bytes: 256 << 20,
        }
    }
}

impl RaftSettings {
    /// How long a quorum's acknowledgement of a leader's message keeps that leader the only
    /// possible one: half the shortest election timeout (every follower promises at least the
    /// whole of it; the other half absorbs clocks that run at different rates). Zero when
    /// lease reads are off.
    pub fn lease(&self) -> Duration {
        if self.lease_reads {
            Duration::from_millis(self.election_timeout_min_ms / 2)
        } else {
            Duration::ZERO
        }
    }

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
    /// Shares leadership confirmations among concurrent linearizable reads.
    pub reads: crate::reads::ReadBarrier,
    /// The leader's lease: reads without a confirmation round while a quorum acknowledged
    /// this replica recently; holds this replica's votes for a lease after it opens.
    pub lease: Arc<LeaseClock>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The meta group as hosted on a node (every node hosts one; see [`crate::meta`]).
pub struct MetaGroup {
    pub raft: Raft,
    pub state: Arc<MetaShared>,
    pub log: LogStore,
}

impl std::fmt::Debug for MetaGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaGroup")
            .field("dir", &self.state.dir)
            .finish_non_exhaustive()
    }
}

/// A node: its configuration and the groups it hosts.
#[derive(Debug)]
pub struct Node {
    pub config: NodeConfig,
    /// The meta group's replica on this node (idle until the cluster is initialised).
    meta: MetaGroup,
    groups: RwLock<BTreeMap<ShardKey, Arc<Group>>>,
    /// The shard groups' log cache limit: their share of `config.raft.log_cache_bytes`.
    log_cache: CacheLimit,
    /// Serialises group creation, so two requests cannot open the same files twice; holds
    /// whether the node answers RPCs yet (see [`Node::serving`]).
    opening: tokio::sync::Mutex<bool>,
    /// Serialises joins and leaves run on this node (as meta leader): one rebalance at a time.
    pub(crate) rebalancing: tokio::sync::Mutex<()>,
}

impl Node {
    /// Start a node: open the meta group and reopen every shard group found in its first
    /// data directory.
    pub async fn start(config: NodeConfig) -> Result<Arc<Node>> {
        if config.data_dirs.is_empty() {
            return Err(Error::InvalidArgument(
                "a node needs a data directory".into(),
            ));
        }
        let meta = open_meta(&config).await?;
        let groups_dir = config.data_dirs[0].join("groups");
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
        // The groups read their segments at the same time (on the blocking pool); nothing
        // else opens a group before `start` returns, so the `opening` lock is not needed.
        specs.sort_by(|a, b| a.key.cmp(&b.key));
        let node = Arc::new(Node {
            // Each group's share once all are open, from the start: their logs replay within it.
            log_cache: CacheLimit::new(CacheLimit::share(config.raft.log_cache_bytes, specs.len())),
            config,
            meta,
            groups: RwLock::new(BTreeMap::new()),
            opening: tokio::sync::Mutex::new(false),
            rebalancing: tokio::sync::Mutex::new(()),
        });
        futures::future::try_join_all(
            specs
                .into_iter()
                .map(|spec| node.open_new_group(spec, false)),
        )
        .await?;
        Ok(node)
    }

    /// Give every shard group its share of the node's log cache budget when the node hosts
    /// `groups` (a group evicts down to a lowered share at its next append).
    fn share_log_cache(&self, groups: usize) {
        self.log_cache
            .set(CacheLimit::share(self.config.raft.log_cache_bytes, groups));
    }

    fn group_count(&self) -> usize {
        self.groups.read().expect("group map lock poisoned").len()
    }

    /// Bytes of decoded log entries each shard group hosted here keeps at most.
    pub fn log_cache_per_group(&self) -> u64 {
        self.log_cache.get()
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

    /// The node answers RPCs from now on: its groups may stand for election.
    ///
    /// Until then a group cannot hear its leader's heartbeats, so its election timer would
    /// fire again and again while the node opens its other groups, each time in a higher
    /// term; once reachable, that term would depose the healthy leader (Raft without a
    /// pre-vote). Groups opened before this call start with elections off; later ones with
    /// them on. [`serve`] calls this.
    pub async fn serving(&self) {
        let mut serving = self.opening.lock().await;
        *serving = true;
        self.meta.raft.runtime_config().elect(true);
        for group in self.groups() {
            group.raft.runtime_config().elect(true);
        }
    }

    /// Open a group (creating its files if new). Opening a hosted group returns it.
    pub async fn open_group(&self, spec: GroupSpec) -> Result<Arc<Group>> {
        let serving = self.opening.lock().await;
        if let Ok(group) = self.group(&spec.key) {
            return Ok(group);
        }
        // The new group's share from the start (its log replays within it); a failed open
        // gives the old share back.
        self.share_log_cache(self.group_count() + 1);
        let opened = self.open_new_group(spec, *serving).await;
        if opened.is_err() {
            self.share_log_cache(self.group_count());
        }
        opened
    }

    /// Open a group that is not hosted yet, standing for election if `elect`; the caller
    /// makes sure no other open of the same group runs (the `opening` lock, or `start`).
    async fn open_new_group(&self, spec: GroupSpec, elect: bool) -> Result<Arc<Group>> {
        let dirs = GroupDirs::new(&self.config.data_dirs, &spec.key.dir_name());
        let group_file = dirs.first().join(GROUP_FILE);
        if !group_file.exists() {
            // Durably: a group directory whose entry a crash drops takes the group's log
            // (its votes and acknowledged entries) with it.
            rhizome_core::durable::create_dir_all(dirs.first())
                .map_err(|e| Error::io(dirs.first(), e))?;
            write_atomic(
                &group_file,
                &bincode::serialize(&spec).expect("a group spec serialises"),
            )
            .map_err(|e| Error::io(&group_file, e))?;
        }
        let group_name = spec.key.group_name();
        // Reading a large shard's segments takes a while: off the runtime's workers, which
        // keep the heartbeats of the groups already open going.
        let (log, sm) = {
            let (dirs, schema) = (dirs.clone(), spec.schema.clone());
            let snapshot_log_bytes_min = self.config.raft.snapshot_log_bytes_min;
            let log_cache = self.log_cache.clone();
            crate::blocking::run(move || {
                let storage = |e: openraft::StorageError<NodeId>| Error::Io {
                    path: dirs.first().display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                };
                Ok::<_, Error>((
                    LogStore::open_with_limit(dirs.first(), log_cache).map_err(storage)?,
                    ShardStateMachine::open(dirs.clone(), schema, snapshot_log_bytes_min)
                        .map_err(storage)?,
                ))
            })
            .await
            .map_err(|e| Error::Io {
                path: group_name.clone(),
                source: std::io::Error::other(e.to_string()),
            })??
        };
        let state = sm.shared();
        let lease = Arc::new(LeaseClock::new(self.config.raft.lease()));
        let network = NetworkFactory {
            group: group_name.clone(),
            transport: self.config.transport.clone(),
            lease: Some(lease.clone()),
        };
        let mut config = self.config.raft.openraft_config(&group_name)?;
        config.enable_elect = elect;
        let raft = Raft::new(self.id(), Arc::new(config), network, log.clone(), sm)
            .await
            .map_err(|e| from_fatal(&group_name, e))?;
        tokio::spawn(build_snapshots_when_wanted(
            state.snapshot_wanted(),
            raft.clone(),
        ));
        let group = Arc::new(Group {
            key: spec.key.clone(),
            raft,
            state,
            log,
            reads: Default::default(),
            lease,
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

    /// Close a shard group hosted here and remove its files from every spindle. Closing a
    /// group that is not hosted is not an error (a retried drop).
    pub async fn drop_group(&self, key: &ShardKey) -> Result<()> {
        let _opening = self.opening.lock().await;
        let group = self
            .groups
            .write()
            .expect("group map lock poisoned")
            .remove(key);
        if let Some(group) = group {
            close_group(&group).await;
        }
        self.share_log_cache(self.group_count());
        let dirs = GroupDirs::new(&self.config.data_dirs, &key.dir_name());
        // The GROUP file first: once it is gone a restart no longer reopens the group, even
        // if removing the rest is cut short.
        let group_file = dirs.first().join(GROUP_FILE);
        // Durably (the directory fsynced), before anything else goes: a removal a crash
        // undid would bring the group back at the next start with some of its files gone.
        match std::fs::remove_file(&group_file) {
            Ok(()) => rhizome_core::durable::sync_dir(dirs.first())
                .map_err(|e| Error::io(dirs.first(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&group_file, e)),
        }
        for dir in &dirs.dirs {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(dir, e)),
            }
            if let Some(parent) = dir.parent() {
                rhizome_core::durable::sync_dir(parent).map_err(|e| Error::io(parent, e))?;
            }
        }
        tracing::info!(group = %key, "shard group dropped");
        Ok(())
    }

    pub fn meta(&self) -> &MetaGroup {
        &self.meta
    }

    /// Make the meta group with `members` (this node among them): the first
    /// [`META_VOTERS_MAX`] by id are its voters; all are recorded as the cluster's nodes.
    /// `AlreadyExists` when the cluster was initialised before (a call that was cut short
    /// before the node list was recorded is completed instead).
    pub async fn initialize_cluster(&self, members: BTreeMap<NodeId, String>) -> Result<()> {
        let mut members = members;
        members
            .entry(self.id())
            .or_insert_with(|| self.config.addr.clone());
        if members.contains_key(&0) || members.values().any(String::is_empty) {
            return Err(Error::InvalidArgument(
                "members need non-zero ids and addresses".into(),
            ));
        }
        let mut voters: BTreeMap<NodeId, BasicNode> = BTreeMap::new();
        voters.insert(
            self.id(),
            BasicNode {
                addr: members[&self.id()].clone(),
            },
        );
        for (&id, addr) in &members {
            if voters.len() >= META_VOTERS_MAX {
                break;
            }
            voters
                .entry(id)
                .or_insert_with(|| BasicNode { addr: addr.clone() });
        }
        match self.meta.raft.initialize(voters.clone()).await {
            Ok(()) => {
                tracing::info!(voters = ?voters.keys(), nodes = ?members.keys(), "meta group initialised");
            }
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => {
                // Initialised before. If the node list was never recorded (the first call
                // ended before its meta leader was elected), this call completes it.
                let (metadata, _) = self.metadata().await?;
                if !metadata.nodes.is_empty() {
                    return Err(Error::AlreadyExists(
                        "the cluster is initialised already".into(),
                    ));
                }
            }
            Err(e) => return Err(Error::Raft(e.to_string())),
        }
        self.meta_propose(MetaCommand::SetNodes(members)).await?;
        Ok(())
    }

    /// Propose a metadata command to the meta group through its leader (this node, or the
    /// leader it names over gRPC), waiting while there is none, until [`META_TIMEOUT_MS`].
    pub async fn meta_propose(&self, command: MetaCommand) -> Result<MetaOutcome> {
        self.meta_leader_call(|leader| {
            let command = command.clone();
            async move {
                match leader {
                    None => self.meta_propose_here(command).await,
                    Some(addr) => {
                        let channel = self.config.transport.channel(&addr)?;
                        let reply = AdminClient::new(channel)
                            .meta_propose(proto::v1::MetaProposeRequest {
                                command_bincode: bincode::serialize(&command)
                                    .expect("meta commands serialise"),
                            })
                            .await
                            .map_err(|s| error_from_status(&addr, &s))?
                            .into_inner();
                        bincode::deserialize(&reply.outcome_bincode).map_err(|e| {
                            Error::Raft(format!("undecodable meta outcome from {addr}: {e}"))
                        })
                    }
                }
            }
        })
        .await
    }

    /// Propose a metadata command to the meta group's replica on this node (the leader, or
    /// `NotLeader` naming it).
    pub async fn meta_propose_here(&self, command: MetaCommand) -> Result<MetaOutcome> {
        let response = self
            .meta
            .raft
            .client_write(Command::Meta(command))
            .await
            .map_err(|e| from_write_error(META_GROUP, e))?;
        match response.data {
            CommandResponse::Meta(outcome) => Ok(outcome),
            other => Err(Error::Raft(format!("a meta command applied as {other:?}"))),
        }
    }

    /// The metadata, read linearizably (through the meta leader), with the meta log index it
    /// reflects.
    pub async fn metadata(&self) -> Result<(Metadata, u64)> {
        self.meta_leader_call(|leader| async move {
            match leader {
                None => self.metadata_here().await,
                Some(addr) => {
                    let channel = self.config.transport.channel(&addr)?;
                    let reply = AdminClient::new(channel)
                        .metadata(proto::v1::MetadataRequest {})
                        .await
                        .map_err(|s| error_from_status(&addr, &s))?
                        .into_inner();
                    let metadata = bincode::deserialize(&reply.metadata_bincode).map_err(|e| {
                        Error::Raft(format!("undecodable metadata from {addr}: {e}"))
                    })?;
                    Ok((metadata, reply.applied_index))
                }
            }
        })
        .await
    }

    /// The metadata as this node's replica holds it, after confirming it leads the meta group
    /// (so the answer is linearizable), or `NotLeader` naming the leader.
    pub async fn metadata_here(&self) -> Result<(Metadata, u64)> {
        self.meta
            .raft
            .ensure_linearizable()
            .await
            .map_err(|e| from_read_error(META_GROUP, e))?;
        let state = self.meta.state.read();
        Ok((
            state.metadata.clone(),
            state.last_applied.map_or(0, |l| l.index),
        ))
    }

    /// Run `call` here (`None`) or at the meta leader's address, following `NotLeader`
    /// answers and waiting out elections and transport failures until [`META_TIMEOUT_MS`].
    pub(crate) async fn meta_leader_call<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(META_TIMEOUT_MS);
        let mut target: Option<String> = None;
        loop {
            let error = match call(target.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let retry = match &error {
                Error::NotLeader {
                    leader: Some((id, addr)),
                    ..
                } => {
                    target = (*id != self.id()).then(|| addr.clone());
                    target.is_some()
                }
                Error::NotLeader { leader: None, .. }
                | Error::Transport { .. }
                | Error::Unavailable { .. } => {
                    target = None;
                    false
                }
                _ => return Err(error),
            };
            if target.is_none() && !retry && self.left_meta_group() {
                // Removed from the meta group (it left the cluster): no leader will tell it
                // anything again, so waiting is pointless; the caller asks another node.
                return Err(Error::Unavailable {
                    shard: META_GROUP.into(),
                    reason: format!("node {} is not a member of the meta group", self.id()),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable {
                    shard: META_GROUP.into(),
                    reason: format!("no meta leader answered within {META_TIMEOUT_MS} ms: {error}"),
                });
            }
            if !retry {
                tokio::time::sleep(Duration::from_millis(META_RETRY_BACKOFF_MS)).await;
            }
        }
    }

    /// Whether this node's meta replica knows a membership that does not include it: the
    /// node was taken out of the meta group (`Admin.Leave`). An uninitialised replica (no
    /// membership yet) has not left.
    fn left_meta_group(&self) -> bool {
        let metrics = self.meta.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let mut nodes = membership.nodes().map(|(id, _)| *id).peekable();
        nodes.peek().is_some() && !nodes.any(|id| id == self.id())
    }

    /// Stop every group's Raft core. Files stay as they are.
    pub async fn shutdown(&self) {
        if let Err(e) = self.meta.raft.shutdown().await {
            tracing::warn!(group = META_GROUP, error = %e, "raft shutdown");
        }
        for group in self.groups() {
            close_group(&group).await;
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

/// Stop a shard group's Raft core, then wait for a snapshot step it left running and close
/// the replica's files to any later one (see [`ShardShared::close`]).
async fn close_group(group: &Group) {
    if let Err(e) = group.raft.shutdown().await {
        tracing::warn!(group = %group.key, error = %e, "raft shutdown");
    }
    // Ends the group's snapshot task: its trigger now finds the core stopped.
    group.state.snapshot_wanted().notify_one();
    let state = group.state.clone();
    if let Err(e) = crate::blocking::run(move || state.close()).await {
        tracing::warn!(group = %group.key, error = %e, "closing the replica's files");
    }
}

/// Ask openraft for a snapshot whenever a shard's state machine wants one by the size of its
/// log (see `state_machine`); ends once the group's Raft core has stopped.
async fn build_snapshots_when_wanted(wanted: Arc<tokio::sync::Notify>, raft: Raft) {
    loop {
        wanted.notified().await;
        if let Err(e) = raft.trigger().snapshot().await {
            tracing::debug!(error = %e, "snapshot trigger: the group has stopped");
            return;
        }
    }
}

/// Open (or create) the meta group's replica in the node's first data directory.
async fn open_meta(config: &NodeConfig) -> Result<MetaGroup> {
    let dir = config.data_dirs[0].join(META_DIR);
    let storage = |e: openraft::StorageError<NodeId>| Error::Io {
        path: dir.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    };
    let sm = MetaStateMachine::open(&dir).map_err(storage)?;
    let log = LogStore::open(&dir).map_err(storage)?;
    let state = sm.shared();
    // Meta reads always confirm with a round: they are rare.
    let network = NetworkFactory {
        group: META_GROUP.to_string(),
        transport: config.transport.clone(),
        lease: None,
    };
    let mut raft_config = config.raft.openraft_config(META_GROUP)?;
    // No election before the node serves (see `Node::serving`).
    raft_config.enable_elect = false;
    let raft = Raft::new(config.id, Arc::new(raft_config), network, log.clone(), sm)
        .await
        .map_err(|e| from_fatal(META_GROUP, e))?;
    Ok(MetaGroup { raft, state, log })
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
    node.serving().await;
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
    use futures::StreamExt;
    // Replies go out at once: with Nagle's algorithm a reply written in several pieces
    // (headers, message, trailers) waits for the peer's delayed ACK (~40 ms).
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
        stream.inspect(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY: {e}");
            }
        })
    });
    serve(node, incoming, shutdown).await
}
