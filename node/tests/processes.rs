//! Three `rhizome-node` processes on loopback: one is killed with SIGKILL in the middle of a
//! stream of writes and restarted; every acknowledged row must be there exactly once. And a
//! process started with `--join` becomes a member of a running cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rhizome_core::query::{AggState, Aggregate, Condition, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema};
use rhizome_core::value::{DataType, Value};
use rhizome_node::client::Client;
use rhizome_node::network::TcpTransport;
use rhizome_node::types::{NodeId, ShardKey};

/// Bound on any single wait in this test.
const WAIT_MS_MAX: u64 = 60_000;
const BATCHES: i64 = 120;
const ROWS_PER_BATCH: i64 = 25;
const KILL_AT_BATCH: i64 = 40;
const RESTART_AT_BATCH: i64 = 80;

/// Child processes, killed when the test ends however it ends.
struct Processes {
    children: BTreeMap<NodeId, Child>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("bound")
        .port()
}

fn spawn(id: NodeId, peers: &BTreeMap<NodeId, String>, data: &Path) -> Child {
    spawn_with(id, peers, data, &[])
}

fn spawn_with(
    id: NodeId,
    peers: &BTreeMap<NodeId, String>,
    data: &Path,
    extra_args: &[&str],
) -> Child {
    let peer_list: Vec<String> = peers.iter().map(|(id, a)| format!("{id}={a}")).collect();
    let dirs: Vec<PathBuf> = vec![data.join(format!("n{id}-a")), data.join(format!("n{id}-b"))];
    let mut command = Command::new(env!("CARGO_BIN_EXE_rhizome-node"));
    command
        .arg("--id")
        .arg(id.to_string())
        .arg("--listen")
        .arg(&peers[&id])
        .arg("--peers")
        .arg(peer_list.join(","))
        .arg("--snapshot-every")
        .arg("30")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .args(extra_args);
    for dir in dirs {
        command.arg("--data-dir").arg(dir);
    }
    command.spawn().expect("rhizome-node starts")
}

fn schema() -> Schema {
    Schema::new(vec![
        ColumnDef {
            name: "id".into(),
            data_type: DataType::BigInt,
            nullable: false,
        },
        ColumnDef {
            name: "note".into(),
            data_type: DataType::Text { max_chars: None },
            nullable: false,
        },
    ])
    .expect("valid schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_node_restarts_and_every_acknowledged_row_is_there_once() {
    // Proves: with three real processes, SIGKILL of the shard leader during writes and a
    // restart lose no acknowledged row and duplicate none (client retries reuse batch ids),
    // and all three replicas end with the same digest.
    let data = tempfile::tempdir().expect("temp dir");
    let peers: BTreeMap<NodeId, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut processes = Processes {
        children: peers
            .keys()
            .map(|&id| (id, spawn(id, &peers, data.path())))
            .collect(),
    };
    let client = Client::new(21, peers.clone(), Arc::new(TcpTransport::default()));
    let key = ShardKey::new("events", 0);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        match client.initialize(&peers[&1], &peers).await {
            Ok(()) | Err(rhizome_node::Error::AlreadyExists(_)) => break,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "initialize: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    loop {
        match client
            .create_table(&peers[&1], "events", &schema(), 1, 3)
            .await
        {
            Ok(()) => break,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "create table: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    let mut acknowledged = 0u64;
    let mut killed = None;
    for b in 0..BATCHES {
        if b == KILL_AT_BATCH {
            // Kill the leader: the one whose status says so.
            let mut leader = None;
            for addr in peers.values() {
                if let Ok(status) = client.status(addr).await {
                    leader = status
                        .groups
                        .first()
                        .map(|g| g.leader_id)
                        .filter(|&l| l != 0);
                    if leader.is_some() {
                        break;
                    }
                }
            }
            let leader = leader.expect("a leader is known");
            let child = processes.children.get_mut(&leader).expect("child");
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            killed = Some(leader);
        }
        if b == RESTART_AT_BATCH {
            let id = killed.expect("killed before");
            processes
                .children
                .insert(id, spawn(id, &peers, data.path()));
        }
        let rows: Vec<Vec<Value>> = (0..ROWS_PER_BATCH)
            .map(|r| {
                let id = b * ROWS_PER_BATCH + r;
                vec![Value::Int(id), Value::Text(format!("batch {b}"))]
            })
            .collect();
        let outcome = client.insert(&key, &rows).await.expect("acknowledged");
        assert_eq!(outcome.count, ROWS_PER_BATCH as u64);
        acknowledged += outcome.count;
    }
    assert_eq!(acknowledged, (BATCHES * ROWS_PER_BATCH) as u64);

    let (records, live) = client.count(&key).await.expect("count");
    assert_eq!((records, live), (acknowledged, acknowledged));
    let partial = client
        .query(
            &key,
            &ShardQuery {
                filter: Condition::True,
                group_by: vec![],
                aggregates: vec![Aggregate::CountDistinct("id".into())],
            },
        )
        .await
        .expect("query");
    match &partial.groups.values().next().expect("one group")[0] {
        AggState::Distinct(ids) => assert_eq!(ids.len() as u64, acknowledged),
        other => panic!("unexpected {other:?}"),
    }

    // All replicas, the restarted one included, converge on the same state.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        let mut digests = Vec::new();
        for addr in peers.values() {
            if let Ok(d) = client.digest(addr, &key).await {
                digests.push((d.digest, d.record_count));
            }
        }
        if digests.len() == 3 && digests.windows(2).all(|w| w[0] == w[1]) {
            assert_eq!(digests[0].1, acknowledged);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas did not converge: {digests:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(processes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_started_with_join_becomes_a_member_and_gets_replicas() {
    // Proves: a `rhizome-node --join ADDR` process, told of no peer but itself, is listed in
    // the metadata of a running two-node cluster, and a table that asked for 3 replicas on 2
    // nodes grows onto it: every shard is placed on all three, and the new replica reaches
    // the others' digest with the rows written before it joined.
    let data = tempfile::tempdir().expect("temp dir");
    let peers: BTreeMap<NodeId, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let first_two: BTreeMap<NodeId, String> = peers
        .iter()
        .filter(|(&id, _)| id <= 2)
        .map(|(&id, addr)| (id, addr.clone()))
        .collect();
    let mut processes = Processes {
        children: first_two
            .keys()
            .map(|&id| (id, spawn(id, &first_two, data.path())))
            .collect(),
    };
    let client = Client::new(22, first_two.clone(), Arc::new(TcpTransport::default()));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        match client.initialize(&peers[&1], &first_two).await {
            Ok(()) | Err(rhizome_node::Error::AlreadyExists(_)) => break,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "initialize: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    loop {
        match client
            .create_table(&peers[&1], "grow", &schema(), 2, 3)
            .await
        {
            Ok(()) => break,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "create table: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let keys = [ShardKey::new("grow", 0), ShardKey::new("grow", 1)];
    for (s, key) in keys.iter().enumerate() {
        let rows: Vec<Vec<Value>> = (0..20)
            .map(|r| vec![Value::Int(s as i64 * 100 + r), Value::Text("before".into())])
            .collect();
        client.insert(key, &rows).await.expect("acknowledged");
    }

    let only_itself: BTreeMap<NodeId, String> = BTreeMap::from([(3, peers[&3].clone())]);
    let join_at = peers[&1].clone();
    processes.children.insert(
        3,
        spawn_with(3, &only_itself, data.path(), &["--join", join_at.as_str()]),
    );

    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        let grown = match client.metadata().await {
            Ok((metadata, _)) => {
                metadata.nodes == peers
                    && metadata.tables["grow"]
                        .placement
                        .iter()
                        .all(|owners| owners.len() == 3)
            }
            Err(_) => false,
        };
        if grown {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 3 did not join with its replicas"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(client.nodes(), peers, "the client learnt node 3");
    for key in &keys {
        loop {
            let mut digests = Vec::new();
            for addr in peers.values() {
                if let Ok(d) = client.digest(addr, key).await {
                    digests.push((d.digest, d.record_count));
                }
            }
            if digests.len() == 3 && digests.windows(2).all(|w| w[0] == w[1]) {
                assert_eq!(digests[0].1, 20);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{key}: replicas did not converge: {digests:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(processes);
}
