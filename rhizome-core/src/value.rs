//! Column types and values.
//!
//! Every non-text value has an order-preserving 64-bit *key* ([`DataType::key`]): BIGINT
//! and INT are themselves, DECIMAL is its scaled integer, DATE is days since 1970-01-01,
//! TIMESTAMP is microseconds since the epoch (UTC), BOOLEAN is 0/1 and DOUBLE is its IEEE
//! bits mapped to a total order. Dictionaries store keys, not `Value`s.

/// A column's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataType {
    BigInt,
    Int,
    Double,
    /// Exact decimal stored as `units = value * 10^scale` in an i64 (precision ≤ 18).
    Decimal { precision: u8, scale: u8 },
    Date,
    Timestamp,
    /// `TEXT` (no limit) or `VARCHAR(n)` (at most n characters).
    Text { max_chars: Option<u32> },
    Boolean,
}

/// One typed value, or NULL.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Value {
    Null,
    /// BIGINT and INT.
    Int(i64),
    Double(f64),
    /// `units / 10^scale`.
    Decimal { units: i64, scale: u8 },
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    Timestamp(i64),
    Text(String),
    Boolean(bool),
}

/// A value that does not fit its type; the message names the value and the type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    pub message: String,
}
