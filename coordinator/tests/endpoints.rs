//! The HTTP and PostgreSQL endpoints on 127.0.0.1:0: the JSON and CSV contract, health,
//! readiness and metrics, pg types in text and binary format, SQLSTATEs, and a battery of
//! hostile statements that each get a clean error while the server stays up and nothing
//! changes.

mod common;

use std::error::Error as StdError;
use std::sync::atomic::Ordering;

use common::{http, sql, Servers};
use postgres_types::{FromSql, Type};
use serde_json::json;

const SETUP: [&str; 2] = [
    "CREATE TABLE t (id BIGINT PRIMARY KEY, n INT, price DECIMAL(10,2), f DOUBLE, day DATE, at TIMESTAMP, name VARCHAR(20), note TEXT, ok BOOLEAN) WITH (shards = 3)",
    "INSERT INTO t VALUES (1, 7, 3774200.00, 0.5, DATE '1998-09-02', TIMESTAMP '2024-01-02 03:04:05', 'a, \"b\"', '', TRUE), (2, NULL, -0.05, NULL, NULL, NULL, NULL, NULL, NULL)",
];

async fn servers_with_data() -> Servers {
    let servers = Servers::start().await;
    for statement in SETUP {
        let (status, body) = sql(servers.http, statement).await;
        assert_eq!(status, 200, "{statement}: {body}");
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_and_csv_follow_the_contract() {
    // Proves the JSON shape (typed columns, decimals as strings with scale, dates as text,
    // stats), the CSV form, and error bodies with 4xx statuses.
    let servers = servers_with_data().await;
    let (status, body) = sql(
        servers.http,
        "SELECT id, n, price, f, day, at, name, note, ok FROM t ORDER BY id",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["command"], "SELECT");
    assert_eq!(
        body["columns"],
        json!([
            {"name": "id", "type": "BIGINT"}, {"name": "n", "type": "INT"},
            {"name": "price", "type": "DECIMAL(10,2)"}, {"name": "f", "type": "DOUBLE"},
            {"name": "day", "type": "DATE"}, {"name": "at", "type": "TIMESTAMP"},
            {"name": "name", "type": "VARCHAR(20)"}, {"name": "note", "type": "TEXT"},
            {"name": "ok", "type": "BOOLEAN"}
        ])
    );
    assert_eq!(
        body["rows"],
        json!([
            [
                1,
                7,
                "3774200.00",
                0.5,
                "1998-09-02",
                "2024-01-02 03:04:05",
                "a, \"b\"",
                "",
                true
            ],
            [2, null, "-0.05", null, null, null, null, null, null]
        ])
    );
    assert_eq!(body["stats"]["shards"], 3);
    assert!(body["stats"]["elapsed_ms"].as_f64().is_some());

    let (status, body) = sql(servers.http, "SELECT COUNT(*), SUM(price), AVG(n) FROM t").await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"], json!([[2, "3774199.95", 7.0]]));
    assert_eq!(body["columns"][1]["type"], "DECIMAL(18,2)");

    let (status, text) = http(
        servers.http,
        "POST",
        "/v1/sql?format=csv",
        b"SELECT id, name, note, n FROM t ORDER BY id",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(text, "id,name,note,n\n1,\"a, \"\"b\"\"\",\"\",7\n2,,,\n");

    let (status, body) = sql(servers.http, "INSERT INTO t (id) VALUES (3), (4)").await;
    assert_eq!(status, 200);
    assert_eq!(body["command"], "INSERT");
    assert_eq!(body["rows_affected"], 2);

    for (statement, expected_status, code) in [
        ("SELEC 1", 400, "syntax_error"),
        ("SELECT * FROM nowhere", 404, "unknown_table"),
        ("SELECT nope FROM t", 400, "unknown_column"),
        ("SELECT id FROM t WHERE id = 'x'", 400, "type_mismatch"),
        (
            "SELECT id FROM t a JOIN t b ON a.id = b.id",
            400,
            "unsupported",
        ),
        ("CREATE TABLE t (x INT)", 409, "table_exists"),
    ] {
        let (status, body) = sql(servers.http, statement).await;
        assert_eq!(status, expected_status, "{statement}: {body}");
        assert_eq!(body["error"]["code"], code, "{statement}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, body) = sql(servers.http, "SELECT id FROM t WHERE id = = 1").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1, column 29")),
        "{body}"
    );
    let (status, _) = http(
        servers.http,
        "POST",
        "/v1/sql?format=xml",
        b"SELECT id FROM t",
    )
    .await;
    assert_eq!(status, 400);
    servers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics_answer() {
    // Proves /health is always 200, /ready is 503 until marked ready, and /metrics counts
    // statements and errors in Prometheus text.
    let servers = servers_with_data().await;
    assert_eq!(http(servers.http, "GET", "/health", b"").await.0, 200);
    servers.ready.store(false, Ordering::Release);
    let (status, body) = http(servers.http, "GET", "/ready", b"").await;
    assert_eq!(status, 503, "{body}");
    servers.ready.store(true, Ordering::Release);
    assert_eq!(http(servers.http, "GET", "/ready", b"").await.0, 200);
    sql(servers.http, "SELECT COUNT(*) FROM t").await;
    sql(servers.http, "SELEC").await;
    let (status, text) = http(servers.http, "GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("rhizome_statements_total{command=\"SELECT\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rhizome_statements_total{command=\"INSERT\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rhizome_errors_total{code=\"syntax_error\"} 1"),
        "{text}"
    );
    assert!(text.contains("rhizome_statement_seconds_count 4"), "{text}");
    servers.stop().await;
}

/// A NUMERIC in binary form, decoded to its text.
#[derive(Debug, PartialEq)]
struct Numeric(String);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let word = |i: usize| i16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
        let (ndigits, weight, sign, dscale) = (word(0), word(1), word(2) as u16, word(3));
        let mut integer = String::new();
        let mut fraction = String::new();
        for i in 0..ndigits as usize {
            let position = i32::from(weight) - i as i32;
            let digits = format!("{:04}", word(4 + i));
            if position >= 0 {
                integer.push_str(&digits);
            } else {
                while (fraction.len() as i32) < (-position - 1) * 4 {
                    fraction.push('0');
                }
                fraction.push_str(&digits);
            }
        }
        if weight >= 0 {
            let integer_groups = integer.len() / 4;
            for _ in integer_groups..=weight as usize {
                integer.push_str("0000");
            }
        }
        let integer = integer.trim_start_matches('0');
        let integer = if integer.is_empty() { "0" } else { integer };
        fraction.truncate(dscale as usize);
        while fraction.len() < dscale as usize {
            fraction.push('0');
        }
        let sign = if sign == 0x4000 { "-" } else { "" };
        Ok(Numeric(if dscale > 0 {
            format!("{sign}{integer}.{fraction}")
        } else {
            format!("{sign}{integer}")
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// A DATE or TIMESTAMP in binary form, as days or microseconds since 2000-01-01.
#[derive(Debug, PartialEq)]
struct Since2000(i64);

impl<'a> FromSql<'a> for Since2000 {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Since2000(if *ty == Type::DATE {
            i64::from(i32::from_be_bytes(raw.try_into()?))
        } else {
            i64::from_be_bytes(raw.try_into()?)
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE || *ty == Type::TIMESTAMP
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_clients_query_in_text_and_binary() {
    // Proves tokio-postgres connects without a password, and reads every column type with
    // the schema's pg type, in the simple (text) and extended (binary) protocols.
    let servers = servers_with_data().await;
    let client = servers.pg_client().await;
    let rows = client
        .query(
            "SELECT id, n, price, f, day, at, name, note, ok FROM t ORDER BY id",
            &[],
        )
        .await
        .expect("extended query");
    let types: Vec<Type> = rows[0]
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(
        types,
        [
            Type::INT8,
            Type::INT4,
            Type::NUMERIC,
            Type::FLOAT8,
            Type::DATE,
            Type::TIMESTAMP,
            Type::VARCHAR,
            Type::TEXT,
            Type::BOOL
        ]
    );
    let first = &rows[0];
    assert_eq!(first.get::<_, i64>(0), 1);
    assert_eq!(first.get::<_, i32>(1), 7);
    assert_eq!(first.get::<_, Numeric>(2), Numeric("3774200.00".into()));
    assert_eq!(first.get::<_, f64>(3), 0.5);
    // 1998-09-02 is 486 days before 2000-01-01.
    assert_eq!(first.get::<_, Since2000>(4), Since2000(-486));
    assert_eq!(
        first.get::<_, Since2000>(5),
        Since2000((8767 * 86_400 + 3 * 3600 + 4 * 60 + 5) * 1_000_000)
    );
    assert_eq!(first.get::<_, String>(6), "a, \"b\"");
    assert_eq!(first.get::<_, String>(7), "");
    assert!(first.get::<_, bool>(8));
    let second = &rows[1];
    assert_eq!(second.get::<_, Numeric>(2), Numeric("-0.05".into()));
    assert_eq!(second.get::<_, Option<i32>>(1), None);
    assert_eq!(second.get::<_, Option<String>>(6), None);

    let messages = client
        .simple_query("SELECT price, day, at, ok FROM t WHERE id = 1")
        .await
        .expect("simple query");
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.get(0), Some("3774200.00"));
    assert_eq!(row.get(1), Some("1998-09-02"));
    assert_eq!(row.get(2), Some("2024-01-02 03:04:05"));
    assert_eq!(row.get(3), Some("t"));

    let inserted = client
        .execute("INSERT INTO t (id) VALUES (10), (11), (12)", &[])
        .await
        .expect("insert");
    assert_eq!(inserted, 3);
    let deleted = client
        .execute("DELETE FROM t WHERE id >= 10", &[])
        .await
        .expect("delete");
    assert_eq!(deleted, 3);

    for (statement, sqlstate) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM nowhere", "42P01"),
        ("SELECT nope FROM t", "42703"),
        ("SELECT id FROM t WHERE id = 'x'", "42804"),
        ("SELECT id FROM t UNION SELECT id FROM t", "0A000"),
        (
            "INSERT INTO t (id, name) VALUES (5, 'much too long for twenty')",
            "22001",
        ),
        ("INSERT INTO t (id) VALUES (NULL)", "23502"),
    ] {
        for extended in [false, true] {
            let error = if extended {
                client.query(statement, &[]).await.err()
            } else {
                client.simple_query(statement).await.err()
            }
            .unwrap_or_else(|| panic!("{statement} succeeded"));
            let code = error.code().map(|c| c.code().to_string());
            assert_eq!(code.as_deref(), Some(sqlstate), "{statement}: {error}");
        }
    }
    // The connection is still usable after errors.
    let count: i64 = client
        .query_one("SELECT COUNT(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2);
    servers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_statements_get_clean_errors_and_change_nothing() {
    // Proves malformed, oversized and hostile input is rejected with a 4xx / SQLSTATE, the
    // server keeps serving, and the table is unchanged.
    let servers = servers_with_data().await;
    let deep = format!(
        "SELECT id FROM t WHERE {}id = 1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let chain = format!(
        "SELECT id FROM t WHERE {}",
        (0..50_000)
            .map(|i| format!("id = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    let not_chain = format!("SELECT id FROM t WHERE {}id = 1", "NOT ".repeat(20_000));
    let huge_in = format!(
        "SELECT id FROM t WHERE id IN ({})",
        (0..20_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let long_string = format!(
        "INSERT INTO t (id, note) VALUES (100, '{}')",
        "x".repeat(100_000)
    );
    let long_name = format!(
        "INSERT INTO t (id, name) VALUES (100, '{}')",
        "y".repeat(100)
    );
    let huge_body = format!("SELECT id FROM t WHERE note = '{}'", "z".repeat(5 << 20));
    let many_rows = format!(
        "INSERT INTO t (id) VALUES {}",
        (0..100_001)
            .map(|i| format!("({})", 1000 + i))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let long_identifier = format!("SELECT {} FROM t", "c".repeat(100));
    let hostile: Vec<(String, &str)> = vec![
        (String::new(), "42601"),
        (";".into(), "42601"),
        ("   ".into(), "42601"),
        ("SELECT id FROM t; DROP TABLE t".into(), "0A000"),
        (
            "INSERT INTO t (id) VALUES (100); DELETE FROM t".into(),
            "0A000",
        ),
        ("SELECT id FROM t WHERE note = 'a\0b'".into(), "22021"),
        ("DROP TABLE t\0".into(), "22021"),
        (deep, "54000"),
        (chain, "54000"),
        (not_chain, "54000"),
        (huge_in, "54000"),
        (long_string, "54000"),
        (long_name, "22001"),
        (huge_body, "54000"),
        (many_rows, "54000"),
        (long_identifier, "54000"),
        (
            "SELECT id FROM t WHERE id = 99999999999999999999999".into(),
            "22003",
        ),
        (
            "INSERT INTO t (id) VALUES (1), (2), ('three')".into(),
            "42804",
        ),
        (
            "SELECT id FROM t WHERE note = 'unterminated".into(),
            "42601",
        ),
        ("SELECT id FROM t WHERE id = $1".into(), "0A000"),
        ("COPY t FROM STDIN".into(), "0A000"),
        ("SELECT pg_sleep(10) FROM t".into(), "0A000"),
        ("\u{feff}SELECT id FROM t".into(), "42601"),
        (
            "CREATE TABLE big (x INT) WITH (shards = 100000)".into(),
            "42000",
        ),
    ];
    let client = servers.pg_client().await;
    for (statement, sqlstate) in &hostile {
        let (status, body) = sql(servers.http, statement).await;
        let shown: String = statement.chars().take(60).collect();
        assert!((400..500).contains(&status), "{shown}: {status} {body}");
        assert_eq!(body["error"]["sqlstate"], *sqlstate, "{shown}: {body}");
        if statement.contains('\0') || statement.trim().is_empty() || statement == ";" {
            // The pg protocol cannot carry NUL in a query, and an empty query has its own
            // answer (EmptyQueryResponse).
            continue;
        }
        let error = client
            .simple_query(statement)
            .await
            .err()
            .unwrap_or_else(|| panic!("{shown} succeeded over pg"));
        assert_eq!(
            error.code().map(|c| c.code()),
            Some(*sqlstate),
            "{shown}: {error}"
        );
    }
    // Invalid UTF-8 over HTTP.
    let (status, body) = http(servers.http, "POST", "/v1/sql", b"SELECT \xff FROM t").await;
    assert_eq!(status, 400, "{body}");
    // The server still serves, nothing changed, and no table was created.
    let (status, body) = sql(servers.http, "SELECT COUNT(*) FROM t").await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"], json!([[2]]));
    let (_, body) = sql(servers.http, "SHOW TABLES").await;
    assert_eq!(body["rows"], json!([["t", 3, 3]]));
    let count: i64 = client
        .query_one("SELECT COUNT(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2);
    servers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_parameters_bind_with_inferred_types() {
    // Proves extended-protocol parameters: types inferred from the columns they stand
    // against, values substituted as literals (quotes cannot escape), in binary format.
    let servers = servers_with_data().await;
    let client = servers.pg_client().await;
    let hostile = "x'); DROP TABLE t; --";
    let inserted = client
        .execute(
            "INSERT INTO t (id, n, f, ok, name, note) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&50i64, &7i32, &0.25f64, &true, &"it's", &hostile],
        )
        .await
        .expect("insert with parameters");
    assert_eq!(inserted, 1);
    let rows = client
        .query(
            "SELECT id, name, note FROM t WHERE n = $1 AND name LIKE $2 AND id IN ($3, $4) ORDER BY id LIMIT $5",
            &[&7i32, &"it%", &50i64, &51i64, &10i64],
        )
        .await
        .expect("select with parameters");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 50);
    assert_eq!(rows[0].get::<_, String>(1), "it's");
    assert_eq!(rows[0].get::<_, String>(2), hostile);
    let statement = client
        .prepare("SELECT COUNT(*) FROM t WHERE id BETWEEN $1 AND $2")
        .await
        .expect("prepare");
    assert_eq!(statement.params(), &[Type::INT8, Type::INT8]);
    let count: i64 = client
        .query_one(&statement, &[&1i64, &2i64])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 2);
    let updated = client
        .execute(
            "UPDATE t SET note = $1 WHERE id = $2",
            &[&"changed", &50i64],
        )
        .await
        .expect("update");
    assert_eq!(updated, 1);
    // The described type is INT8, so the client itself refuses to send text for it.
    let error = client
        .query("SELECT id FROM t WHERE id = $1", &[&"one"])
        .await
        .expect_err("a text for a BIGINT parameter");
    assert!(
        error.to_string().contains("serializing parameter 0"),
        "{error}"
    );
    let (_, body) = sql(servers.http, "SELECT COUNT(*) FROM t").await;
    assert_eq!(body["rows"], json!([[3]]));
    servers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_blocks_are_accepted_and_apply_each_statement() {
    // Proves drivers that wrap statements in BEGIN/COMMIT work, and that ROLLBACK ends the
    // block (warning that applied writes stay) rather than leaving the session stuck.
    let servers = servers_with_data().await;
    let mut client = servers.pg_client().await;
    let transaction = client.transaction().await.expect("begin");
    transaction
        .execute("INSERT INTO t (id) VALUES (70)", &[])
        .await
        .expect("insert in block");
    transaction.commit().await.expect("commit");
    let transaction = client.transaction().await.expect("begin");
    transaction
        .execute("INSERT INTO t (id) VALUES (71)", &[])
        .await
        .expect("insert in block");
    transaction
        .rollback()
        .await
        .expect("rollback ends the block");
    client.simple_query("BEGIN").await.expect("begin");
    assert!(client.simple_query("SELECT nope FROM t").await.is_err());
    client
        .simple_query("ROLLBACK")
        .await
        .expect("rollback after an error");
    let count: i64 = client
        .query_one("SELECT COUNT(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, 4, "both inserts applied when they ran");
    servers.stop().await;
}
