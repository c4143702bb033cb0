//! `GrpcCluster` faults: a shard that cannot answer fails the statement with an error that
//! names it (never a partial answer), and readiness follows the groups' leaders.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rhizome_coordinator::cluster::Cluster;
use rhizome_coordinator::executor::{Executor, ExecutorOptions};
use rhizome_coordinator::Error;

/// Deadline of one shard call in this test: short, so a shard without quorum fails fast.
const SHARD_TIMEOUT_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_without_quorum_fails_the_query_naming_it_and_the_cluster_is_not_ready() {
    // Proves: with two of three nodes stopped, a COUNT over a table whose every shard has
    // three replicas fails with a timeout or unavailability naming one of its shards instead
    // of answering a partial count, and is_ready turns false.
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = common::start_dev(dir.path()).await;
    let executor = Executor::new(
        dev.cluster.clone(),
        ExecutorOptions {
            shard_timeout_ms: SHARD_TIMEOUT_MS,
        },
    );
    executor
        .execute("CREATE TABLE t (k INT PRIMARY KEY, v INT) WITH (shards = 3, replicas = 3)")
        .await
        .expect("create");
    let values: Vec<String> = (0..30).map(|i| format!("({i}, {})", i * 2)).collect();
    let inserted = executor
        .execute(&format!("INSERT INTO t VALUES {}", values.join(", ")))
        .await
        .expect("insert");
    assert_eq!(inserted.rows_affected, 30);
    let counted = executor
        .execute("SELECT COUNT(*), SUM(v) FROM t")
        .await
        .expect("count");
    assert_eq!(
        counted.rows[0],
        vec![
            rhizome_core::value::Value::Int(30),
            rhizome_core::value::Value::Int((0..30).map(|i| i * 2).sum())
        ]
    );
    assert!(
        dev.wait_ready(Duration::from_millis(common::DEV_READY_WAIT_MS_MAX))
            .await,
        "every shard of the new table has a leader"
    );

    let nodes = dev.nodes();
    for node in &nodes[1..] {
        node.shutdown().await;
    }
    match executor.execute("SELECT COUNT(*) FROM t").await {
        Err(e @ (Error::Timeout { .. } | Error::Unavailable { .. })) => {
            let message = e.to_string();
            assert!(message.contains("t shard "), "{message}");
        }
        other => panic!("expected a shard fault, got {other:?}"),
    }
    let cluster: Arc<dyn Cluster> = dev.cluster.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cluster.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready without quorum"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dev.shutdown().await;
}
