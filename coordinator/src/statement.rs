//! The SQL-lite statement types: what [`crate::parse`] produces from SQL text, before any
//! name is looked up in a schema. Identifiers are already case-folded (unquoted names are
//! lower-cased, as PostgreSQL does); literals are already typed [`Value`]s.

use rhizome_core::query::{Aggregate, CompareOp};
use rhizome_core::shard::ColumnDef;
use rhizome_core::value::Value;

/// One SQL-lite statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateTable(CreateTable),
    DropTable {
        name: String,
        if_exists: bool,
    },
    Insert(Insert),
    /// `DELETE FROM t [WHERE …]`; no WHERE deletes every record.
    Delete {
        table: String,
        filter: Predicate<String>,
    },
    Update(Update),
    Select(Select),
    ShowTables,
    Describe {
        table: String,
    },
    Explain(Box<Select>),
}

impl Statement {
    /// The command word a client sees (the PostgreSQL command tag).
    pub fn command(&self) -> &'static str {
        match self {
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::DropTable { .. } => "DROP TABLE",
            Statement::Insert(_) => "INSERT",
            Statement::Delete { .. } => "DELETE",
            Statement::Update(_) => "UPDATE",
            Statement::Select(_) | Statement::ShowTables | Statement::Describe { .. } => "SELECT",
            Statement::Explain(_) => "EXPLAIN",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Columns of the primary key, in key order; empty when the table has none. The key
    /// chooses each record's shard; it is not checked for uniqueness.
    pub primary_key: Vec<String>,
    pub shards: Option<u32>,
    pub replicas: Option<u32>,
    pub if_not_exists: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub table: String,
    /// The column list, when given; otherwise the values are in schema order.
    pub columns: Option<Vec<String>>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub table: String,
    pub assignments: Vec<(String, Value)>,
    pub filter: Predicate<String>,
}

/// A condition over operands of type `T`: column names in WHERE, [`Term`]s in HAVING. The
/// comparison value is always a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate<T> {
    /// `TRUE` or `FALSE`.
    Constant(bool),
    Compare {
        operand: T,
        op: CompareOp,
        value: Value,
    },
    /// `low <= operand <= high`.
    Between {
        operand: T,
        low: Value,
        high: Value,
    },
    In {
        operand: T,
        values: Vec<Value>,
    },
    Like {
        operand: T,
        pattern: String,
    },
    IsNull {
        operand: T,
    },
    And(Vec<Predicate<T>>),
    Or(Vec<Predicate<T>>),
    Not(Box<Predicate<T>>),
}

impl<T> Predicate<T> {
    pub fn negate(self) -> Predicate<T> {
        Predicate::Not(Box::new(self))
    }
}

/// The aggregate functions of SQL-lite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// One aggregate call: `COUNT(*)`, `COUNT(DISTINCT c)`, `SUM(c)`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateCall {
    pub function: AggregateFunction,
    /// `None` only for `COUNT(*)`.
    pub column: Option<String>,
    pub distinct: bool,
}

impl AggregateCall {
    /// The shard aggregate for this call, with the column name as resolved by the planner.
    pub fn to_aggregate(&self, column: Option<String>) -> Option<Aggregate> {
        Some(match (self.function, column, self.distinct) {
            (AggregateFunction::Count, None, false) => Aggregate::CountStar,
            (AggregateFunction::Count, Some(c), false) => Aggregate::Count(c),
            (AggregateFunction::Count, Some(c), true) => Aggregate::CountDistinct(c),
            (AggregateFunction::Sum, Some(c), false) => Aggregate::Sum(c),
            (AggregateFunction::Avg, Some(c), false) => Aggregate::Avg(c),
            (AggregateFunction::Min, Some(c), false) => Aggregate::Min(c),
            (AggregateFunction::Max, Some(c), false) => Aggregate::Max(c),
            _ => return None,
        })
    }
}

/// Something a SELECT list, HAVING or ORDER BY refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Column(String),
    Aggregate(AggregateCall),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub term: Term,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// `SELECT *`: every column, in schema order.
    Wildcard,
    Items(Vec<SelectItem>),
}

/// What an ORDER BY term sorts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey {
    /// A column, aggregate or output alias (an identifier is looked up as an alias first).
    Term(Term),
    /// `ORDER BY 2`: the second item of the SELECT list (1-based).
    Position(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    pub key: OrderKey,
    pub descending: bool,
}

/// What GROUP BY names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    Column(String),
    /// `GROUP BY 1`: the first item of the SELECT list (1-based), which must be a column.
    Position(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub table: String,
    pub projection: Projection,
    /// `Constant(true)` when there is no WHERE.
    pub filter: Predicate<String>,
    pub group_by: Vec<GroupKey>,
    pub having: Option<Predicate<Term>>,
    pub order_by: Vec<OrderTerm>,
    pub limit: Option<u64>,
}
