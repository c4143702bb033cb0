//! Executor behaviour beyond single statements: shard faults, idempotent batches, routing,
//! EXPLAIN, and the columns a statement describes.

use std::sync::Arc;

use rhizome_coordinator::cluster::{BatchId, Cluster};
use rhizome_coordinator::executor::{Executor, ExecutorOptions};
use rhizome_coordinator::local::LocalCluster;
use rhizome_coordinator::Error;
use rhizome_core::value::{DataType, Value};

async fn setup() -> (Arc<LocalCluster>, Executor) {
    let cluster = Arc::new(LocalCluster::new());
    let executor = Executor::new(cluster.clone(), ExecutorOptions::default());
    executor
        .execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT) WITH (shards = 4)")
        .await
        .expect("create");
    let values: Vec<String> = (0..100).map(|i| format!("({i}, {})", i % 7)).collect();
    let output = executor
        .execute(&format!("INSERT INTO t VALUES {}", values.join(", ")))
        .await
        .expect("insert");
    assert_eq!(output.rows_affected, 100);
    (cluster, executor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shard_fails_the_whole_statement_naming_it() {
    // Proves a query never answers a partial count: one failing shard fails it, by name.
    let (cluster, executor) = setup().await;
    cluster.set_shard_failing("t", 2, true);
    for sql in [
        "SELECT COUNT(*) FROM t",
        "SELECT id FROM t WHERE v = 1 LIMIT 5",
        "EXPLAIN SELECT COUNT(*) FROM t",
    ] {
        match executor.execute(sql).await {
            Err(e @ Error::Unavailable { .. }) => {
                assert!(e.to_string().contains("t shard 2"), "{sql}: {e}")
            }
            other => panic!("{sql}: expected Unavailable, got {other:?}"),
        }
    }
    // A rejected INSERT is validated before anything is sent; one that reaches a failing
    // shard fails naming it (rows for other shards may have been applied: no cross-shard
    // transactions yet), and so does a DELETE.
    for sql in ["INSERT INTO t SELECT 1", "INSERT INTO t VALUES (1, 'x')"] {
        assert!(executor.execute(sql).await.is_err());
    }
    for sql in [
        "INSERT INTO t VALUES (1000, 1), (1001, 1), (1002, 1), (1003, 1), (1004, 1), (1005, 1)",
        "DELETE FROM t WHERE v = 1",
    ] {
        match executor.execute(sql).await {
            Err(e @ Error::Unavailable { .. }) => {
                assert!(e.to_string().contains("t shard 2"), "{sql}: {e}")
            }
            other => panic!("{sql}: expected Unavailable, got {other:?}"),
        }
    }
    cluster.set_shard_failing("t", 2, false);
    let output = executor
        .execute("SELECT COUNT(*) FROM t WHERE v <> 1")
        .await
        .expect("count");
    assert_eq!(output.rows, vec![vec![Value::Int(85)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_applied_once() {
    // Proves the batch id makes a resent insert idempotent.
    let (cluster, executor) = setup().await;
    let batch = BatchId {
        coordinator: 7,
        sequence: 1,
    };
    let rows = vec![vec![Value::Int(1000), Value::Int(1)]];
    assert_eq!(
        cluster
            .insert("t", 0, batch, rows.clone())
            .await
            .expect("first"),
        1
    );
    assert_eq!(cluster.insert("t", 0, batch, rows).await.expect("retry"), 1);
    let output = executor
        .execute("SELECT COUNT(*) FROM t WHERE id = 1000")
        .await
        .expect("count");
    assert_eq!(output.rows, vec![vec![Value::Int(1)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_one_key_land_on_one_shard() {
    // Proves routing by primary key: the same key always goes to the same shard, and keys
    // spread over all shards.
    let (cluster, executor) = setup().await;
    executor
        .execute("INSERT INTO t VALUES (5, 100), (5, 101)")
        .await
        .expect("insert");
    let mut shards_with_key = 0;
    let mut shards_used = 0;
    for shard in 0..4 {
        let rows = cluster
            .read(
                "t",
                shard,
                rhizome_coordinator::cluster::ReadRequest {
                    filter: rhizome_core::query::Condition::eq("id", Value::Int(5)),
                    columns: vec![1],
                    order_by: Vec::new(),
                    limit: 10,
                },
            )
            .await
            .expect("read");
        if !rows.is_empty() {
            shards_with_key += 1;
            assert_eq!(rows.len(), 3);
        }
        if cluster.stats("t", shard).await.expect("stats").live_records > 0 {
            shards_used += 1;
        }
    }
    assert_eq!(shards_with_key, 1);
    assert_eq!(shards_used, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_shard_query_merge_and_estimates() {
    // Proves EXPLAIN names the shard query, the merge steps, per-shard match counts and
    // per-shard plans.
    let (_, executor) = setup().await;
    let output = executor
        .execute("EXPLAIN SELECT v, COUNT(*) FROM t WHERE v IN (1, 2) GROUP BY v HAVING COUNT(*) > 1 ORDER BY 2 DESC LIMIT 1")
        .await
        .expect("explain");
    let text: Vec<String> = output.rows.iter().map(|r| r[0].render()).collect();
    let text = text.join("\n");
    for expected in [
        "Gather from 4 shards of t",
        "filter: v IN (1, 2)",
        "group by: v",
        "aggregates: COUNT(*)",
        "Merge: partials exactly",
        "Having: COUNT(*) > 1",
        "Order by: #2 DESC",
        "Limit: 1",
        "shard 0:",
        "shard 3:",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // The per-shard matching counts add up to the rows with v in (1, 2): 15 + 14.
    let matching: u64 = text
        .lines()
        .filter_map(|l| l.split(" live records, ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(matching, 29);
    // Every shard shows its own plan: the leaf with its exact size there, which adds up to
    // the same 29 records.
    assert!(text.contains("Cache Rhizomes used: none"), "{text}");
    let leaves: Vec<u64> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("v: 2 value(s), "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
        .collect();
    assert_eq!(leaves.len(), 4, "one plan per shard in\n{text}");
    assert_eq!(leaves.iter().sum::<u64>(), 29);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_gives_names_and_types_without_running() {
    // Proves the result columns of a SELECT are known from the plan (pg Describe).
    let (_, executor) = setup().await;
    let columns = executor
        .describe("SELECT v AS value, COUNT(*), SUM(v), AVG(v) FROM t GROUP BY v")
        .await
        .expect("describe");
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["value", "count", "sum", "avg"]);
    let types: Vec<DataType> = columns.iter().map(|c| c.data_type).collect();
    assert_eq!(
        types,
        [
            DataType::Int,
            DataType::BigInt,
            DataType::BigInt,
            DataType::Double
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shard_times_out_naming_it() {
    // Proves the per-shard deadline: a shard slower than it fails the query as a timeout
    // (HTTP 504, SQLSTATE 57014) naming the shard, and the next query is answered in full.
    let cluster = Arc::new(LocalCluster::new());
    let executor = Executor::new(
        cluster.clone(),
        ExecutorOptions {
            shard_timeout_ms: 100,
        },
    );
    executor
        .execute("CREATE TABLE t (id BIGINT) WITH (shards = 3)")
        .await
        .expect("create");
    executor
        .execute("INSERT INTO t VALUES (1), (2), (3)")
        .await
        .expect("insert");
    cluster.set_shard_delay("t", 1, std::time::Duration::from_millis(2_000));
    let started = std::time::Instant::now();
    let error = executor
        .execute("SELECT COUNT(*) FROM t")
        .await
        .expect_err("timeout");
    assert!(started.elapsed() < std::time::Duration::from_millis(1_500));
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
    assert!(error.to_string().contains("t shard 1"), "{error}");
    let status = rhizome_coordinator::status::status_of(&error);
    assert_eq!((status.http, status.sqlstate), (504, "57014"));
    cluster.set_shard_delay("t", 1, std::time::Duration::ZERO);
    let output = executor
        .execute("SELECT COUNT(*) FROM t")
        .await
        .expect("count");
    assert_eq!(output.rows, vec![vec![Value::Int(3)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers_lose_nothing() {
    // Proves parallel INSERTs, UPDATEs and queries through one executor keep every row: the
    // final count and sum equal what the writers wrote, and no read sees a half-applied
    // UPDATE (UPDATE holds the write lock; reads see whole batches per shard).
    let cluster = Arc::new(LocalCluster::new());
    let executor = Arc::new(Executor::new(cluster, ExecutorOptions::default()));
    executor
        .execute("CREATE TABLE c (id BIGINT PRIMARY KEY, writer INT, v INT) WITH (shards = 4)")
        .await
        .expect("create");
    const WRITERS: i64 = 4;
    const BATCHES: i64 = 20;
    const ROWS: i64 = 25;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let executor = executor.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..BATCHES {
                let values: Vec<String> = (0..ROWS)
                    .map(|r| {
                        let id = (writer * BATCHES + batch) * ROWS + r;
                        format!("({id}, {writer}, 1)")
                    })
                    .collect();
                executor
                    .execute(&format!("INSERT INTO c VALUES {}", values.join(", ")))
                    .await
                    .expect("insert");
                if batch % 5 == 4 {
                    executor
                        .execute(&format!(
                            "UPDATE c SET v = 2 WHERE writer = {writer} AND v = 1"
                        ))
                        .await
                        .expect("update");
                }
            }
        }));
    }
    let reader = {
        let executor = executor.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..50 {
                let output = executor
                    .execute("SELECT COUNT(*) FROM c")
                    .await
                    .expect("count");
                let Value::Int(n) = output.rows[0][0] else {
                    panic!("count is an integer")
                };
                assert!(n >= last, "count went back from {last} to {n}");
                last = n;
                tokio::task::yield_now().await;
            }
        })
    };
    for task in tasks {
        task.await.expect("writer");
    }
    reader.await.expect("reader");
    let output = executor
        .execute("SELECT COUNT(*), COUNT(DISTINCT id), SUM(v) FROM c")
        .await
        .expect("totals");
    let rows = WRITERS * BATCHES * ROWS;
    assert_eq!(
        output.rows,
        vec![vec![
            Value::Int(rows),
            Value::Int(rows),
            Value::Int(2 * rows)
        ]]
    );
}
