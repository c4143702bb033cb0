//! The one error type of the coordinator, with variants by phase: parsing, planning (names
//! and types), data (values that do not fit), limits, and the cluster (shards that fail).
//!
//! How each variant is shown to a client — HTTP status, JSON code, SQLSTATE — is decided in
//! one place, [`crate::status`].

use std::fmt;

/// A place in the statement text, 1-based, as the parser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One shard of one table: what a cluster fault names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRef {
    pub table: String,
    pub shard: u32,
}

impl fmt::Display for ShardRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} shard {}", self.table, self.shard)
    }
}

/// What kind of bad value a data error is about (the SQLSTATE class 22/23 detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFault {
    /// NULL into a NOT NULL column.
    NotNull,
    /// A number that does not fit its type (overflow, too many decimal places).
    OutOfRange,
    /// Text longer than its VARCHAR(n).
    TooLong,
    /// A date or timestamp that does not parse or does not exist.
    InvalidDatetime,
    /// Text that is not a valid value of the type it is used as.
    InvalidText,
    /// A character the store cannot hold (NUL).
    BadCharacter,
}

/// Everything that can go wrong between a statement's text and its answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not SQL the parser understands.
    #[error("syntax error{}: {message}", position.map(|p| format!(" at {p}")).unwrap_or_default())]
    Parse {
        message: String,
        position: Option<Position>,
    },

    /// Valid SQL outside the SQL-lite subset; names the construct.
    #[error("unsupported: {0}")]
    Unsupported(String),

    #[error("table {0} does not exist")]
    UnknownTable(String),

    #[error("table {0} already exists")]
    TableExists(String),

    #[error("column {column} does not exist in table {table}")]
    UnknownColumn { table: String, column: String },

    /// A literal of the wrong kind for its column; the message names both.
    #[error("type mismatch: {0}")]
    TypeMismatch(String),

    /// A statement that names existing things but cannot be planned (grouping errors,
    /// bad positions, invalid DDL).
    #[error("{0}")]
    Plan(String),

    /// A column used outside GROUP BY and outside any aggregate.
    #[error("{0}")]
    Grouping(String),

    /// A value that does not fit its column: the message names the row and column.
    #[error("{message}")]
    Data { fault: DataFault, message: String },

    /// A statement beyond one of the named limits in [`crate::limits`].
    #[error("{message}")]
    LimitExceeded {
        limit: &'static str,
        message: String,
    },

    /// A shard that cannot be reached or has no leader: a cluster fault.
    #[error("{shard} is unavailable: {reason}")]
    Unavailable { shard: ShardRef, reason: String },

    /// A shard that did not answer before the deadline.
    #[error("{shard} did not answer within {timeout_ms} ms")]
    Timeout { shard: ShardRef, timeout_ms: u64 },

    /// A shard that answered with a failure the coordinator did not expect.
    #[error("{shard} failed: {message}")]
    Execution { shard: ShardRef, message: String },

    /// The cluster's metadata could not be read or changed.
    #[error("cluster error: {0}")]
    Cluster(String),

    /// The coordinator is not ready to serve (the cluster is still starting).
    #[error("the cluster is not ready")]
    NotReady,

    /// A bug: an invariant of the coordinator did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the fault is the cluster's rather than the statement's (5xx, not 4xx).
    pub fn is_cluster_fault(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. }
                | Error::Timeout { .. }
                | Error::Execution { .. }
                | Error::Cluster(_)
                | Error::NotReady
                | Error::Internal(_)
        )
    }

    pub fn data(fault: DataFault, message: impl Into<String>) -> Error {
        Error::Data {
            fault,
            message: message.into(),
        }
    }
}
