//! The HTTP endpoint (axum).
//!
//! * `POST /v1/sql` — the body is one SQL-lite statement. `?format=json` (default) answers
//!   `{"command","columns":[{"name","type"}],"rows":[[…]],"rows_affected","stats":{"elapsed_ms","shards"}}`;
//!   values are JSON numbers (BIGINT, INT, DOUBLE), strings (DECIMAL with its scale, e.g.
//!   `"3774200.00"`; DATE `"YYYY-MM-DD"`; TIMESTAMP `"YYYY-MM-DD HH:MM:SS[.ffffff]"`; text),
//!   booleans, or null. `?format=csv` answers a header line and one line per row (NULL is an
//!   empty field, the empty string is `""`). Errors answer `{"error":{"code","sqlstate","message"}}`
//!   with a 4xx status, or 5xx for cluster faults (see [`crate::status`]).
//! * `GET /health` — 200 while the process serves.
//! * `GET /ready` — 200 once the cluster is ready and the server is marked ready, 503 before.
//! * `GET /metrics` — Prometheus text.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
// Tokio's clock (the wall clock in production; a simulation's own clock under one).
use tokio::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde::Deserialize;
use tokio::net::TcpListener;

use rhizome_core::value::Value;

use crate::error::{DataFault, Error};
use crate::executor::{Executor, Output};
use crate::limits::{OVERSIZED_BODY_DRAIN_BYTES_MAX, STATEMENT_BYTES_MAX};
use crate::status::{error_body, status_of};

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub executor: Arc<Executor>,
    /// Set once the server may take traffic (e.g. after sample data is loaded).
    pub ready: Arc<AtomicBool>,
}

#[derive(Debug, Deserialize)]
struct SqlParams {
    format: Option<String>,
}

/// The router of every HTTP route.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/v1/sql", post(sql))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Serve HTTP on a bound listener until `shutdown` completes.
pub async fn serve_http(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Answers go out at once: with Nagle's algorithm a small answer can wait for the
    // client's delayed ACK (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Any other path: a JSON 404 naming the routes.
async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": {
            "code": "not_found",
            "message": "no such route; use POST /v1/sql, GET /health, /ready or /metrics",
        }}),
    )
}

async fn health() -> Response {
    json_response(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

async fn ready(State(state): State<HttpState>) -> Response {
    if state.ready.load(Ordering::Acquire) && state.executor.cluster().is_ready() {
        json_response(StatusCode::OK, serde_json::json!({"status": "ready"}))
    } else {
        error_response(&Error::NotReady)
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.executor.metrics().render(),
    )
        .into_response()
}

async fn sql(
    State(state): State<HttpState>,
    Query(params): Query<SqlParams>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return error_response(&Error::Unsupported(format!("format {other} (json or csv)")))
        }
    };
    let bytes = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(e) => return error_response(&e),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return error_response(&Error::data(
            DataFault::BadCharacter,
            "request body is not UTF-8",
        ));
    };
    match state.executor.execute(text).await {
        Ok(output) if csv => csv_response(&output),
        Ok(output) => json_response(
            StatusCode::OK,
            output_json(&output, started.elapsed().as_secs_f64() * 1000.0),
        ),
        Err(e) => error_response(&e),
    }
}

/// The request body, at most [`STATEMENT_BYTES_MAX`] bytes. A longer body is read on (and
/// dropped) up to [`OVERSIZED_BODY_DRAIN_BYTES_MAX`], so the client, still sending, gets the
/// 413 answer rather than a reset connection.
async fn read_body(body: Body) -> Result<Vec<u8>, Error> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut total: usize = 0;
    let too_long = |what: &str| Error::LimitExceeded {
        limit: "statement_bytes_max",
        message: format!("request body {what} statement_bytes_max ({STATEMENT_BYTES_MAX} bytes)"),
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Parse {
            message: format!("reading the request body: {e}"),
            position: None,
        })?;
        total = total.saturating_add(chunk.len());
        if total <= STATEMENT_BYTES_MAX {
            bytes.extend_from_slice(&chunk);
        } else if total > OVERSIZED_BODY_DRAIN_BYTES_MAX {
            break;
        }
    }
    if total > STATEMENT_BYTES_MAX {
        return Err(too_long("exceeds"));
    }
    Ok(bytes)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(error: &Error) -> Response {
    let status =
        StatusCode::from_u16(status_of(error).http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, error_body(error))
}

/// A value as JSON: numbers for integers and doubles, strings for exact decimals, dates,
/// timestamps and text.
pub fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(value.render())),
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        other => serde_json::Value::String(other.render()),
    }
}

fn output_json(output: &Output, elapsed_ms: f64) -> serde_json::Value {
    let columns: Vec<serde_json::Value> = output
        .columns
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "type": c.data_type.sql_name()}))
        .collect();
    let rows: Vec<serde_json::Value> = output
        .rows
        .iter()
        .map(|row| serde_json::Value::Array(row.iter().map(value_json).collect()))
        .collect();
    serde_json::json!({
        "command": output.command,
        "columns": columns,
        "rows": rows,
        "rows_affected": output.rows_affected,
        "stats": {"elapsed_ms": elapsed_ms, "shards": output.shards},
    })
}

/// One CSV field: quoted when it holds a separator, quote, line break or edge space, and
/// always for the empty string (an unquoted empty field is NULL).
fn csv_field(value: &Value) -> String {
    if value.is_null() {
        return String::new();
    }
    let text = value.render();
    let needs_quotes = text.is_empty()
        || text.contains([',', '"', '\n', '\r'])
        || text.starts_with(' ')
        || text.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_response(output: &Output) -> Response {
    let mut text = String::new();
    if output.columns.is_empty() {
        text.push_str("command,rows_affected\n");
        text.push_str(&format!("{},{}\n", output.command, output.rows_affected));
    } else {
        let header: Vec<String> = output
            .columns
            .iter()
            .map(|c| csv_field(&Value::Text(c.name.clone())))
            .collect();
        text.push_str(&header.join(","));
        text.push('\n');
        for row in &output.rows {
            let fields: Vec<String> = row.iter().map(csv_field).collect();
            text.push_str(&fields.join(","));
            text.push('\n');
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        text,
    )
        .into_response()
}
