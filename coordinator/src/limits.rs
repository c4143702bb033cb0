//! Named limits, each with its unit. A statement beyond one is rejected with
//! [`crate::Error::LimitExceeded`] naming the limit, before anything is applied.

/// Largest statement text accepted, in bytes (HTTP bodies and pg queries alike). An INSERT of
/// 1000 TPC-H rows is about 200 kB.
pub const STATEMENT_BYTES_MAX: usize = 4 << 20;
/// Bytes of an oversized HTTP body read (and dropped) before answering 413, so a client that
/// is still sending sees the answer; past this the connection is closed.
pub const OVERSIZED_BODY_DRAIN_BYTES_MAX: usize = 4 * STATEMENT_BYTES_MAX;
/// Most values in one IN list.
pub const IN_LIST_VALUES_MAX: usize = 10_000;
/// Deepest nesting of parentheses and expressions in one statement.
pub const NESTING_DEPTH_MAX: usize = 32;
/// Most operators (AND, OR, NOT, comparisons, arithmetic) in one statement: bounds the depth
/// of the left-deep trees a chain of operators parses into.
pub const OPERATORS_MAX: usize = 1_024;
/// Most rows in one INSERT statement.
pub const ROWS_PER_INSERT_MAX: usize = 100_000;
/// Most rows one UPDATE may rewrite (they are read, then deleted and inserted again).
pub const ROWS_PER_UPDATE_MAX: usize = 100_000;
/// Most rows in one answer (a record read without LIMIT, or many groups); each shard of a
/// record read returns at most one more than this.
pub const RESULT_ROWS_MAX: usize = 100_000;
/// Longest text literal, in bytes.
pub const TEXT_LITERAL_BYTES_MAX: usize = 64 << 10;
/// Most columns in one table.
pub const COLUMNS_PER_TABLE_MAX: usize = 1_024;
/// Most shards of one table.
pub const SHARDS_PER_TABLE_MAX: u32 = 1_024;
/// Most replicas of one shard.
pub const REPLICAS_PER_SHARD_MAX: u32 = 7;
/// Shards of a table created without `WITH (shards = N)`.
pub const SHARDS_DEFAULT: u32 = 8;
/// Replicas of a table created without `WITH (replicas = R)`.
pub const REPLICAS_DEFAULT: u32 = 3;
/// How long a shard has to answer one request, in milliseconds.
pub const SHARD_TIMEOUT_MS: u64 = 30_000;
/// Longest identifier (table or column name), in bytes, as in PostgreSQL.
pub const IDENTIFIER_BYTES_MAX: usize = 63;
/// Most tables in the cluster.
pub const TABLES_MAX: usize = 10_000;
