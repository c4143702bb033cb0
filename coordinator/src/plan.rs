//! Statements against a table's schema: names resolved, literals type-checked, and SELECTs
//! split into what every shard evaluates and what the coordinator does on the merged result.
//!
//! An aggregate SELECT becomes one [`ShardQuery`] (filter, group columns, aggregates — the
//! SELECT list's, HAVING's and ORDER BY's, each once) whose merged answer is a *full row* per
//! group: group columns, then aggregates. HAVING, ORDER BY and LIMIT work on full rows; the
//! projection then picks the SELECT list out of them. A SELECT without aggregates or GROUP BY
//! is a record read: shards return the columns it needs, sorted and cut when it has ORDER BY
//! and LIMIT, and the coordinator merges, sorts, cuts and projects the same way.

use std::cmp::Ordering;

use rhizome_core::query::{Aggregate, CompareOp, Condition, OrderBy, ResultColumn, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema};
use rhizome_core::value::{DataType, LikePattern, Value, ValueError, ValueErrorKind};

use crate::cluster::TableSpec;
use crate::error::{DataFault, Error, Result};
use crate::limits::{
    COLUMNS_PER_TABLE_MAX, REPLICAS_DEFAULT, REPLICAS_PER_SHARD_MAX, RESULT_ROWS_MAX,
    SHARDS_DEFAULT, SHARDS_PER_TABLE_MAX,
};
use crate::parse::render_literal;
use crate::statement::{
    AggregateCall, CreateTable, GroupKey, Insert, OrderKey, Predicate, Projection, Select, Term,
    Update,
};

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// A SELECT, planned.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectPlan {
    Aggregate(AggregatePlan),
    Read(ReadPlan),
}

impl SelectPlan {
    /// The answer's columns (names and types), in SELECT-list order.
    pub fn columns(&self) -> &[ResultColumn] {
        match self {
            SelectPlan::Aggregate(plan) => &plan.columns,
            SelectPlan::Read(plan) => &plan.columns,
        }
    }
}

/// An aggregate SELECT: a shard query, then coordinator steps over full rows.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatePlan {
    pub query: ShardQuery,
    /// Types of the full row: group columns, then aggregates.
    pub full_types: Vec<DataType>,
    /// HAVING over full-row indexes.
    pub having: Option<Predicate<usize>>,
    /// ORDER BY over full-row indexes.
    pub order_by: Vec<OrderBy>,
    pub limit: Option<usize>,
    /// Full-row index of each output column.
    pub projection: Vec<usize>,
    pub columns: Vec<ResultColumn>,
}

/// A record read: shards return `request columns`, the coordinator merges them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    pub filter: Condition,
    /// Schema indexes of the columns read (the SELECT list's and ORDER BY's).
    pub read_columns: Vec<usize>,
    /// ORDER BY over indexes into `read_columns`.
    pub order_by: Vec<OrderBy>,
    pub limit: Option<usize>,
    /// Index into `read_columns` of each output column.
    pub projection: Vec<usize>,
    pub columns: Vec<ResultColumn>,
}

/// An UPDATE, planned: which records, and the new value of each assigned column.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePlan {
    pub filter: Condition,
    /// Schema index and checked value of each assignment.
    pub assignments: Vec<(usize, Value)>,
}

/// The table a CREATE TABLE describes, with defaults filled in and limits checked.
pub fn plan_create_table(create: &CreateTable) -> Result<TableSpec> {
    if create.columns.len() > COLUMNS_PER_TABLE_MAX {
        return Err(Error::LimitExceeded {
            limit: "columns_per_table_max",
            message: format!(
                "{} columns exceed columns_per_table_max ({COLUMNS_PER_TABLE_MAX})",
                create.columns.len()
            ),
        });
    }
    let schema = Schema::new(create.columns.clone()).map_err(|e| Error::Plan(core_message(&e)))?;
    let mut primary_key = Vec::with_capacity(create.primary_key.len());
    for name in &create.primary_key {
        let (_, def) = schema.column(name).map_err(|_| Error::UnknownColumn {
            table: create.name.clone(),
            column: name.clone(),
        })?;
        if primary_key.contains(&def.name) {
            return Err(Error::Plan(format!(
                "column {name} is twice in the PRIMARY KEY"
            )));
        }
        primary_key.push(def.name.clone());
    }
    // Primary-key columns are NOT NULL, as in SQL.
    let schema = Schema {
        columns: schema
            .columns
            .into_iter()
            .map(|c| ColumnDef {
                nullable: c.nullable && !primary_key.contains(&c.name),
                ..c
            })
            .collect(),
    };
    let shards = create.shards.unwrap_or(SHARDS_DEFAULT);
    let replicas = create.replicas.unwrap_or(REPLICAS_DEFAULT);
    if !(1..=SHARDS_PER_TABLE_MAX).contains(&shards) {
        return Err(Error::Plan(format!(
            "shards = {shards} is out of range 1..={SHARDS_PER_TABLE_MAX}"
        )));
    }
    if !(1..=REPLICAS_PER_SHARD_MAX).contains(&replicas) {
        return Err(Error::Plan(format!(
            "replicas = {replicas} is out of range 1..={REPLICAS_PER_SHARD_MAX}"
        )));
    }
    Ok(TableSpec {
        name: create.name.clone(),
        schema,
        primary_key,
        shards,
        replicas,
    })
}

/// The rows of an INSERT, in schema order, each value checked and converted to its column's
/// type. The first bad value rejects the statement, naming its row (1-based) and column.
pub fn plan_insert(insert: &Insert, table: &TableSpec) -> Result<Vec<Vec<Value>>> {
    let width = table.schema.columns.len();
    // Schema index of each position of a VALUES row.
    let targets: Vec<usize> = match &insert.columns {
        None => (0..width).collect(),
        Some(names) => {
            let mut targets = Vec::with_capacity(names.len());
            for name in names {
                let (index, def) = column(table, name)?;
                if targets.contains(&index) {
                    return Err(Error::Plan(format!(
                        "column {} is named twice in the INSERT column list",
                        def.name
                    )));
                }
                targets.push(index);
            }
            targets
        }
    };
    let mut rows = Vec::with_capacity(insert.rows.len());
    for (row_index, values) in insert.rows.iter().enumerate() {
        let row_number = row_index + 1;
        if values.len() != targets.len() {
            return Err(Error::Plan(format!(
                "row {row_number} has {} values, expected {}",
                values.len(),
                targets.len()
            )));
        }
        let mut row = vec![Value::Null; width];
        for (value, &target) in values.iter().zip(&targets) {
            row[target] = value.clone();
        }
        for (value, def) in row.iter_mut().zip(&table.schema.columns) {
            *value = store_value(def, value)
                .map_err(|e| in_row(e, &format!("row {row_number}, column {}", def.name)))?;
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Prefix an error's message with where it happened.
fn in_row(error: Error, place: &str) -> Error {
    match error {
        Error::Data { fault, message } => Error::Data {
            fault,
            message: format!("{place}: {message}"),
        },
        Error::TypeMismatch(message) => Error::TypeMismatch(format!("{place}: {message}")),
        other => other,
    }
}

/// A literal as a stored value of a column: NOT NULL checked, kind checked, converted.
pub fn store_value(def: &ColumnDef, value: &Value) -> Result<Value> {
    if value.is_null() {
        if def.nullable {
            return Ok(Value::Null);
        }
        return Err(Error::data(
            DataFault::NotNull,
            format!("NULL in NOT NULL column {}", def.name),
        ));
    }
    if !literal_fits(def.data_type, value) {
        return Err(Error::TypeMismatch(format!(
            "column {} is {}, got {}",
            def.name,
            def.data_type.sql_name(),
            render_literal(value)
        )));
    }
    let value = match (def.data_type, value) {
        (DataType::Timestamp, Value::Date(days)) => {
            Value::Timestamp(i64::from(*days) * MICROS_PER_DAY)
        }
        _ => value.clone(),
    };
    def.data_type.coerce(&value).map_err(|e| {
        Error::data(
            value_fault(&e),
            format!("{} for column {}", e.message, def.name),
        )
    })
}

/// Whether a literal of this kind may stand for a value of this type.
fn literal_fits(data_type: DataType, value: &Value) -> bool {
    matches!(
        (data_type, value),
        (_, Value::Null)
            | (DataType::BigInt | DataType::Int, Value::Int(_))
            | (
                DataType::Decimal { .. },
                Value::Int(_) | Value::Decimal { .. }
            )
            | (
                DataType::Double,
                Value::Int(_) | Value::Decimal { .. } | Value::Double(_)
            )
            | (DataType::Date, Value::Date(_) | Value::Text(_))
            | (
                DataType::Timestamp,
                Value::Timestamp(_) | Value::Date(_) | Value::Text(_)
            )
            | (DataType::Text { .. }, Value::Text(_))
            | (DataType::Boolean, Value::Boolean(_))
    )
}

/// Which data exception a value error of the storage engine is.
fn value_fault(error: &ValueError) -> DataFault {
    match error.kind {
        ValueErrorKind::OutOfRange => DataFault::OutOfRange,
        ValueErrorKind::InvalidDatetime => DataFault::InvalidDatetime,
        ValueErrorKind::TooLong => DataFault::TooLong,
        ValueErrorKind::BadCharacter => DataFault::BadCharacter,
        ValueErrorKind::Invalid | ValueErrorKind::Mismatch | ValueErrorKind::BadType => {
            DataFault::InvalidText
        }
    }
}

/// A core error's message without its category prefix.
fn core_message(error: &rhizome_core::Error) -> String {
    match error {
        rhizome_core::Error::Schema(m) | rhizome_core::Error::Plan(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A column of the table by (case-insensitive) name.
fn column<'t>(table: &'t TableSpec, name: &str) -> Result<(usize, &'t ColumnDef)> {
    table.schema.column(name).map_err(|_| Error::UnknownColumn {
        table: table.name.clone(),
        column: name.to_string(),
    })
}

/// A literal as a comparison bound for a value of `data_type` (`what` names it in errors):
/// numbers stay as written (the shard handles inexact bounds), text becomes a date or
/// timestamp where the column is one.
fn comparison_value(what: &str, data_type: DataType, value: &Value) -> Result<Value> {
    // Any exact number bounds an exact column (`qty > 9.5` on an integer column).
    let exact_bound = matches!(
        (data_type, value),
        (
            DataType::BigInt | DataType::Int | DataType::Decimal { .. },
            Value::Int(_) | Value::Decimal { .. }
        )
    );
    if !exact_bound && !literal_fits(data_type, value) {
        return Err(Error::TypeMismatch(format!(
            "cannot compare {what} ({}) with {}",
            data_type.sql_name(),
            render_literal(value)
        )));
    }
    Ok(match (data_type, value) {
        (DataType::Date | DataType::Timestamp, Value::Text(text)) => {
            data_type.parse(text).map_err(|e| {
                Error::data(
                    DataFault::InvalidDatetime,
                    format!("cannot compare {what} with '{text}': {}", e.message),
                )
            })?
        }
        (DataType::Timestamp, Value::Date(days)) => {
            Value::Timestamp(i64::from(*days) * MICROS_PER_DAY)
        }
        _ => value.clone(),
    })
}

/// For a text literal longer than the column's VARCHAR(n): its first n characters.
fn truncated_if_too_long(data_type: DataType, value: &Value) -> Option<Value> {
    match (data_type, value) {
        (
            DataType::Text {
                max_chars: Some(max),
            },
            Value::Text(text),
        ) if text.chars().count() > max as usize => {
            Some(Value::Text(text.chars().take(max as usize).collect()))
        }
        _ => None,
    }
}

/// A WHERE condition as the shards evaluate it: names resolved to the schema's spelling,
/// literals checked against the column types.
pub fn plan_condition(filter: &Predicate<String>, table: &TableSpec) -> Result<Condition> {
    Ok(match filter {
        Predicate::Constant(true) => Condition::True,
        Predicate::Constant(false) => Condition::True.negate(),
        Predicate::Compare { operand, op, value } => {
            let (_, def) = column(table, operand)?;
            let value = comparison_value(&format!("column {}", def.name), def.data_type, value)?;
            compare_condition(def, *op, value)
        }
        Predicate::Between { operand, low, high } => {
            let (_, def) = column(table, operand)?;
            let what = format!("column {}", def.name);
            let low = comparison_value(&what, def.data_type, low)?;
            let high = comparison_value(&what, def.data_type, high)?;
            if truncated_if_too_long(def.data_type, &low).is_some()
                || truncated_if_too_long(def.data_type, &high).is_some()
            {
                Condition::And(vec![
                    compare_condition(def, CompareOp::GtEq, low),
                    compare_condition(def, CompareOp::LtEq, high),
                ])
            } else {
                Condition::Between {
                    column: def.name.clone(),
                    low,
                    high,
                }
            }
        }
        Predicate::In { operand, values } => {
            let (_, def) = column(table, operand)?;
            let what = format!("column {}", def.name);
            let mut kept = Vec::with_capacity(values.len());
            for value in values {
                let value = comparison_value(&what, def.data_type, value)?;
                // A text longer than the column holds equals no value of it.
                if truncated_if_too_long(def.data_type, &value).is_none() {
                    kept.push(value);
                }
            }
            if kept.is_empty() {
                let first = values.first().cloned().unwrap_or(Value::Null);
                let pivot = truncated_if_too_long(def.data_type, &first).unwrap_or(first);
                matches_no_value(def, pivot)
            } else {
                Condition::In {
                    column: def.name.clone(),
                    values: kept,
                }
            }
        }
        Predicate::Like { operand, pattern } => {
            let (_, def) = column(table, operand)?;
            if !def.data_type.is_text() {
                return Err(Error::TypeMismatch(format!(
                    "LIKE needs a text column, {} is {}",
                    def.name,
                    def.data_type.sql_name()
                )));
            }
            Condition::Like {
                column: def.name.clone(),
                pattern: pattern.clone(),
            }
        }
        Predicate::IsNull { operand } => {
            let (_, def) = column(table, operand)?;
            Condition::IsNull {
                column: def.name.clone(),
            }
        }
        Predicate::And(children) => Condition::And(
            children
                .iter()
                .map(|c| plan_condition(c, table))
                .collect::<Result<_>>()?,
        ),
        Predicate::Or(children) => Condition::Or(
            children
                .iter()
                .map(|c| plan_condition(c, table))
                .collect::<Result<_>>()?,
        ),
        Predicate::Not(inner) => plan_condition(inner, table)?.negate(),
    })
}

/// `column op value`, where a text value longer than the column's VARCHAR(n) is replaced by
/// an equivalent comparison with its first n characters (no stored value is that long).
fn compare_condition(def: &ColumnDef, op: CompareOp, value: Value) -> Condition {
    let Some(truncated) = truncated_if_too_long(def.data_type, &value) else {
        return Condition::compare(&def.name, op, value);
    };
    let c = |op, v: &Value| Condition::compare(&def.name, op, v.clone());
    match op {
        CompareOp::Eq => matches_no_value(def, truncated),
        // TRUE for every non-NULL value, UNKNOWN for NULL, in either polarity.
        CompareOp::NotEq => Condition::Or(vec![
            c(CompareOp::Lt, &truncated),
            c(CompareOp::GtEq, &truncated),
        ]),
        // Every stored value is at most n characters, so below the long literal exactly when
        // at most its n-character prefix.
        CompareOp::Lt | CompareOp::LtEq => c(CompareOp::LtEq, &truncated),
        CompareOp::Gt | CompareOp::GtEq => c(CompareOp::Gt, &truncated),
    }
}

/// A condition FALSE for every non-NULL value and UNKNOWN for NULL (so its negation is TRUE
/// exactly for the non-NULL values), as `column = v` is for a `v` no record can hold.
fn matches_no_value(def: &ColumnDef, pivot: Value) -> Condition {
    Condition::And(vec![
        Condition::compare(&def.name, CompareOp::Lt, pivot.clone()),
        Condition::compare(&def.name, CompareOp::Gt, pivot),
    ])
}

/// The shard aggregate of a call, checked against the column's type.
fn plan_aggregate(call: &AggregateCall, table: &TableSpec) -> Result<(Aggregate, DataType)> {
    let (column_name, column_type) = match &call.column {
        None => (None, None),
        Some(name) => {
            let (_, def) = column(table, name)?;
            (Some(def.name.clone()), Some(def.data_type))
        }
    };
    let aggregate = call
        .to_aggregate(column_name.clone())
        .ok_or_else(|| Error::Unsupported(format!("aggregate {call:?}")))?;
    let result_type = aggregate.result_type(column_type).map_err(|_| {
        Error::TypeMismatch(format!(
            "{} is not defined for column {} of type {}",
            aggregate.display_name().to_uppercase(),
            column_name.unwrap_or_default(),
            column_type.map(|t| t.sql_name()).unwrap_or_default()
        ))
    })?;
    Ok((aggregate, result_type))
}

/// Plan a SELECT against its table.
pub fn plan_select(select: &Select, table: &TableSpec) -> Result<SelectPlan> {
    let filter = plan_condition(&select.filter, table)?;
    let limit = select
        .limit
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let has_aggregate = match &select.projection {
        Projection::Wildcard => false,
        Projection::Items(items) => items.iter().any(|i| matches!(i.term, Term::Aggregate(_))),
    } || select.having.is_some()
        || select
            .order_by
            .iter()
            .any(|o| matches!(o.key, OrderKey::Term(Term::Aggregate(_))));
    if has_aggregate || !select.group_by.is_empty() {
        plan_aggregate_select(select, table, filter, limit).map(SelectPlan::Aggregate)
    } else {
        plan_read(select, table, filter, limit).map(SelectPlan::Read)
    }
}

/// The output name of a select item.
fn item_name(term: &Term, alias: &Option<String>, table: &TableSpec) -> Result<String> {
    if let Some(alias) = alias {
        return Ok(alias.clone());
    }
    Ok(match term {
        Term::Column(name) => column(table, name)?.1.name.clone(),
        Term::Aggregate(call) => match call.function {
            crate::statement::AggregateFunction::Count => "count",
            crate::statement::AggregateFunction::Sum => "sum",
            crate::statement::AggregateFunction::Avg => "avg",
            crate::statement::AggregateFunction::Min => "min",
            crate::statement::AggregateFunction::Max => "max",
        }
        .to_string(),
    })
}

/// Builds the shard query's group columns and aggregates, each once.
struct FullRow<'t> {
    table: &'t TableSpec,
    group_by: Vec<String>,
    group_types: Vec<DataType>,
    aggregates: Vec<Aggregate>,
    aggregate_types: Vec<DataType>,
}

impl FullRow<'_> {
    /// Full-row index of a term: a group column, or an aggregate (added when new).
    fn index(&mut self, term: &Term) -> Result<usize> {
        match term {
            Term::Column(name) => {
                let (_, def) = column(self.table, name)?;
                self.group_by
                    .iter()
                    .position(|g| *g == def.name)
                    .ok_or_else(|| {
                        Error::Grouping(format!(
                            "column {} must appear in the GROUP BY clause or be used in an aggregate function",
                            def.name
                        ))
                    })
            }
            Term::Aggregate(call) => {
                let (aggregate, result_type) = plan_aggregate(call, self.table)?;
                let position = match self.aggregates.iter().position(|a| *a == aggregate) {
                    Some(p) => p,
                    None => {
                        self.aggregates.push(aggregate);
                        self.aggregate_types.push(result_type);
                        self.aggregates.len() - 1
                    }
                };
                Ok(self.group_by.len() + position)
            }
        }
    }

    fn data_type(&self, index: usize) -> DataType {
        if index < self.group_types.len() {
            self.group_types[index]
        } else {
            self.aggregate_types[index - self.group_types.len()]
        }
    }
}

fn plan_aggregate_select(
    select: &Select,
    table: &TableSpec,
    filter: Condition,
    limit: Option<usize>,
) -> Result<AggregatePlan> {
    let items = match &select.projection {
        Projection::Wildcard => {
            return Err(Error::Grouping(
                "SELECT * cannot be used with GROUP BY or aggregates".into(),
            ))
        }
        Projection::Items(items) => items,
    };
    let mut full = FullRow {
        table,
        group_by: Vec::new(),
        group_types: Vec::new(),
        aggregates: Vec::new(),
        aggregate_types: Vec::new(),
    };
    for key in &select.group_by {
        let name = match key {
            GroupKey::Column(name) => name.clone(),
            GroupKey::Position(p) => match position_item(items, *p, "GROUP BY")? {
                Term::Column(name) => name.clone(),
                Term::Aggregate(_) => {
                    return Err(Error::Grouping(format!(
                        "GROUP BY position {p} refers to an aggregate"
                    )))
                }
            },
        };
        let (_, def) = column(table, &name)?;
        if !full.group_by.contains(&def.name) {
            full.group_by.push(def.name.clone());
            full.group_types.push(def.data_type);
        }
    }
    let mut projection = Vec::with_capacity(items.len());
    let mut columns = Vec::with_capacity(items.len());
    for item in items {
        let index = full.index(&item.term)?;
        projection.push(index);
        columns.push(ResultColumn {
            name: item_name(&item.term, &item.alias, table)?,
            data_type: full.data_type(index),
        });
    }
    let having = match &select.having {
        None => None,
        Some(predicate) => Some(plan_having(predicate, &mut full)?),
    };
    let mut order_by = Vec::with_capacity(select.order_by.len());
    for term in &select.order_by {
        let column_index = match &term.key {
            OrderKey::Position(p) => {
                position_item(items, *p, "ORDER BY")?;
                projection[*p as usize - 1]
            }
            OrderKey::Term(Term::Column(name)) => match alias_position(items, name) {
                Some(i) => projection[i],
                None => full.index(&Term::Column(name.clone()))?,
            },
            OrderKey::Term(t) => full.index(t)?,
        };
        order_by.push(OrderBy {
            column_index,
            descending: term.descending,
        });
    }
    let full_types = (0..full.group_by.len() + full.aggregates.len())
        .map(|i| full.data_type(i))
        .collect();
    Ok(AggregatePlan {
        query: ShardQuery {
            filter,
            group_by: full.group_by,
            aggregates: full.aggregates,
        },
        full_types,
        having,
        order_by,
        limit,
        projection,
        columns,
    })
}

/// The select item at a 1-based position.
fn position_item<'s>(
    items: &'s [crate::statement::SelectItem],
    position: u64,
    clause: &str,
) -> Result<&'s Term> {
    usize::try_from(position)
        .ok()
        .filter(|&p| p >= 1 && p <= items.len())
        .map(|p| &items[p - 1].term)
        .ok_or_else(|| {
            Error::Plan(format!(
                "{clause} position {position} is not in the select list (1..={})",
                items.len()
            ))
        })
}

/// The index of the select item with this alias.
fn alias_position(items: &[crate::statement::SelectItem], name: &str) -> Option<usize> {
    items.iter().position(|i| i.alias.as_deref() == Some(name))
}

fn plan_having(predicate: &Predicate<Term>, full: &mut FullRow) -> Result<Predicate<usize>> {
    let mut operand = |term: &Term| -> Result<(usize, String, DataType)> {
        let index = full.index(term)?;
        let what = match term {
            Term::Column(name) => format!("column {name}"),
            Term::Aggregate(call) => format!(
                "{}({})",
                item_name(term, &None, full.table)?.to_uppercase(),
                call.column.as_deref().unwrap_or("*")
            ),
        };
        Ok((index, what, full.data_type(index)))
    };
    Ok(match predicate {
        Predicate::Constant(b) => Predicate::Constant(*b),
        Predicate::Compare {
            operand: term,
            op,
            value,
        } => {
            let (index, what, data_type) = operand(term)?;
            Predicate::Compare {
                operand: index,
                op: *op,
                value: comparison_value(&what, data_type, value)?,
            }
        }
        Predicate::Between {
            operand: term,
            low,
            high,
        } => {
            let (index, what, data_type) = operand(term)?;
            Predicate::Between {
                operand: index,
                low: comparison_value(&what, data_type, low)?,
                high: comparison_value(&what, data_type, high)?,
            }
        }
        Predicate::In {
            operand: term,
            values,
        } => {
            let (index, what, data_type) = operand(term)?;
            Predicate::In {
                operand: index,
                values: values
                    .iter()
                    .map(|v| comparison_value(&what, data_type, v))
                    .collect::<Result<_>>()?,
            }
        }
        Predicate::Like {
            operand: term,
            pattern,
        } => {
            let (index, what, data_type) = operand(term)?;
            if !data_type.is_text() {
                return Err(Error::TypeMismatch(format!(
                    "LIKE needs text, {what} is {}",
                    data_type.sql_name()
                )));
            }
            Predicate::Like {
                operand: index,
                pattern: pattern.clone(),
            }
        }
        Predicate::IsNull { operand: term } => Predicate::IsNull {
            operand: operand(term)?.0,
        },
        Predicate::And(children) => Predicate::And(
            children
                .iter()
                .map(|c| plan_having(c, full))
                .collect::<Result<_>>()?,
        ),
        Predicate::Or(children) => Predicate::Or(
            children
                .iter()
                .map(|c| plan_having(c, full))
                .collect::<Result<_>>()?,
        ),
        Predicate::Not(inner) => plan_having(inner, full)?.negate(),
    })
}

fn plan_read(
    select: &Select,
    table: &TableSpec,
    filter: Condition,
    limit: Option<usize>,
) -> Result<ReadPlan> {
    let mut read_columns: Vec<usize> = Vec::new();
    let mut read_index = |schema_index: usize| -> usize {
        match read_columns.iter().position(|&c| c == schema_index) {
            Some(p) => p,
            None => {
                read_columns.push(schema_index);
                read_columns.len() - 1
            }
        }
    };
    let mut projection = Vec::new();
    let mut columns = Vec::new();
    let mut names: Vec<Option<String>> = Vec::new();
    match &select.projection {
        Projection::Wildcard => {
            for (index, def) in table.schema.columns.iter().enumerate() {
                projection.push(read_index(index));
                columns.push(ResultColumn {
                    name: def.name.clone(),
                    data_type: def.data_type,
                });
                names.push(None);
            }
        }
        Projection::Items(items) => {
            for item in items {
                let Term::Column(name) = &item.term else {
                    return Err(Error::Internal("aggregate in a record read".into()));
                };
                let (index, def) = column(table, name)?;
                projection.push(read_index(index));
                columns.push(ResultColumn {
                    name: item.alias.clone().unwrap_or_else(|| def.name.clone()),
                    data_type: def.data_type,
                });
                names.push(item.alias.clone());
            }
        }
    }
    let mut order_by = Vec::with_capacity(select.order_by.len());
    for term in &select.order_by {
        let column_index = match &term.key {
            OrderKey::Position(p) => {
                let p = usize::try_from(*p)
                    .ok()
                    .filter(|&p| p >= 1 && p <= projection.len())
                    .ok_or_else(|| {
                        Error::Plan(format!(
                            "ORDER BY position {p} is not in the select list (1..={})",
                            projection.len()
                        ))
                    })?;
                projection[p - 1]
            }
            OrderKey::Term(Term::Column(name)) => {
                match names
                    .iter()
                    .position(|n| n.as_deref() == Some(name.as_str()))
                {
                    Some(i) => projection[i],
                    None => read_index(column(table, name)?.0),
                }
            }
            OrderKey::Term(Term::Aggregate(_)) => {
                return Err(Error::Internal(
                    "aggregate ORDER BY in a record read".into(),
                ))
            }
        };
        order_by.push(OrderBy {
            column_index,
            descending: term.descending,
        });
    }
    Ok(ReadPlan {
        filter,
        read_columns,
        order_by,
        limit,
        projection,
        columns,
    })
}

/// Plan an UPDATE: its condition, and each assigned value checked as a stored value.
pub fn plan_update(update: &Update, table: &TableSpec) -> Result<UpdatePlan> {
    let filter = plan_condition(&update.filter, table)?;
    let mut assignments: Vec<(usize, Value)> = Vec::with_capacity(update.assignments.len());
    for (name, value) in &update.assignments {
        let (index, def) = column(table, name)?;
        if assignments.iter().any(|(i, _)| *i == index) {
            return Err(Error::Plan(format!(
                "column {} is assigned twice",
                def.name
            )));
        }
        let value = store_value(def, value).map_err(|e| in_row(e, "SET"))?;
        assignments.push((index, value));
    }
    Ok(UpdatePlan {
        filter,
        assignments,
    })
}

/// Compare a result value with a HAVING literal; `None` when either is NULL (UNKNOWN).
pub fn compare_with_literal(value: &Value, literal: &Value) -> Option<Ordering> {
    fn exact(v: &Value) -> Option<(i128, u32)> {
        match v {
            Value::Int(i) => Some((i128::from(*i), 0)),
            Value::Decimal { units, scale } => Some((i128::from(*units), u32::from(*scale))),
            _ => None,
        }
    }
    fn float(v: &Value) -> Option<f64> {
        match v {
            Value::Int(i) => Some(*i as f64),
            Value::Decimal { units, scale } => Some(*units as f64 / 10f64.powi(i32::from(*scale))),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }
    match (value, literal) {
        (Value::Null, _) | (_, Value::Null) => None,
        (a, b) if exact(a).is_some() && exact(b).is_some() => {
            let ((ua, sa), (ub, sb)) = (exact(a)?, exact(b)?);
            let scale = sa.max(sb);
            let a = ua.checked_mul(10i128.checked_pow(scale - sa)?)?;
            let b = ub.checked_mul(10i128.checked_pow(scale - sb)?)?;
            Some(a.cmp(&b))
        }
        (a, b) if float(a).is_some() && float(b).is_some() => float(a)?.partial_cmp(&float(b)?),
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
        (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Evaluate a HAVING predicate on a full row, in SQL's three-valued logic (`None` is
/// UNKNOWN); a row is kept when the answer is `Some(true)`.
pub fn evaluate(predicate: &Predicate<usize>, row: &[Value]) -> Option<bool> {
    let cell = |i: &usize| row.get(*i).unwrap_or(&Value::Null);
    match predicate {
        Predicate::Constant(b) => Some(*b),
        Predicate::Compare { operand, op, value } => {
            let ordering = compare_with_literal(cell(operand), value)?;
            Some(match op {
                CompareOp::Eq => ordering == Ordering::Equal,
                CompareOp::NotEq => ordering != Ordering::Equal,
                CompareOp::Lt => ordering == Ordering::Less,
                CompareOp::LtEq => ordering != Ordering::Greater,
                CompareOp::Gt => ordering == Ordering::Greater,
                CompareOp::GtEq => ordering != Ordering::Less,
            })
        }
        Predicate::Between { operand, low, high } => and3(
            compare_with_literal(cell(operand), low).map(|o| o != Ordering::Less),
            compare_with_literal(cell(operand), high).map(|o| o != Ordering::Greater),
        ),
        Predicate::In { operand, values } => {
            let mut answer = Some(false);
            for v in values {
                answer = or3(
                    answer,
                    compare_with_literal(cell(operand), v).map(|o| o == Ordering::Equal),
                );
            }
            answer
        }
        Predicate::Like { operand, pattern } => match cell(operand) {
            Value::Text(text) => Some(LikePattern::new(pattern).matches(text)),
            _ => None,
        },
        Predicate::IsNull { operand } => Some(cell(operand).is_null()),
        Predicate::And(children) => {
            let mut answer = Some(true);
            for child in children {
                answer = and3(answer, evaluate(child, row));
            }
            answer
        }
        Predicate::Or(children) => {
            let mut answer = Some(false);
            for child in children {
                answer = or3(answer, evaluate(child, row));
            }
            answer
        }
        Predicate::Not(inner) => evaluate(inner, row).map(|b| !b),
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// Rows a shard read may return: the LIMIT, or one more than an answer may hold (so an
/// answer too large is noticed rather than cut).
pub fn read_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(usize::MAX).min(RESULT_ROWS_MAX + 1)
}

/// A condition as SQL text, for EXPLAIN.
pub fn render_condition(condition: &Condition) -> String {
    let op_text = |op: &CompareOp| match op {
        CompareOp::Eq => "=",
        CompareOp::NotEq => "<>",
        CompareOp::Lt => "<",
        CompareOp::LtEq => "<=",
        CompareOp::Gt => ">",
        CompareOp::GtEq => ">=",
    };
    match condition {
        Condition::True => "TRUE".into(),
        Condition::Compare { column, op, value } => {
            format!("{column} {} {}", op_text(op), render_literal(value))
        }
        Condition::Between { column, low, high } => format!(
            "{column} BETWEEN {} AND {}",
            render_literal(low),
            render_literal(high)
        ),
        Condition::In { column, values } => {
            const SHOWN_VALUES_MAX: usize = 8;
            let mut shown: Vec<String> = values
                .iter()
                .take(SHOWN_VALUES_MAX)
                .map(render_literal)
                .collect();
            if values.len() > SHOWN_VALUES_MAX {
                shown.push(format!("… {} more", values.len() - SHOWN_VALUES_MAX));
            }
            format!("{column} IN ({})", shown.join(", "))
        }
        Condition::Like { column, pattern } => {
            format!(
                "{column} LIKE {}",
                render_literal(&Value::Text(pattern.clone()))
            )
        }
        Condition::IsNull { column } => format!("{column} IS NULL"),
        Condition::And(children) if children.is_empty() => "TRUE".into(),
        Condition::Or(children) if children.is_empty() => "FALSE".into(),
        Condition::And(children) => children
            .iter()
            .map(|c| format!("({})", render_condition(c)))
            .collect::<Vec<_>>()
            .join(" AND "),
        Condition::Or(children) => children
            .iter()
            .map(|c| format!("({})", render_condition(c)))
            .collect::<Vec<_>>()
            .join(" OR "),
        Condition::Not(inner) => format!("NOT ({})", render_condition(inner)),
    }
}

/// A HAVING predicate as SQL text, its operands named by `names` (full-row order).
pub fn render_predicate(predicate: &Predicate<usize>, names: &[String]) -> String {
    let name = |i: &usize| {
        names
            .get(*i)
            .cloned()
            .unwrap_or_else(|| format!("#{}", i + 1))
    };
    let compare = |op: &CompareOp| match op {
        CompareOp::Eq => "=",
        CompareOp::NotEq => "<>",
        CompareOp::Lt => "<",
        CompareOp::LtEq => "<=",
        CompareOp::Gt => ">",
        CompareOp::GtEq => ">=",
    };
    let join = |children: &[Predicate<usize>], word: &str| {
        children
            .iter()
            .map(|c| format!("({})", render_predicate(c, names)))
            .collect::<Vec<_>>()
            .join(word)
    };
    match predicate {
        Predicate::Constant(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Predicate::Compare { operand, op, value } => {
            format!(
                "{} {} {}",
                name(operand),
                compare(op),
                render_literal(value)
            )
        }
        Predicate::Between { operand, low, high } => format!(
            "{} BETWEEN {} AND {}",
            name(operand),
            render_literal(low),
            render_literal(high)
        ),
        Predicate::In { operand, values } => format!(
            "{} IN ({})",
            name(operand),
            values
                .iter()
                .map(render_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Predicate::Like { operand, pattern } => format!(
            "{} LIKE {}",
            name(operand),
            render_literal(&Value::Text(pattern.clone()))
        ),
        Predicate::IsNull { operand } => format!("{} IS NULL", name(operand)),
        Predicate::And(children) => join(children, " AND "),
        Predicate::Or(children) => join(children, " OR "),
        Predicate::Not(inner) => format!("NOT ({})", render_predicate(inner, names)),
    }
}

/// An aggregate as SQL text, for EXPLAIN.
pub fn render_aggregate(aggregate: &Aggregate) -> String {
    match aggregate {
        Aggregate::CountStar => "COUNT(*)".into(),
        Aggregate::Count(c) => format!("COUNT({c})"),
        Aggregate::CountDistinct(c) => format!("COUNT(DISTINCT {c})"),
        Aggregate::Sum(c) => format!("SUM({c})"),
        Aggregate::Avg(c) => format!("AVG({c})"),
        Aggregate::Min(c) => format!("MIN({c})"),
        Aggregate::Max(c) => format!("MAX({c})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn having_comparisons_cross_numeric_kinds_exactly() {
        // Proves HAVING compares decimals, integers and doubles by value, NULL as UNKNOWN.
        let d = |units, scale| Value::Decimal { units, scale };
        assert_eq!(
            compare_with_literal(&d(500, 2), &Value::Int(5)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_with_literal(&d(501, 2), &d(5, 0)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_with_literal(&Value::Double(0.05), &d(5, 2)),
            Some(Ordering::Equal)
        );
        assert_eq!(compare_with_literal(&Value::Null, &Value::Int(1)), None);
        let p = Predicate::In {
            operand: 0,
            values: vec![Value::Int(1), Value::Null],
        };
        assert_eq!(evaluate(&p, &[Value::Int(1)]), Some(true));
        assert_eq!(evaluate(&p, &[Value::Int(2)]), None);
        assert_eq!(evaluate(&p.negate(), &[Value::Int(2)]), None);
    }
}
