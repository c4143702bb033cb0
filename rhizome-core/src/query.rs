//! Shard queries and their partial results.
//!
//! A [`ShardQuery`] is what one shard evaluates: a condition tree, zero or more group
//! columns and a list of aggregates. Its answer is a [`Partial`] that merges exactly with the
//! partials of other shards: COUNT and SUM add up, AVG travels as sum and count, MIN/MAX as
//! values, COUNT(DISTINCT) as the set of values, and groups are keyed by values, never by
//! shard-local symbols. [`Partial::finish`] turns the merged partial into rows.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::shard::Schema;
use crate::value::{DataType, Value};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A condition over one shard's records, with SQL's three-valued logic: a comparison with a
/// NULL column value is unknown, and `NOT unknown` is unknown, so neither `a = 1` nor
/// `NOT (a = 1)` selects a record whose `a` is NULL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    /// Every record.
    True,
    Compare {
        column: String,
        op: CompareOp,
        value: Value,
    },
    /// `low <= column <= high`.
    Between {
        column: String,
        low: Value,
        high: Value,
    },
    In {
        column: String,
        values: Vec<Value>,
    },
    Like {
        column: String,
        pattern: String,
    },
    IsNull {
        column: String,
    },
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn compare(column: &str, op: CompareOp, value: Value) -> Condition {
        Condition::Compare {
            column: column.to_string(),
            op,
            value,
        }
    }

    pub fn eq(column: &str, value: Value) -> Condition {
        Condition::compare(column, CompareOp::Eq, value)
    }

    pub fn negate(self) -> Condition {
        Condition::Not(Box::new(self))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregate {
    CountStar,
    Count(String),
    CountDistinct(String),
    Sum(String),
    Avg(String),
    Min(String),
    Max(String),
}

impl Aggregate {
    pub fn column(&self) -> Option<&str> {
        match self {
            Aggregate::CountStar => None,
            Aggregate::Count(c)
            | Aggregate::CountDistinct(c)
            | Aggregate::Sum(c)
            | Aggregate::Avg(c)
            | Aggregate::Min(c)
            | Aggregate::Max(c) => Some(c),
        }
    }

    /// The name of its result column, as SQL prints it.
    pub fn display_name(&self) -> String {
        match self {
            Aggregate::CountStar => "count".into(),
            Aggregate::Count(_) | Aggregate::CountDistinct(_) => "count".into(),
            Aggregate::Sum(_) => "sum".into(),
            Aggregate::Avg(_) => "avg".into(),
            Aggregate::Min(_) => "min".into(),
            Aggregate::Max(_) => "max".into(),
        }
    }

    /// The type of its result, given the column's type.
    pub fn result_type(&self, column_type: Option<DataType>) -> Result<DataType> {
        Ok(match (self, column_type) {
            (Aggregate::CountStar | Aggregate::Count(_) | Aggregate::CountDistinct(_), _) => {
                DataType::BigInt
            }
            (Aggregate::Sum(_), Some(DataType::BigInt | DataType::Int)) => DataType::BigInt,
            (Aggregate::Sum(_), Some(DataType::Decimal { scale, .. })) => DataType::Decimal {
                precision: 18,
                scale,
            },
            (Aggregate::Sum(_), Some(DataType::Double)) => DataType::Double,
            (Aggregate::Avg(_), Some(t)) if t.is_numeric() => DataType::Double,
            (Aggregate::Min(_) | Aggregate::Max(_), Some(t)) => t,
            (aggregate, t) => {
                return Err(Error::Plan(format!(
                    "{} is not defined for {}",
                    aggregate.display_name().to_uppercase(),
                    t.map(|t| t.sql_name()).unwrap_or_default()
                )))
            }
        })
    }
}

/// What one shard evaluates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardQuery {
    pub filter: Condition,
    pub group_by: Vec<String>,
    pub aggregates: Vec<Aggregate>,
}

/// A value as a group key or MIN/MAX/DISTINCT element: a column's order-preserving key, so it
/// hashes and orders exactly, whatever the type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyValue {
    Null,
    Fixed(i64),
    Text(String),
}

impl KeyValue {
    pub fn to_value(&self, data_type: DataType) -> Value {
        match self {
            KeyValue::Null => Value::Null,
            KeyValue::Fixed(key) => data_type.from_key(*key),
            KeyValue::Text(text) => Value::Text(text.clone()),
        }
    }

    /// Compare two non-NULL keys of one column in the column's value order.
    pub fn cmp_in_column(&self, other: &KeyValue) -> Ordering {
        self.cmp(other)
    }
}

/// The partial state of one aggregate in one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AggState {
    Count(u64),
    /// SUM/AVG of integer and decimal columns: exact.
    SumInt {
        sum: i128,
        count: u64,
    },
    SumFloat {
        sum: f64,
        count: u64,
    },
    Min(Option<KeyValue>),
    Max(Option<KeyValue>),
    Distinct(BTreeSet<KeyValue>),
}

impl AggState {
    pub fn empty(aggregate: &Aggregate, column_type: Option<DataType>) -> AggState {
        match aggregate {
            Aggregate::CountStar | Aggregate::Count(_) => AggState::Count(0),
            Aggregate::Sum(_) | Aggregate::Avg(_) if column_type == Some(DataType::Double) => {
                AggState::SumFloat { sum: 0.0, count: 0 }
            }
            Aggregate::Sum(_) | Aggregate::Avg(_) => AggState::SumInt { sum: 0, count: 0 },
            Aggregate::Min(_) => AggState::Min(None),
            Aggregate::Max(_) => AggState::Max(None),
            Aggregate::CountDistinct(_) => AggState::Distinct(BTreeSet::new()),
        }
    }

    pub fn merge(&mut self, other: &AggState) -> Result<()> {
        match (self, other) {
            (AggState::Count(a), AggState::Count(b)) => *a += b,
            (AggState::SumInt { sum, count }, AggState::SumInt { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (AggState::SumFloat { sum, count }, AggState::SumFloat { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (AggState::Min(a), AggState::Min(b)) => {
                if let Some(b) = b {
                    if a.as_ref().is_none_or(|a| b < a) {
                        *a = Some(b.clone());
                    }
                }
            }
            (AggState::Max(a), AggState::Max(b)) => {
                if let Some(b) = b {
                    if a.as_ref().is_none_or(|a| b > a) {
                        *a = Some(b.clone());
                    }
                }
            }
            (AggState::Distinct(a), AggState::Distinct(b)) => a.extend(b.iter().cloned()),
            (a, b) => {
                return Err(Error::InvalidArgument(format!(
                    "cannot merge partial {a:?} with {b:?}"
                )))
            }
        }
        Ok(())
    }

    fn finish(&self, aggregate: &Aggregate, column_type: Option<DataType>) -> Result<Value> {
        let out_of_range = || {
            Error::Plan(format!(
                "{} is out of range",
                aggregate.display_name().to_uppercase()
            ))
        };
        Ok(match (self, aggregate) {
            (AggState::Count(n), _) => Value::Int(i64::try_from(*n).map_err(|_| out_of_range())?),
            (AggState::Distinct(set), _) => Value::Int(set.len() as i64),
            (AggState::SumInt { count: 0, .. } | AggState::SumFloat { count: 0, .. }, _) => {
                Value::Null
            }
            (AggState::SumInt { sum, count }, Aggregate::Avg(_)) => {
                let scale = match column_type {
                    Some(DataType::Decimal { scale, .. }) => scale as i32,
                    _ => 0,
                };
                Value::Double(*sum as f64 / *count as f64 / 10f64.powi(scale))
            }
            (AggState::SumFloat { sum, count }, Aggregate::Avg(_)) => {
                Value::Double(sum / *count as f64)
            }
            (AggState::SumInt { sum, .. }, _) => {
                let units = i64::try_from(*sum).map_err(|_| out_of_range())?;
                match column_type {
                    Some(DataType::Decimal { scale, .. }) => Value::Decimal { units, scale },
                    _ => Value::Int(units),
                }
            }
            (AggState::SumFloat { sum, .. }, _) => Value::Double(*sum),
            (AggState::Min(v) | AggState::Max(v), _) => match (v, column_type) {
                (Some(v), Some(t)) => v.to_value(t),
                _ => Value::Null,
            },
        })
    }
}

/// One shard's (or a merge of several shards') answer to a [`ShardQuery`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Aggregate states per group key (one key per group column, in order).
    pub groups: BTreeMap<Vec<KeyValue>, Vec<AggState>>,
}

impl Partial {
    pub fn merge(&mut self, other: Partial) -> Result<()> {
        for (key, states) in other.groups {
            match self.groups.get_mut(&key) {
                None => {
                    self.groups.insert(key, states);
                }
                Some(mine) => {
                    for (a, b) in mine.iter_mut().zip(&states) {
                        a.merge(b)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The result rows: group columns first, then one column per aggregate. A query without
    /// GROUP BY answers one row even over no records (COUNT 0, SUM NULL), as SQL does.
    pub fn finish(&self, query: &ShardQuery, schema: &Schema) -> Result<ResultSet> {
        let group_types = query
            .group_by
            .iter()
            .map(|c| schema.column(c).map(|(_, def)| def.data_type))
            .collect::<Result<Vec<_>>>()?;
        let aggregate_types = query
            .aggregates
            .iter()
            .map(|a| {
                a.column()
                    .map(|c| schema.column(c).map(|(_, def)| def.data_type))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        let mut columns: Vec<ResultColumn> = query
            .group_by
            .iter()
            .zip(&group_types)
            .map(|(name, &data_type)| ResultColumn {
                name: name.clone(),
                data_type,
            })
            .collect();
        for (aggregate, &column_type) in query.aggregates.iter().zip(&aggregate_types) {
            columns.push(ResultColumn {
                name: aggregate.display_name(),
                data_type: aggregate.result_type(column_type)?,
            });
        }
        let empty_key: Vec<KeyValue> = Vec::new();
        let empty_row: Vec<AggState>;
        let groups: Vec<(&Vec<KeyValue>, &Vec<AggState>)> =
            if self.groups.is_empty() && query.group_by.is_empty() {
                empty_row = query
                    .aggregates
                    .iter()
                    .zip(&aggregate_types)
                    .map(|(a, &t)| AggState::empty(a, t))
                    .collect();
                vec![(&empty_key, &empty_row)]
            } else {
                self.groups.iter().collect()
            };
        let mut rows = Vec::new();
        for (key, states) in groups {
            let mut row: Vec<Value> = key
                .iter()
                .zip(&group_types)
                .map(|(k, &t)| k.to_value(t))
                .collect();
            for ((aggregate, state), &column_type) in
                query.aggregates.iter().zip(states).zip(&aggregate_types)
            {
                row.push(state.finish(aggregate, column_type)?);
            }
            rows.push(row);
        }
        Ok(ResultSet { columns, rows })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultColumn {
    pub name: String,
    pub data_type: DataType,
}

/// Rows with named, typed columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultSet {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<Value>>,
}

/// One ORDER BY term over a result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderBy {
    pub column_index: usize,
    pub descending: bool,
}

impl ResultSet {
    /// Sort rows by the terms (stable; NULLs last ascending and first descending, as in
    /// PostgreSQL), then keep at most `limit` rows.
    pub fn order_and_limit(&mut self, order_by: &[OrderBy], limit: Option<usize>) {
        if !order_by.is_empty() {
            self.rows.sort_by(|a, b| {
                for term in order_by {
                    let ordering = compare_values(&a[term.column_index], &b[term.column_index]);
                    let ordering = if term.descending {
                        ordering.reverse()
                    } else {
                        ordering
                    };
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                }
                Ordering::Equal
            });
        }
        if let Some(limit) = limit {
            self.rows.truncate(limit);
        }
    }
}

/// Total order over values of one column; NULL sorts after every value.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        // -0.0 equals 0.0, as in SQL (NaN is never stored).
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b).unwrap_or_else(|| a.total_cmp(b)),
        (
            Value::Decimal {
                units: a,
                scale: sa,
            },
            Value::Decimal {
                units: b,
                scale: sb,
            },
        ) => {
            let (a, b) = (*a as i128, *b as i128);
            let (sa, sb) = (*sa as u32, *sb as u32);
            (a * 10i128.pow(sb.saturating_sub(sa))).cmp(&(b * 10i128.pow(sa.saturating_sub(sb))))
        }
        (Value::Date(a), Value::Date(b)) => a.cmp(b),
        (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
        (Value::Text(a), Value::Text(b)) => a.cmp(b),
        (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
        (a, b) => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}
