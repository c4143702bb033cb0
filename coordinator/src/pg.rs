//! The PostgreSQL wire protocol endpoint (pgwire), simple and extended query.
//!
//! * Any user name is accepted without a password (dev mode).
//! * Result columns carry the schema's types: BIGINT → INT8, INT → INT4, DOUBLE → FLOAT8,
//!   DECIMAL → NUMERIC, DATE → DATE, TIMESTAMP → TIMESTAMP, TEXT → TEXT, VARCHAR(n) →
//!   VARCHAR, BOOLEAN → BOOL, in text or binary format as the client asks.
//! * Errors carry the SQLSTATE of [`crate::status`].
//! * No transactions: `BEGIN`/`COMMIT` are accepted, every statement is applied when it runs,
//!   and `ROLLBACK` ends the block with a warning if it applied writes.
//! * Extended query: a statement is parsed and planned at Parse (so Describe knows its
//!   columns and parameter types) and run at Execute. Parameters (`$1`) take the client's
//!   declared type, else the type of the column they stand against; they are substituted as
//!   literals (see [`crate::params`]).

use std::error::Error as StdError;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures::{stream, Sink};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use rhizome_core::query::ResultColumn;
use rhizome_core::value::{DataType, Value};

use crate::error::Error;
use crate::executor::{Executor, Output};
use crate::params;
use crate::status::status_of;

/// Most PostgreSQL connections served at once; more are closed on accept.
pub const PG_CONNECTIONS_MAX: usize = 256;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for DATE and TIMESTAMP.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400 * 1_000_000;
/// NUMERIC's base-10000 digits and sign words.
const NUMERIC_BASE_DIGITS: usize = 4;
const NUMERIC_POSITIVE: u16 = 0x0000;
const NUMERIC_NEGATIVE: u16 = 0x4000;

/// The PostgreSQL type of a column type.
pub fn pg_type(data_type: DataType) -> Type {
    match data_type {
        DataType::BigInt => Type::INT8,
        DataType::Int => Type::INT4,
        DataType::Double => Type::FLOAT8,
        DataType::Decimal { .. } => Type::NUMERIC,
        DataType::Date => Type::DATE,
        DataType::Timestamp => Type::TIMESTAMP,
        DataType::Text { max_chars: None } => Type::TEXT,
        DataType::Text { max_chars: Some(_) } => Type::VARCHAR,
        DataType::Boolean => Type::BOOL,
    }
}

/// An error as the client sees it: severity, SQLSTATE, message.
fn error_info(error: &Error) -> ErrorInfo {
    ErrorInfo::new(
        "ERROR".to_string(),
        status_of(error).sqlstate.to_string(),
        error.to_string(),
    )
}

/// One value on the wire, in either format.
#[derive(Debug)]
struct Cell<'v>(&'v Value);

impl ToSql for Cell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => out.put_i32(i32::try_from(*i)?),
            Value::Int(i) => out.put_i64(*i),
            Value::Double(d) => out.put_f64(*d),
            Value::Decimal { units, scale } => encode_numeric(*units, *scale, out),
            Value::Date(days) => out.put_i32(days - PG_EPOCH_DAYS),
            Value::Timestamp(micros) => out.put_i64(micros - PG_EPOCH_MICROS),
            Value::Text(text) => out.put_slice(text.as_bytes()),
            Value::Boolean(b) => out.put_u8(u8::from(*b)),
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for Cell<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Boolean(b) => out.put_slice(if *b { b"t" } else { b"f" }),
            other => out.put_slice(other.render().as_bytes()),
        }
        Ok(IsNull::No)
    }
}

/// NUMERIC's binary form: digit count, weight (power of 10000 of the first digit), sign,
/// display scale, then base-10000 digits, most significant first, without leading or
/// trailing zero digits.
fn encode_numeric(units: i64, scale: u8, out: &mut BytesMut) {
    let scale = usize::from(scale);
    let magnitude = units.unsigned_abs().to_string();
    let padded = format!("{magnitude:0>width$}", width = scale + 1);
    let (integer, fraction) = padded.split_at(padded.len() - scale);
    let integer = integer.trim_start_matches('0');
    let lead = (NUMERIC_BASE_DIGITS - integer.len() % NUMERIC_BASE_DIGITS) % NUMERIC_BASE_DIGITS;
    let integer = format!("{}{integer}", "0".repeat(lead));
    let trail = (NUMERIC_BASE_DIGITS - fraction.len() % NUMERIC_BASE_DIGITS) % NUMERIC_BASE_DIGITS;
    let fraction = format!("{fraction}{}", "0".repeat(trail));
    let group = |chunk: &[u8]| {
        chunk
            .iter()
            .fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'))
    };
    let integer_digits: Vec<i16> = integer
        .as_bytes()
        .chunks(NUMERIC_BASE_DIGITS)
        .map(group)
        .collect();
    let mut weight = integer_digits.len() as i16 - 1;
    let mut digits: Vec<i16> = integer_digits;
    digits.extend(fraction.as_bytes().chunks(NUMERIC_BASE_DIGITS).map(group));
    let leading_zeros = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading_zeros);
    weight -= leading_zeros as i16;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let sign = if units < 0 && !digits.is_empty() {
        NUMERIC_NEGATIVE
    } else {
        NUMERIC_POSITIVE
    };
    if digits.is_empty() {
        weight = 0;
    }
    out.put_i16(digits.len() as i16);
    out.put_i16(weight);
    out.put_u16(sign);
    out.put_u16(scale as u16);
    for digit in digits {
        out.put_i16(digit);
    }
}

fn field_infos(columns: &[ResultColumn], format: Option<&Format>) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldInfo::new(
                c.name.clone(),
                None,
                None,
                pg_type(c.data_type),
                format.map(|f| f.format_for(i)).unwrap_or(FieldFormat::Text),
            )
        })
        .collect()
}

/// The wire response of one answer.
fn response(output: Output, format: Option<&Format>) -> PgWireResult<Response> {
    if output.columns.is_empty() {
        let tag = match output.command {
            "INSERT" => Tag::new("INSERT")
                .with_oid(0)
                .with_rows(output.rows_affected as usize),
            "DELETE" | "UPDATE" => {
                Tag::new(output.command).with_rows(output.rows_affected as usize)
            }
            other => Tag::new(other),
        };
        return Ok(Response::Execution(tag));
    }
    let fields = Arc::new(field_infos(&output.columns, format));
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(output.rows.len());
    for row in &output.rows {
        for value in row {
            encoder.encode_field(&Cell(value))?;
        }
        rows.push(Ok(encoder.take_row()));
    }
    let mut query = QueryResponse::new(fields, stream::iter(rows));
    query.set_command_tag(output.command);
    Ok(Response::Query(query))
}

/// Transaction control, which SQL-lite does not have: every statement is applied when it
/// runs. `BEGIN` and `COMMIT` are accepted (drivers send them unasked) and `ROLLBACK` ends
/// the block, with a warning when the block applied writes that it cannot undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionCommand {
    Begin,
    Commit,
    Rollback,
}

impl TransactionCommand {
    pub fn recognise(sql: &str) -> Option<TransactionCommand> {
        let words: Vec<String> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        Some(match words.as_slice() {
            ["BEGIN"] | ["BEGIN", "TRANSACTION" | "WORK"] | ["START", "TRANSACTION"] => {
                TransactionCommand::Begin
            }
            ["COMMIT"] | ["COMMIT", "TRANSACTION" | "WORK"] | ["END"] => TransactionCommand::Commit,
            ["ROLLBACK"] | ["ROLLBACK", "TRANSACTION" | "WORK"] | ["ABORT"] => {
                TransactionCommand::Rollback
            }
            _ => return None,
        })
    }
}

/// Per connection: whether the open transaction block applied a write.
#[derive(Debug, Default)]
struct BlockWrites(std::sync::atomic::AtomicBool);

/// Answer a transaction command, warning on a ROLLBACK that cannot undo writes.
async fn transaction_response<C>(
    client: &mut C,
    command: TransactionCommand,
) -> PgWireResult<Response>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    use futures::SinkExt;
    use std::sync::atomic::Ordering;
    let writes = client
        .session_extensions()
        .get_or_insert_with(BlockWrites::default);
    Ok(match command {
        TransactionCommand::Begin => {
            writes.0.store(false, Ordering::Relaxed);
            Response::TransactionStart(Tag::new("BEGIN"))
        }
        TransactionCommand::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        TransactionCommand::Rollback => {
            if writes.0.swap(false, Ordering::Relaxed) {
                let warning = ErrorInfo::new(
                    "WARNING".to_string(),
                    "01000".to_string(),
                    "ROLLBACK does not undo the writes of this block: Rhizome applies every statement when it runs".to_string(),
                );
                client
                    .feed(PgWireBackendMessage::NoticeResponse(warning.into()))
                    .await?;
            }
            Response::TransactionEnd(Tag::new("ROLLBACK"))
        }
    })
}

/// Note a write in the connection's open block.
fn note_write<C: ClientInfo>(client: &C, output: &Output) {
    if matches!(
        output.command,
        "INSERT" | "DELETE" | "UPDATE" | "CREATE TABLE" | "DROP TABLE"
    ) {
        client
            .session_extensions()
            .get_or_insert_with(BlockWrites::default)
            .0
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A statement parsed at Parse time: its text, result columns, and the type of each
/// parameter (`None`: text).
#[derive(Debug, Clone)]
pub struct PgStatement {
    pub sql: String,
    pub columns: Vec<ResultColumn>,
    pub parameters: Vec<Option<DataType>>,
}

/// The column type a client-declared parameter type stands for.
fn data_type_of(ty: &Type) -> Option<DataType> {
    Some(match *ty {
        Type::INT2 | Type::INT4 => DataType::Int,
        Type::INT8 => DataType::BigInt,
        Type::FLOAT4 | Type::FLOAT8 => DataType::Double,
        Type::NUMERIC => DataType::Decimal {
            precision: 18,
            scale: 0,
        },
        Type::DATE => DataType::Date,
        Type::TIMESTAMP => DataType::Timestamp,
        Type::BOOL => DataType::Boolean,
        _ => return None,
    })
}

impl PgQueryParser {
    /// The parameter types of a statement: the client's where declared, else inferred.
    async fn parameter_types(
        &self,
        sql: &str,
        declared: &[Option<Type>],
    ) -> Result<Vec<Option<DataType>>, Error> {
        let count = params::placeholders(sql)?
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        if count == 0 {
            return Ok(Vec::new());
        }
        let inference = params::infer(sql, count);
        let table = match &inference.table {
            Some(name) => self.executor.cluster().table(name).await?,
            None => None,
        };
        let column_type = |name: &str| -> Option<DataType> {
            let table = table.as_ref()?;
            let def = match name.strip_prefix('#') {
                Some(position) => table.schema.columns.get(position.parse::<usize>().ok()?)?,
                None => table.schema.column(name).ok()?.1,
            };
            Some(def.data_type)
        };
        Ok((0..count)
            .map(|i| {
                let declared = declared
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN);
                match declared {
                    Some(ty) => data_type_of(&ty),
                    None => match &inference.hints[i] {
                        params::Hint::Column(name) => column_type(name),
                        params::Hint::Type(t) => Some(*t),
                        params::Hint::Unknown => None,
                    },
                }
            })
            .collect())
    }
}

/// Plans statements at Parse time, so Describe answers without running them.
#[derive(Debug)]
pub struct PgQueryParser {
    executor: Arc<Executor>,
}

#[async_trait]
impl QueryParser for PgQueryParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let user_error = |e: Error| PgWireError::UserError(Box::new(error_info(&e)));
        if TransactionCommand::recognise(sql).is_some() {
            return Ok(Some(PgStatement {
                sql: sql.to_string(),
                columns: Vec::new(),
                parameters: Vec::new(),
            }));
        }
        let parameters = self.parameter_types(sql, types).await.map_err(user_error)?;
        let columns = if parameters.is_empty() {
            self.executor.describe(sql).await
        } else {
            let stand_ins: Vec<String> = parameters
                .iter()
                .map(|t| params::placeholder_literal(*t))
                .collect();
            match params::substitute(sql, &stand_ins) {
                Ok(planned) => self.executor.describe(&planned).await,
                Err(e) => Err(e),
            }
        }
        .map_err(user_error)?;
        Ok(Some(PgStatement {
            sql: sql.to_string(),
            columns,
            parameters,
        }))
    }

    fn get_parameter_types(&self, statement: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(statement
            .parameters
            .iter()
            .map(|t| t.map(pg_type).unwrap_or(Type::TEXT))
            .collect())
    }

    fn get_result_schema(
        &self,
        statement: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(field_infos(&statement.columns, format))
    }
}

/// Answers simple and extended queries with the executor.
#[derive(Debug)]
pub struct PgHandler {
    executor: Arc<Executor>,
    parser: Arc<PgQueryParser>,
}

impl PgHandler {
    pub fn new(executor: Arc<Executor>) -> PgHandler {
        PgHandler {
            parser: Arc::new(PgQueryParser {
                executor: executor.clone(),
            }),
            executor,
        }
    }
}

impl NoopStartupHandler for PgHandler {}

#[async_trait]
impl SimpleQueryHandler for PgHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(command) = TransactionCommand::recognise(query) {
            return Ok(vec![transaction_response(client, command).await?]);
        }
        Ok(vec![match self.executor.execute(query).await {
            Ok(output) => {
                note_write(client, &output);
                response(output, None)?
            }
            Err(e) => Response::Error(Box::new(error_info(&e))),
        }])
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgHandler {
    type Statement = PgStatement;
    type QueryParser = PgQueryParser;

    fn query_parser(&self) -> Arc<PgQueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = &portal.statement.statement;
        if let Some(command) = TransactionCommand::recognise(&statement.sql) {
            return transaction_response(client, command).await;
        }
        let sql = match bind(statement, portal) {
            Ok(sql) => sql,
            Err(e) => return Ok(Response::Error(Box::new(error_info(&e)))),
        };
        match self.executor.execute(&sql).await {
            Ok(output) => {
                note_write(client, &output);
                response(output, Some(&portal.result_column_format))
            }
            Err(e) => Ok(Response::Error(Box::new(error_info(&e)))),
        }
    }
}

/// The statement text with the portal's parameters substituted as literals.
fn bind(statement: &PgStatement, portal: &Portal<PgStatement>) -> Result<String, Error> {
    if portal.parameters.len() != statement.parameters.len() {
        return Err(Error::Plan(format!(
            "the statement has {} parameters, {} were bound",
            statement.parameters.len(),
            portal.parameters.len()
        )));
    }
    if statement.parameters.is_empty() {
        return Ok(statement.sql.clone());
    }
    let literals = portal
        .parameters
        .iter()
        .zip(&statement.parameters)
        .enumerate()
        .map(|(i, (bytes, data_type))| {
            let binary = match &portal.parameter_format {
                Format::UnifiedText => false,
                Format::UnifiedBinary => true,
                Format::Individual(codes) if codes.len() == 1 => codes[0] == 1,
                Format::Individual(codes) => codes.get(i) == Some(&1),
            };
            params::literal(bytes.as_deref(), *data_type, binary)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    params::substitute(&statement.sql, &literals)
}

/// The handlers of one server.
#[derive(Debug)]
struct PgHandlers {
    handler: Arc<PgHandler>,
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.handler.clone()
    }
}

/// Serve the PostgreSQL protocol on a bound listener until `shutdown` completes. Each
/// connection runs in its own task; at most [`PG_CONNECTIONS_MAX`] at once.
pub async fn serve_pg(
    listener: TcpListener,
    executor: Arc<Executor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handlers = Arc::new(PgHandlers {
        handler: Arc::new(PgHandler::new(executor)),
    });
    let connections = Arc::new(Semaphore::new(PG_CONNECTIONS_MAX));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let socket = match accepted {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        tracing::warn!("pg accept failed: {e}");
                        continue;
                    }
                };
                // Small answers go out at once, not after the client's delayed ACK.
                if let Err(e) = socket.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY: {e}");
                }
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    tracing::warn!("pg connection refused: {PG_CONNECTIONS_MAX} open");
                    continue;
                };
                let handlers = handlers.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                        tracing::debug!("pg connection ended: {e}");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(units: i64, scale: u8) -> Vec<i16> {
        let mut out = BytesMut::new();
        encode_numeric(units, scale, &mut out);
        out.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_binary_matches_postgres_layout() {
        // Proves NUMERIC's wire form: [ndigits, weight, sign, dscale, digits…].
        assert_eq!(numeric(377_420_000, 2), vec![2, 1, 0, 2, 377, 4200]);
        assert_eq!(numeric(5, 2), vec![1, -1, 0, 2, 500]);
        assert_eq!(numeric(-12_345, 0), vec![2, 1, 0x4000, 0, 1, 2345]);
        assert_eq!(numeric(0, 2), vec![0, 0, 0, 2]);
        assert_eq!(numeric(1, 6), vec![1, -2, 0, 6, 100]);
    }
}
