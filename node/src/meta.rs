//! The meta group: cluster metadata — the node list, the tables (name, schema, primary key,
//! shard and replica counts) and the shard map (which nodes replicate each shard) — in its
//! own Raft group named [`META_GROUP`], replicated on up to [`META_VOTERS_MAX`] nodes.
//!
//! Every node hosts a meta Raft instance from its start (an uninitialised one is idle until a
//! leader reaches it); `Admin.Initialize` on the first node makes the group with the given
//! members. Changes are [`MetaCommand`]s in the log, applied identically on every member by
//! [`Metadata::apply`]; whether a name is taken is decided there, in log order, so two
//! concurrent creations of one table cannot both succeed.
//!
//! Nodes join and leave through it too (see [`crate::rebalance`]): `AddNode` lists a node,
//! `MarkLeaving` stops placing on a node that is going, `SetPlacement` records each finished
//! shard move and `RemoveNode` unlists a node that left. Shards are placed on the ring over
//! [`Metadata::placeable_nodes`] with the replica count the table asked for
//! ([`Metadata::replicas_requested`]), so the shard map follows the node list.
//!
//! ## Files, in the node's first data directory
//!
//! ```text
//! meta/
//!     raft.log     the group's log (the same log store as the shard groups)
//!     SNAPSHOT     the last snapshot: crc32c: u32 LE | bincode(SavedMeta)
//! ```
//!
//! A snapshot is the whole [`Metadata`] serialised (it is small: a few hundred bytes per
//! table). A restart opens `SNAPSHOT` and openraft re-applies the committed log after it.
//! bincode has no field names, so fields added to [`Metadata`] go last and snapshots of the
//! layout before them are decoded as such (`MetadataV0`); log entries keep their layout
//! (new commands are new variants, appended).

// openraft's storage traits return its `StorageError` (a large type) by value.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use rhizome_core::shard::Schema;
use serde::{Deserialize, Serialize};

use crate::state_machine::write_atomic;
use crate::types::{
    CommandResponse, Entry, LogId, NodeId, ShardKey, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};

/// The meta group's name on the wire.
pub const META_GROUP: &str = "meta";
/// Most voters of the meta group: the first nodes (by id) of the initial members.
pub const META_VOTERS_MAX: usize = 3;
/// The meta group's directory, in a node's first data directory.
pub const META_DIR: &str = "meta";
/// The meta group's snapshot file, in [`META_DIR`].
pub const SNAPSHOT_FILE: &str = "SNAPSHOT";
/// Largest snapshot file accepted: a bound on what a corrupt file makes us allocate.
pub const SNAPSHOT_BYTES_MAX: usize = 256 << 20;

/// A table as the meta group records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    pub name: String,
    pub schema: Schema,
    /// Column names of the primary key (write routing; empty: round-robin).
    pub primary_key: Vec<String>,
    pub shards: u32,
    /// Replicas per shard, as placed (the request capped by the node count); the request
    /// itself is [`Metadata::replicas_requested`].
    pub replicas: u32,
    /// Per shard, the nodes replicating it; the first is the one that initialised it.
    pub placement: Vec<Vec<NodeId>>,
}

impl TableMeta {
    pub fn shard_key(&self, shard: u32) -> ShardKey {
        ShardKey::new(&self.name, shard)
    }
}

/// The cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Every node of the cluster, by id: its address.
    pub nodes: BTreeMap<NodeId, String>,
    /// Tables by name.
    pub tables: BTreeMap<String, TableMeta>,
    /// Replicas per shard as requested at creation, by table name (tables created before this
    /// was recorded are absent: their `TableMeta::replicas` stands for the request). The
    /// placement gives a shard `min(requested, nodes)` replicas, so a table created on fewer
    /// nodes than it asked for grows when nodes join.
    #[serde(default)]
    pub replicas_requested: BTreeMap<String, u32>,
    /// Nodes being taken out of the cluster (`Admin.Leave` under way): still listed in
    /// `nodes` (their shards are moving off), but no longer placed on.
    #[serde(default)]
    pub leaving: BTreeSet<NodeId>,
}

/// [`Metadata`] as snapshots written before `replicas_requested` and `leaving` hold it
/// (bincode has no field names: a missing trailing field is an early end of input, so old
/// snapshots are decoded with this layout instead).
#[derive(Debug, Deserialize)]
struct MetadataV0 {
    nodes: BTreeMap<NodeId, String>,
    tables: BTreeMap<String, TableMeta>,
}

impl From<MetadataV0> for Metadata {
    fn from(old: MetadataV0) -> Metadata {
        Metadata {
            nodes: old.nodes,
            tables: old.tables,
            ..Metadata::default()
        }
    }
}

/// A change to the metadata (a log entry of the meta group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Record the node list (written once, by `Initialize`).
    SetNodes(BTreeMap<NodeId, String>),
    /// Record a table with its shard map, unless the name is taken.
    CreateTable(TableMeta),
    /// Remove a table, if there is one.
    DropTable(String),
    /// Record a table with its shard map and the replica count asked for (which may exceed
    /// the nodes there are), unless the name is taken. (`CreateTable` stays for old logs.)
    CreateTableRequested { table: TableMeta, replicas: u32 },
    /// Add a node to the node list, or confirm it (`Admin.Join`; the first step of a join,
    /// so a join cut short is resumed by joining again). `NodeConflict` when the id is taken
    /// by another address or the node is leaving.
    AddNode { id: NodeId, addr: String },
    /// Mark a listed node as leaving: no longer placed on (the first step of `Admin.Leave`).
    MarkLeaving(NodeId),
    /// Remove a node from the node list (the last step of `Admin.Leave`, once no shard is
    /// placed on it). Removing an unlisted node changes nothing.
    RemoveNode(NodeId),
    /// Record a finished shard move: the shard's replicas are now `members` (ring order).
    SetPlacement {
        table: String,
        shard: u32,
        members: Vec<NodeId>,
    },
}

/// What applying a [`MetaCommand`] did: the same on every member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaOutcome {
    Done,
    /// `CreateTable` of a name that is taken: nothing changed.
    TableExists(String),
    /// `DropTable` of a name that is not a table: nothing changed.
    UnknownTable(String),
    /// `DropTable` removed this table (its shard map says where its groups are).
    Dropped(TableMeta),
    /// `AddNode` or `MarkLeaving` that contradicts the node list: nothing changed.
    NodeConflict(String),
    /// `MarkLeaving` of a node that is not listed, or `SetPlacement` of a shard that is not
    /// there: nothing changed.
    NotFound(String),
}

impl Metadata {
    /// Apply one command. Pure: every member computes the same outcome from the same state.
    pub fn apply(&mut self, command: &MetaCommand) -> MetaOutcome {
        match command {
            MetaCommand::SetNodes(nodes) => {
                self.nodes = nodes.clone();
                MetaOutcome::Done
            }
            MetaCommand::CreateTable(table) => self.create_table(table, None),
            MetaCommand::CreateTableRequested { table, replicas } => {
                self.create_table(table, Some(*replicas))
            }
            MetaCommand::DropTable(name) => match self.tables.remove(name) {
                Some(table) => {
                    self.replicas_requested.remove(name);
                    MetaOutcome::Dropped(table)
                }
                None => MetaOutcome::UnknownTable(name.clone()),
            },
            MetaCommand::AddNode { id, addr } => {
                if self.leaving.contains(id) {
                    return MetaOutcome::NodeConflict(format!(
                        "node {id} is leaving the cluster; let the leave finish first"
                    ));
                }
                match self.nodes.get(id) {
                    Some(known) if known != addr => MetaOutcome::NodeConflict(format!(
                        "node id {id} is taken by {known} (asked for {addr})"
                    )),
                    _ => {
                        self.nodes.insert(*id, addr.clone());
                        MetaOutcome::Done
                    }
                }
            }
            MetaCommand::MarkLeaving(id) => {
                if !self.nodes.contains_key(id) {
                    return MetaOutcome::NotFound(format!("node {id} is not in the cluster"));
                }
                if self
                    .nodes
                    .keys()
                    .all(|n| n == id || self.leaving.contains(n))
                {
                    return MetaOutcome::NodeConflict(format!(
                        "node {id} is the last node that is not leaving: its shards have nowhere to go"
                    ));
                }
                self.leaving.insert(*id);
                MetaOutcome::Done
            }
            MetaCommand::RemoveNode(id) => {
                self.nodes.remove(id);
                self.leaving.remove(id);
                MetaOutcome::Done
            }
            MetaCommand::SetPlacement {
                table,
                shard,
                members,
            } => {
                let Some(meta) = self.tables.get_mut(table) else {
                    return MetaOutcome::NotFound(format!("table {table}"));
                };
                let Some(slot) = meta.placement.get_mut(*shard as usize) else {
                    return MetaOutcome::NotFound(format!("shard {table}/{shard}"));
                };
                *slot = members.clone();
                meta.replicas = meta.placement.iter().map(Vec::len).min().unwrap_or(0) as u32;
                MetaOutcome::Done
            }
        }
    }

    fn create_table(&mut self, table: &TableMeta, requested: Option<u32>) -> MetaOutcome {
        if self.tables.contains_key(&table.name) {
            return MetaOutcome::TableExists(table.name.clone());
        }
        self.tables.insert(table.name.clone(), table.clone());
        if let Some(replicas) = requested {
            self.replicas_requested.insert(table.name.clone(), replicas);
        }
        MetaOutcome::Done
    }

    /// The nodes shards are placed on: the listed ones that are not leaving.
    pub fn placeable_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .keys()
            .filter(|id| !self.leaving.contains(id))
            .copied()
            .collect()
    }

    /// Replicas per shard a table asked for (its placed count for tables from before the
    /// request was recorded).
    pub fn replicas_wanted(&self, table: &TableMeta) -> usize {
        self.replicas_requested
            .get(&table.name)
            .copied()
            .unwrap_or(table.replicas) as usize
    }

    /// Where the ring wants a shard's replicas, over the placeable nodes.
    pub fn wanted_placement(&self, table: &TableMeta, shard: u32) -> Vec<NodeId> {
        crate::placement::replicas(
            &table.shard_key(shard),
            &self.placeable_nodes(),
            self.replicas_wanted(table),
        )
    }
}

/// What `SNAPSHOT` holds.
#[derive(Debug, Serialize, Deserialize)]
struct SavedMeta {
    meta: SnapshotMeta,
    metadata: Metadata,
}

/// `SNAPSHOT` as written before [`Metadata`] had `replicas_requested` and `leaving`.
#[derive(Debug, Deserialize)]
struct SavedMetaV0 {
    meta: SnapshotMeta,
    metadata: MetadataV0,
}

/// Decode [`Metadata`] (a snapshot's data), in the current layout or the one before.
fn decode_metadata(bytes: &[u8]) -> Result<Metadata, bincode::Error> {
    bincode::deserialize::<Metadata>(bytes).or_else(|e| {
        bincode::deserialize::<MetadataV0>(bytes)
            .map(Metadata::from)
            .map_err(|_| e)
    })
}

/// The state behind the lock.
#[derive(Debug, Default)]
pub struct MetaState {
    pub metadata: Metadata,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// The last snapshot: its meta and data (bincode of [`Metadata`]).
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

/// Shared between the Raft core (which applies) and the services (which read).
#[derive(Debug)]
pub struct MetaShared {
    pub dir: PathBuf,
    state: RwLock<MetaState>,
}

impl MetaShared {
    pub fn read(&self) -> RwLockReadGuard<'_, MetaState> {
        self.state
            .read()
            .expect("meta state lock poisoned by a panic")
    }

    fn write(&self) -> RwLockWriteGuard<'_, MetaState> {
        self.state
            .write()
            .expect("meta state lock poisoned by a panic")
    }
}

/// openraft's handle on the meta state machine.
#[derive(Debug, Clone)]
pub struct MetaStateMachine {
    shared: Arc<MetaShared>,
}

fn error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

fn encode_saved(saved: &SavedMeta) -> Vec<u8> {
    let body = bincode::serialize(saved).expect("metadata serialises");
    let mut bytes = crc32c::crc32c(&body).to_le_bytes().to_vec();
    bytes.extend_from_slice(&body);
    bytes
}

fn decode_saved(path: &Path, bytes: &[u8]) -> Result<SavedMeta, String> {
    if bytes.len() < 4 || bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(format!("{}: {} bytes", path.display(), bytes.len()));
    }
    let (crc, body) = bytes.split_at(4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(format!("{}: checksum mismatch", path.display()));
    }
    bincode::deserialize::<SavedMeta>(body)
        .or_else(|e| {
            bincode::deserialize::<SavedMetaV0>(body)
                .map(|old| SavedMeta {
                    meta: old.meta,
                    metadata: old.metadata.into(),
                })
                .map_err(|_| e)
        })
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl MetaStateMachine {
    /// Open the meta state in `dir` (created if missing): the last snapshot, or empty.
    pub fn open(dir: &Path) -> Result<MetaStateMachine, StorageError> {
        let read_err = |e: String| error(ErrorSubject::StateMachine, ErrorVerb::Read, e);
        rhizome_core::durable::create_dir_all(dir).map_err(|e| read_err(e.to_string()))?;
        let path = dir.join(SNAPSHOT_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let saved = decode_saved(&path, &bytes).map_err(read_err)?;
                tracing::info!(dir = %dir.display(), applied = ?saved.meta.last_log_id, tables = saved.metadata.tables.len(), "meta state opened from snapshot");
                let data = bincode::serialize(&saved.metadata).expect("metadata serialises");
                MetaState {
                    last_applied: saved.meta.last_log_id,
                    membership: saved.meta.last_membership.clone(),
                    metadata: saved.metadata,
                    snapshot: Some((saved.meta, data)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetaState::default(),
            Err(e) => return Err(read_err(format!("{}: {e}", path.display()))),
        };
        Ok(MetaStateMachine {
            shared: Arc::new(MetaShared {
                dir: dir.to_path_buf(),
                state: RwLock::new(state),
            }),
        })
    }

    pub fn shared(&self) -> Arc<MetaShared> {
        self.shared.clone()
    }

    /// Write `SNAPSHOT` durably and remember it as the current snapshot.
    fn save(&self, meta: &SnapshotMeta, metadata: &Metadata) -> Result<Vec<u8>, StorageError> {
        let saved = SavedMeta {
            meta: meta.clone(),
            metadata: metadata.clone(),
        };
        let path = self.shared.dir.join(SNAPSHOT_FILE);
        write_atomic(&path, &encode_saved(&saved)).map_err(|e| {
            error(
                ErrorSubject::Snapshot(None),
                ErrorVerb::Write,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(bincode::serialize(metadata).expect("metadata serialises"))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MetaStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (metadata, last, membership) = {
            let state = self.shared.read();
            (
                state.metadata.clone(),
                state.last_applied,
                state.membership.clone(),
            )
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id: format!(
                "meta-{}-{}",
                last.map(|l| l.leader_id.term).unwrap_or(0),
                last.map(|l| l.index).unwrap_or(0)
            ),
        };
        let data = self.save(&meta, &metadata)?;
        self.shared.write().snapshot = Some((meta.clone(), data.clone()));
        tracing::info!(applied = ?last, tables = metadata.tables.len(), "meta snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetaStateMachine {
    type SnapshotBuilder = MetaStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.shared.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut state = self.shared.write();
        let mut responses = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => CommandResponse::None,
                EntryPayload::Membership(membership) => {
                    state.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    CommandResponse::None
                }
                EntryPayload::Normal(crate::types::Command::Meta(command)) => {
                    let outcome = state.metadata.apply(command);
                    tracing::debug!(index = entry.log_id.index, ?outcome, "meta command applied");
                    CommandResponse::Meta(outcome)
                }
                EntryPayload::Normal(_) => CommandResponse::Rejected {
                    reason: "the meta group applies only metadata commands".into(),
                },
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let metadata = decode_metadata(snapshot.get_ref()).map_err(|e| {
            error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        })?;
        let data = self.save(meta, &metadata)?;
        let mut state = self.shared.write();
        state.metadata = metadata;
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some((meta.clone(), data));
        tracing::info!(applied = ?meta.last_log_id, "meta snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .shared
            .read()
            .snapshot
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhizome_core::shard::ColumnDef;
    use rhizome_core::value::DataType;

    fn table(name: &str) -> TableMeta {
        TableMeta {
            name: name.into(),
            schema: Schema::new(vec![ColumnDef {
                name: "a".into(),
                data_type: DataType::Int,
                nullable: true,
            }])
            .expect("valid schema"),
            primary_key: vec!["a".into()],
            shards: 2,
            replicas: 1,
            placement: vec![vec![1], vec![2]],
        }
    }

    #[test]
    fn names_are_decided_in_log_order() {
        // Proves: a second CreateTable of a name changes nothing and says so; DropTable returns
        // what it removed, then the name is free again; dropping an unknown name says so.
        let mut metadata = Metadata::default();
        assert_eq!(
            metadata.apply(&MetaCommand::CreateTable(table("t"))),
            MetaOutcome::Done
        );
        let mut other = table("t");
        other.shards = 9;
        assert_eq!(
            metadata.apply(&MetaCommand::CreateTable(other)),
            MetaOutcome::TableExists("t".into())
        );
        assert_eq!(metadata.tables["t"].shards, 2);
        assert_eq!(
            metadata.apply(&MetaCommand::DropTable("t".into())),
            MetaOutcome::Dropped(table("t"))
        );
        assert_eq!(
            metadata.apply(&MetaCommand::DropTable("t".into())),
            MetaOutcome::UnknownTable("t".into())
        );
        assert!(metadata.tables.is_empty());
    }

    #[test]
    fn joins_leaves_and_moves_apply_in_log_order() {
        // Proves: AddNode lists a node (again: no change; another address for the id: a
        // conflict); MarkLeaving takes a node out of placement but keeps it listed, and is
        // refused for an unknown node or the last one not leaving; SetPlacement records a
        // move and the placed replica count; the requested count survives and decides the
        // wanted placement; RemoveNode unlists.
        let mut metadata = Metadata::default();
        metadata.apply(&MetaCommand::SetNodes(BTreeMap::from([
            (1, "a:1".to_string()),
            (2, "a:2".to_string()),
        ])));
        let add = |id: NodeId, addr: &str| MetaCommand::AddNode {
            id,
            addr: addr.into(),
        };
        assert_eq!(metadata.apply(&add(3, "a:3")), MetaOutcome::Done);
        assert_eq!(metadata.apply(&add(3, "a:3")), MetaOutcome::Done);
        assert!(matches!(
            metadata.apply(&add(3, "b:3")),
            MetaOutcome::NodeConflict(_)
        ));
        assert_eq!(metadata.nodes[&3], "a:3");

        let mut t = table("t");
        t.replicas = 2;
        t.placement = vec![vec![1, 2], vec![2, 1]];
        assert_eq!(
            metadata.apply(&MetaCommand::CreateTableRequested {
                table: t.clone(),
                replicas: 3
            }),
            MetaOutcome::Done
        );
        assert_eq!(metadata.replicas_wanted(&metadata.tables["t"]), 3);
        assert_eq!(metadata.wanted_placement(&t, 0).len(), 3);

        assert_eq!(
            metadata.apply(&MetaCommand::SetPlacement {
                table: "t".into(),
                shard: 1,
                members: vec![3, 2, 1],
            }),
            MetaOutcome::Done
        );
        assert_eq!(metadata.tables["t"].placement[1], vec![3, 2, 1]);
        assert_eq!(metadata.tables["t"].replicas, 2, "the fewest placed");
        assert!(matches!(
            metadata.apply(&MetaCommand::SetPlacement {
                table: "t".into(),
                shard: 2,
                members: vec![1],
            }),
            MetaOutcome::NotFound(_)
        ));

        assert!(matches!(
            metadata.apply(&MetaCommand::MarkLeaving(9)),
            MetaOutcome::NotFound(_)
        ));
        assert_eq!(
            metadata.apply(&MetaCommand::MarkLeaving(1)),
            MetaOutcome::Done
        );
        assert_eq!(
            metadata.apply(&MetaCommand::MarkLeaving(2)),
            MetaOutcome::Done
        );
        assert!(matches!(
            metadata.apply(&MetaCommand::MarkLeaving(3)),
            MetaOutcome::NodeConflict(_)
        ));
        assert!(matches!(
            metadata.apply(&add(1, "a:1")),
            MetaOutcome::NodeConflict(_)
        ));
        assert_eq!(metadata.placeable_nodes(), vec![3]);
        assert_eq!(metadata.wanted_placement(&t, 0), vec![3]);
        assert_eq!(metadata.nodes.len(), 3);
        assert_eq!(
            metadata.apply(&MetaCommand::RemoveNode(1)),
            MetaOutcome::Done
        );
        assert!(!metadata.nodes.contains_key(&1) && !metadata.leaving.contains(&1));

        assert!(matches!(
            metadata.apply(&MetaCommand::DropTable("t".into())),
            MetaOutcome::Dropped(_)
        ));
        assert!(metadata.replicas_requested.is_empty());
    }

    #[test]
    fn snapshots_written_before_join_and_leave_still_open() {
        // Proves: a snapshot in the layout from before `replicas_requested` and `leaving`
        // (and snapshot data sent in it) decodes, with those empty.
        #[derive(Serialize)]
        struct OldMetadata {
            nodes: BTreeMap<NodeId, String>,
            tables: BTreeMap<String, TableMeta>,
        }
        #[derive(Serialize)]
        struct OldSaved {
            meta: SnapshotMeta,
            metadata: OldMetadata,
        }
        let old = OldMetadata {
            nodes: BTreeMap::from([(1, "a:1".to_string())]),
            tables: BTreeMap::from([("t".to_string(), table("t"))]),
        };
        let data = bincode::serialize(&old).expect("serialises");
        let decoded = decode_metadata(&data).expect("old data decodes");
        assert_eq!(decoded.nodes, old.nodes);
        assert_eq!(decoded.tables, old.tables);
        assert!(decoded.replicas_requested.is_empty() && decoded.leaving.is_empty());

        let body = bincode::serialize(&OldSaved {
            meta: SnapshotMeta::default(),
            metadata: old,
        })
        .expect("serialises");
        let mut bytes = crc32c::crc32c(&body).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let saved = decode_saved(Path::new("SNAPSHOT"), &bytes).expect("old file decodes");
        assert_eq!(saved.metadata, decoded);
    }

    #[test]
    fn snapshot_files_round_trip_and_reject_damage() {
        // Proves: a saved snapshot decodes to what was saved; a flipped byte or a cut file is
        // an error, not a panic or wrong metadata.
        let mut metadata = Metadata::default();
        metadata.apply(&MetaCommand::CreateTableRequested {
            table: table("t"),
            replicas: 3,
        });
        metadata.nodes.insert(1, "127.0.0.1:1".into());
        metadata.leaving.insert(1);
        let saved = SavedMeta {
            meta: SnapshotMeta::default(),
            metadata: metadata.clone(),
        };
        let bytes = encode_saved(&saved);
        let path = Path::new("SNAPSHOT");
        assert_eq!(
            decode_saved(path, &bytes).expect("decodes").metadata,
            metadata
        );
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode_saved(path, &flipped).is_err());
        assert!(decode_saved(path, &bytes[..3]).is_err());
        assert!(decode_saved(path, &bytes[..bytes.len() - 1]).is_err());
    }
}
