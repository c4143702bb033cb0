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

// openraft's storage traits return its `StorageError` (a large type) by value.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
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
    /// Replicas per shard, as placed (the request capped by the node count).
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
}

impl Metadata {
    /// Apply one command. Pure: every member computes the same outcome from the same state.
    pub fn apply(&mut self, command: &MetaCommand) -> MetaOutcome {
        match command {
            MetaCommand::SetNodes(nodes) => {
                self.nodes = nodes.clone();
                MetaOutcome::Done
            }
            MetaCommand::CreateTable(table) => {
                if self.tables.contains_key(&table.name) {
                    return MetaOutcome::TableExists(table.name.clone());
                }
                self.tables.insert(table.name.clone(), table.clone());
                MetaOutcome::Done
            }
            MetaCommand::DropTable(name) => match self.tables.remove(name) {
                Some(table) => MetaOutcome::Dropped(table),
                None => MetaOutcome::UnknownTable(name.clone()),
            },
        }
    }
}

/// What `SNAPSHOT` holds.
#[derive(Debug, Serialize, Deserialize)]
struct SavedMeta {
    meta: SnapshotMeta,
    metadata: Metadata,
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
    bincode::deserialize(body).map_err(|e| format!("{}: {e}", path.display()))
}

impl MetaStateMachine {
    /// Open the meta state in `dir` (created if missing): the last snapshot, or empty.
    pub fn open(dir: &Path) -> Result<MetaStateMachine, StorageError> {
        let read_err = |e: String| error(ErrorSubject::StateMachine, ErrorVerb::Read, e);
        std::fs::create_dir_all(dir).map_err(|e| read_err(e.to_string()))?;
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
        let metadata: Metadata = bincode::deserialize(snapshot.get_ref()).map_err(|e| {
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
    fn snapshot_files_round_trip_and_reject_damage() {
        // Proves: a saved snapshot decodes to what was saved; a flipped byte or a cut file is
        // an error, not a panic or wrong metadata.
        let mut metadata = Metadata::default();
        metadata.apply(&MetaCommand::CreateTable(table("t")));
        metadata.nodes.insert(1, "127.0.0.1:1".into());
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
