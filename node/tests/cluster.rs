//! In-process clusters of three nodes over loopback gRPC: elections, failover, restarts,
//! catch-up through snapshots, several shard groups, error answers, and nodes joining and
//! leaving while writes go on.

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

    /// Start one more node (the next id), not yet a member of anything: it joins with
    /// `Admin.Join`.
    async fn add_node(&mut self) -> NodeId {
        let id = self.peers.keys().max().copied().unwrap_or(0) + 1;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        self.peers
            .insert(id, listener.local_addr().expect("bound").to_string());
        self.dirs.insert(
            id,
            vec![
                self._dir.path().join(format!("n{id}-a")),
                self._dir.path().join(format!("n{id}-b")),
            ],
        );
        self.run(id, listener).await;
        id
    }

    fn client(&self, client_id: u64) -> Client {
        Client::new(client_id, self.peers.clone(), self.transport.clone())
    }

    fn node(&self, id: NodeId) -> &Arc<Node> {
        &self.running[&id].node
    }

    /// The leader of a shard, once the running replicas agree on one that is running.
    async fn leader(&self, key: &ShardKey) -> NodeId {
        let all: Vec<NodeId> = self.running.keys().copied().collect();
        self.leader_among(key, &all).await
    }

    /// The leader of `key` among `nodes` (the others are not looked at: a leader removed
    /// from the voters leads on until a tick after it applied its removal).
    async fn leader_among(&self, key: &ShardKey, nodes: &[NodeId]) -> NodeId {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            for running in self
                .running
                .values()
                .filter(|r| nodes.contains(&r.node.id()))
            {
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
    // and replicates its own writes, and the replicas of every shard end with equal digests;
    // each node's log cache budget is shared evenly by the groups it hosts.
    let budget = 12 << 20;
    let settings = RaftSettings {
        log_cache_bytes: budget,
        ..fast_settings()
    };
    let mut cluster = Cluster::start(3, settings).await;
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
    let share = |node: &Node| budget / node.groups().len() as u64;
    for running in cluster.running.values() {
        assert_eq!(running.node.log_cache_per_group(), share(&running.node));
    }
    // Restarting a node does not lose its groups: it reopens them from disk.
    cluster.kill(2).await;
    cluster.restart(2).await;
    let hosted = cluster.node(2).groups().len();
    assert!(hosted > 0, "node 2 hosts groups after a restart");
    assert_eq!(
        cluster.node(2).log_cache_per_group(),
        share(cluster.node(2))
    );
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
    // The removed leader steps down a tick after it applied its removal; then a member leads.
    let new_leader = cluster.leader_among(&key, &members).await;
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

/// Bound on a whole join or leave test.
const TEST_MS_MAX: u64 = 240_000;

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(Duration::from_millis(TEST_MS_MAX), test)
        .await
        .expect("the test finished in time");
}

/// A task inserting batches of 5 rows (ids 0, 1, 2, … once each) round-robin over some
/// shards until stopped; every batch must be acknowledged (the client retries through
/// leader changes with the same batch id).
struct Writer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    batches: Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<(u64, i128)>,
}

impl Writer {
    fn start(client: Arc<Client>, keys: Vec<ShardKey>) -> Writer {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let batches = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = {
            let (stop, batches) = (stop.clone(), batches.clone());
            tokio::spawn(async move {
                let (mut next_id, mut count, mut sum) = (0i64, 0u64, 0i128);
                let mut batch = 0usize;
                while !stop.load(Ordering::Acquire) {
                    let key = &keys[batch % keys.len()];
                    let outcome = client
                        .insert(key, &rows(next_id, 5))
                        .await
                        .unwrap_or_else(|e| panic!("batch {batch} to {key}: {e}"));
                    assert_eq!(outcome.count, 5);
                    count += 5;
                    sum += (next_id..next_id + 5).map(i128::from).sum::<i128>();
                    next_id += 5;
                    batch += 1;
                    batches.store(batch as u64, Ordering::Release);
                }
                (count, sum)
            })
        };
        Writer {
            stop,
            batches,
            task,
        }
    }

    fn batches(&self) -> u64 {
        self.batches.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Wait until `more` batches beyond `from` are acknowledged.
    async fn wait_for(&self, from: u64, more: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        while self.batches() < from + more {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the writer stalled at {} batches",
                self.batches()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop and return (rows acknowledged, sum of their ids).
    async fn stop(self) -> (u64, i128) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.task
            .await
            .expect("the writer acknowledged every batch")
    }
}

/// (rows, sum of ids, distinct ids) over shards, by linearizable queries.
async fn totals(client: &Client, keys: &[ShardKey]) -> (u64, i128, usize) {
    let query = ShardQuery {
        filter: Condition::True,
        group_by: vec![],
        aggregates: vec![
            Aggregate::Sum("id".into()),
            Aggregate::CountDistinct("id".into()),
        ],
    };
    let (mut count, mut sum, mut distinct) = (0, 0, 0);
    for key in keys {
        let partial = client.query(key, &query).await.expect("query");
        let Some(states) = partial.groups.values().next() else {
            continue;
        };
        match &states[0] {
            AggState::SumInt { sum: s, count: c } => {
                sum += *s;
                count += *c;
            }
            other => panic!("unexpected sum state {other:?}"),
        }
        match &states[1] {
            AggState::Distinct(ids) => distinct += ids.len(),
            other => panic!("unexpected distinct state {other:?}"),
        }
    }
    (count, sum, distinct)
}

/// The voters of a shard's group, as its leader has them.
async fn voters(cluster: &Cluster, key: &ShardKey) -> Vec<NodeId> {
    let leader = cluster.leader(key).await;
    let metrics = cluster
        .node(leader)
        .group(key)
        .expect("hosted")
        .raft
        .metrics()
        .borrow()
        .clone();
    metrics.membership_config.membership().voter_ids().collect()
}

fn sorted(ids: &[NodeId]) -> Vec<NodeId> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_node_gets_exactly_the_shards_the_ring_moves_while_writes_go_on() {
    // Proves: while a writer inserts into all 8 shards (R=2) of a table, Join of a fourth
    // node lists it and makes it a meta learner, moves exactly the shards whose ring
    // placement over 4 nodes differs from the one over 3 (computed here independently) and
    // records each move; unchanged shards keep their exact voters; node 4 hosts exactly the
    // shards the ring gives it and the replicas moved off host nothing; every acknowledged
    // row is there once (count, sum and distinct ids match the writer's log) and every
    // shard's replicas have equal digests. A client told only of the first three nodes
    // learns the fourth from the metadata.
    bounded(async {
        let mut cluster = Cluster::start(3, fast_settings()).await;
        let client = Arc::new(cluster.client(21));
        client
            .create_table(&cluster.peers[&1], "j", &schema(), 8, 2)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..8).map(|s| ShardKey::new("j", s)).collect();
        let (before, _) = client.metadata().await.expect("metadata");
        let old: Vec<Vec<NodeId>> = before.tables["j"].placement.clone();
        let wanted: Vec<Vec<NodeId>> = keys
            .iter()
            .map(|k| rhizome_node::placement::replicas(k, &[1, 2, 3, 4], 2))
            .collect();
        let changed: Vec<bool> = old
            .iter()
            .zip(&wanted)
            .map(|(o, w)| sorted(o) != sorted(w))
            .collect();
        for (key, o) in keys.iter().zip(&old) {
            assert_eq!(o, &rhizome_node::placement::replicas(key, &[1, 2, 3], 2));
        }
        assert!(
            changed.iter().any(|&c| c) && !changed.iter().all(|&c| c),
            "the ring moves some shards, not all: {changed:?}"
        );

        let writer = Writer::start(client.clone(), keys.clone());
        writer.wait_for(0, 10).await;
        let new = cluster.add_node().await;
        assert_eq!(new, 4);
        let at_join = writer.batches();
        client
            .join(new, &cluster.peers[&new])
            .await
            .expect("node 4 joins");
        let after_join = writer.batches();
        writer.wait_for(after_join, 10).await;
        let (acked_rows, acked_sum) = writer.stop().await;
        assert!(
            after_join > at_join,
            "writes were acknowledged during the join ({at_join} -> {after_join})"
        );

        let (after, _) = client.metadata().await.expect("metadata");
        assert_eq!(after.nodes, cluster.peers);
        assert!(after.leaving.is_empty());
        for (s, key) in keys.iter().enumerate() {
            assert_eq!(after.tables["j"].placement[s], wanted[s], "{key} recorded");
            let voters = voters(&cluster, key).await;
            assert_eq!(voters, sorted(&wanted[s]), "{key} voters");
            if !changed[s] {
                assert_eq!(voters, sorted(&old[s]), "{key} kept its voters");
            }
            for id in 1..=4 {
                assert_eq!(
                    cluster.node(id).group(key).is_ok(),
                    wanted[s].contains(&id),
                    "node {id} hosts {key} iff the ring places it there"
                );
            }
            cluster.converged_on(key, &wanted[s], 2).await;
        }
        assert_eq!(
            totals(&client, &keys).await,
            (acked_rows, acked_sum, acked_rows as usize)
        );

        let meta = cluster.node(1).meta().raft.metrics().borrow().clone();
        let learners: Vec<NodeId> = meta.membership_config.membership().learner_ids().collect();
        assert_eq!(
            learners,
            vec![4],
            "node 4 is a meta learner (3 voters already)"
        );

        let first_three: BTreeMap<NodeId, String> = cluster
            .peers
            .iter()
            .filter(|(&id, _)| id != 4)
            .map(|(&id, addr)| (id, addr.clone()))
            .collect();
        let fresh = Client::new(22, first_three, cluster.transport.clone());
        assert!(!fresh.nodes().contains_key(&4));
        fresh.metadata().await.expect("metadata");
        assert_eq!(fresh.nodes(), cluster.peers);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_asking_for_more_replicas_than_nodes_grows_when_a_node_joins() {
    // Proves: a table created on 2 nodes with replicas=3 is placed on 2, and when a third
    // node joins every shard grows to 3 voters (the request was kept) with its rows on all
    // three; the new node becomes a meta voter (fewer than 3 before); joining again is
    // harmless and moves nothing.
    bounded(async {
        let mut cluster = Cluster::start(2, fast_settings()).await;
        let client = cluster.client(23);
        client
            .create_table(&cluster.peers[&2], "g", &schema(), 3, 3)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..3).map(|s| ShardKey::new("g", s)).collect();
        for (s, key) in keys.iter().enumerate() {
            insert_batches(&client, key, s as i64 * 100, 2, 10).await;
        }
        let (before, _) = client.metadata().await.expect("metadata");
        assert_eq!(before.tables["g"].replicas, 2);
        assert_eq!(before.replicas_requested["g"], 3);

        let new = cluster.add_node().await;
        client.join(new, &cluster.peers[&new]).await.expect("join");
        let (after, _) = client.metadata().await.expect("metadata");
        assert_eq!(after.tables["g"].replicas, 3);
        for (s, key) in keys.iter().enumerate() {
            assert_eq!(sorted(&after.tables["g"].placement[s]), vec![1, 2, 3]);
            assert_eq!(voters(&cluster, key).await, vec![1, 2, 3]);
            let (_, records) = cluster.converged_on(key, &[1, 2, 3], 3).await;
            assert_eq!(records, 20);
        }
        let meta = cluster.node(1).meta().raft.metrics().borrow().clone();
        let meta_voters: Vec<NodeId> = meta.membership_config.membership().voter_ids().collect();
        assert_eq!(meta_voters, vec![1, 2, 3]);

        client
            .join(new, &cluster.peers[&new])
            .await
            .expect("join again");
        let (again, _) = client.metadata().await.expect("metadata");
        assert_eq!(again, after);
        match client.join(new, "127.0.0.1:1").await {
            Err(Error::AlreadyExists(message)) => assert!(message.contains("3"), "{message}"),
            other => panic!("a taken id at another address: {other:?}"),
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaving_node_hands_its_shards_over_while_writes_go_on() {
    // Proves: while a writer inserts into all 8 shards (R=3) of a table on 4 nodes, Leave of
    // the meta group's leader (it runs its own leave) moves every shard off it to the ring's
    // placement
    // over the other three, closes its groups (it hosts none after), takes it off the node
    // list and out of the meta group (which keeps 3 voters); every shard keeps 3 replicas
    // with equal digests and every acknowledged row is there once. Leaving it again, or an
    // unknown node, is NOT_FOUND.
    bounded(async {
        let cluster = Cluster::start(4, fast_settings()).await;
        let client = Arc::new(cluster.client(24));
        client
            .create_table(&cluster.peers[&2], "l", &schema(), 8, 3)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..8).map(|s| ShardKey::new("l", s)).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        let gone = loop {
            let metrics = cluster.node(2).meta().raft.metrics().borrow().clone();
            if let Some(leader) = metrics.current_leader {
                break leader;
            }
            assert!(tokio::time::Instant::now() < deadline, "no meta leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let stay: Vec<NodeId> = (1..=4).filter(|&id| id != gone).collect();
        let hosted_before = cluster.node(gone).groups().len();
        assert!(
            hosted_before > 0,
            "node {gone} hosts shards before it leaves"
        );

        let writer = Writer::start(client.clone(), keys.clone());
        writer.wait_for(0, 10).await;
        let at_leave = writer.batches();
        client.leave(gone).await.expect("the meta leader leaves");
        let after_leave = writer.batches();
        writer.wait_for(after_leave, 10).await;
        let (acked_rows, acked_sum) = writer.stop().await;
        assert!(after_leave > at_leave, "writes went on during the leave");

        assert!(
            cluster.node(gone).groups().is_empty(),
            "node {gone} hosts no shard"
        );
        let (after, _) = client.metadata().await.expect("metadata");
        assert_eq!(after.nodes.keys().copied().collect::<Vec<_>>(), stay);
        assert!(after.leaving.is_empty());
        for (s, key) in keys.iter().enumerate() {
            let wanted = rhizome_node::placement::replicas(key, &stay, 3);
            assert_eq!(after.tables["l"].placement[s], wanted, "{key} recorded");
            assert_eq!(voters(&cluster, key).await, stay, "{key} voters");
            cluster.converged_on(key, &stay, 3).await;
        }
        assert_eq!(
            totals(&client, &keys).await,
            (acked_rows, acked_sum, acked_rows as usize)
        );
        // The others elect a meta leader among themselves (the old one stepped down).
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        let meta = loop {
            let meta = cluster.node(stay[0]).meta().raft.metrics().borrow().clone();
            if meta.current_leader.is_some_and(|l| stay.contains(&l)) {
                break meta;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no new meta leader: {:?}",
                meta.current_leader
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let members: Vec<NodeId> = meta
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        let meta_voters: Vec<NodeId> = meta.membership_config.membership().voter_ids().collect();
        assert_eq!((members, meta_voters), (stay.clone(), stay.clone()));

        for id in [gone, 42] {
            match client.leave(id).await {
                Err(Error::NotFound(message)) => {
                    assert!(message.contains(&format!("node {id}")), "{message}")
                }
                other => panic!("leave of node {id}: {other:?}"),
            }
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaving_an_unknown_node_or_the_last_one_is_refused() {
    // Proves: Leave of a node that is not in the cluster is NOT_FOUND, and of a one-node
    // cluster's only node FAILED_PRECONDITION with a message, both changing nothing.
    bounded(async {
        let cluster = Cluster::start(1, fast_settings()).await;
        let client = cluster.client(25);
        match client.leave(7).await {
            Err(Error::NotFound(message)) => assert!(message.contains("node 7"), "{message}"),
            other => panic!("leave of an unknown node: {other:?}"),
        }
        match client.leave(1).await {
            Err(Error::FailedPrecondition(message)) => {
                assert!(message.contains("last node"), "{message}")
            }
            other => panic!("leave of the last node: {other:?}"),
        }
        let (metadata, _) = client.metadata().await.expect("metadata");
        assert_eq!(metadata.nodes, cluster.peers);
        assert!(metadata.leaving.is_empty());
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_cut_short_is_finished_by_joining_again() {
    // Proves: the state a meta leader crash leaves mid-join (node 4 listed, one shard moved
    // to its new replicas but the move not recorded, the rest not moved) is finished by
    // calling Join again: every shard ends on the ring's placement over 4 nodes, recorded,
    // with those voters, and no row is lost or doubled.
    bounded(async {
        let mut cluster = Cluster::start(3, fast_settings()).await;
        let client = cluster.client(26);
        client
            .create_table(&cluster.peers[&1], "r", &schema(), 6, 2)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..6).map(|s| ShardKey::new("r", s)).collect();
        for (s, key) in keys.iter().enumerate() {
            insert_batches(&client, key, s as i64 * 1_000, 3, 10).await;
        }
        let (before, _) = client.metadata().await.expect("metadata");
        let new = cluster.add_node().await;
        let wanted: Vec<Vec<NodeId>> = keys
            .iter()
            .map(|k| rhizome_node::placement::replicas(k, &[1, 2, 3, new], 2))
            .collect();
        let moved = (0..keys.len())
            .find(|&s| sorted(&before.tables["r"].placement[s]) != sorted(&wanted[s]))
            .expect("some shard moves");

        // What a join cut short leaves: the node listed, one move made but not recorded.
        let outcome = cluster
            .node(1)
            .meta_propose(rhizome_node::meta::MetaCommand::AddNode {
                id: new,
                addr: cluster.peers[&new].clone(),
            })
            .await
            .expect("node listed");
        assert_eq!(outcome, rhizome_node::meta::MetaOutcome::Done);
        let members: BTreeMap<NodeId, String> = wanted[moved]
            .iter()
            .map(|&id| (id, cluster.peers[&id].clone()))
            .collect();
        client
            .change_replicas(&keys[moved], &members)
            .await
            .expect("one shard moved by hand");
        let (half, _) = client.metadata().await.expect("metadata");
        assert_eq!(
            half.tables["r"].placement, before.tables["r"].placement,
            "nothing recorded yet"
        );

        client
            .join(new, &cluster.peers[&new])
            .await
            .expect("joining again finishes");
        let (after, _) = client.metadata().await.expect("metadata");
        for (s, key) in keys.iter().enumerate() {
            assert_eq!(after.tables["r"].placement[s], wanted[s], "{key} recorded");
            assert_eq!(voters(&cluster, key).await, sorted(&wanted[s]), "{key}");
            for id in 1..=new {
                assert_eq!(
                    cluster.node(id).group(key).is_ok(),
                    wanted[s].contains(&id),
                    "node {id} hosts {key} iff placed there (a replica moved off closed it)"
                );
            }
            let (_, records) = cluster.converged_on(key, &wanted[s], 2).await;
            assert_eq!(records, 30);
        }
        assert_eq!(totals(&client, &keys).await.0, 180);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_moved_off_that_missed_its_close_is_closed_by_the_next_join() {
    // Proves (regression, found by the simulation): a move that was made and recorded but
    // whose old replica never closed the group (it was down when told to) does not leave that
    // replica behind for good: the next Join's stray-replica sweep closes every group a
    // listed node hosts that the shard map does not place there, and nothing else.
    bounded(async {
        let mut cluster = Cluster::start(3, fast_settings()).await;
        let client = cluster.client(27);
        client
            .create_table(&cluster.peers[&1], "z", &schema(), 6, 2)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..6).map(|s| ShardKey::new("z", s)).collect();
        for (s, key) in keys.iter().enumerate() {
            insert_batches(&client, key, s as i64 * 1_000, 2, 10).await;
        }
        let (before, _) = client.metadata().await.expect("metadata");
        let new = cluster.add_node().await;
        let wanted: Vec<Vec<NodeId>> = keys
            .iter()
            .map(|k| rhizome_node::placement::replicas(k, &[1, 2, 3, new], 2))
            .collect();
        let moved = (0..keys.len())
            .find(|&s| sorted(&before.tables["z"].placement[s]) != sorted(&wanted[s]))
            .expect("some shard moves");
        let stray = *before.tables["z"].placement[moved]
            .iter()
            .find(|id| !wanted[moved].contains(id))
            .expect("a replica moves off");

        // What a move whose old replica missed the close leaves: made, recorded, not closed.
        let node = cluster.node(1).clone();
        let listed = node
            .meta_propose(rhizome_node::meta::MetaCommand::AddNode {
                id: new,
                addr: cluster.peers[&new].clone(),
            })
            .await
            .expect("node listed");
        assert_eq!(listed, rhizome_node::meta::MetaOutcome::Done);
        let members: BTreeMap<NodeId, String> = wanted[moved]
            .iter()
            .map(|&id| (id, cluster.peers[&id].clone()))
            .collect();
        client
            .change_replicas(&keys[moved], &members)
            .await
            .expect("moved by hand");
        let recorded = node
            .meta_propose(rhizome_node::meta::MetaCommand::SetPlacement {
                table: "z".into(),
                shard: moved as u32,
                members: wanted[moved].clone(),
            })
            .await
            .expect("move recorded");
        assert_eq!(recorded, rhizome_node::meta::MetaOutcome::Done);
        assert!(
            cluster.node(stray).group(&keys[moved]).is_ok(),
            "the replica moved off still hosts the group"
        );

        client
            .join(new, &cluster.peers[&new])
            .await
            .expect("the join finishes");
        for (s, key) in keys.iter().enumerate() {
            for id in 1..=new {
                assert_eq!(
                    cluster.node(id).group(key).is_ok(),
                    wanted[s].contains(&id),
                    "node {id} hosts {key} iff placed there"
                );
            }
            let (_, records) = cluster.converged_on(key, &wanted[s], 2).await;
            assert_eq!(records, 20);
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_joining_at_once_are_rebalanced_one_after_the_other() {
    // Proves: Join calls for two new nodes made at the same time, through different nodes,
    // both succeed (the meta leader runs them one at a time), and the end state is the
    // ring's placement over all five nodes, recorded, with those voters, each node hosting
    // exactly its shards, and the rows intact.
    bounded(async {
        let mut cluster = Cluster::start(3, fast_settings()).await;
        let client = cluster.client(27);
        client
            .create_table(&cluster.peers[&1], "c", &schema(), 6, 2)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..6).map(|s| ShardKey::new("c", s)).collect();
        for (s, key) in keys.iter().enumerate() {
            insert_batches(&client, key, s as i64 * 1_000, 2, 10).await;
        }
        let (a, b) = (cluster.add_node().await, cluster.add_node().await);
        let through = |id: NodeId| {
            let only: BTreeMap<NodeId, String> = BTreeMap::from([(id, cluster.peers[&id].clone())]);
            Client::new(28 + id, only, cluster.transport.clone())
        };
        let (via_2, via_3) = (through(2), through(3));
        let (joined_a, joined_b) = tokio::join!(
            via_2.join(a, &cluster.peers[&a]),
            via_3.join(b, &cluster.peers[&b])
        );
        joined_a.expect("first join");
        joined_b.expect("second join");

        let all: Vec<NodeId> = cluster.peers.keys().copied().collect();
        assert_eq!(all, vec![1, 2, 3, 4, 5]);
        let (after, _) = client.metadata().await.expect("metadata");
        assert_eq!(after.nodes, cluster.peers);
        for (s, key) in keys.iter().enumerate() {
            let wanted = rhizome_node::placement::replicas(key, &all, 2);
            assert_eq!(after.tables["c"].placement[s], wanted, "{key} recorded");
            assert_eq!(voters(&cluster, key).await, sorted(&wanted), "{key}");
            for &id in &all {
                assert_eq!(
                    cluster.node(id).group(key).is_ok(),
                    wanted.contains(&id),
                    "node {id} hosts {key} iff placed there"
                );
            }
            let (_, records) = cluster.converged_on(key, &wanted, 2).await;
            assert_eq!(records, 20);
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_knew_only_the_old_nodes_finds_a_shard_moved_to_a_joined_node() {
    // Proves: a client made before a join, told only of the first three nodes and never
    // reading the metadata itself, reaches a shard that moved entirely to the joined node
    // (R=1, 16 shards): every known node says "not here", the client reads the node list from the
    // metadata, and counts and writes reach node 4 (what the coordinator's GrpcCluster
    // relies on).
    bounded(async {
        let mut cluster = Cluster::start(3, fast_settings()).await;
        let stale = cluster.client(31);
        stale
            .create_table(&cluster.peers[&1], "one", &schema(), 16, 1)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..16).map(|s| ShardKey::new("one", s)).collect();
        for (s, key) in keys.iter().enumerate() {
            insert_batches(&stale, key, s as i64 * 100, 1, 10).await;
        }
        let new = cluster.add_node().await;
        let on_new: Vec<&ShardKey> = keys
            .iter()
            .filter(|k| rhizome_node::placement::replicas(k, &[1, 2, 3, new], 1) == vec![new])
            .collect();
        assert!(!on_new.is_empty(), "the ring gives node 4 some shard");
        cluster
            .client(32)
            .join(new, &cluster.peers[&new])
            .await
            .expect("join");
        assert!(!stale.nodes().contains_key(&new));
        for key in on_new {
            assert!(cluster.node(new).group(key).is_ok(), "{key} is on node 4");
            assert_eq!(stale.count(key).await.expect("count"), (10, 10), "{key}");
            insert_batches(&stale, key, 10_000, 1, 5).await;
            assert_eq!(stale.count(key).await.expect("count"), (15, 15), "{key}");
        }
        assert!(stale.nodes().contains_key(&new), "learnt node 4");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_shards_asked_at_once_answer_as_each_alone_even_after_a_leader_dies() {
    // Proves: `Client::query_shards` (one `QueryShards` call per node that leads some of the
    // shards) answers every shard exactly as a query of that shard alone does, the first time
    // (no leader known: each shard asked alone) and once leaders are known (bundled); after a
    // node that led some of them is killed, the shards it led are found again and every
    // answer still counts every acknowledged row.
    bounded(async {
        let mut cluster = Cluster::start(3, fast_settings()).await;
        let client = cluster.client(21);
        client
            .create_table(&cluster.peers[&1], "many", &schema(), 6, 3)
            .await
            .expect("create table");
        let keys: Vec<ShardKey> = (0..6).map(|s| ShardKey::new("many", s)).collect();
        for (shard, key) in keys.iter().enumerate() {
            // Shard s holds 5 (s + 1) rows: every answer differs.
            insert_batches(&client, key, shard as i64 * 1_000, shard as i64 + 1, 5).await;
        }
        let query = ShardQuery {
            filter: Condition::True,
            group_by: vec![],
            aggregates: vec![Aggregate::CountStar, Aggregate::Sum("id".into())],
        };
        let expected = |shard: usize| {
            let first = shard as i64 * 1_000;
            let rows = 5 * (shard as i64 + 1);
            (rows as u64, i128::from((first..first + rows).sum::<i64>()))
        };
        let check = |answers: Vec<Option<rhizome_node::Result<rhizome_core::query::Partial>>>| {
            assert_eq!(answers.len(), keys.len());
            for (shard, answer) in answers.into_iter().enumerate() {
                let partial = answer
                    .expect("answered in time")
                    .expect("answered without error");
                let states = partial.groups.values().next().expect("one group").clone();
                let (rows, sum) = expected(shard);
                assert_eq!(states[0], AggState::Count(rows), "shard {shard}");
                assert_eq!(
                    states[1],
                    AggState::SumInt { sum, count: rows },
                    "shard {shard}"
                );
            }
        };
        let fresh = cluster.client(22);
        let timeout = Duration::from_millis(WAIT_MS_MAX);
        check(fresh.query_shards(&keys, &query, timeout).await);
        check(fresh.query_shards(&keys, &query, timeout).await);
        for key in &keys {
            let alone = client.query(key, &query).await.expect("query");
            let together = fresh
                .query_shards(std::slice::from_ref(key), &query, timeout)
                .await;
            assert_eq!(
                Some(alone),
                together
                    .into_iter()
                    .next()
                    .flatten()
                    .map(|a| a.expect("ok"))
            );
        }

        let leader = cluster.leader(&keys[0]).await;
        cluster.kill(leader).await;
        check(fresh.query_shards(&keys, &query, timeout).await);
        cluster.shutdown().await;
    })
    .await;
}
