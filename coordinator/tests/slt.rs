//! Golden SQL files: runs every `tests/slt/*.slt` against a fresh executor over a
//! `LocalCluster`, and again over a `GrpcCluster` of three in-process nodes, and checks each
//! statement's outcome and each query's rows; the two clusters' answers are also compared
//! with each other, statement by statement.
//!
//! Format (a small dialect of sqllogictest):
//!
//! ```text
//! # comment
//! statement ok
//! INSERT INTO t VALUES (1)
//!
//! statement error 42P01 does not exist      -- SQLSTATE, then a fragment of the message
//! SELECT * FROM nowhere
//!
//! query rowsort                             -- `rowsort`: compare rows sorted
//! SELECT a, b FROM t
//! ----
//! 1|x
//! 2|NULL
//! ```
//!
//! Values print as `Value::render` does, NULL as `NULL`, the empty string as `(empty)`,
//! DOUBLE rounded to 6 decimals.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhizome_coordinator::executor::{Executor, ExecutorOptions, Output};
use rhizome_coordinator::local::LocalCluster;
use rhizome_coordinator::status::status_of;
use rhizome_core::value::Value;

fn render(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Text(t) if t.is_empty() => "(empty)".into(),
        Value::Double(d) => {
            let text = format!("{d:.6}");
            let text = text.trim_end_matches('0').trim_end_matches('.').to_string();
            if text == "-0" {
                "0".into()
            } else {
                text
            }
        }
        other => other.render(),
    }
}

enum Expect {
    Ok,
    Error { sqlstate: String, fragment: String },
    Rows { sort: bool, rows: Vec<String> },
}

struct Record {
    line: usize,
    sql: String,
    expect: Expect,
}

fn parse_file(text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let header: Vec<&str> = line.splitn(3, ' ').collect();
        i += 1;
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let expect = match header[0] {
            "statement" => match header.get(1) {
                Some(&"ok") => Expect::Ok,
                Some(&"error") => {
                    let rest = header.get(2).copied().unwrap_or("");
                    let (sqlstate, fragment) = rest.split_once(' ').unwrap_or((rest, ""));
                    Expect::Error {
                        sqlstate: sqlstate.to_string(),
                        fragment: fragment.to_string(),
                    }
                }
                other => panic!("line {start}: bad statement header {other:?}"),
            },
            "query" => {
                let sort = header.get(1) == Some(&"rowsort");
                let mut rows = Vec::new();
                if i < lines.len() && lines[i].trim() == "----" {
                    i += 1;
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        rows.push(lines[i].to_string());
                        i += 1;
                    }
                }
                Expect::Rows { sort, rows }
            }
            other => panic!("line {start}: unknown record {other}"),
        };
        records.push(Record {
            line: start,
            sql: sql.join("\n"),
            expect,
        });
    }
    records
}

/// One statement's answer as the comparison sees it: rendered rows, or the SQLSTATE.
type Answer = Result<Vec<String>, String>;

fn answer(result: &rhizome_coordinator::Result<Output>) -> Answer {
    match result {
        Ok(output) => Ok(output
            .rows
            .iter()
            .map(|row| row.iter().map(render).collect::<Vec<_>>().join("|"))
            .collect()),
        Err(e) => Err(status_of(e).sqlstate.to_string()),
    }
}

/// Run one file's records on `executor`: the failures against the golden answers, and
/// every record's answer.
async fn run_file(path: &Path, executor: &Executor) -> (Vec<String>, Vec<Answer>) {
    let text = std::fs::read_to_string(path).expect("slt file is readable");
    let mut failures = Vec::new();
    let mut answers = Vec::new();
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    for record in parse_file(&text) {
        let result = executor.execute(&record.sql).await;
        answers.push(answer(&result));
        let place = format!("{name}:{}", record.line);
        match (&record.expect, result) {
            (Expect::Ok, Ok(_)) => {}
            (Expect::Ok, Err(e)) => failures.push(format!("{place}: expected ok, got error: {e}")),
            (Expect::Error { sqlstate, fragment }, Err(e)) => {
                let actual = status_of(&e).sqlstate;
                if actual != sqlstate || !e.to_string().contains(fragment.as_str()) {
                    failures.push(format!(
                        "{place}: expected error {sqlstate} containing {fragment:?}, got {actual}: {e}"
                    ));
                }
            }
            (Expect::Error { sqlstate, .. }, Ok(_)) => failures.push(format!(
                "{place}: expected error {sqlstate}, statement succeeded"
            )),
            (Expect::Rows { .. }, Err(e)) => {
                failures.push(format!("{place}: expected rows, got error: {e}"))
            }
            (Expect::Rows { sort, rows }, Ok(output)) => {
                let mut actual: Vec<String> = output
                    .rows
                    .iter()
                    .map(|row| row.iter().map(render).collect::<Vec<_>>().join("|"))
                    .collect();
                let mut expected = rows.clone();
                if *sort {
                    actual.sort();
                    expected.sort();
                }
                if actual != expected {
                    failures.push(format!(
                        "{place}: rows differ\n  sql: {}\n  expected:\n    {}\n  actual:\n    {}",
                        record.sql,
                        expected.join("\n    "),
                        actual.join("\n    ")
                    ));
                }
            }
        }
    }
    (failures, answers)
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .slt files in {dir:?}");
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files_pass() {
    // Proves every SQL-lite construct and every rejection in tests/slt behaves as written.
    let mut failures = Vec::new();
    for path in &slt_files() {
        let executor = Executor::new(Arc::new(LocalCluster::new()), ExecutorOptions::default());
        failures.extend(run_file(path, &executor).await.0);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files_pass_on_grpc_nodes_and_answer_as_local_does() {
    // Proves the coordinator over real nodes (meta group, Raft shard groups, gRPC) answers
    // every golden statement as written, and exactly as over LocalCluster: the same rows (in
    // the same order where the statement fixes one) and the same SQLSTATE for every error.
    // EXPLAIN is compared by outcome only: its per-shard sizes depend on routing.
    let mut failures = Vec::new();
    for path in &slt_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dev = common::start_dev(dir.path()).await;
        let grpc = Executor::new(dev.cluster.clone(), ExecutorOptions::default());
        let (golden, grpc_answers) = run_file(path, &grpc).await;
        failures.extend(golden.into_iter().map(|f| format!("grpc: {f}")));
        let local = Executor::new(Arc::new(LocalCluster::new()), ExecutorOptions::default());
        let (_, local_answers) = run_file(path, &local).await;
        let text = std::fs::read_to_string(path).expect("slt file is readable");
        let records = parse_file(&text);
        assert_eq!(grpc_answers.len(), records.len());
        for ((record, g), l) in records.iter().zip(&grpc_answers).zip(&local_answers) {
            let explain = record
                .sql
                .trim_start()
                .to_uppercase()
                .starts_with("EXPLAIN");
            let sort = matches!(record.expect, Expect::Rows { sort: true, .. });
            let (mut g, mut l) = (g.clone(), l.clone());
            if sort {
                if let (Ok(g), Ok(l)) = (&mut g, &mut l) {
                    g.sort();
                    l.sort();
                }
            }
            let same = if explain {
                g.is_ok() == l.is_ok()
            } else {
                g == l
            };
            if !same {
                failures.push(format!(
                    "{}:{}: grpc and local differ\n  sql: {}\n  grpc: {g:?}\n  local: {l:?}",
                    path.display(),
                    record.line,
                    record.sql
                ));
            }
        }
        dev.shutdown().await;
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
