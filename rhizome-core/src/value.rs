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

// TEMPORARY stand-ins until the value branch lands.
impl DataType {
    pub fn is_text(&self) -> bool {
        matches!(self, DataType::Text { .. })
    }
    pub fn is_numeric(&self) -> bool {
        matches!(self, DataType::BigInt | DataType::Int | DataType::Double | DataType::Decimal { .. })
    }
    pub fn key(&self, v: &Value) -> Option<i64> {
        Some(match v {
            Value::Int(x) => *x,
            Value::Decimal { units, .. } => *units,
            Value::Date(d) => *d as i64,
            Value::Timestamp(t) => *t,
            Value::Boolean(b) => *b as i64,
            Value::Double(f) => {
                let b = (if *f == 0.0 { 0.0f64 } else { *f }).to_bits() as i64;
                if b < 0 { b ^ i64::MAX } else { b }
            }
            _ => return None,
        })
    }
    pub fn from_key(&self, key: i64) -> Value {
        match self {
            DataType::BigInt | DataType::Int => Value::Int(key),
            DataType::Decimal { scale, .. } => Value::Decimal { units: key, scale: *scale },
            DataType::Date => Value::Date(key as i32),
            DataType::Timestamp => Value::Timestamp(key),
            DataType::Boolean => Value::Boolean(key != 0),
            DataType::Double => {
                let b = if key < 0 { key ^ i64::MAX } else { key };
                Value::Double(f64::from_bits(b as u64))
            }
            DataType::Text { .. } => Value::Null,
        }
    }
}
impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}
#[derive(Debug, Clone)]
pub struct LikePattern(String);
impl LikePattern {
    pub fn new(p: &str) -> Self {
        LikePattern(p.to_string())
    }
    pub fn matches(&self, text: &str) -> bool {
        fn m(p: &[char], t: &[char]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some(('%', rest)) => (0..=t.len()).any(|i| m(rest, &t[i..])),
                Some(('_', rest)) => !t.is_empty() && m(rest, &t[1..]),
                Some(('\\', [c, rest @ ..])) => t.first() == Some(c) && m(rest, &t[1..]),
                Some((c, rest)) => t.first() == Some(c) && m(rest, &t[1..]),
            }
        }
        let p: Vec<char> = self.0.chars().collect();
        let t: Vec<char> = text.chars().collect();
        m(&p, &t)
    }
}
impl DataType {
    pub fn sql_name(&self) -> String { format!("{self:?}") }
    pub fn coerce(&self, v: &Value) -> Result<Value, ValueError> {
        Ok(match (self, v) {
            (DataType::Decimal { scale, .. }, Value::Int(i)) => Value::Decimal { units: i * 10i64.pow(*scale as u32), scale: *scale },
            (DataType::Decimal { scale, .. }, Value::Decimal { units, scale: s }) if s <= scale => Value::Decimal { units: units * 10i64.pow((*scale - *s) as u32), scale: *scale },
            (DataType::Double, Value::Int(i)) => Value::Double(*i as f64),
            (_, v) => v.clone(),
        })
    }
}
