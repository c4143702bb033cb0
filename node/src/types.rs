//! The openraft type configuration and the commands a Raft group replicates.
//!
//! Every group (one per shard of every table) uses the same [`TypeConfig`]. A log entry's
//! application data is a [`Command`]; its result, once applied, a [`CommandResponse`].

use std::fmt;
use std::io::Cursor;

use bytes::Bytes;
use rhizome_core::query::{Condition, OrderBy};
use rhizome_core::shard::Schema;
use serde::{Deserialize, Serialize};

use crate::meta::{MetaCommand, MetaOutcome};

/// A node's id in every Raft group it belongs to.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Types of every Raft group of a Rhizome cluster.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// A shard of a table: the Raft group that replicates it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardKey {
    pub table: String,
    pub shard: u32,
}

/// Longest table name, in bytes; names are `[A-Za-z0-9_]`, so they are safe in paths.
pub const TABLE_NAME_BYTES_MAX: usize = 128;

impl ShardKey {
    pub fn new(table: &str, shard: u32) -> ShardKey {
        ShardKey {
            table: table.to_string(),
            shard,
        }
    }

    /// Whether a table name may be used (and so appear in directory names).
    pub fn valid_table_name(table: &str) -> bool {
        !table.is_empty()
            && table.len() <= TABLE_NAME_BYTES_MAX
            && table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    /// The group's name on the wire: `<table>/<shard>`.
    pub fn group_name(&self) -> String {
        format!("{}/{}", self.table, self.shard)
    }

    pub fn parse_group_name(name: &str) -> Option<ShardKey> {
        let (table, shard) = name.rsplit_once('/')?;
        let shard = shard.parse().ok()?;
        ShardKey::valid_table_name(table).then(|| ShardKey::new(table, shard))
    }

    /// The group's directory name under each data directory.
    pub fn dir_name(&self) -> String {
        format!("{}.{}", self.table, self.shard)
    }
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.table, self.shard)
    }
}

/// Identifies a write batch, so a retried batch is applied once: sequences increase per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BatchId {
    pub client: u64,
    pub sequence: u64,
}

/// What a shard group replicates.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Append rows. `rows` is the bincode of `Vec<Vec<Value>>`, kept encoded so the log,
    /// replication and the wire copy bytes rather than values; it is decoded and validated
    /// on apply, identically on every replica.
    Insert { batch: BatchId, rows: Bytes },
    /// Delete the live records that meet the condition, evaluated on the state machine.
    Delete {
        batch: BatchId,
        condition: Condition,
    },
    /// A change to the cluster metadata: only the meta group applies these; a shard group
    /// rejects them.
    Meta(MetaCommand),
    /// Append rows given by column: `columns` is a [`ColumnBatch`] encoding
    /// ([`ColumnBatch::encode`]), checked against the schema on apply, identically on every
    /// replica. (Last, so entries written before it existed keep their encoding.)
    ///
    /// [`ColumnBatch`]: rhizome_core::batch::ColumnBatch
    /// [`ColumnBatch::encode`]: rhizome_core::batch::ColumnBatch::encode
    InsertColumns { batch: BatchId, columns: Bytes },
}

impl Command {
    /// Bytes of the rows a write carries (0 for other commands): what the log grows by,
    /// near enough, for the size-based snapshot policy.
    pub fn payload_bytes(&self) -> u64 {
        match self {
            Command::Insert { rows: bytes, .. } | Command::InsertColumns { columns: bytes, .. } => {
                bytes.len() as u64
            }
            Command::Delete { .. } | Command::Meta(_) => 0,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Insert { batch, rows } => f
                .debug_struct("Insert")
                .field("batch", batch)
                .field("rows_bytes", &rows.len())
                .finish(),
            Command::InsertColumns { batch, columns } => f
                .debug_struct("InsertColumns")
                .field("batch", batch)
                .field("columns_bytes", &columns.len())
                .finish(),
            Command::Delete { batch, condition } => f
                .debug_struct("Delete")
                .field("batch", batch)
                .field("condition", condition)
                .finish(),
            Command::Meta(command) => f.debug_tuple("Meta").field(command).finish(),
        }
    }
}

impl Command {
    /// The batch id of a shard write; `None` for metadata commands.
    pub fn batch(&self) -> Option<BatchId> {
        match self {
            Command::Insert { batch, .. }
            | Command::InsertColumns { batch, .. }
            | Command::Delete { batch, .. } => Some(*batch),
            Command::Meta(_) => None,
        }
    }
}

/// The outcome of applying one command, the same on every replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// Membership changes and blank entries.
    None,
    /// A write applied now, or (`duplicate`) applied before under the same batch id.
    Written {
        first_id: u64,
        count: u64,
        duplicate: bool,
    },
    /// A batch older than the newest this client's applied batch, whose outcome is no longer
    /// remembered: it was applied before, and nothing changed now.
    Stale,
    /// The command was rejected as a whole on apply (bad rows, bad condition); nothing changed.
    Rejected { reason: String },
    /// What a metadata command did.
    Meta(MetaOutcome),
}

/// Schema and options a shard group is created with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    pub key: ShardKey,
    pub schema: Schema,
}

/// A record read on one shard: the live records that meet `filter`, their `columns` (schema
/// indexes) in that order, sorted by `order_by` (indexes into `columns`) when given, at most
/// `limit` of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordRead {
    pub filter: Condition,
    pub columns: Vec<usize>,
    pub order_by: Vec<OrderBy>,
    pub limit: usize,
}
