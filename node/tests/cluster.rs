//! In-process clusters of three nodes over loopback gRPC: elections, failover, restarts,
//! catch-up through snapshots, several shard groups, and error answers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rhizome_core::batch::ColumnBatch;
use rhizome_core::query::CompareOp;
use rhizome_core::query::{AggState, Aggregate, Condition, ShardQuery};
use rhizome_core::shard::{ColumnDef, Schema};
use rhizome_core::value::{DataType, Value};
use rhizome_node::app::{serve_tcp, Node, NodeConfig, RaftSettings};
use rhizome_node::client::Client;
use rhizome_node::network::{TcpTransport, Transport};
use rhizome_node::types::{NodeId, ShardKey};
use rhizome_node::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on any single wait in these tests.
const WAIT_MS_MAX: u64 = 30_000;

struct Running {
    node: Arc<Node>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<rhizome_node::Result<()>>,
}

struct Cluster {
    _dir: tempfile::TempDir,
    peers: BTreeMap<NodeId, String>,
    dirs: BTreeMap<NodeId, Vec<PathBuf>>,
    settings: RaftSettings,
    running: BTreeMap<NodeId, Running>,
    transport: Arc<dyn Transport>,
}

fn schema() -> Schema {
    Schema::new(vec![
        ColumnDef {
            name: "id".into(),
            data_type: DataType::BigInt,
            nullable: false,
        },
        ColumnDef {
            name: "name".into(),
            data_type: DataType::Text { max_chars: None },
            nullable: true,
        },
    ])
    .expect("valid schema")
}

fn rows(first: i64, count: i64) -> Vec<Vec<Value>> {
    (first..first + count)
        .map(|i| vec![Value::Int(i), Value::Text(format!("row-{}", i % 7))])
        .collect()
}

fn fast_settings() -> RaftSettings {
    RaftSettings {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        ..RaftSettings::default()
    }
}

impl Cluster {
    async fn start(size: u64, settings: RaftSettings) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for id in 1..=size {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            peers.insert(id, listener.local_addr().expect("bound").to_string());
            listeners.insert(id, listener);
            // Two spindles per node.
            dirs.insert(
                id,
                vec![
                    dir.path().join(format!("n{id}-a")),
                    dir.path().join(format!("n{id}-b")),
                ],
            );
        }
        let mut cluster = Cluster {
            _dir: dir,
            peers,
            dirs,
            settings,
            running: BTreeMap::new(),
            transport: Arc::new(TcpTransport::default()),
        };
        for (id, listener) in listeners {
            cluster.run(id, listener).await;
        }
        cluster
            .client(0)
            .initialize(&cluster.peers[&1], &cluster.peers)
            .await
            .expect("the meta group initialises");
        cluster
    }

    async fn run(&mut self, id: NodeId, listener: tokio::net::TcpListener) {
        let config = NodeConfig {
            id,
            addr: self.peers[&id].clone(),
            data_dirs: self.dirs[&id].clone(),
            peers: self.peers.clone(),
            raft: self.settings.clone(),
            // Each node its own transport, as separate processes would have.
            transport: Arc::new(TcpTransport::default()),
        };
        let node = Node::start(config).await.expect("node starts");
        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(serve_tcp(node.clone(), listener, async {
            let _ = stopped.await;
        }));
        self.running.insert(id, Running { node, stop, server });
    }

    /// Stop a node: its server and every Raft group. Its files stay.
    async fn kill(&mut self, id: NodeId) {
        let running = self.running.remove(&id).expect("node is running");
        let _ = running.stop.send(());
        running.node.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), running.server).await;
    }

    async fn restart(&mut self, id: NodeId) {
        let addr = self.peers[&id].clone();
        let mut attempts = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(listener) => break listener,
                Err(e) => {
                    attempts += 1;
                    assert!(attempts < 100, "cannot rebind {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.run(id, listener).await;
    }

    fn client(&self, client_id: u64) -> Client {
        Client::new(client_id, self.peers.clone(), self.transport.clone())
    }

    fn node(&self, id: NodeId) -> &Arc<Node> {
        &self.running[&id].node
    }

    /// The leader of a shard, once the running replicas agree on one that is running.
    async fn leader(&self, key: &ShardKey) -> NodeId {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            for running in self.running.values() {
                if let Ok(group) = running.node.group(key) {
                    let metrics = group.raft.metrics().borrow().clone();
                    if metrics.current_leader == Some(running.node.id())
                        && metrics.state == openraft::ServerState::Leader
                    {
                        return running.node.id();
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader for {key}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until every running replica of `key` has applied the same index with the same
    /// digest; returns (digest, record count).
    async fn converged(&self, key: &ShardKey, replicas: usize) -> (u64, u64) {
        let all: Vec<NodeId> = self.running.keys().copied().collect();
        self.converged_on(key, &all, replicas).await
    }

    /// [`Cluster::converged`] over some nodes only.
    async fn converged_on(&self, key: &ShardKey, nodes: &[NodeId], replicas: usize) -> (u64, u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            let mut seen = Vec::new();
            for running in self
                .running
                .values()
                .filter(|r| nodes.contains(&r.node.id()))
            {
                if let Ok(group) = running.node.group(key) {
                    let state = group.state.read();
                    seen.push((
                        state.last_applied.map(|l| l.index),
                        state.store.digest(),
                        state.store.record_count(),
                    ));
                }
            }
            if seen.len() == replicas && seen.windows(2).all(|w| w[0] == w[1]) {
                return (seen[0].1, seen[0].2);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replicas of {key} did not converge: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.running.keys().copied().collect();
        for id in ids {
            self.kill(id).await;
        }
    }
}

async fn insert_batches(client: &Client, key: &ShardKey, from: i64, batches: i64, per_batch: i64) {
    for b in 0..batches {
        let outcome = client
            .insert(key, &rows(from + b * per_batch, per_batch))
            .await
            .expect("insert acknowledged");
        // `duplicate` may be true: an attempt that failed from the client's side (leader
        // gone mid-request) can have been applied, and its retry is then recognised.
        assert_eq!(outcome.count, per_batch as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_survive_leader_kill_and_old_leader_catches_up() {
    // Proves: a 3-replica shard keeps taking writes after its leader is killed (new election),
    // the restarted old leader catches up, every acknowledged row is there once, a retried
    // batch id changes nothing, and all replicas end with equal digests.
    let mut cluster = Cluster::start(3, fast_settings()).await;
    let client = cluster.client(7);
    let key = ShardKey::new("t", 0);
    client
        .create_table(&cluster.peers[&1], "t", &schema(), 1, 3)
        .await
        .expect("create table");
    insert_batches(&client, &key, 0, 20, 10).await;

    let old_leader = cluster.leader(&key).await;
    cluster.kill(old_leader).await;
    insert_batches(&client, &key, 200, 20, 10).await;
    let new_leader = cluster.leader(&key).await;
    assert_ne!(new_leader, old_leader);

    // A retry of an acknowledged batch (same id) is answered as a duplicate and changes nothing.
    let batch = client.next_batch();
    let encoded = bytes::Bytes::from(bincode::serialize(&rows(400, 5)).expect("encode"));
    let first = client
        .insert_encoded(&key, batch, encoded.clone())
        .await
        .expect("insert");
    let again = client
        .insert_encoded(&key, batch, encoded)
        .await
        .expect("retry");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!((again.first_id, again.count), (first.first_id, first.count));

    cluster.restart(old_leader).await;
    insert_batches(&client, &key, 500, 5, 10).await;
    let (_, records) = cluster.converged(&key, 3).await;
    assert_eq!(records, 200 + 200 + 5 + 50);

    let (record_count, live_count) = client.count(&key).await.expect("count");
    assert_eq!((record_count, live_count), (455, 455));
    let query = ShardQuery {
        filter: Condition::True,
        group_by: vec![],
        aggregates: vec![
            Aggregate::Sum("id".into()),
            Aggregate::CountDistinct("id".into()),
        ],
    };
    let partial = client.query(&key, &query).await.expect("query");
    let expected_sum: i64 =
        (0..400).sum::<i64>() + (400..405).sum::<i64>() + (500..550).sum::<i64>();
    let states = partial.groups.values().next().expect("one group").clone();
    assert_eq!(
        states[0],
        AggState::SumInt {
            sum: i128::from(expected_sum),
            count: 455
        }
    );
    match &states[1] {
        AggState::Distinct(ids) => assert_eq!(ids.len(), 455),
        other => panic!("unexpected state {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_follower_catches_up_through_a_snapshot_after_the_log_was_purged() {
    // Proves: with frequent snapshots and no log kept behind them, a follower that was down
    // while the leader purged its log is brought back by InstallSnapshot (segment files in
    // chunks), then by the log, and ends with the leader's digest; a delete applied after
    // that removes the same records on every replica.
    let settings = RaftSettings {
        snapshot_logs_since_last: 20,
        logs_kept_behind_snapshot: 0,
        // Small chunks, so a snapshot travels in several messages.
        snapshot_chunk_bytes: 4 << 10,
        ..fast_settings()
    };
    let mut cluster = Cluster::start(3, settings).await;
    let client = cluster.client(8);
    let key = ShardKey::new("t", 0);
    client
        .create_table(&cluster.peers[&2], "t", &schema(), 1, 3)
        .await
        .expect("create table");
    insert_batches(&client, &key, 0, 10, 10).await;
    let leader = cluster.leader(&key).await;
    let follower = *cluster
        .peers
        .keys()
        .find(|&&id| id != leader)
        .expect("a follower");
    cluster.converged(&key, 3).await;
    let follower_last_index = cluster
        .node(follower)
        .group(&key)
        .expect("hosted")
        .state
        .read()
        .last_applied
        .expect("applied")
        .index;
    cluster.kill(follower).await;

    insert_batches(&client, &key, 1_000, 60, 10).await;
    let purged = {
        let group = cluster.node(leader).group(&key).expect("hosted");
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            let purged = group.raft.metrics().borrow().purged.map_or(0, |p| p.index);
            if purged > follower_last_index + 1 {
                break purged;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "leader never purged"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(purged > follower_last_index + 1);

    cluster.restart(follower).await;
    let (_, records) = cluster.converged(&key, 3).await;
    assert_eq!(records, 700);
    let snapshot = cluster
        .node(follower)
        .group(&key)
        .expect("hosted")
        .raft
        .metrics()
        .borrow()
        .snapshot;
    assert!(
        snapshot.is_some_and(|s| s.index > follower_last_index),
        "the follower installed a snapshot past where it stopped: {snapshot:?}"
    );

    let deleted = client
        .delete(
            &key,
            &Condition::compare("id", CompareOp::Lt, Value::Int(50)),
        )
        .await
        .expect("delete");
    assert_eq!(deleted.count, 50);
    cluster.converged(&key, 3).await;
    assert_eq!(client.count(&key).await.expect("count"), (700, 650));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_cluster_restart_recovers_from_segments_and_log() {
    // Proves: after every node stops, restarting them recovers each replica from its last
    // snapshot's segment files plus its log: nothing acknowledged is lost, digests agree,
    // and the shard takes writes again.
    let settings = RaftSettings {
        snapshot_logs_since_last: 15,
        ..fast_settings()
    };
    let mut cluster = Cluster::start(3, settings).await;
    let client = cluster.client(9);
    let key = ShardKey::new("t", 0);
    client
        .create_table(&cluster.peers[&3], "t", &schema(), 1, 3)
        .await
        .expect("create table");
    insert_batches(&client, &key, 0, 40, 5).await;
    let (digest_before, records) = cluster.converged(&key, 3).await;
    assert_eq!(records, 200);
    for id in [1, 2, 3] {
        cluster.kill(id).await;
    }
    for id in [1, 2, 3] {
        cluster.restart(id).await;
    }
    let (digest_after, records) = cluster.converged(&key, 3).await;
    assert_eq!((digest_after, records), (digest_before, 200));
    let client = cluster.client(10);
    insert_batches(&client, &key, 1_000, 2, 5).await;
    assert_eq!(client.count(&key).await.expect("count"), (210, 210));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_of_several_shards_is_placed_and_each_group_replicates() {
    // Proves: a table of 6 shards with 2 replicas on 3 nodes gets its groups placed by the
    // hash ring (each shard on exactly 2 nodes, every node used), each group elects a leader
    // and replicates its own writes, and the replicas of every shard end with equal digests.
    let mut cluster = Cluster::start(3, fast_settings()).await;
    let client = cluster.client(11);
    client
        .create_table(&cluster.peers[&1], "multi", &schema(), 6, 2)
        .await
        .expect("create table");
    let mut used = std::collections::BTreeSet::new();
    for shard in 0..6 {
        let key = ShardKey::new("multi", shard);
        let hosts: Vec<NodeId> = cluster
            .running
            .values()
            .filter(|r| r.node.group(&key).is_ok())
            .map(|r| r.node.id())
            .collect();
        assert_eq!(hosts.len(), 2, "shard {shard} on {hosts:?}");
        used.extend(hosts);
        insert_batches(&client, &key, i64::from(shard) * 1_000, 3, 4).await;
    }
    assert_eq!(used.len(), 3);
    for shard in 0..6 {
        let key = ShardKey::new("multi", shard);
        let (_, records) = cluster.converged(&key, 2).await;
        assert_eq!(records, 12);
    }
    // Restarting a node does not lose its groups: it reopens them from disk.
    cluster.kill(2).await;
    cluster.restart(2).await;
    let hosted = cluster.node(2).groups().len();
    assert!(hosted > 0, "node 2 hosts groups after a restart");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_not_found_or_invalid_argument_with_a_message() {
    // Proves: an unknown shard is NotFound, rows that do not fit the schema and undecodable
    // payloads are InvalidArgument naming the problem, and none of them changes the shard.
    let cluster = Cluster::start(3, fast_settings()).await;
    let client = cluster.client(12);
    let key = ShardKey::new("t", 0);
    client
        .create_table(&cluster.peers[&1], "t", &schema(), 1, 3)
        .await
        .expect("create table");
    insert_batches(&client, &key, 0, 1, 3).await;

    match client.insert(&ShardKey::new("nope", 0), &rows(0, 1)).await {
        Err(Error::NotFound(message)) => {
            assert!(message.contains("nope/0"), "{message}")
        }
        other => panic!("unknown table: {other:?}"),
    }
    let leader = cluster.leader(&key).await;
    let addr = cluster.peers[&leader].clone();
    let channel = cluster.transport.channel(&addr).expect("channel");
    let mut raw = proto::v1::shard_write_client::ShardWriteClient::new(channel);
    let status = raw
        .insert(proto::v1::InsertRequest {
            shard: Some(proto::v1::ShardRef {
                table: "nope".into(),
                shard: 0,
            }),
            batch: Some(proto::v1::BatchId {
                client: 1,
                sequence: 1,
            }),
            rows_bincode: vec![1, 2, 3],
            columns: vec![],
        })
        .await
        .expect_err("unknown table");
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert!(status.message().contains("nope/0"), "{}", status.message());

    let mut bad_shard = proto::v1::InsertRequest {
        shard: Some(proto::v1::ShardRef {
            table: "t".into(),
            shard: 0,
        }),
        batch: Some(proto::v1::BatchId {
            client: 1,
            sequence: 1,
        }),
        rows_bincode: vec![1, 2, 3],
        columns: vec![],
    };
    let status = raw
        .insert(bad_shard.clone())
        .await
        .expect_err("garbage rows");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("decode"), "{}", status.message());

    // Rows by column: garbage, both forms at once, and a batch built for another schema are
    // each refused whole, naming the problem.
    let mut columns = bad_shard.clone();
    columns.rows_bincode.clear();
    columns.columns = vec![1, 2, 3];
    let status = raw
        .insert(columns.clone())
        .await
        .expect_err("garbage columns");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("decode"), "{}", status.message());
    columns.rows_bincode = vec![1];
    let status = raw
        .insert(columns.clone())
        .await
        .expect_err("rows and columns");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let other_schema = Schema::new(vec![
        ColumnDef {
            name: "a".into(),
            data_type: DataType::Text { max_chars: None },
            nullable: true,
        },
        ColumnDef {
            name: "b".into(),
            data_type: DataType::BigInt,
            nullable: true,
        },
    ])
    .expect("schema");
    columns.rows_bincode.clear();
    columns.columns = ColumnBatch::from_rows(
        &other_schema,
        &[vec![Value::Text("x".into()), Value::Int(1)]],
    )
    .expect("a batch of the other schema")
    .encode();
    let status = raw
        .insert(columns)
        .await
        .expect_err("columns of another schema");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("column"), "{}", status.message());

    bad_shard.shard = Some(proto::v1::ShardRef {
        table: "../etc".into(),
        shard: 0,
    });
    let status = raw.insert(bad_shard).await.expect_err("bad table name");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    match client
        .insert(&key, &[vec![Value::Text("x".into()), Value::Null]])
        .await
    {
        Err(Error::InvalidArgument(message)) => {
            assert!(message.contains("row 0"), "{message}")
        }
        other => panic!("bad row: {other:?}"),
    }
    assert_eq!(client.count(&key).await.expect("count"), (3, 3));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_a_shard_to_a_new_node_keeps_writes_and_reads_working() {
    // Proves: changing a shard's replicas (new node added as a learner, caught up, promoted;
    // the old leader removed) while a writer keeps writing loses no acknowledged write, the
    // voters end as asked, and the new replica set converges on equal digests.
    let cluster = Cluster::start(4, fast_settings()).await;
    let client = Arc::new(cluster.client(13));
    let key = ShardKey::new("mv", 0);
    client
        .create_table(&cluster.peers[&1], "mv", &schema(), 1, 3)
        .await
        .expect("create table");
    insert_batches(&client, &key, 0, 10, 10).await;
    let hosts: Vec<NodeId> = cluster
        .running
        .values()
        .filter(|r| r.node.group(&key).is_ok())
        .map(|r| r.node.id())
        .collect();
    assert_eq!(hosts.len(), 3);
    let newcomer = *cluster
        .peers
        .keys()
        .find(|id| !hosts.contains(id))
        .expect("a fourth node");
    let leader = cluster.leader(&key).await;
    let target: BTreeMap<NodeId, String> = hosts
        .iter()
        .filter(|&&id| id != leader)
        .chain(std::iter::once(&newcomer))
        .map(|&id| (id, cluster.peers[&id].clone()))
        .collect();

    let writer = {
        let client = client.clone();
        let key = key.clone();
        tokio::spawn(async move {
            insert_batches(&client, &key, 10_000, 40, 10).await;
        })
    };
    let voters = client
        .change_replicas(&key, &target)
        .await
        .expect("change replicas");
    assert_eq!(voters, target.keys().copied().collect::<Vec<_>>());
    writer.await.expect("writer acknowledged every batch");

    let members: Vec<NodeId> = target.keys().copied().collect();
    let (_, records) = cluster.converged_on(&key, &members, 3).await;
    assert_eq!(records, 100 + 400);
    assert_eq!(client.count(&key).await.expect("count"), (500, 500));
    let new_leader = cluster.leader(&key).await;
    assert!(
        members.contains(&new_leader),
        "leader {new_leader} is a member"
    );
    let membership = cluster
        .node(new_leader)
        .group(&key)
        .expect("hosted")
        .raft
        .metrics()
        .borrow()
        .membership_config
        .clone();
    let voter_ids: Vec<NodeId> = membership.membership().voter_ids().collect();
    assert_eq!(voter_ids, members);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meta_group_records_tables_survives_a_full_restart_and_answers_errors() {
    // Proves: CreateTable through a node records the table (schema, key, shard map placed on
    // the ring) in the meta group and opens each shard group on exactly the nodes of its
    // placement; a second creation of the name is ALREADY_EXISTS; after every node is
    // stopped and restarted the metadata, the groups and the rows are all back; DropTable
    // removes the table, its groups and their files, and a second drop is NOT_FOUND.
    // Snapshots every few entries, so the restart also reads the meta group's SNAPSHOT.
    let settings = RaftSettings {
        snapshot_logs_since_last: 3,
        ..fast_settings()
    };
    let mut cluster = Cluster::start(3, settings).await;
    let client = cluster.client(11);
    let key_columns = vec!["id".to_string()];
    client
        .create_table_with_key(&cluster.peers[&2], "m", &schema(), &key_columns, 4, 2)
        .await
        .expect("create table");
    let (before, _) = client.metadata().await.expect("metadata");
    assert_eq!(before.nodes, cluster.peers);
    let table = &before.tables["m"];
    assert_eq!(
        (table.shards, table.replicas, &table.primary_key),
        (4, 2, &key_columns)
    );
    assert_eq!(table.schema, schema());
    for (shard, owners) in table.placement.iter().enumerate() {
        let key = ShardKey::new("m", shard as u32);
        assert_eq!(
            owners,
            &rhizome_node::placement::replicas(&key, &[1, 2, 3], 2)
        );
    }
    match client
        .create_table_with_key(&cluster.peers[&3], "m", &schema(), &[], 1, 1)
        .await
    {
        Err(Error::AlreadyExists(message)) => assert!(message.contains('m'), "{message}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    match client
        .create_table_with_key(&cluster.peers[&1], "bad", &schema(), &["nope".into()], 1, 1)
        .await
    {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("nope"), "{message}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    for shard in 0..4 {
        let key = ShardKey::new("m", shard);
        insert_batches(&client, &key, i64::from(shard) * 100, 2, 10).await;
    }

    let ids: Vec<NodeId> = cluster.peers.keys().copied().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    while !ids.iter().any(|id| {
        cluster.dirs[id][0]
            .join(rhizome_node::meta::META_DIR)
            .join(rhizome_node::meta::SNAPSHOT_FILE)
            .exists()
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no meta snapshot was built"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for &id in &ids {
        cluster.kill(id).await;
    }
    for &id in &ids {
        cluster.restart(id).await;
    }
    let (after, _) = client.metadata().await.expect("metadata after restart");
    assert_eq!(after, before);
    for (shard, owners) in after.tables["m"].placement.iter().enumerate() {
        let key = ShardKey::new("m", shard as u32);
        for &id in &ids {
            assert_eq!(
                cluster.node(id).group(&key).is_ok(),
                owners.contains(&id),
                "node {id} hosts {key} iff placed there"
            );
        }
        assert_eq!(client.count(&key).await.expect("count"), (20, 20));
    }

    client.drop_table("m").await.expect("drop table");
    let (dropped, _) = client.metadata().await.expect("metadata after drop");
    assert!(dropped.tables.is_empty());
    for &id in &ids {
        for shard in 0..4 {
            assert!(cluster.node(id).group(&ShardKey::new("m", shard)).is_err());
            for dir in &cluster.dirs[&id] {
                assert!(!dir.join("groups").join(format!("m.{shard}")).exists());
            }
        }
    }
    match client.drop_table("m").await {
        Err(Error::NotFound(message)) => assert!(message.contains('m'), "{message}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    cluster.shutdown().await;
}
