//! SQL text → [`Statement`]: `sqlparser` (PostgreSQL dialect) parses, then this module
//! accepts the SQL-lite subset of its tree and rejects everything else with
//! [`Error::Unsupported`] naming the construct.
//!
//! Before the parser runs, the statement's bytes and the tokens are checked against the
//! limits ([`crate::limits`]): size, NUL characters, nesting depth and operator count, so a
//! hostile statement never builds a deep tree (whose recursive drop could exhaust a stack).

use sqlparser::ast;
use sqlparser::ast::{
    BinaryOperator, CreateTableOptions, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, LimitClause, ObjectName, ObjectNamePart, OrderByKind, SelectItem as AstItem,
    SetExpr, SqlOption, TableFactor, TableObject, UnaryOperator,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use rhizome_core::query::CompareOp;
use rhizome_core::shard::ColumnDef;
use rhizome_core::value::{DataType, Value};

use crate::error::{DataFault, Error, Position, Result};
use crate::limits::{
    IDENTIFIER_BYTES_MAX, IN_LIST_VALUES_MAX, NESTING_DEPTH_MAX, OPERATORS_MAX,
    ROWS_PER_INSERT_MAX, STATEMENT_BYTES_MAX, TEXT_LITERAL_BYTES_MAX,
};
use crate::statement::{
    AggregateCall, AggregateFunction, CreateTable, GroupKey, Insert, OrderKey, OrderTerm,
    Predicate, Projection, Select, SelectItem, Statement, Term, Update,
};

/// Digits an exact numeric literal may have (DECIMAL's precision limit).
const DECIMAL_LITERAL_DIGITS_MAX: usize = 18;

/// Parse one SQL-lite statement. A trailing semicolon is fine; a second statement is not.
pub fn parse(sql: &str) -> Result<Statement> {
    if sql.len() > STATEMENT_BYTES_MAX {
        return Err(Error::LimitExceeded {
            limit: "statement_bytes_max",
            message: format!(
                "statement of {} bytes exceeds statement_bytes_max ({STATEMENT_BYTES_MAX} bytes)",
                sql.len()
            ),
        });
    }
    if sql.contains('\0') {
        return Err(Error::data(
            DataFault::BadCharacter,
            "statement contains a NUL character (U+0000)",
        ));
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Parse {
            message: e.message.clone(),
            position: Some(Position {
                line: e.location.line,
                column: e.location.column,
            }),
        })?;
    check_tokens(&tokens)?;
    let mut statements = Parser::new(&dialect)
        // The parser's own guard; ours (above) is tighter for parentheses.
        .with_recursion_limit(NESTING_DEPTH_MAX * 2 + 8)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(parser_error)?;
    match statements.len() {
        0 => Err(Error::Parse {
            message: "empty statement".into(),
            position: None,
        }),
        1 => convert_statement(statements.remove(0)),
        n => Err(Error::Unsupported(format!(
            "{n} statements in one request; send one statement at a time"
        ))),
    }
}

/// Enforce the nesting and operator limits on the token stream.
fn check_tokens(tokens: &[TokenWithSpan]) -> Result<()> {
    let mut depth: usize = 0;
    let mut operators: usize = 0;
    let mut previous: Option<&Token> = None;
    for token in tokens {
        match &token.token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket => {
                depth += 1;
                if depth > NESTING_DEPTH_MAX {
                    return Err(nesting_error());
                }
            }
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            // A minus right after `(` or `,` is a negative literal (common in VALUES), not a
            // link in an operator chain.
            Token::Minus | Token::Plus
                if matches!(previous, Some(Token::LParen | Token::Comma) | None) => {}
            Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Caret
            | Token::Ampersand
            | Token::Pipe => operators += 1,
            Token::Word(word)
                if matches!(
                    word.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::NOT
                        | Keyword::BETWEEN
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::IN
                        | Keyword::IS
                ) =>
            {
                operators += 1
            }
            _ => {}
        }
        if operators > OPERATORS_MAX {
            return Err(Error::LimitExceeded {
                limit: "operators_max",
                message: format!(
                    "statement has more than operators_max ({OPERATORS_MAX}) operators"
                ),
            });
        }
        previous = Some(&token.token);
    }
    Ok(())
}

fn nesting_error() -> Error {
    Error::LimitExceeded {
        limit: "nesting_depth_max",
        message: format!("statement nests deeper than nesting_depth_max ({NESTING_DEPTH_MAX})"),
    }
}

/// A parser error with its position split out of the message.
fn parser_error(error: ParserError) -> Error {
    let text = match error {
        ParserError::RecursionLimitExceeded => return nesting_error(),
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
    };
    if let Some(at) = text.rfind(" at Line: ") {
        let place = &text[at + " at Line: ".len()..];
        if let Some((line, column)) = place.split_once(", Column: ") {
            if let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse()) {
                return Error::Parse {
                    message: text[..at].to_string(),
                    position: Some(Position { line, column }),
                };
            }
        }
    }
    Error::Parse {
        message: text,
        position: None,
    }
}

fn unsupported(construct: impl Into<String>) -> Error {
    Error::Unsupported(construct.into())
}

fn convert_statement(statement: ast::Statement) -> Result<Statement> {
    match statement {
        ast::Statement::CreateTable(create) => convert_create_table(create),
        ast::Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            restrict: _,
            purge,
            temporary,
            table,
        } => {
            if object_type != ast::ObjectType::Table {
                return Err(unsupported(format!("DROP {object_type}")));
            }
            if cascade || purge || temporary || table.is_some() {
                return Err(unsupported("DROP TABLE options"));
            }
            let [name] = names.as_slice() else {
                return Err(unsupported("DROP TABLE of several tables"));
            };
            Ok(Statement::DropTable {
                name: object_name(name)?,
                if_exists,
            })
        }
        ast::Statement::Insert(insert) => convert_insert(insert),
        ast::Statement::Delete(delete) => convert_delete(delete),
        ast::Statement::Update(update) => convert_update(update),
        ast::Statement::Query(query) => Ok(Statement::Select(convert_query(*query)?)),
        ast::Statement::ShowTables {
            terse,
            history,
            extended,
            full,
            external,
            show_options,
        } => {
            if terse
                || history
                || extended
                || full
                || external
                || show_options.show_in.is_some()
                || show_options.starts_with.is_some()
                || show_options.limit.is_some()
                || show_options.limit_from.is_some()
                || show_options.filter_position.is_some()
            {
                return Err(unsupported("SHOW TABLES options"));
            }
            Ok(Statement::ShowTables)
        }
        ast::Statement::ExplainTable {
            describe_alias: _,
            hive_format,
            has_table_keyword: _,
            table_name,
        } => {
            if hive_format.is_some() {
                return Err(unsupported("DESCRIBE FORMATTED/EXTENDED"));
            }
            Ok(Statement::Describe {
                table: object_name(&table_name)?,
            })
        }
        ast::Statement::Explain {
            describe_alias,
            analyze,
            verbose,
            query_plan,
            estimate,
            statement,
            format,
            options,
        } => {
            if describe_alias != ast::DescribeAlias::Explain {
                return Err(unsupported("DESCRIBE of a statement"));
            }
            if analyze || verbose || query_plan || estimate || format.is_some() || options.is_some()
            {
                return Err(unsupported("EXPLAIN options"));
            }
            match *statement {
                ast::Statement::Query(query) => {
                    Ok(Statement::Explain(Box::new(convert_query(*query)?)))
                }
                _ => Err(unsupported("EXPLAIN of anything but SELECT")),
            }
        }
        other => Err(unsupported(statement_name(&other))),
    }
}

/// The leading words of a statement, to name it in an error.
fn statement_name(statement: &ast::Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let name = words.join(" ");
    if name.len() > 40 {
        "this statement".to_string()
    } else {
        format!("statement {name}")
    }
}

/// An identifier as a name: unquoted names are lower-cased, quoted ones kept as written.
fn ident(ident: &ast::Ident) -> Result<String> {
    if ident.value.len() > IDENTIFIER_BYTES_MAX {
        return Err(Error::LimitExceeded {
            limit: "identifier_bytes_max",
            message: format!(
                "identifier of {} bytes exceeds identifier_bytes_max ({IDENTIFIER_BYTES_MAX})",
                ident.value.len()
            ),
        });
    }
    if ident.value.is_empty() {
        return Err(Error::Parse {
            message: "empty identifier".into(),
            position: None,
        });
    }
    Ok(match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    })
}

/// A table name: one identifier (schemas are not part of SQL-lite).
fn object_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => ident(id),
        _ => Err(unsupported(format!("qualified name {name}"))),
    }
}

fn convert_create_table(create: ast::CreateTable) -> Result<Statement> {
    let name = object_name(&create.name)?;
    // Rebuild the statement from the parts SQL-lite understands: anything else the parser
    // filled in makes the two differ, and is named as unsupported.
    let rebuilt = ast::helpers::stmt_create_table::CreateTableBuilder::new(create.name.clone())
        .if_not_exists(create.if_not_exists)
        .columns(create.columns.clone())
        .constraints(create.constraints.clone())
        .table_options(create.table_options.clone())
        .build();
    if rebuilt != create {
        return Err(unsupported(
            "CREATE TABLE clause (only columns, PRIMARY KEY, NOT NULL and WITH (shards, replicas))",
        ));
    }
    let mut columns = Vec::with_capacity(create.columns.len());
    let mut primary_key = Vec::new();
    for column in &create.columns {
        let column_name = ident(&column.name)?;
        let data_type = convert_data_type(&column.data_type)?;
        let mut nullable = true;
        for option in &column.options {
            match &option.option {
                ast::ColumnOption::NotNull => nullable = false,
                ast::ColumnOption::Null => nullable = true,
                ast::ColumnOption::PrimaryKey(_) => {
                    if !primary_key.is_empty() {
                        return Err(Error::Plan("a table has one PRIMARY KEY".into()));
                    }
                    primary_key.push(column_name.clone());
                    nullable = false;
                }
                other => return Err(unsupported(format!("column option {other}"))),
            }
        }
        columns.push(ColumnDef {
            name: column_name,
            data_type,
            nullable,
        });
    }
    for constraint in &create.constraints {
        match constraint {
            ast::TableConstraint::PrimaryKey(key) => {
                if !primary_key.is_empty() {
                    return Err(Error::Plan("a table has one PRIMARY KEY".into()));
                }
                for column in &key.columns {
                    match &column.column.expr {
                        Expr::Identifier(id) => primary_key.push(ident(id)?),
                        other => {
                            return Err(unsupported(format!("PRIMARY KEY on expression {other}")))
                        }
                    }
                }
            }
            other => return Err(unsupported(format!("table constraint {other}"))),
        }
    }
    let (mut shards, mut replicas) = (None, None);
    match &create.table_options {
        CreateTableOptions::None => {}
        CreateTableOptions::With(options) => {
            for option in options {
                let SqlOption::KeyValue { key, value } = option else {
                    return Err(unsupported(format!("table option {option}")));
                };
                let number = match value {
                    Expr::Value(v) => match &v.value {
                        ast::Value::Number(n, _) => n.parse::<u32>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(number) = number else {
                    return Err(Error::Plan(format!(
                        "table option {} needs a positive integer, got {value}",
                        key.value
                    )));
                };
                match key.value.to_lowercase().as_str() {
                    "shards" => shards = Some(number),
                    "replicas" => replicas = Some(number),
                    _ => {
                        return Err(unsupported(format!(
                            "table option {} (known: shards, replicas)",
                            key.value
                        )))
                    }
                }
            }
        }
        other => return Err(unsupported(format!("table options {other}"))),
    }
    Ok(Statement::CreateTable(CreateTable {
        name,
        columns,
        primary_key,
        shards,
        replicas,
        if_not_exists: create.if_not_exists,
    }))
}

fn convert_data_type(data_type: &ast::DataType) -> Result<DataType> {
    use ast::DataType as T;
    let decimal = |info: &ast::ExactNumberInfo| -> Result<DataType> {
        let (precision, scale) = match info {
            ast::ExactNumberInfo::None => (18, 0),
            ast::ExactNumberInfo::Precision(p) => (*p, 0),
            ast::ExactNumberInfo::PrecisionAndScale(p, s) => (
                *p,
                u64::try_from(*s).map_err(|_| Error::Plan(format!("negative scale {s}")))?,
            ),
        };
        let narrow = |n: u64| u8::try_from(n).unwrap_or(u8::MAX);
        DataType::decimal(narrow(precision), narrow(scale)).map_err(|e| Error::Plan(e.message))
    };
    Ok(match data_type {
        T::BigInt(None) | T::Int8(None) | T::Int64 => DataType::BigInt,
        T::Int(None) | T::Integer(None) | T::Int4(None) => DataType::Int,
        T::Double(ast::ExactNumberInfo::None) | T::DoublePrecision | T::Float8 | T::Float64 => {
            DataType::Double
        }
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => decimal(info)?,
        T::Date => DataType::Date,
        T::Timestamp(None, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => {
            DataType::Timestamp
        }
        T::Text | T::String(None) => DataType::Text { max_chars: None },
        T::Varchar(length) | T::CharacterVarying(length) => match length {
            None => DataType::Text { max_chars: None },
            Some(ast::CharacterLength::IntegerLength { length, unit: None }) => {
                let max = u32::try_from(*length)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Error::Plan(format!("VARCHAR length {length} out of range")))?;
                DataType::Text {
                    max_chars: Some(max),
                }
            }
            Some(other) => return Err(unsupported(format!("VARCHAR({other})"))),
        },
        T::Boolean | T::Bool => DataType::Boolean,
        other => return Err(unsupported(format!("type {other}"))),
    })
}

fn convert_insert(insert: ast::Insert) -> Result<Statement> {
    let ast::Insert {
        insert_token: _,
        optimizer_hints,
        or,
        ignore,
        into: _,
        table,
        table_alias,
        columns,
        overwrite,
        source,
        assignments,
        partitioned,
        after_columns,
        has_table_keyword: _,
        on,
        returning,
        output,
        replace_into,
        priority,
        insert_alias,
        settings,
        format_clause,
        multi_table_insert_type,
        multi_table_into_clauses,
        multi_table_when_clauses,
        multi_table_else_clause,
    } = insert;
    if !optimizer_hints.is_empty()
        || or.is_some()
        || ignore
        || table_alias.is_some()
        || overwrite
        || !assignments.is_empty()
        || partitioned.is_some()
        || !after_columns.is_empty()
        || replace_into
        || priority.is_some()
        || insert_alias.is_some()
        || settings.is_some()
        || format_clause.is_some()
        || multi_table_insert_type.is_some()
        || !multi_table_into_clauses.is_empty()
        || !multi_table_when_clauses.is_empty()
        || multi_table_else_clause.is_some()
    {
        return Err(unsupported(
            "INSERT clause other than a column list and VALUES",
        ));
    }
    if on.is_some() {
        return Err(unsupported("INSERT … ON CONFLICT"));
    }
    if returning.is_some() || output.is_some() {
        return Err(unsupported("INSERT … RETURNING"));
    }
    let TableObject::TableName(table) = table else {
        return Err(unsupported("INSERT INTO a table function"));
    };
    let table = object_name(&table)?;
    let columns = if columns.is_empty() {
        None
    } else {
        Some(
            columns
                .iter()
                .map(object_name)
                .collect::<Result<Vec<_>>>()?,
        )
    };
    let Some(source) = source else {
        return Err(unsupported("INSERT without VALUES"));
    };
    let query = *source;
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
    {
        return Err(unsupported("INSERT … SELECT"));
    }
    let SetExpr::Values(values) = *query.body else {
        return Err(unsupported("INSERT … SELECT"));
    };
    if values.rows.len() > ROWS_PER_INSERT_MAX {
        return Err(Error::LimitExceeded {
            limit: "rows_per_insert_max",
            message: format!(
                "INSERT of {} rows exceeds rows_per_insert_max ({ROWS_PER_INSERT_MAX})",
                values.rows.len()
            ),
        });
    }
    let mut rows = Vec::with_capacity(values.rows.len());
    for (index, row) in values.rows.iter().enumerate() {
        let row = row
            .content
            .iter()
            .map(literal)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| match e {
                Error::Unsupported(what) => {
                    Error::Unsupported(format!("{what} in VALUES row {}", index + 1))
                }
                other => other,
            })?;
        rows.push(row);
    }
    Ok(Statement::Insert(Insert {
        table,
        columns,
        rows,
    }))
}

/// The one table of a FROM clause, without joins.
fn single_table(from: &[ast::TableWithJoins]) -> Result<String> {
    let [from] = from else {
        return Err(if from.is_empty() {
            unsupported("SELECT without FROM")
        } else {
            unsupported("several tables in FROM (joins)")
        });
    };
    if !from.joins.is_empty() {
        return Err(unsupported("JOIN"));
    }
    match &from.relation {
        TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
        } => {
            if alias.is_some() {
                return Err(unsupported("table alias"));
            }
            if args.is_some()
                || !with_hints.is_empty()
                || version.is_some()
                || *with_ordinality
                || !partitions.is_empty()
                || json_path.is_some()
                || sample.is_some()
                || !index_hints.is_empty()
            {
                return Err(unsupported("table modifiers in FROM"));
            }
            object_name(name)
        }
        TableFactor::Derived { .. } => Err(unsupported("subquery in FROM")),
        other => Err(unsupported(format!("FROM {other}"))),
    }
}

fn convert_delete(delete: ast::Delete) -> Result<Statement> {
    if delete.using.is_some() {
        return Err(unsupported("DELETE … USING"));
    }
    if delete.returning.is_some() || delete.output.is_some() {
        return Err(unsupported("DELETE … RETURNING"));
    }
    if !delete.order_by.is_empty() || delete.limit.is_some() {
        return Err(unsupported("DELETE … ORDER BY/LIMIT"));
    }
    if !delete.tables.is_empty() || !delete.optimizer_hints.is_empty() {
        return Err(unsupported("multi-table DELETE"));
    }
    let from = match &delete.from {
        ast::FromTable::WithFromKeyword(from) | ast::FromTable::WithoutKeyword(from) => from,
    };
    let table = single_table(from)?;
    let filter = match &delete.selection {
        Some(expr) => where_predicate(expr, 0)?,
        None => Predicate::Constant(true),
    };
    Ok(Statement::Delete { table, filter })
}

fn convert_update(update: ast::Update) -> Result<Statement> {
    if update.from.is_some() {
        return Err(unsupported("UPDATE … FROM"));
    }
    if update.returning.is_some() || update.output.is_some() {
        return Err(unsupported("UPDATE … RETURNING"));
    }
    if update.or.is_some()
        || !update.order_by.is_empty()
        || update.limit.is_some()
        || !update.optimizer_hints.is_empty()
    {
        return Err(unsupported("UPDATE modifiers"));
    }
    let table = single_table(std::slice::from_ref(&update.table))?;
    let mut assignments = Vec::with_capacity(update.assignments.len());
    for assignment in &update.assignments {
        let ast::AssignmentTarget::ColumnName(column) = &assignment.target else {
            return Err(unsupported("UPDATE SET of a column tuple"));
        };
        let column = object_name(column)?;
        let value = literal(&assignment.value).map_err(|e| match e {
            Error::Unsupported(what) => {
                Error::Unsupported(format!("{what} in SET (SQL-lite assigns literals only)"))
            }
            other => other,
        })?;
        assignments.push((column, value));
    }
    let filter = match &update.selection {
        Some(expr) => where_predicate(expr, 0)?,
        None => Predicate::Constant(true),
    };
    Ok(Statement::Update(Update {
        table,
        assignments,
        filter,
    }))
}

fn convert_query(query: ast::Query) -> Result<Select> {
    if query.with.is_some() {
        return Err(unsupported("WITH (common table expressions)"));
    }
    if query.fetch.is_some() {
        return Err(unsupported("FETCH"));
    }
    if !query.locks.is_empty() {
        return Err(unsupported("FOR UPDATE/SHARE"));
    }
    if query.for_clause.is_some()
        || query.settings.is_some()
        || query.format_clause.is_some()
        || !query.pipe_operators.is_empty()
    {
        return Err(unsupported("query modifiers"));
    }
    let select = match *query.body {
        SetExpr::Select(select) => *select,
        SetExpr::SetOperation { op, .. } => return Err(unsupported(format!("{op}"))),
        SetExpr::Query(_) => return Err(unsupported("parenthesised query")),
        SetExpr::Values(_) => return Err(unsupported("VALUES as a query")),
        _ => return Err(unsupported("this query form")),
    };
    let limit = match query.limit_clause {
        None => None,
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if offset.is_some() {
                return Err(unsupported("OFFSET"));
            }
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT BY"));
            }
            match limit {
                None => None,
                Some(expr) => Some(limit_value(&expr)?),
            }
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => return Err(unsupported("LIMIT a, b")),
    };
    let order_by = match query.order_by {
        None => Vec::new(),
        Some(order_by) => {
            if order_by.interpolate.is_some() {
                return Err(unsupported("INTERPOLATE"));
            }
            match order_by.kind {
                OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL")),
                OrderByKind::Expressions(terms) => terms
                    .iter()
                    .map(convert_order_term)
                    .collect::<Result<Vec<_>>>()?,
            }
        }
    };
    convert_select(select, order_by, limit)
}

fn limit_value(expr: &Expr) -> Result<u64> {
    match literal(expr) {
        Ok(Value::Int(n)) if n >= 0 => Ok(n as u64),
        Ok(Value::Null) => Err(unsupported("LIMIT NULL")),
        _ => Err(Error::Plan(format!(
            "LIMIT needs a non-negative integer, got {expr}"
        ))),
    }
}

fn convert_order_term(term: &ast::OrderByExpr) -> Result<OrderTerm> {
    if term.with_fill.is_some() {
        return Err(unsupported("WITH FILL"));
    }
    if term.options.nulls_first.is_some() {
        return Err(unsupported(
            "NULLS FIRST/LAST (NULLs sort last ascending, first descending)",
        ));
    }
    let descending = match &term.options.sort {
        None => false,
        Some(ast::OrderBySort::Asc) => false,
        Some(ast::OrderBySort::Desc) => true,
        Some(ast::OrderBySort::Using(op)) => {
            return Err(unsupported(format!("ORDER BY … USING {op}")))
        }
    };
    let key = match &term.expr {
        Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => OrderKey::Position(n.parse::<u64>().map_err(|_| {
                Error::Plan(format!("ORDER BY position {n} is not a positive integer"))
            })?),
            _ => return Err(unsupported(format!("ORDER BY a literal {}", term.expr))),
        },
        expr => OrderKey::Term(convert_term(expr)?),
    };
    Ok(OrderTerm { key, descending })
}

fn convert_select(
    select: ast::Select,
    order_by: Vec<OrderTerm>,
    limit: Option<u64>,
) -> Result<Select> {
    if select.distinct.is_some() {
        return Err(unsupported("SELECT DISTINCT"));
    }
    if select.top.is_some() {
        return Err(unsupported("TOP"));
    }
    if select.into.is_some() {
        return Err(unsupported("SELECT INTO"));
    }
    if select.exclude.is_some() || select.select_modifiers.is_some() {
        return Err(unsupported("SELECT modifiers"));
    }
    if !select.lateral_views.is_empty() {
        return Err(unsupported("LATERAL VIEW"));
    }
    if select.prewhere.is_some() {
        return Err(unsupported("PREWHERE"));
    }
    if !select.connect_by.is_empty() {
        return Err(unsupported("CONNECT BY"));
    }
    if !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
    {
        return Err(unsupported("CLUSTER/DISTRIBUTE/SORT BY"));
    }
    if !select.named_window.is_empty() {
        return Err(unsupported("WINDOW"));
    }
    if select.qualify.is_some() {
        return Err(unsupported("QUALIFY"));
    }
    if select.value_table_mode.is_some()
        || !select.optimizer_hints.is_empty()
        || select.flavor != ast::SelectFlavor::Standard
    {
        return Err(unsupported("this SELECT form"));
    }
    let table = single_table(&select.from)?;
    let projection = convert_projection(&select.projection)?;
    let filter = match &select.selection {
        Some(expr) => where_predicate(expr, 0)?,
        None => Predicate::Constant(true),
    };
    let group_by = match &select.group_by {
        GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unsupported("GROUP BY modifiers (ROLLUP, CUBE, …)"));
            }
            exprs
                .iter()
                .map(|expr| match expr {
                    Expr::Identifier(id) => Ok(GroupKey::Column(ident(id)?)),
                    Expr::Value(v) => match &v.value {
                        ast::Value::Number(n, _) => {
                            Ok(GroupKey::Position(n.parse::<u64>().map_err(|_| {
                                Error::Plan(format!(
                                    "GROUP BY position {n} is not a positive integer"
                                ))
                            })?))
                        }
                        _ => Err(unsupported(format!("GROUP BY {expr}"))),
                    },
                    Expr::CompoundIdentifier(_) => {
                        Err(unsupported(format!("qualified column name {expr}")))
                    }
                    other => Err(unsupported(format!("GROUP BY expression {other}"))),
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    let having = match &select.having {
        Some(expr) => Some(having_predicate(expr, 0)?),
        None => None,
    };
    Ok(Select {
        table,
        projection,
        filter,
        group_by,
        having,
        order_by,
        limit,
    })
}

fn convert_projection(items: &[AstItem]) -> Result<Projection> {
    if let [AstItem::Wildcard(options)] = items {
        if options.opt_exclude.is_some()
            || options.opt_except.is_some()
            || options.opt_replace.is_some()
            || options.opt_rename.is_some()
            || options.opt_ilike.is_some()
        {
            return Err(unsupported("SELECT * modifiers"));
        }
        return Ok(Projection::Wildcard);
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let (expr, alias) = match item {
            AstItem::UnnamedExpr(expr) => (expr, None),
            AstItem::ExprWithAlias { expr, alias } => (expr, Some(ident(alias)?)),
            AstItem::Wildcard(_) => return Err(unsupported("* next to other select items")),
            AstItem::QualifiedWildcard(..) => return Err(unsupported("qualified wildcard")),
            AstItem::ExprWithAliases { .. } => return Err(unsupported("several aliases")),
        };
        out.push(SelectItem {
            term: convert_term(expr)?,
            alias,
        });
    }
    Ok(Projection::Items(out))
}

/// A column or an aggregate call.
fn convert_term(expr: &Expr) -> Result<Term> {
    match expr {
        Expr::Identifier(id) => Ok(Term::Column(ident(id)?)),
        Expr::CompoundIdentifier(_) => Err(unsupported(format!("qualified column name {expr}"))),
        Expr::Nested(inner) => convert_term(inner),
        Expr::Function(function) => Ok(Term::Aggregate(convert_aggregate(function)?)),
        Expr::Value(_) | Expr::TypedString(_) => {
            Err(unsupported(format!("literal {expr} in the select list")))
        }
        Expr::BinaryOp { op, .. } => Err(unsupported(format!("arithmetic operator {op}"))),
        Expr::Subquery(_) => Err(unsupported("subquery")),
        Expr::Case { .. } => Err(unsupported("CASE")),
        Expr::Cast { .. } => Err(unsupported("CAST")),
        other => Err(unsupported(format!("expression {other}"))),
    }
}

fn convert_aggregate(function: &ast::Function) -> Result<AggregateCall> {
    let name = function.name.to_string().to_lowercase();
    let aggregate_function = match name.as_str() {
        "count" => AggregateFunction::Count,
        "sum" => AggregateFunction::Sum,
        "avg" => AggregateFunction::Avg,
        "min" => AggregateFunction::Min,
        "max" => AggregateFunction::Max,
        _ => return Err(unsupported(format!("function {}", function.name))),
    };
    if function.over.is_some() {
        return Err(unsupported("window function (OVER)"));
    }
    if function.filter.is_some() {
        return Err(unsupported("aggregate FILTER"));
    }
    if !function.within_group.is_empty()
        || function.null_treatment.is_some()
        || function.uses_odbc_syntax
        || !matches!(function.parameters, FunctionArguments::None)
    {
        return Err(unsupported(format!("{} modifiers", name.to_uppercase())));
    }
    let FunctionArguments::List(list) = &function.args else {
        return Err(unsupported(format!(
            "{} without arguments",
            name.to_uppercase()
        )));
    };
    if !list.clauses.is_empty() {
        return Err(unsupported(format!(
            "clauses inside {}(…)",
            name.to_uppercase()
        )));
    }
    let distinct = match list.duplicate_treatment {
        None | Some(ast::DuplicateTreatment::All) => false,
        Some(ast::DuplicateTreatment::Distinct) => true,
    };
    let [argument] = list.args.as_slice() else {
        return Err(Error::Plan(format!(
            "{} takes one argument",
            name.to_uppercase()
        )));
    };
    let FunctionArg::Unnamed(argument) = argument else {
        return Err(unsupported("named function arguments"));
    };
    let column = match argument {
        FunctionArgExpr::Wildcard if aggregate_function == AggregateFunction::Count => None,
        FunctionArgExpr::Expr(Expr::Identifier(id)) => Some(ident(id)?),
        FunctionArgExpr::Expr(Expr::Nested(inner)) if matches!(**inner, Expr::Identifier(_)) => {
            match &**inner {
                Expr::Identifier(id) => Some(ident(id)?),
                _ => None,
            }
        }
        FunctionArgExpr::Expr(expr) => {
            return Err(unsupported(format!(
                "{}({expr}): aggregates take a column",
                name.to_uppercase()
            )))
        }
        _ => return Err(unsupported(format!("{}(*)", name.to_uppercase()))),
    };
    if distinct && (aggregate_function != AggregateFunction::Count || column.is_none()) {
        return Err(unsupported(format!("{}(DISTINCT …)", name.to_uppercase())));
    }
    Ok(AggregateCall {
        function: aggregate_function,
        column,
        distinct,
    })
}

fn check_depth(depth: usize) -> Result<()> {
    if depth > NESTING_DEPTH_MAX {
        Err(nesting_error())
    } else {
        Ok(())
    }
}

/// A WHERE condition: operands are column names.
fn where_predicate(expr: &Expr, depth: usize) -> Result<Predicate<String>> {
    predicate(expr, depth, &|e| match e {
        Expr::Identifier(id) => Ok(Some(ident(id)?)),
        Expr::CompoundIdentifier(_) => Err(unsupported(format!("qualified column name {e}"))),
        Expr::Function(_) => Err(unsupported(format!(
            "function {e} in WHERE (aggregates belong in HAVING)"
        ))),
        _ => Ok(None),
    })
}

/// A HAVING condition: operands are columns or aggregates.
fn having_predicate(expr: &Expr, depth: usize) -> Result<Predicate<Term>> {
    predicate(expr, depth, &|e| match e {
        Expr::Identifier(_) | Expr::Function(_) | Expr::CompoundIdentifier(_) => {
            convert_term(e).map(Some)
        }
        _ => Ok(None),
    })
}

/// A condition tree. `operand` recognises an operand (`Ok(None)`: not an operand).
fn predicate<T>(
    expr: &Expr,
    depth: usize,
    operand: &dyn Fn(&Expr) -> Result<Option<T>>,
) -> Result<Predicate<T>> {
    check_depth(depth)?;
    let recurse = |e: &Expr| predicate(e, depth + 1, operand);
    let need_operand = |e: &Expr| -> Result<T> {
        match operand(strip_nested(e))? {
            Some(t) => Ok(t),
            None => Err(unsupported(format!(
                "{e} as the left side of a condition (SQL-lite compares a column with literals)"
            ))),
        }
    };
    Ok(match expr {
        Expr::Nested(inner) => predicate(inner, depth + 1, operand)?,
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => {
                let mut children = Vec::new();
                flatten(left, &BinaryOperator::And, &mut children);
                flatten(right, &BinaryOperator::And, &mut children);
                Predicate::And(children.into_iter().map(recurse).collect::<Result<_>>()?)
            }
            BinaryOperator::Or => {
                let mut children = Vec::new();
                flatten(left, &BinaryOperator::Or, &mut children);
                flatten(right, &BinaryOperator::Or, &mut children);
                Predicate::Or(children.into_iter().map(recurse).collect::<Result<_>>()?)
            }
            _ => {
                let Some(compare) = compare_op(op) else {
                    return Err(unsupported(format!("operator {op}")));
                };
                let (left, right) = (strip_nested(left), strip_nested(right));
                match (operand(left)?, operand(right)?) {
                    (Some(t), None) => Predicate::Compare {
                        operand: t,
                        op: compare,
                        value: literal(right)?,
                    },
                    (None, Some(t)) => Predicate::Compare {
                        operand: t,
                        op: flip(compare),
                        value: literal(left)?,
                    },
                    (Some(_), Some(_)) => {
                        return Err(unsupported(format!("comparison of two columns ({expr})")))
                    }
                    (None, None) => {
                        return Err(unsupported(format!("comparison without a column ({expr})")))
                    }
                }
            }
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: inner,
        } => recurse(inner)?.negate(),
        Expr::Between {
            expr: inner,
            negated,
            low,
            high,
        } => {
            let p = Predicate::Between {
                operand: need_operand(inner)?,
                low: literal(low)?,
                high: literal(high)?,
            };
            if *negated {
                p.negate()
            } else {
                p
            }
        }
        Expr::InList {
            expr: inner,
            list,
            negated,
        } => {
            if list.len() > IN_LIST_VALUES_MAX {
                return Err(Error::LimitExceeded {
                    limit: "in_list_values_max",
                    message: format!(
                        "IN list of {} values exceeds in_list_values_max ({IN_LIST_VALUES_MAX})",
                        list.len()
                    ),
                });
            }
            let p = Predicate::In {
                operand: need_operand(inner)?,
                values: list.iter().map(literal).collect::<Result<_>>()?,
            };
            if *negated {
                p.negate()
            } else {
                p
            }
        }
        Expr::InSubquery { .. } => return Err(unsupported("IN (subquery)")),
        Expr::Like {
            negated,
            any,
            expr: inner,
            pattern,
            escape_char,
        } => {
            if *any {
                return Err(unsupported("LIKE ANY"));
            }
            if escape_char.is_some() {
                return Err(unsupported("LIKE … ESCAPE"));
            }
            let pattern = match literal(pattern)? {
                Value::Text(p) => p,
                other => {
                    return Err(Error::TypeMismatch(format!(
                        "LIKE needs a text pattern, got {}",
                        render_literal(&other)
                    )))
                }
            };
            let p = Predicate::Like {
                operand: need_operand(inner)?,
                pattern,
            };
            if *negated {
                p.negate()
            } else {
                p
            }
        }
        Expr::ILike { .. } => return Err(unsupported("ILIKE")),
        Expr::SimilarTo { .. } => return Err(unsupported("SIMILAR TO")),
        Expr::IsNull(inner) => Predicate::IsNull {
            operand: need_operand(inner)?,
        },
        Expr::IsNotNull(inner) => Predicate::IsNull {
            operand: need_operand(inner)?,
        }
        .negate(),
        Expr::Value(v) if matches!(v.value, ast::Value::Boolean(_)) => match v.value {
            ast::Value::Boolean(b) => Predicate::Constant(b),
            _ => Predicate::Constant(false),
        },
        Expr::Subquery(_) | Expr::Exists { .. } => return Err(unsupported("subquery")),
        Expr::Function(_) | Expr::Identifier(_) => match operand(expr)? {
            // A bare boolean column: `WHERE flag` means `flag = TRUE`.
            Some(t) => Predicate::Compare {
                operand: t,
                op: CompareOp::Eq,
                value: Value::Boolean(true),
            },
            None => return Err(unsupported(format!("condition {expr}"))),
        },
        Expr::IsTrue(_) | Expr::IsFalse(_) | Expr::IsNotTrue(_) | Expr::IsNotFalse(_) => {
            return Err(unsupported("IS [NOT] TRUE/FALSE"))
        }
        Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..) => {
            return Err(unsupported("IS [NOT] DISTINCT FROM"))
        }
        other => return Err(unsupported(format!("condition {other}"))),
    })
}

/// Collect the operands of a chain of one operator (`a AND b AND c`) without recursion, so
/// a long chain does not deepen the stack.
fn flatten<'e>(expr: &'e Expr, op: &BinaryOperator, out: &mut Vec<&'e Expr>) {
    let mut pending = vec![expr];
    while let Some(e) = pending.pop() {
        match e {
            Expr::BinaryOp {
                left,
                op: inner,
                right,
            } if inner == op => {
                pending.push(right);
                pending.push(left);
            }
            other => out.push(other),
        }
    }
}

fn strip_nested(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

fn compare_op(op: &BinaryOperator) -> Option<CompareOp> {
    Some(match op {
        BinaryOperator::Eq => CompareOp::Eq,
        BinaryOperator::NotEq => CompareOp::NotEq,
        BinaryOperator::Lt => CompareOp::Lt,
        BinaryOperator::LtEq => CompareOp::LtEq,
        BinaryOperator::Gt => CompareOp::Gt,
        BinaryOperator::GtEq => CompareOp::GtEq,
        _ => return None,
    })
}

/// The operator with its sides swapped: `5 < x` is `x > 5`.
fn flip(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::LtEq => CompareOp::GtEq,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::GtEq => CompareOp::LtEq,
        same => same,
    }
}

/// A literal: integer, decimal, float with exponent, string, `DATE '…'`, `TIMESTAMP '…'`,
/// `TRUE`/`FALSE`, `NULL`, optionally with a sign.
pub fn literal(expr: &Expr) -> Result<Value> {
    match expr {
        Expr::Nested(inner) => literal(inner),
        Expr::Value(v) => value_literal(&v.value, false),
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr: inner,
        } => match &**inner {
            Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                value_literal(&v.value, *op == UnaryOperator::Minus)
            }
            _ => Err(unsupported(format!("sign on {inner}"))),
        },
        Expr::TypedString(typed) => {
            let text = match &typed.value.value {
                ast::Value::SingleQuotedString(s) => s,
                _ => return Err(unsupported(format!("literal {expr}"))),
            };
            let (data_type, name) = match &typed.data_type {
                ast::DataType::Date => (DataType::Date, "DATE"),
                ast::DataType::Timestamp(None, ast::TimezoneInfo::None) => {
                    (DataType::Timestamp, "TIMESTAMP")
                }
                other => return Err(unsupported(format!("typed literal {other} '…'"))),
            };
            data_type.parse(text).map_err(|e| {
                Error::data(
                    DataFault::InvalidDatetime,
                    format!("invalid {name} literal '{text}': {e}"),
                )
            })
        }
        Expr::Identifier(id) => Err(unsupported(format!(
            "column {} where a literal is expected",
            id.value
        ))),
        Expr::BinaryOp { op, .. } => Err(unsupported(format!("arithmetic operator {op}"))),
        Expr::Function(f) => Err(unsupported(format!("function {}", f.name))),
        Expr::Cast { .. } => Err(unsupported("CAST")),
        Expr::Interval(_) => Err(unsupported("INTERVAL")),
        other => Err(unsupported(format!(
            "expression {other} where a literal is expected"
        ))),
    }
}

fn value_literal(value: &ast::Value, negative: bool) -> Result<Value> {
    match value {
        ast::Value::Number(text, _) => number_literal(text, negative),
        ast::Value::SingleQuotedString(s) => {
            if s.len() > TEXT_LITERAL_BYTES_MAX {
                return Err(Error::LimitExceeded {
                    limit: "text_literal_bytes_max",
                    message: format!(
                        "text literal of {} bytes exceeds text_literal_bytes_max ({TEXT_LITERAL_BYTES_MAX} bytes)",
                        s.len()
                    ),
                });
            }
            Ok(Value::Text(s.clone()))
        }
        ast::Value::Boolean(b) => Ok(Value::Boolean(*b)),
        ast::Value::Null => Ok(Value::Null),
        ast::Value::Placeholder(p) => Err(unsupported(format!("parameter {p}"))),
        ast::Value::DoubleQuotedString(s) => Err(unsupported(format!(
            "double-quoted \"{s}\" as a string (use single quotes)"
        ))),
        other => Err(unsupported(format!("literal {other}"))),
    }
}

/// An integer (i64), an exact decimal (at most 18 digits) or, with an exponent, a DOUBLE.
fn number_literal(text: &str, negative: bool) -> Result<Value> {
    let out_of_range = || {
        Error::data(
            DataFault::OutOfRange,
            format!(
                "numeric literal {}{text} is out of range",
                if negative { "-" } else { "" }
            ),
        )
    };
    if text.contains(['e', 'E']) {
        let d: f64 = text.parse().map_err(|_| out_of_range())?;
        if !d.is_finite() {
            return Err(out_of_range());
        }
        return Ok(Value::Double(if negative { -d } else { d }));
    }
    let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !integer.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Error::Parse {
            message: format!("invalid number {text}"),
            position: None,
        });
    }
    if !text.contains('.') {
        let magnitude: i128 = integer.parse().map_err(|_| out_of_range())?;
        let signed = if negative { -magnitude } else { magnitude };
        return i64::try_from(signed)
            .map(Value::Int)
            .map_err(|_| out_of_range());
    }
    let digits = format!("{integer}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.len() > DECIMAL_LITERAL_DIGITS_MAX {
        return Err(out_of_range());
    }
    let scale = u8::try_from(fraction.len()).map_err(|_| out_of_range())?;
    if scale > 18 {
        return Err(out_of_range());
    }
    let units: i64 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| out_of_range())?
    };
    Ok(Value::Decimal {
        units: if negative { -units } else { units },
        scale,
    })
}

/// A literal as SQL spells it, for messages and EXPLAIN.
pub fn render_literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Date(_) => format!("DATE '{}'", value.render()),
        Value::Timestamp(_) => format!("TIMESTAMP '{}'", value.render()),
        Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        other => other.render(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_literals_keep_their_scale_and_range() {
        // Proves integers, decimals and exponent forms become the values the planner expects.
        assert_eq!(number_literal("42", false).ok(), Some(Value::Int(42)));
        assert_eq!(
            number_literal("9223372036854775808", true).ok(),
            Some(Value::Int(i64::MIN))
        );
        assert!(number_literal("9223372036854775808", false).is_err());
        assert_eq!(
            number_literal("0.05", false).ok(),
            Some(Value::Decimal { units: 5, scale: 2 })
        );
        assert_eq!(
            number_literal("3.50", true).ok(),
            Some(Value::Decimal {
                units: -350,
                scale: 2
            })
        );
        assert_eq!(
            number_literal("1e3", false).ok(),
            Some(Value::Double(1000.0))
        );
        assert!(number_literal("1234567890123456789.5", false).is_err());
    }
}
