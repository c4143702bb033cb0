//! End to end on the dev cluster (a `GrpcCluster` over three in-process nodes, every shard a
//! Raft group of three replicas): TPC-H `lineitem` at scale factor 0.1 (600,572 rows) loaded
//! through INSERT statements of 1000 rows over HTTP; the six public queries answer exactly
//! `bench/expected-sf0.1.tsv` over HTTP (JSON) and over the PostgreSQL wire (simple
//! and extended query).

mod common;

use std::collections::BTreeMap;

use common::{sql, Servers};
use futures::StreamExt;
use rhizome_coordinator::sample::{lineitem_inserts, lineitem_queries, LINEITEM_DDL};

const SCALE_FACTOR: f64 = 0.1;
const ROWS: u64 = 600_572;
/// INSERT statements sent concurrently while loading.
const LOAD_STATEMENTS_IN_FLIGHT: usize = 4;
/// Tolerance for floats (AVG): the expected file rounds them to 6 decimals.
const FLOAT_TOLERANCE: f64 = 1e-6;

/// Expected rows per query name, each row as its `|`-separated fields.
fn expected() -> BTreeMap<String, Vec<Vec<String>>> {
    let text = include_str!("../../bench/expected-sf0.1.tsv");
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, row) = line.split_once('\t').expect("name<TAB>row");
        out.entry(name.to_string())
            .or_default()
            .push(row.split('|').map(str::to_string).collect());
    }
    out
}

/// Whether an answer field equals an expected one: exactly, or as floats within tolerance
/// when the expected field is a rounded float.
fn same_field(actual: &str, expected: &str) -> bool {
    if actual == expected {
        return true;
    }
    match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(a), Ok(e))
            if expected.contains('.')
                && expected.split('.').nth(1).is_some_and(|f| f.len() == 6) =>
        {
            (a - e).abs() <= FLOAT_TOLERANCE
        }
        _ => false,
    }
}

fn check(protocol: &str, name: &str, actual: &[Vec<String>], expected: &[Vec<String>]) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{protocol} {name}: {actual:?} vs {expected:?}"
    );
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.len(), e.len(), "{protocol} {name}: {a:?} vs {e:?}");
        for (x, y) in a.iter().zip(e) {
            assert!(same_field(x, y), "{protocol} {name}: {a:?} vs {e:?}");
        }
    }
}

fn json_field(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_queries_match_the_reference_at_sf01() {
    // Proves the whole path — INSERT statements over HTTP, routing, shard queries, merge,
    // ORDER BY — answers the benchmark queries as the reference engine does.
    let dir = tempfile::tempdir().expect("temp dir");
    let servers = Servers::start_dev(dir.path()).await;
    let (status, body) = sql(servers.http, LINEITEM_DDL).await;
    assert_eq!(status, 200, "{body}");
    // A few statements in flight at once, as several clients would send them: the Raft
    // round trips of one overlap the parsing and applying of others.
    let http = servers.http;
    let answers: Vec<(u16, serde_json::Value)> =
        futures::stream::iter(lineitem_inserts(SCALE_FACTOR, 1_000))
            .map(|statement| async move { sql(http, &statement).await })
            .buffer_unordered(LOAD_STATEMENTS_IN_FLIGHT)
            .collect()
            .await;
    let mut loaded = 0;
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
        loaded += body["rows_affected"].as_u64().expect("rows_affected");
    }
    assert_eq!(loaded, ROWS);

    let expected = expected();
    let queries = lineitem_queries();
    assert_eq!(queries.len(), 6);
    let client = servers.pg_client().await;
    for (name, query) in &queries {
        let expected_rows = &expected[name];

        let (status, body) = sql(servers.http, query).await;
        assert_eq!(status, 200, "{name}: {body}");
        let rows: Vec<Vec<String>> = body["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r.as_array().expect("row").iter().map(json_field).collect())
            .collect();
        check("http", name, &rows, expected_rows);

        let messages = client.simple_query(query).await.expect("pg simple query");
        let rows: Vec<Vec<String>> = messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        check("pg simple", name, &rows, expected_rows);

        // Extended protocol: the counts (INT8) in binary, which every query has.
        let rows = client
            .query(query.as_str(), &[])
            .await
            .expect("pg extended query");
        assert_eq!(rows.len(), expected_rows.len(), "pg extended {name}");
        for (row, expected_row) in rows.iter().zip(expected_rows) {
            for (i, column) in row.columns().iter().enumerate() {
                if *column.type_() == postgres_types::Type::INT8 {
                    assert_eq!(
                        row.get::<_, i64>(i).to_string(),
                        expected_row[i],
                        "pg extended {name}"
                    );
                }
            }
        }
    }
    servers.stop().await;
}
