//! Bound parameters (`$1`, `$2`, …) of the PostgreSQL extended protocol.
//!
//! SQL-lite has no parameter in its statement type: a parameter is substituted into the
//! statement text as a literal of its type, and the result goes through the same parser,
//! type checks and limits as any statement. Placeholders are found by a small scanner that
//! skips quoted strings, quoted identifiers and comments. A parameter's type is the client's
//! when it declares one, otherwise inferred from where the placeholder stands: compared with,
//! or inserted into, a column (the column's type), a LIKE pattern (text), a LIMIT (BIGINT).

use std::ops::Range;

use sqlparser::ast::{self, Expr, SetExpr};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use rhizome_core::value::{DataType, Value};

use crate::error::{DataFault, Error, Result};
use crate::limits::NESTING_DEPTH_MAX;

/// Highest parameter number a statement may use.
pub const PARAMETERS_MAX: usize = 10_000;

/// Byte range and 1-based number of every `$n` outside strings, identifiers and comments.
pub fn placeholders(sql: &str) -> Result<Vec<(Range<usize>, usize)>> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let number = sql[start + 1..i]
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| (1..=PARAMETERS_MAX).contains(&n))
                    .ok_or_else(|| {
                        Error::Plan(format!(
                            "parameter {} is out of range 1..={PARAMETERS_MAX}",
                            &sql[start..i]
                        ))
                    })?;
                found.push((start..i, number));
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

/// The statement with every `$n` replaced by `literals[n - 1]`.
pub fn substitute(sql: &str, literals: &[String]) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (range, number) in placeholders(sql)? {
        let literal = literals.get(number - 1).ok_or_else(|| {
            Error::Plan(format!(
                "parameter ${number} has no value ({} given)",
                literals.len()
            ))
        })?;
        out.push_str(&sql[last..range.start]);
        out.push(' ');
        out.push_str(literal);
        out.push(' ');
        last = range.end;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// Where a placeholder stands, as far as its type goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Compared with, assigned to or inserted into this column.
    Column(String),
    Type(DataType),
    Unknown,
}

/// The table a statement names and a hint per parameter (index `n - 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inference {
    pub table: Option<String>,
    pub hints: Vec<Hint>,
}

/// Infer parameter hints from the statement's syntax tree. Statements that do not parse
/// give no hints (the parse error is reported when the statement runs).
pub fn infer(sql: &str, parameter_count: usize) -> Inference {
    let mut inference = Inference {
        table: None,
        hints: vec![Hint::Unknown; parameter_count],
    };
    let dialect = PostgreSqlDialect {};
    let Ok(statements) = Parser::new(&dialect)
        .with_recursion_limit(NESTING_DEPTH_MAX * 2 + 8)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
    else {
        return inference;
    };
    let Some(statement) = statements.first() else {
        return inference;
    };
    let mut hint = |expr: &Expr, h: Hint| {
        if let Some(n) = placeholder_number(expr) {
            if let Some(slot) = inference.hints.get_mut(n - 1) {
                if *slot == Hint::Unknown {
                    *slot = h;
                }
            }
        }
    };
    let mut table = None;
    match statement {
        ast::Statement::Query(query) => {
            if let SetExpr::Select(select) = &*query.body {
                table = select.from.first().and_then(|f| table_name(&f.relation));
                if let Some(e) = &select.selection {
                    walk(e, 0, &mut hint);
                }
                if let Some(e) = &select.having {
                    walk(e, 0, &mut hint);
                }
            }
            if let Some(ast::LimitClause::LimitOffset { limit: Some(l), .. }) = &query.limit_clause
            {
                hint(l, Hint::Type(DataType::BigInt));
            }
        }
        ast::Statement::Insert(insert) => {
            if let ast::TableObject::TableName(name) = &insert.table {
                table = Some(name.to_string().to_lowercase());
            }
            if let Some(source) = &insert.source {
                if let SetExpr::Values(values) = &*source.body {
                    for row in &values.rows {
                        for (position, expr) in row.content.iter().enumerate() {
                            let h = match insert.columns.get(position) {
                                Some(column) => Hint::Column(column.to_string()),
                                None if insert.columns.is_empty() => {
                                    Hint::Column(format!("#{position}"))
                                }
                                None => Hint::Unknown,
                            };
                            hint(expr, h);
                        }
                    }
                }
            }
        }
        ast::Statement::Update(update) => {
            table = table_name(&update.table.relation);
            for assignment in &update.assignments {
                if let ast::AssignmentTarget::ColumnName(column) = &assignment.target {
                    hint(&assignment.value, Hint::Column(column.to_string()));
                }
            }
            if let Some(e) = &update.selection {
                walk(e, 0, &mut hint);
            }
        }
        ast::Statement::Delete(delete) => {
            let from = match &delete.from {
                ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
            };
            table = from.first().and_then(|f| table_name(&f.relation));
            if let Some(e) = &delete.selection {
                walk(e, 0, &mut hint);
            }
        }
        _ => {}
    }
    inference.table = table;
    inference
}

fn table_name(factor: &ast::TableFactor) -> Option<String> {
    match factor {
        ast::TableFactor::Table { name, .. } => Some(name.to_string().to_lowercase()),
        _ => None,
    }
}

fn placeholder_number(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            ast::Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => placeholder_number(inner),
        _ => None,
    }
}

fn column_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(id) => Some(id.value.to_lowercase()),
        Expr::Nested(inner) => column_of(inner),
        _ => None,
    }
}

/// Hint the placeholders of a condition tree.
fn walk(expr: &Expr, depth: usize, hint: &mut impl FnMut(&Expr, Hint)) {
    if depth > NESTING_DEPTH_MAX * 2 {
        return;
    }
    match expr {
        Expr::BinaryOp { left, right, .. } => {
            if let Some(c) = column_of(left) {
                hint(right, Hint::Column(c));
            }
            if let Some(c) = column_of(right) {
                hint(left, Hint::Column(c));
            }
            walk(left, depth + 1, hint);
            walk(right, depth + 1, hint);
        }
        Expr::Between {
            expr: inner,
            low,
            high,
            ..
        } => {
            if let Some(c) = column_of(inner) {
                hint(low, Hint::Column(c.clone()));
                hint(high, Hint::Column(c));
            }
        }
        Expr::InList {
            expr: inner, list, ..
        } => {
            if let Some(c) = column_of(inner) {
                for item in list {
                    hint(item, Hint::Column(c.clone()));
                }
            }
        }
        Expr::Like { pattern, .. } => hint(pattern, Hint::Type(DataType::Text { max_chars: None })),
        Expr::UnaryOp { expr: inner, .. } | Expr::Nested(inner) => walk(inner, depth + 1, hint),
        _ => {}
    }
}

/// A parameter's bytes as a SQL literal of its type. `binary` is the wire format.
pub fn literal(bytes: Option<&[u8]>, data_type: Option<DataType>, binary: bool) -> Result<String> {
    let Some(bytes) = bytes else {
        return Ok("NULL".into());
    };
    let bad = |what: &str| {
        Error::data(
            DataFault::InvalidText,
            format!("parameter is not a valid {what}"),
        )
    };
    if binary {
        let value = match (data_type, bytes.len()) {
            (Some(DataType::Int | DataType::BigInt), 2) => {
                Value::Int(i64::from(i16::from_be_bytes([bytes[0], bytes[1]])))
            }
            (Some(DataType::Int | DataType::BigInt), 4) => Value::Int(i64::from(
                i32::from_be_bytes(bytes.try_into().map_err(|_| bad("INT4"))?),
            )),
            (Some(DataType::Int | DataType::BigInt), 8) => Value::Int(i64::from_be_bytes(
                bytes.try_into().map_err(|_| bad("INT8"))?,
            )),
            (Some(DataType::Double), 4) => Value::Double(f64::from(f32::from_be_bytes(
                bytes.try_into().map_err(|_| bad("FLOAT4"))?,
            ))),
            (Some(DataType::Double), 8) => Value::Double(f64::from_be_bytes(
                bytes.try_into().map_err(|_| bad("FLOAT8"))?,
            )),
            (Some(DataType::Boolean), 1) => Value::Boolean(bytes[0] != 0),
            (Some(DataType::Date), 4) => {
                Value::Date(i32::from_be_bytes(bytes.try_into().map_err(|_| bad("DATE"))?) + 10_957)
            }
            (Some(DataType::Timestamp), 8) => Value::Timestamp(
                i64::from_be_bytes(bytes.try_into().map_err(|_| bad("TIMESTAMP"))?)
                    + 946_684_800_000_000,
            ),
            (Some(DataType::Text { .. }) | None, _) => Value::Text(
                std::str::from_utf8(bytes)
                    .map_err(|_| bad("UTF-8 text"))?
                    .to_string(),
            ),
            (Some(other), _) => {
                return Err(Error::Unsupported(format!(
                    "binary parameters of type {}",
                    other.sql_name()
                )))
            }
        };
        return Ok(match value {
            Value::Double(d) if !d.is_finite() => return Err(bad("finite DOUBLE")),
            Value::Double(d) => format!("{d:e}"),
            other => crate::parse::render_literal(&other),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad("UTF-8 text"))?;
    let quoted = || format!("'{}'", text.replace('\'', "''"));
    Ok(match data_type {
        Some(DataType::BigInt | DataType::Int | DataType::Decimal { .. } | DataType::Double) => {
            let number = text.trim();
            let valid = !number.is_empty()
                && number.bytes().enumerate().all(|(i, b)| {
                    b.is_ascii_digit()
                        || b == b'.'
                        || b == b'e'
                        || b == b'E'
                        || (b == b'-' && i == 0)
                        || (b == b'+' && i == 0)
                });
            if !valid {
                return Err(bad("number"));
            }
            format!("({number})")
        }
        Some(DataType::Boolean) => match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "1" | "yes" | "on" => "TRUE".into(),
            "f" | "false" | "0" | "no" | "off" => "FALSE".into(),
            _ => return Err(bad("BOOLEAN")),
        },
        Some(DataType::Date) => format!("DATE {}", quoted()),
        Some(DataType::Timestamp) => format!("TIMESTAMP {}", quoted()),
        Some(DataType::Text { .. }) | None => quoted(),
    })
}

/// A literal of each type that plans wherever such a parameter may stand (for Describe).
pub fn placeholder_literal(data_type: Option<DataType>) -> String {
    match data_type {
        Some(DataType::BigInt | DataType::Int | DataType::Decimal { .. } | DataType::Double) => {
            "0".into()
        }
        Some(DataType::Boolean) => "TRUE".into(),
        Some(DataType::Date) => "DATE '2000-01-01'".into(),
        Some(DataType::Timestamp) => "TIMESTAMP '2000-01-01 00:00:00'".into(),
        Some(DataType::Text { .. }) => "''".into(),
        None => "NULL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_skip_strings_identifiers_and_comments() {
        // Proves only real `$n` tokens are found and substituted.
        let sql = "SELECT a FROM t WHERE a = $1 AND b = '$2' AND \"$3\" = 1 -- $4\n AND c IN ($2, $10) /* $5 */";
        let found: Vec<usize> = placeholders(sql)
            .expect("scan")
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(found, vec![1, 2, 10]);
        let literals: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        let out = substitute(sql, &literals).expect("substitute");
        assert!(out.contains("a =  1  AND b = '$2'"), "{out}");
        assert!(out.contains("IN ( 2 ,  10 )"), "{out}");
        assert!(substitute("SELECT a FROM t WHERE a = $3", &literals[..2]).is_err());
        assert!(placeholders("SELECT $0").is_err());
    }

    #[test]
    fn parameters_become_literals_of_their_type() {
        // Proves text and binary parameters render as SQL-lite literals, quotes escaped.
        assert_eq!(
            literal(None, Some(DataType::BigInt), false).ok(),
            Some("NULL".into())
        );
        assert_eq!(
            literal(Some(b"-42"), Some(DataType::BigInt), false).ok(),
            Some("(-42)".into())
        );
        assert!(literal(Some(b"1; DROP TABLE t"), Some(DataType::BigInt), false).is_err());
        assert_eq!(
            literal(Some(b"it's"), None, false).ok(),
            Some("'it''s'".into())
        );
        assert_eq!(
            literal(Some(&42i64.to_be_bytes()), Some(DataType::BigInt), true).ok(),
            Some("42".into())
        );
        assert_eq!(
            literal(Some(&(-486i32).to_be_bytes()), Some(DataType::Date), true).ok(),
            Some("DATE '1998-09-02'".into())
        );
        assert_eq!(
            literal(Some(b"1998-09-02"), Some(DataType::Date), false).ok(),
            Some("DATE '1998-09-02'".into())
        );
    }

    #[test]
    fn hints_come_from_where_placeholders_stand() {
        // Proves inference for comparisons, IN, BETWEEN, LIKE, LIMIT, INSERT and UPDATE.
        let i = infer(
            "SELECT a FROM t WHERE a = $1 AND $2 < b AND c IN ($3) AND d BETWEEN $4 AND $5 AND e LIKE $6 LIMIT $7",
            7,
        );
        assert_eq!(i.table.as_deref(), Some("t"));
        assert_eq!(
            i.hints,
            vec![
                Hint::Column("a".into()),
                Hint::Column("b".into()),
                Hint::Column("c".into()),
                Hint::Column("d".into()),
                Hint::Column("d".into()),
                Hint::Type(DataType::Text { max_chars: None }),
                Hint::Type(DataType::BigInt),
            ]
        );
        let i = infer("INSERT INTO t (x, y) VALUES ($1, $2)", 2);
        assert_eq!(
            i.hints,
            vec![Hint::Column("x".into()), Hint::Column("y".into())]
        );
        let i = infer("INSERT INTO t VALUES ($1, 5, $2)", 2);
        assert_eq!(
            i.hints,
            vec![Hint::Column("#0".into()), Hint::Column("#2".into())]
        );
        let i = infer("UPDATE t SET x = $1 WHERE y = $2", 2);
        assert_eq!(
            i.hints,
            vec![Hint::Column("x".into()), Hint::Column("y".into())]
        );
    }
}
