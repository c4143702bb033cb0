//! One simulated run: nodes and coordinators as turmoil hosts (each node with a data
//! directory that keeps, through its crashes, what the node fsynced: see [`crate::disk`]),
//! workload clients, a fault driver, and the checks.
//!
//! A run has three phases:
//! 1. *setup*: a client creates the tables and waits until every shard answers;
//! 2. *workload*: clients insert, delete and query while the driver plays the fault plan
//!    (and, in some seeds, a node joins and another leaves);
//! 3. *heal and check*: every fault is undone, crashed hosts restart, a join or leave not
//!    done yet finishes, then a checker client reads the metadata, waits until every shard's
//!    leader has exactly the recorded replicas as voters and they report one digest and
//!    applied index, then reads every shard whole; the driver checks the history, the
//!    queries, Raft's invariants, and that no node hosts a shard group the metadata does not
//!    place on it (a replica moved off closed its group; a node that left hosts none).
//!
//! Hosts are `node<id>` (port [`NODE_PORT`]), `coord<n>` (HTTP on [`COORDINATOR_PORT`]),
//! `setup`, `client<n>`, `mover`, `member` and `checker`.
//!
//! * **Membership** ([`SimConfig::spare`], [`SimConfig::leave`]; all but `0 mod 4`): a spare node
//!   host runs from the start outside the cluster (the clients and coordinators are not told
//!   of it). The `member` client asks, through the first nodes, for it to join
//!   (`Client::join`) at a drawn time during the workload, then in some seeds for one of the
//!   first nodes to leave (`Client::leave`), each retried every 2 s until it succeeds: the
//!   faults (the spare is a crash target too) cut rebalances short, and the next attempt
//!   finishes them. The workload does not wait for them; the check phase does. Clients and
//!   coordinators learn a joined node from the metadata. Seeds `0 mod 4` move shards by hand
//!   instead (`mover`), which the metadata does not record, so the two never mix.
//!
//! * A **coordinator** is the production one: `GrpcCluster` over a [`SimTransport`], the
//!   `Executor`, and the `coordinator::http` router served by `axum::serve` on a turmoil
//!   listener. It keeps nothing on disk, so a restart is a fresh process; its ids (the
//!   executor's batch ids, its node client's) are drawn from the seed and the number of its
//!   starts, as production draws them at random, so a run stays a function of its seed.
//! * **Direct clients** (`client1`… up to [`SimConfig::clients`]) call the nodes' services
//!   with `node::client::Client`, one shard per operation.
//! * **SQL clients** (the next [`SimConfig::sql_clients`]) send `INSERT … VALUES`,
//!   `DELETE … WHERE id IN (…)` and `SELECT COUNT(*), SUM(val) … [WHERE grp = …] [GROUP BY
//!   grp]` to a coordinator's `POST /v1/sql` with a hyper client over turmoil TCP. Their
//!   writes go into the same history as the direct ones: a 200 answer acknowledges the
//!   statement, anything else (4xx, 5xx, a dropped connection, the client giving up) leaves
//!   it unknown. An INSERT names only ids the coordinator routes to one shard (Rhizome does
//!   not yet make a statement's parts on several shards atomic), so each write touches one
//!   shard, all or nothing. A query reads every shard of a table, each at its own instant:
//!   its answer is checked as a sum of per-shard answers (see [`crate::model`]).
//! * **Faults** (see [`crate::faults`]) hit nodes and coordinators alike: crashes (a
//!   coordinator's restart loses its in-flight statements), partitions isolating a coordinator
//!   from the nodes (and from its clients), lossy and slow links between a coordinator and a
//!   node or a client.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use coordinator::executor::{key_hash, Executor, ExecutorOptions};
use coordinator::grpc::GrpcCluster;
use coordinator::http::{router, HttpState};
use node::app::{serve, Node, NodeConfig, RaftSettings};
use node::client::Client;
use node::types::{NodeId, ShardKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rhizome_core::query::Condition;
use rhizome_core::value::Value;

use crate::disk;
use crate::faults::{self, Episode, Fault, PlanSettings};
use crate::model::{
    self, Answer, History, QueryKind, QueryRecord, QueryStats, Row, ShardContents,
    TableQueryRecord, WriteKind, WriteOutcome, WriteRecord,
};
use crate::net::{incoming, post_sql, SimListener, SimTransport};
use crate::observe::Observer;

/// The port every node serves on.
pub const NODE_PORT: u16 = 7000;
/// The port every coordinator serves HTTP on.
pub const COORDINATOR_PORT: u16 = 8080;
/// Longest simulated time a phase may take before the run is failed.
pub const SETUP_TIME_MAX: Duration = Duration::from_secs(60);
pub const WORKLOAD_TIME_MAX: Duration = Duration::from_secs(600);
pub const CHECK_TIME_MAX: Duration = Duration::from_secs(120);
/// Message latency on a healthy link.
pub const LATENCY_MIN: Duration = Duration::from_millis(1);
pub const LATENCY_MAX: Duration = Duration::from_millis(10);
/// Rows in one insert, at most.
pub const INSERT_ROWS_MAX: usize = 4;
/// Rows one delete names, at most.
pub const DELETE_ROWS_MAX: usize = 3;
/// Pause between a client's operations, at most.
pub const THINK_TIME_MAX_MS: u64 = 200;
/// How long a client waits for one operation before giving up (drawn between these).
pub const PATIENCE_MIN_MS: u64 = 1_000;
pub const PATIENCE_MAX_MS: u64 = 20_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u64,
    /// Workload clients that talk to the nodes directly (`client1`…).
    pub clients: u64,
    /// Workload clients that send SQL to a coordinator over HTTP (the next client numbers;
    /// client `clients + k` talks to coordinator `(k - 1) % coordinators + 1`).
    pub sql_clients: u64,
    /// Coordinators (`coord1`…), each the production coordinator over the simulated network.
    pub coordinators: u64,
    pub tables: Vec<String>,
    pub shards_per_table: u32,
    pub ops_per_client: usize,
    /// Statements each SQL client sends (fewer than a direct client's operations: a statement
    /// waits on every shard it touches, which keeps runs long in simulated time).
    pub sql_ops_per_client: usize,
    pub faults: bool,
    /// Share of crash episodes long enough that the node must catch up by snapshot.
    pub long_crash_percent: u32,
    /// A deliberately broken mode of the node to turn on (needs the `canary` feature).
    #[cfg(feature = "canary")]
    pub canary: Option<node::canary::Canary>,
    /// Replicas of each shard (placed on `replicas` of the `nodes`).
    pub replicas: u32,
    /// Shard moves (`ChangeReplicas`: one voter replaced by a node outside the group) made
    /// while the clients write; needs more nodes than replicas.
    pub moves: usize,
    /// A spare host, node `nodes + 1`, runs from the start outside the cluster; during the
    /// workload it is asked to join (`Client::join`, retried until it succeeds).
    pub spare: bool,
    /// A node (of the initial ones) asked to leave (`Client::leave`) once the spare joined.
    pub leave: Option<NodeId>,
}

impl SimConfig {
    /// The configuration a seed runs with: odd seeds on 3 nodes holding every shard, with a
    /// spare node that joins while the clients write (and, when `seed % 4 == 3`, then one of
    /// the 3 first nodes leaves); even seeds on 4 nodes with 3 replicas per shard, either
    /// moving shards by hand (`ChangeReplicas`, `seed % 4 == 0`) or with a spare that joins
    /// and then one of the 3 first nodes (a meta voter) leaving (`seed % 4 == 2`), so the
    /// rebalancer moves shards between nodes that hold only some of them.
    pub fn new(seed: u64) -> SimConfig {
        let moving = seed.is_multiple_of(4);
        let leaving = seed % 4 >= 2;
        SimConfig {
            seed,
            nodes: if seed.is_multiple_of(2) { 4 } else { 3 },
            clients: 3,
            sql_clients: 2,
            coordinators: 2,
            tables: vec!["events".into(), "metrics".into()],
            shards_per_table: 2,
            ops_per_client: 120,
            sql_ops_per_client: 60,
            faults: true,
            long_crash_percent: 30,
            #[cfg(feature = "canary")]
            canary: None,
            replicas: 3,
            moves: if moving { 4 } else { 0 },
            spare: !moving,
            leave: leaving.then(|| 1 + (seed / 4) % 3),
        }
    }

    /// Every host that runs a node, the spare included.
    fn all_nodes(&self) -> u64 {
        self.nodes + u64::from(self.spare)
    }

    fn shards(&self) -> Vec<ShardKey> {
        self.tables
            .iter()
            .flat_map(|t| (0..self.shards_per_table).map(move |s| ShardKey::new(t, s)))
            .collect()
    }
}

/// What a passing run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub trace: Vec<String>,
    pub writes: usize,
    pub acknowledged: usize,
    /// Of the writes, those sent as SQL through a coordinator, and of those the acknowledged.
    pub sql_writes: usize,
    pub sql_acknowledged: usize,
    pub applied_unacknowledged: usize,
    pub queries: QueryStats,
    pub episodes: usize,
    /// Terms in which two nodes were both leader (see [`crate::observe`]).
    pub shared_terms: usize,
    /// Joins and leaves that succeeded.
    pub joins: usize,
    pub leaves: usize,
    pub simulated: Duration,
}

/// Why a run failed: every problem found, and the end of its trace.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub problems: Vec<String>,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} failed ({} problems); replay with SIM_SEED={} cargo test -p sim-tests",
            self.seed,
            self.problems.len(),
            self.seed
        )?;
        for problem in self.problems.iter().take(20) {
            writeln!(f, "  {problem}")?;
        }
        writeln!(f, "last trace lines:")?;
        for line in self.trace.iter().rev().take(40).rev() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

fn node_name(id: NodeId) -> String {
    format!("node{id}")
}

fn node_addr(id: NodeId) -> String {
    format!("{}:{NODE_PORT}", node_name(id))
}

fn coordinator_name(coordinator: u64) -> String {
    format!("coord{coordinator}")
}

/// The ids a coordinator's `incarnation`-th start uses: its executor's batch ids (inserts) and
/// its node client's (deletes, metadata). Drawn from the seed, as production draws them at
/// random: distinct per coordinator and per restart, because a shard answers a batch id it
/// has seen with its first answer (a restarted coordinator counts its sequences from 0 again).
fn coordinator_ids(seed: u64, coordinator: u64, incarnation: u64) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(
        seed ^ 0xc00d_0000_0000_0000 ^ (coordinator << 32) ^ incarnation.wrapping_mul(0x9e37),
    );
    (rng.gen(), rng.gen())
}

/// Where simulated disks live: tmpfs when there is one (fsync costs nothing there; the
/// simulation's crashes keep whatever was written either way).
fn scratch_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

fn raft_settings(seed: u64, node: NodeId) -> RaftSettings {
    RaftSettings {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 800,
        election_timeout_max_ms: 1_600,
        // Frequent snapshots with little log kept, so a long outage ends in InstallSnapshot.
        snapshot_logs_since_last: 30,
        // And by size, so both ways of asking for one run under the faults.
        snapshot_log_bytes_min: 32 << 10,
        logs_kept_behind_snapshot: 5,
        snapshot_chunk_bytes: 16 << 10,
        snapshot_chunk_timeout_ms: 5_000,
        append_entries_max: 8,
        election_timeout_seed: Some(seed ^ node.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        // Linearizable reads under leader leases, as in production: partitions, crashes and
        // clock-driven elections are what could break them.
        lease_reads: true,
        // A few KiB of entries decoded per node, shared by its groups: most of what leaders
        // send and replicas apply is read back from the log files, the path a follower far
        // behind takes in production.
        log_cache_bytes: 8 << 10,
    }
}

fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// State shared by the hosts and the driver (all on one thread).
#[derive(Default)]
struct Shared {
    /// The running incarnation of each node.
    nodes: RefCell<BTreeMap<NodeId, Arc<Node>>>,
    history: RefCell<History>,
    /// Client-side events, in the order they happened.
    trace: RefCell<Vec<String>>,
    setup_done: Cell<bool>,
    clients_done: Cell<u64>,
    mover_done: Cell<bool>,
    /// The membership driver asked for every join and leave and each succeeded.
    membership_done: Cell<bool>,
    joins: Cell<usize>,
    leaves: Cell<usize>,
    /// What the checker read: per shard, contents and per replica (digest, applied index).
    contents: RefCell<Option<Result<BTreeMap<ShardKey, ShardContents>, String>>>,
    /// Per shard, the converged applied index.
    converged: RefCell<BTreeMap<ShardKey, u64>>,
    /// Per shard, the replicas the metadata records (read by the checker).
    placements: RefCell<BTreeMap<ShardKey, BTreeSet<NodeId>>>,
}

fn boxed(e: node::Error) -> Box<dyn std::error::Error> {
    Box::new(e)
}

/// Run one simulation. `Ok` when every check held.
pub fn run(config: &SimConfig) -> Result<Report, Failure> {
    node::blocking::run_inline_on_this_thread(true);
    rhizome_core::durable::record_on_this_thread(true);
    #[cfg(feature = "canary")]
    node::canary::set_on_this_thread(config.canary);
    let result = run_inner(config);
    node::blocking::run_inline_on_this_thread(false);
    rhizome_core::durable::record_on_this_thread(false);
    #[cfg(feature = "canary")]
    node::canary::set_on_this_thread(None);
    result
}

fn run_inner(config: &SimConfig) -> Result<Report, Failure> {
    let seed = config.seed;
    let fail = |problems: Vec<String>, trace: Vec<String>| Failure {
        seed,
        problems,
        trace,
    };
    let scratch = tempfile::Builder::new()
        .prefix("rhizome-sim-")
        .tempdir_in(scratch_root())
        .map_err(|e| fail(vec![format!("scratch directory: {e}")], Vec::new()))?;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(SETUP_TIME_MAX + WORKLOAD_TIME_MAX + CHECK_TIME_MAX)
        .min_message_latency(LATENCY_MIN)
        .max_message_latency(LATENCY_MAX)
        .tcp_capacity(4096)
        .build();
    let shared = Rc::new(Shared::default());
    let peers: BTreeMap<NodeId, String> =
        (1..=config.nodes).map(|id| (id, node_addr(id))).collect();
    // Every node host, the spare included: only the checker knows them all from the start
    // (the clients and coordinators learn a joined node from the metadata).
    let all_peers: BTreeMap<NodeId, String> = (1..=config.all_nodes())
        .map(|id| (id, node_addr(id)))
        .collect();
    let shards = config.shards();

    for id in 1..=config.all_nodes() {
        let dir = scratch.path().join(node_name(id));
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(vec![format!("node directory: {e}")], Vec::new()))?;
        // An empty disk: what the node writes from now on is durable once it says so.
        rhizome_core::durable::mark_durable(&dir);
        // The spare knows the cluster's addresses and its own, as `--join` would start it.
        let peers = if id > config.nodes {
            all_peers.clone()
        } else {
            peers.clone()
        };
        let shared = shared.clone();
        sim.host(node_name(id), move || {
            let config = NodeConfig {
                id,
                addr: node_addr(id),
                data_dirs: vec![dir.clone()],
                peers: peers.clone(),
                raft: raft_settings(seed, id),
                transport: Arc::new(SimTransport::default()),
            };
            let shared = shared.clone();
            async move {
                let node = Node::start(config).await.map_err(boxed)?;
                shared.nodes.borrow_mut().insert(id, node.clone());
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", NODE_PORT)).await?;
                serve(node, incoming(listener), std::future::pending())
                    .await
                    .map_err(boxed)?;
                Ok(())
            }
        });
    }

    // The coordinators: the production executor over `GrpcCluster` and the production HTTP
    // router, served on a turmoil listener. A crash loses everything (the coordinator keeps
    // nothing on disk); a restart is a fresh process with fresh ids.
    for coordinator in 1..=config.coordinators {
        let peers = peers.clone();
        let shared = shared.clone();
        let starts = Rc::new(Cell::new(0u64));
        sim.host(coordinator_name(coordinator), move || {
            let incarnation = starts.get();
            starts.set(incarnation + 1);
            let (executor_id, client_id) = coordinator_ids(seed, coordinator, incarnation);
            let peers = peers.clone();
            let shared = shared.clone();
            async move {
                shared.trace.borrow_mut().push(format!(
                    "{} coord{coordinator} starts (run {incarnation})",
                    sim_now().as_millis()
                ));
                let cluster = GrpcCluster::connect_with_id(
                    peers,
                    Arc::new(SimTransport::default()),
                    client_id,
                );
                let executor =
                    Executor::with_coordinator_id(cluster, ExecutorOptions::default(), executor_id);
                let state = HttpState {
                    executor: Arc::new(executor),
                    ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                };
                let listener =
                    turmoil::net::TcpListener::bind(("0.0.0.0", COORDINATOR_PORT)).await?;
                axum::serve(SimListener(listener), router(state)).await?;
                Ok(())
            }
        });
    }

    let mut observer = Observer::default();
    let mut problems = Vec::new();

    // Phase 1: setup.
    {
        let shared = shared.clone();
        let peers = peers.clone();
        let tables = config.tables.clone();
        let shards_per_table = config.shards_per_table;
        let replicas = config.replicas;
        let shards = shards.clone();
        sim.client("setup", async move {
            let client = Client::new(1_000, peers.clone(), Arc::new(SimTransport::default()));
            let first = peers.values().next().expect("a node").clone();
            // The first node starts the cluster: the meta group, which records the tables
            // and places their shards, over every node.
            client.initialize(&first, &peers).await.map_err(boxed)?;
            // The primary key routes the coordinator's inserts (direct clients pick shards).
            for table in &tables {
                client
                    .create_table_with_key(
                        &first,
                        table,
                        &model::schema(),
                        &["id".to_string()],
                        shards_per_table,
                        replicas,
                    )
                    .await
                    .map_err(boxed)?;
            }
            for shard in &shards {
                client.count(shard).await.map_err(boxed)?;
            }
            shared.setup_done.set(true);
            Ok(())
        });
    }
    let phase_end = SETUP_TIME_MAX;
    while !shared.setup_done.get() {
        if let Err(e) = sim.step() {
            problems.push(format!("setup: {e}"));
            break;
        }
        observer.observe(sim.elapsed(), &shared.nodes.borrow());
        if sim.elapsed() > phase_end {
            problems.push("setup did not finish".into());
            break;
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems, observer.trace));
    }

    // Phase 2: workload and faults.
    let workload_start = sim.elapsed();
    for client_id in 1..=config.clients {
        let shared = shared.clone();
        let peers = peers.clone();
        let shards = shards.clone();
        let ops = config.ops_per_client;
        let rng = StdRng::seed_from_u64(seed ^ client_id.wrapping_mul(0xa076_1d64_78bd_642f));
        sim.client(format!("client{client_id}"), async move {
            workload(client_id, rng, peers, shards, ops, &shared).await;
            shared.clients_done.set(shared.clients_done.get() + 1);
            Ok(())
        });
    }
    for client_id in config.clients + 1..=config.clients + config.sql_clients {
        let shared = shared.clone();
        let shards = shards.clone();
        let ops = config.sql_ops_per_client;
        let rng = StdRng::seed_from_u64(seed ^ client_id.wrapping_mul(0xa076_1d64_78bd_642f));
        let coordinator = coordinator_name(faults::coordinator_of(
            client_id,
            config.clients,
            config.coordinators,
        ));
        sim.client(format!("client{client_id}"), async move {
            sql_workload(client_id, rng, &coordinator, shards, ops, &shared).await;
            shared.clients_done.set(shared.clients_done.get() + 1);
            Ok(())
        });
    }
    if config.moves > 0 {
        let shared = shared.clone();
        let peers = peers.clone();
        let shards = shards.clone();
        let moves = config.moves;
        let rng = StdRng::seed_from_u64(seed ^ 0x0000_6d6f_7665);
        sim.client("mover", async move {
            move_replicas(rng, peers, shards, moves, &shared).await;
            shared.mover_done.set(true);
            Ok(())
        });
    } else {
        shared.mover_done.set(true);
    }
    if config.spare {
        let shared = shared.clone();
        let peers = peers.clone();
        let spare = config.all_nodes();
        let leave = config.leave;
        let rng = StdRng::seed_from_u64(seed ^ 0x6d65_6d62_6572);
        sim.client("member", async move {
            change_membership(rng, peers, spare, leave, &shared).await;
            shared.membership_done.set(true);
            Ok(())
        });
    } else {
        shared.membership_done.set(true);
    }
    let mut plan_rng = StdRng::seed_from_u64(seed ^ 0x5eed_fa17);
    let episodes = if config.faults {
        faults::plan(
            &mut plan_rng,
            PlanSettings {
                nodes: config.all_nodes(),
                clients: config.clients,
                sql_clients: config.sql_clients,
                coordinators: config.coordinators,
                groups: shards.len(),
                until: Duration::from_secs(120),
                long_crash_percent: config.long_crash_percent,
            },
        )
    } else {
        Vec::new()
    };
    let clients = config.clients + config.sql_clients;
    let hosts = (1..=config.all_nodes())
        .map(node_name)
        .chain((1..=config.coordinators).map(coordinator_name))
        .chain((1..=clients).map(|c| format!("client{c}")))
        .chain(["setup".to_string()])
        .chain((config.moves > 0).then(|| "mover".to_string()))
        .chain(config.spare.then(|| "member".to_string()))
        .collect();
    let mut driver = FaultDriver::new(
        episodes,
        workload_start,
        config.all_nodes(),
        hosts,
        scratch.path().to_path_buf(),
        shards.clone(),
    );
    while shared.clients_done.get() < clients || !shared.mover_done.get() {
        if let Err(e) = sim.step() {
            problems.push(format!("workload: {e}"));
            break;
        }
        driver.advance(&mut sim, &shared, &mut observer, &mut plan_rng);
        observer.observe(sim.elapsed(), &shared.nodes.borrow());
        if sim.elapsed() > workload_start + WORKLOAD_TIME_MAX {
            problems.push("the workload did not finish".into());
            break;
        }
    }
    let episodes_played = driver.started;
    driver.heal(&mut sim, &mut observer, &mut plan_rng);
    // Whatever a replica applied by now was committed: the converged state must include it.
    let applied_before_heal = observer.max_applied.clone();
    if !problems.is_empty() {
        return Err(fail(problems, observer.trace));
    }

    // Phase 3: the joins and leaves not done yet finish, then convergence and the final read.
    let check_start = sim.elapsed();
    while !shared.membership_done.get() {
        if let Err(e) = sim.step() {
            problems.push(format!("membership after heal: {e}"));
            break;
        }
        observer.observe(sim.elapsed(), &shared.nodes.borrow());
        if sim.elapsed() > check_start + CHECK_TIME_MAX {
            problems.push("the joins and leaves did not finish after the heal".into());
            break;
        }
    }
    if !problems.is_empty() {
        let mut trace = std::mem::take(&mut *shared.trace.borrow_mut());
        trace.append(&mut observer.trace);
        return Err(fail(problems, trace));
    }
    // Shards moved by hand (`mover`) are not recorded in the metadata: there the replicas are
    // the leader's voters; elsewhere they must be the recorded ones.
    let recorded = config.moves == 0;
    {
        let shared = shared.clone();
        let peers = all_peers.clone();
        let shards = shards.clone();
        sim.client("checker", async move {
            let client = Client::new(1_001, peers.clone(), Arc::new(SimTransport::default()));
            let result = read_back(&client, &peers, &shards, recorded, &shared).await;
            *shared.contents.borrow_mut() = Some(result);
            Ok(())
        });
    }
    let check_start = sim.elapsed();
    while shared.contents.borrow().is_none() {
        if let Err(e) = sim.step() {
            problems.push(format!("check: {e}"));
            break;
        }
        observer.observe(sim.elapsed(), &shared.nodes.borrow());
        if sim.elapsed() > check_start + CHECK_TIME_MAX {
            problems.push("the final read did not finish".into());
            break;
        }
    }
    let simulated = sim.elapsed();
    // Every shard group a node hosts is one the metadata places on it: a replica moved off
    // closed its group, and a node that left hosts none.
    let placements = shared.placements.borrow().clone();
    for (&id, node) in shared.nodes.borrow().iter().filter(|_| recorded) {
        for group in node.groups() {
            let placed = placements.get(&group.key).is_some_and(|p| p.contains(&id));
            if !placed {
                let left = if config.leave == Some(id) {
                    " (it left the cluster)"
                } else {
                    ""
                };
                problems.push(format!(
                    "node{id}{left} still hosts {} whose recorded replicas are {:?}",
                    group.key,
                    placements.get(&group.key)
                ));
            }
        }
    }
    if config.all_nodes() as usize != shared.nodes.borrow().len() {
        problems.push(format!(
            "only nodes {:?} run after the heal",
            shared.nodes.borrow().keys().collect::<Vec<_>>()
        ));
    }
    drop(sim);

    // The checks.
    problems.append(&mut observer.violations);
    let contents = shared.contents.borrow_mut().take();
    let history = std::mem::take(&mut *shared.history.borrow_mut());
    let mut trace = std::mem::take(&mut *shared.trace.borrow_mut());
    trace.append(&mut observer.trace);
    // One timeline: lines start with their simulated millisecond (stable: same-time lines
    // keep their order); the final lines without one go last.
    trace.sort_by_key(|line| {
        line.split(' ')
            .next()
            .and_then(|ms| ms.parse::<u128>().ok())
            .unwrap_or(u128::MAX)
    });
    let mut report = Report {
        trace: Vec::new(),
        writes: history.writes.len(),
        acknowledged: history.writes.iter().filter(|w| w.acknowledged()).count(),
        sql_writes: history
            .writes
            .iter()
            .filter(|w| w.client > config.clients)
            .count(),
        sql_acknowledged: history
            .writes
            .iter()
            .filter(|w| w.client > config.clients && w.acknowledged())
            .count(),
        applied_unacknowledged: 0,
        queries: QueryStats::default(),
        episodes: episodes_played,
        shared_terms: observer.shared_terms,
        joins: shared.joins.get(),
        leaves: shared.leaves.get(),
        simulated,
    };
    match contents {
        Some(Ok(contents)) => {
            for (shard, index) in shared.converged.borrow().iter() {
                let max = applied_before_heal
                    .get(&shard.group_name())
                    .copied()
                    .unwrap_or(0);
                if *index < max {
                    problems.push(format!(
                        "{shard} converged at applied index {index}, below the {max} a replica \
                         applied before the faults healed"
                    ));
                }
            }
            for (shard, rows) in &contents {
                trace.push(format!("final {shard} rows={}", rows.len()));
            }
            match model::check_final_contents(&history, &contents) {
                Ok(effects) => {
                    report.applied_unacknowledged = history
                        .writes
                        .iter()
                        .zip(&effects.applied)
                        .filter(|(w, &applied)| applied && !w.acknowledged())
                        .count();
                    match model::check_queries(&history, &effects) {
                        Ok(stats) => report.queries = stats,
                        Err(mut found) => problems.append(&mut found),
                    }
                }
                Err(mut found) => problems.append(&mut found),
            }
        }
        Some(Err(e)) => problems.push(format!("final read: {e}")),
        None => {}
    }
    if problems.is_empty() {
        report.trace = trace;
        Ok(report)
    } else {
        Err(fail(problems, trace))
    }
}

/// One client's operations: inserts of fresh rows, deletes of rows it inserted and saw
/// acknowledged, and queries, on shards drawn at random.
async fn workload(
    client_id: u64,
    mut rng: StdRng,
    peers: BTreeMap<NodeId, String>,
    shards: Vec<ShardKey>,
    ops: usize,
    shared: &Shared,
) {
    let client = Client::new(client_id, peers, Arc::new(SimTransport::default()));
    let mut next_id = client_id as i64 * 1_000_000;
    // Rows this client saw acknowledged and has not yet named in a delete, per shard.
    let mut deletable: BTreeMap<ShardKey, Vec<Row>> = BTreeMap::new();
    for _ in 0..ops {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=THINK_TIME_MAX_MS))).await;
        let shard = shards[rng.gen_range(0..shards.len())].clone();
        let choice = rng.gen_range(0..100);
        let can_delete = deletable.get(&shard).is_some_and(|rows| !rows.is_empty());
        // The client gives up after a drawn time, like an application with its own deadline:
        // a write given up on may still take effect.
        let patience = Duration::from_millis(rng.gen_range(PATIENCE_MIN_MS..=PATIENCE_MAX_MS));
        let start = sim_now();
        if choice < 50 || (choice < 70 && !can_delete) {
            let rows: Vec<Row> = (0..rng.gen_range(1..=INSERT_ROWS_MAX))
                .map(|_| {
                    next_id += 1;
                    Row {
                        id: next_id,
                        group: rng.gen_range(0..model::GROUP_COUNT as u8),
                        val: rng.gen_range(-1_000..1_000),
                    }
                })
                .collect();
            let values: Vec<Vec<Value>> = rows.iter().map(Row::values).collect();
            let result = with_patience(patience, client.insert(&shard, &values)).await;
            if result.is_ok() {
                deletable.entry(shard.clone()).or_default().extend(&rows);
            }
            record_write(
                shared,
                client_id,
                shard,
                WriteKind::Insert(rows),
                start,
                direct_outcome(result),
            );
        } else if choice < 70 {
            let candidates = deletable.get_mut(&shard).expect("checked above");
            let mut rows = Vec::new();
            for _ in 0..rng.gen_range(1..=DELETE_ROWS_MAX).min(candidates.len()) {
                rows.push(candidates.swap_remove(rng.gen_range(0..candidates.len())));
            }
            rows.sort_by_key(|r| r.id);
            let condition = Condition::In {
                column: "id".into(),
                values: rows.iter().map(|r| Value::Int(r.id)).collect(),
            };
            let result = with_patience(patience, client.delete(&shard, &condition)).await;
            record_write(
                shared,
                client_id,
                shard,
                WriteKind::Delete(rows),
                start,
                direct_outcome(result),
            );
        } else {
            let kind = match rng.gen_range(0..3) {
                0 => QueryKind::Count,
                1 => QueryKind::SumOfGroup(rng.gen_range(0..model::GROUP_COUNT as u8)),
                _ => QueryKind::GroupBy,
            };
            let result = match kind {
                QueryKind::Count => with_patience(patience, client.count(&shard))
                    .await
                    .map(|(records, live)| Answer::of_count(records, live))
                    .map_err(|e| e.to_string()),
                _ => match with_patience(patience, client.query(&shard, &kind.shard_query())).await
                {
                    Ok(partial) => Answer::of_partial(&partial),
                    Err(e) => Err(e.to_string()),
                },
            };
            let end = sim_now();
            shared.trace.borrow_mut().push(format!(
                "{} client{client_id} query {kind:?} {shard} -> {}",
                end.as_millis(),
                match &result {
                    Ok(answer) => format!("{:?}", answer.0),
                    Err(e) => format!("error {e}"),
                }
            ));
            shared.history.borrow_mut().queries.push(QueryRecord {
                client: client_id,
                shard,
                kind,
                start,
                end,
                result,
            });
        }
    }
}

/// One SQL client's operations, drawn as a direct client's are, sent to its coordinator's
/// `POST /v1/sql`: INSERTs of fresh rows, DELETEs by id of rows it inserted and saw
/// acknowledged, and COUNT/SUM queries of whole tables (every shard, gathered by the
/// coordinator). An answer other than 200 — a 4xx or 5xx, a dropped connection, the client
/// giving up — leaves a write's outcome unknown and is an error for a query, never an answer.
async fn sql_workload(
    client_id: u64,
    mut rng: StdRng,
    coordinator: &str,
    shards: Vec<ShardKey>,
    ops: usize,
    shared: &Shared,
) {
    let mut next_id = client_id as i64 * 1_000_000;
    let mut deletable: BTreeMap<ShardKey, Vec<Row>> = BTreeMap::new();
    for _ in 0..ops {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=THINK_TIME_MAX_MS))).await;
        let shard = shards[rng.gen_range(0..shards.len())].clone();
        let table_shards: Vec<ShardKey> = shards
            .iter()
            .filter(|s| s.table == shard.table)
            .cloned()
            .collect();
        let choice = rng.gen_range(0..100);
        let can_delete = deletable.get(&shard).is_some_and(|rows| !rows.is_empty());
        let patience = Duration::from_millis(rng.gen_range(PATIENCE_MIN_MS..=PATIENCE_MAX_MS));
        let start = sim_now();
        if choice < 50 || (choice < 70 && !can_delete) {
            // Rhizome does not yet make the parts of one statement on several shards atomic
            // (an unacknowledged INSERT may take effect on some shards and not others), so an
            // INSERT names only ids whose primary key the coordinator routes to one shard
            // (`key_hash`, as the executor routes): its one batch is all-or-nothing.
            let rows: Vec<Row> = (0..rng.gen_range(1..=INSERT_ROWS_MAX))
                .map(|_| {
                    loop {
                        next_id += 1;
                        let hash = key_hash(std::iter::once(&Value::Int(next_id)));
                        if hash % table_shards.len() as u64 == u64::from(shard.shard) {
                            break;
                        }
                    }
                    Row {
                        id: next_id,
                        group: rng.gen_range(0..model::GROUP_COUNT as u8),
                        val: rng.gen_range(-1_000..1_000),
                    }
                })
                .collect();
            let values: Vec<String> = rows
                .iter()
                .map(|r| format!("({}, '{}', {})", r.id, model::group_name(r.group), r.val))
                .collect();
            let sql = format!(
                "INSERT INTO {} (id, grp, val) VALUES {}",
                shard.table,
                values.join(", ")
            );
            let result = sql_write(coordinator, &sql, patience).await;
            if result.is_ok() {
                deletable.entry(shard.clone()).or_default().extend(&rows);
            }
            let kind = WriteKind::Insert(rows);
            record_write(shared, client_id, shard, kind, start, result);
        } else if choice < 70 {
            // The rows are all on `shard`; the coordinator asks every shard, and the others
            // have none of them.
            let candidates = deletable.get_mut(&shard).expect("checked above");
            let mut rows = Vec::new();
            for _ in 0..rng.gen_range(1..=DELETE_ROWS_MAX).min(candidates.len()) {
                rows.push(candidates.swap_remove(rng.gen_range(0..candidates.len())));
            }
            rows.sort_by_key(|r| r.id);
            let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
            let sql = format!(
                "DELETE FROM {} WHERE id IN ({})",
                shard.table,
                ids.join(", ")
            );
            let result = sql_write(coordinator, &sql, patience).await;
            let kind = WriteKind::Delete(rows);
            record_write(shared, client_id, shard, kind, start, result);
        } else {
            let kind = match rng.gen_range(0..3) {
                0 => QueryKind::Total,
                1 => QueryKind::SumOfGroup(rng.gen_range(0..model::GROUP_COUNT as u8)),
                _ => QueryKind::GroupBy,
            };
            let result = sql_statement(coordinator, &kind.sql(&shard.table), patience)
                .await
                .and_then(
                    |answer| match answer.get("rows").and_then(|r| r.as_array()) {
                        Some(rows) => Answer::of_sql_rows(kind, rows),
                        None => Err(format!("an answer without rows: {answer}")),
                    },
                );
            let end = sim_now();
            shared.trace.borrow_mut().push(format!(
                "{} client{client_id} sql query {kind:?} {} -> {}",
                end.as_millis(),
                shard.table,
                match &result {
                    Ok(answer) => format!("{:?}", answer.0),
                    Err(e) => format!("error {e}"),
                }
            ));
            shared
                .history
                .borrow_mut()
                .table_queries
                .push(TableQueryRecord {
                    client: client_id,
                    shards: table_shards,
                    kind,
                    start,
                    end,
                    result,
                });
        }
    }
}

/// One statement through the coordinator: its JSON answer when it answered 200.
async fn sql_statement(
    coordinator: &str,
    sql: &str,
    patience: Duration,
) -> Result<serde_json::Value, String> {
    match tokio::time::timeout(patience, post_sql(coordinator, COORDINATOR_PORT, sql)).await {
        Err(_) => Err(format!(
            "the client gave up after {} ms",
            patience.as_millis()
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok((200, body))) => {
            serde_json::from_str(&body).map_err(|e| format!("an undecodable answer {body:?}: {e}"))
        }
        Ok(Ok((status, body))) => Err(format!("HTTP {status} {body}")),
    }
}

/// A write through the coordinator, as [`record_write`] takes it: acknowledged with the rows
/// it reports when the coordinator answered 200.
async fn sql_write(
    coordinator: &str,
    sql: &str,
    patience: Duration,
) -> Result<(u64, String), String> {
    let answer = sql_statement(coordinator, sql, patience).await?;
    let count = answer
        .get("rows_affected")
        .and_then(|n| n.as_u64())
        .ok_or_else(|| format!("an answer without rows_affected: {answer}"))?;
    Ok((count, format!("ok via {coordinator} rows_affected={count}")))
}

/// Move shards while the clients write: each move replaces one voter of a shard with a node
/// outside its group (`ChangeReplicas`: the new node joins as a learner, catches up, then one
/// membership change).
async fn move_replicas(
    mut rng: StdRng,
    peers: BTreeMap<NodeId, String>,
    shards: Vec<ShardKey>,
    moves: usize,
    shared: &Shared,
) {
    let client = Client::new(1_002, peers.clone(), Arc::new(SimTransport::default()));
    for _ in 0..moves {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1_000..5_000))).await;
        let shard = shards[rng.gen_range(0..shards.len())].clone();
        let voters = leader_voters(&client, &peers, &shard).await;
        let outside: Vec<NodeId> = peers
            .keys()
            .copied()
            .filter(|id| !voters.contains(id))
            .collect();
        let line = if voters.is_empty() || outside.is_empty() {
            format!("no leader or no node outside {voters:?}")
        } else {
            let leaving = *voters
                .iter()
                .nth(rng.gen_range(0..voters.len()))
                .expect("drawn within the set");
            let joining = outside[rng.gen_range(0..outside.len())];
            let members: BTreeMap<NodeId, String> = voters
                .iter()
                .filter(|&&id| id != leaving)
                .chain([&joining])
                .map(|&id| (id, peers[&id].clone()))
                .collect();
            let patience = Duration::from_millis(PATIENCE_MAX_MS * 3);
            match with_patience(patience, client.change_replicas(&shard, &members)).await {
                Ok(now) => format!("{voters:?} -> {now:?}"),
                Err(e) => format!("{voters:?} -> {:?} failed: {e}", members.keys()),
            }
        };
        shared
            .trace
            .borrow_mut()
            .push(format!("{} mover {shard} {line}", sim_now().as_millis()));
    }
}

/// Pause between two attempts of a join or leave that failed.
const MEMBERSHIP_RETRY_MS: u64 = 2_000;

/// Add the spare node to the cluster while the clients write (`Client::join` through the
/// first nodes, which forward it to the meta leader), then take `leave` out
/// (`Client::leave`). Each is retried until it succeeds: both are resumable, so an attempt
/// cut short by a crash or a partition is finished by the next. The run's workload phase
/// does not wait for them; the check phase does (after the heal).
async fn change_membership(
    mut rng: StdRng,
    peers: BTreeMap<NodeId, String>,
    spare: NodeId,
    leave: Option<NodeId>,
    shared: &Shared,
) {
    let client = Client::new(1_003, peers, Arc::new(SimTransport::default()));
    let trace = |line: String| {
        shared
            .trace
            .borrow_mut()
            .push(format!("{} member {line}", sim_now().as_millis()));
    };
    tokio::time::sleep(Duration::from_millis(rng.gen_range(2_000..20_000))).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.join(spare, &node_addr(spare)).await {
            Ok(()) => {
                trace(format!("join node{spare} attempt {attempt} done"));
                shared.joins.set(shared.joins.get() + 1);
                break;
            }
            Err(e) => trace(format!("join node{spare} attempt {attempt} failed: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(MEMBERSHIP_RETRY_MS)).await;
    }
    let Some(leaving) = leave else {
        return;
    };
    tokio::time::sleep(Duration::from_millis(rng.gen_range(1_000..10_000))).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.leave(leaving).await {
            Ok(()) => {
                trace(format!("leave node{leaving} attempt {attempt} done"));
                shared.leaves.set(shared.leaves.get() + 1);
                break;
            }
            // An earlier attempt finished the leave but its answer was lost.
            Err(node::Error::NotFound(e)) if attempt > 1 => {
                trace(format!(
                    "leave node{leaving} attempt {attempt}: already gone ({e})"
                ));
                shared.leaves.set(shared.leaves.get() + 1);
                break;
            }
            Err(e) => trace(format!("leave node{leaving} attempt {attempt} failed: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(MEMBERSHIP_RETRY_MS)).await;
    }
}

/// The voters of a shard's group as its leader reports them (empty when no node leads it).
async fn leader_voters(
    client: &Client,
    peers: &BTreeMap<NodeId, String>,
    shard: &ShardKey,
) -> BTreeSet<NodeId> {
    let name = shard.group_name();
    for addr in peers.values() {
        if let Ok(status) = client.status(addr).await {
            if let Some(group) = status
                .groups
                .iter()
                .find(|g| g.group == name && g.state == "leader")
            {
                return group.voters.iter().copied().collect();
            }
        }
    }
    BTreeSet::new()
}

/// `work`, or an error once `patience` has passed.
async fn with_patience<T>(
    patience: Duration,
    work: impl std::future::Future<Output = node::Result<T>>,
) -> node::Result<T> {
    match tokio::time::timeout(patience, work).await {
        Ok(result) => result,
        Err(_) => Err(node::Error::Unavailable {
            shard: "client".into(),
            reason: format!("the client gave up after {} ms", patience.as_millis()),
        }),
    }
}

/// A direct write's outcome as [`record_write`] takes it.
fn direct_outcome(
    result: node::Result<node::client::WriteOutcome>,
) -> Result<(u64, String), String> {
    match result {
        Ok(outcome) => Ok((
            outcome.count,
            format!("ok count={} index={}", outcome.count, outcome.log_index),
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Record a write: `Ok((rows it reported, what the client was told))` when acknowledged.
fn record_write(
    shared: &Shared,
    client_id: u64,
    shard: ShardKey,
    kind: WriteKind,
    start: Duration,
    result: Result<(u64, String), String>,
) {
    let end = sim_now();
    let what = match &kind {
        WriteKind::Insert(rows) => format!("insert {}", rows.len()),
        WriteKind::Delete(rows) => format!("delete {}", rows.len()),
    };
    let (outcome, reported_count, told) = match result {
        Ok((count, told)) => (WriteOutcome::Acknowledged, Some(count), told),
        Err(e) => (WriteOutcome::Failed(e.clone()), None, format!("error {e}")),
    };
    shared.trace.borrow_mut().push(format!(
        "{} client{client_id} {what} {shard} -> {told}",
        end.as_millis()
    ));
    shared.history.borrow_mut().writes.push(WriteRecord {
        client: client_id,
        shard,
        kind,
        start,
        end,
        outcome,
        reported_count,
    });
}

/// Read each shard's recorded replicas from the metadata, wait until its leader's voters are
/// exactly those (with `recorded_placement`; else whatever they are) and they agree (one digest, one applied index), then read every shard whole
/// through its leader.
async fn read_back(
    client: &Client,
    peers: &BTreeMap<NodeId, String>,
    shards: &[ShardKey],
    recorded_placement: bool,
    shared: &Shared,
) -> Result<BTreeMap<ShardKey, ShardContents>, String> {
    let deadline = tokio::time::Instant::now() + CHECK_TIME_MAX / 2;
    let metadata = loop {
        match client.metadata().await {
            Ok((metadata, _)) => break metadata,
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(format!("the metadata could not be read: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut placements = BTreeMap::new();
    for shard in shards {
        let recorded: BTreeSet<NodeId> = metadata
            .tables
            .get(&shard.table)
            .and_then(|t| t.placement.get(shard.shard as usize))
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default();
        if let Some(stranger) = recorded.iter().find(|id| !metadata.nodes.contains_key(id)) {
            return Err(format!(
                "{shard} is recorded on node{stranger}, which is not in the node list"
            ));
        }
        if let Some(leaving) = recorded.iter().find(|id| metadata.leaving.contains(id)) {
            return Err(format!(
                "{shard} is recorded on node{leaving}, which is leaving"
            ));
        }
        placements.insert(shard.clone(), recorded);
    }
    shared.trace.borrow_mut().push(format!(
        "metadata nodes={:?} leaving={:?} placements={placements:?}",
        metadata.nodes.keys().collect::<Vec<_>>(),
        metadata.leaving
    ));
    *shared.placements.borrow_mut() = placements.clone();
    let mut contents = BTreeMap::new();
    for shard in shards {
        let recorded = &placements[shard];
        let mut last = BTreeSet::new();
        loop {
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{shard}: replicas did not converge on the recorded {recorded:?} (the \
                     leader's voters: {last:?})"
                ));
            }
            // A linearizable read first: the leader has committed everything of its term.
            if client.count(shard).await.is_err() {
                continue;
            }
            let voters = leader_voters(client, peers, shard).await;
            if recorded_placement && voters != *recorded {
                last = voters;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let mut digests = BTreeSet::new();
            let mut applied = BTreeSet::new();
            for voter in &voters {
                match client.digest(&peers[voter], shard).await {
                    Ok(reply) => {
                        digests.insert(reply.digest);
                        applied.insert(reply.applied_index);
                    }
                    Err(_) => {
                        digests.insert(u64::MAX);
                    }
                }
            }
            if !voters.is_empty() && digests.len() == 1 && applied.len() == 1 {
                let index = *applied.first().expect("one applied index");
                shared.converged.borrow_mut().insert(shard.clone(), index);
                shared.trace.borrow_mut().push(format!(
                    "converged {shard} voters={voters:?} digest={:x} applied={index}",
                    digests.first().expect("one digest")
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let partial = client
            .query(shard, &model::contents_query())
            .await
            .map_err(|e| format!("{shard}: {e}"))?;
        contents.insert(shard.clone(), model::contents_of_partial(&partial)?);
    }
    Ok(contents)
}

/// Append half a record to the Raft log of one of a crashed node's groups, as a crash in the
/// middle of an append leaves it: a header whose length runs past the end of the file, or a
/// whole record whose checksum does not match (a torn sector). Returns what it did.
fn tear_a_log(node_dir: &std::path::Path, rng: &mut StdRng) -> std::io::Result<String> {
    use std::io::Write;
    let groups_dir = node_dir.join("groups");
    let mut groups: Vec<PathBuf> = std::fs::read_dir(&groups_dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    groups.sort();
    if groups.is_empty() {
        return Ok("skipped: no group yet".into());
    }
    let group = &groups[rng.gen_range(0..groups.len())];
    let path = group.join(node::log_store::LOG_FILE);
    let body_bytes: u32 = rng.gen_range(16..512);
    let body: Vec<u8> = (0..body_bytes).map(|_| rng.gen()).collect();
    // A checksum that is certainly wrong.
    let crc = crc32c::crc32c(&body) ^ 1;
    let mut record = Vec::with_capacity(8 + body.len());
    record.extend_from_slice(&body_bytes.to_le_bytes());
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(&body);
    let cut = if rng.gen_bool(0.5) {
        rng.gen_range(1..record.len())
    } else {
        record.len()
    };
    let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
    file.write_all(&record[..cut])?;
    file.sync_all()?;
    Ok(format!(
        "{}: {cut} of a {}-byte record appended",
        group
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string()),
        record.len()
    ))
}

/// Plays the fault plan against the simulation.
struct FaultDriver {
    pending: std::collections::VecDeque<Episode>,
    /// Episodes started and not yet ended, with what they resolved to.
    active: Vec<(Episode, Applied)>,
    offset: Duration,
    nodes: u64,
    /// Every host registered during the workload (nodes, clients, the finished setup client).
    hosts: Vec<String>,
    /// Where each node's data directory is (`<root>/node<id>`).
    data_root: PathBuf,
    shards: Vec<ShardKey>,
    started: usize,
    crashed: BTreeSet<NodeId>,
    crashed_coordinators: BTreeSet<u64>,
}

/// What an episode did, so its end can undo exactly that.
#[derive(Debug, Clone)]
enum Applied {
    Crashed(NodeId),
    CoordinatorCrashed(u64),
    Partitioned(Vec<(String, String)>),
    PartitionedOneWay(String, String),
    Held(Vec<(String, String)>),
    Lossy(String, String),
    Slow(String, String),
    Nothing,
}

impl FaultDriver {
    fn new(
        episodes: Vec<Episode>,
        offset: Duration,
        nodes: u64,
        hosts: Vec<String>,
        data_root: PathBuf,
        shards: Vec<ShardKey>,
    ) -> Self {
        FaultDriver {
            pending: episodes.into(),
            active: Vec::new(),
            offset,
            nodes,
            hosts,
            data_root,
            shards,
            started: 0,
            crashed: BTreeSet::new(),
            crashed_coordinators: BTreeSet::new(),
        }
    }

    fn log(observer: &mut Observer, now: Duration, what: String) {
        observer
            .trace
            .push(format!("{} fault {what}", now.as_millis()));
    }

    fn advance(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        shared: &Shared,
        observer: &mut Observer,
        rng: &mut StdRng,
    ) {
        let now = sim.elapsed();
        let mut index = 0;
        while index < self.active.len() {
            if self.offset + self.active[index].0.end <= now {
                let (episode, applied) = self.active.remove(index);
                Self::log(observer, now, format!("end {:?}", episode.fault));
                self.undo(sim, applied, rng);
            } else {
                index += 1;
            }
        }
        while self
            .pending
            .front()
            .is_some_and(|e| self.offset + e.start <= now)
        {
            let episode = self.pending.pop_front().expect("checked");
            let applied = self.apply(sim, shared, observer, &episode.fault, rng);
            Self::log(
                observer,
                now,
                format!("start {:?} as {applied:?}", episode.fault),
            );
            self.started += 1;
            self.active.push((episode, applied));
        }
    }

    fn others(&self, node: u64) -> Vec<String> {
        (1..=self.nodes)
            .filter(|&n| n != node)
            .map(node_name)
            .collect()
    }

    fn apply(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        shared: &Shared,
        observer: &mut Observer,
        fault: &Fault,
        rng: &mut StdRng,
    ) -> Applied {
        match fault {
            Fault::Crash { node, torn_log } => {
                if self.crashed.contains(node) {
                    return Applied::Nothing;
                }
                let name = node_name(*node);
                self.crash_host(sim, &name);
                let dir = self.data_root.join(&name);
                let lost = disk::lose_unsynced(&dir, rng);
                observer.trace.push(format!(
                    "{} fault power loss {name}: {}",
                    sim.elapsed().as_millis(),
                    lost.unwrap_or_else(|e| format!("failed: {e}"))
                ));
                if *torn_log {
                    let torn = tear_a_log(&dir, rng);
                    observer.trace.push(format!(
                        "{} fault torn log {}",
                        sim.elapsed().as_millis(),
                        torn.unwrap_or_else(|e| format!("failed: {e}"))
                    ));
                }
                // What the crash left is what the restarted node finds on its disk.
                rhizome_core::durable::mark_durable(&dir);
                shared.nodes.borrow_mut().remove(node);
                observer.forget_node(*node);
                self.crashed.insert(*node);
                Applied::Crashed(*node)
            }
            Fault::Isolate { node } => {
                let pairs: Vec<_> = self
                    .others(*node)
                    .into_iter()
                    .map(|other| (node_name(*node), other))
                    .collect();
                for (a, b) in &pairs {
                    sim.partition(a.as_str(), b.as_str());
                }
                Applied::Partitioned(pairs)
            }
            Fault::IsolateLeader { group } => {
                let name = self.shards[*group % self.shards.len()].group_name();
                let leader = shared.nodes.borrow().values().find_map(|node| {
                    node.groups().into_iter().find_map(|g| {
                        let metrics = g.raft.metrics();
                        let metrics = metrics.borrow();
                        (g.key.group_name() == name
                            && metrics.state == openraft::ServerState::Leader)
                            .then_some(metrics.id)
                    })
                });
                let Some(leader) = leader else {
                    return Applied::Nothing;
                };
                let pairs: Vec<_> = self
                    .hosts
                    .iter()
                    .filter(|h| **h != node_name(leader))
                    .map(|other| (node_name(leader), other.clone()))
                    .collect();
                for (a, b) in &pairs {
                    sim.partition(a.as_str(), b.as_str());
                }
                Applied::Partitioned(pairs)
            }
            Fault::OneWay { from, to } => {
                sim.partition_oneway(node_name(*from).as_str(), node_name(*to).as_str());
                Applied::PartitionedOneWay(node_name(*from), node_name(*to))
            }
            Fault::Hold { a, b } => {
                sim.hold(a.as_str(), b.as_str());
                Applied::Held(vec![(a.clone(), b.clone())])
            }
            Fault::Clog { links } => {
                for (a, b) in links {
                    sim.hold(a.as_str(), b.as_str());
                }
                Applied::Held(links.clone())
            }
            Fault::Split { side } => {
                let mut pairs = Vec::new();
                for a in side {
                    for b in (1..=self.nodes).filter(|n| !side.contains(n)) {
                        pairs.push((node_name(*a), node_name(b)));
                    }
                }
                for (a, b) in &pairs {
                    sim.partition(a.as_str(), b.as_str());
                }
                Applied::Partitioned(pairs)
            }
            Fault::Loss {
                a,
                b,
                rate_per_mille,
            } => {
                sim.set_link_fail_rate(
                    a.as_str(),
                    b.as_str(),
                    f64::from(*rate_per_mille) / 1_000.0,
                );
                Applied::Lossy(a.clone(), b.clone())
            }
            Fault::Latency { a, b, max_ms } => {
                sim.set_link_max_message_latency(
                    a.as_str(),
                    b.as_str(),
                    Duration::from_millis(*max_ms),
                );
                Applied::Slow(a.clone(), b.clone())
            }
            Fault::CrashCoordinator { coordinator } => {
                if !self.crashed_coordinators.insert(*coordinator) {
                    return Applied::Nothing;
                }
                self.crash_host(sim, &coordinator_name(*coordinator));
                Applied::CoordinatorCrashed(*coordinator)
            }
            Fault::IsolateCoordinator {
                coordinator,
                from_clients,
            } => {
                let name = coordinator_name(*coordinator);
                let pairs: Vec<_> = self
                    .hosts
                    .iter()
                    .filter(|h| h.starts_with("node") || (*from_clients && h.starts_with("client")))
                    .map(|other| (name.clone(), other.clone()))
                    .collect();
                for (a, b) in &pairs {
                    sim.partition(a.as_str(), b.as_str());
                }
                Applied::Partitioned(pairs)
            }
        }
    }

    /// Crash a host (a node or a coordinator). The crash drops the host's tasks in an order
    /// that depends on tokio's task ids, which count across the process; the segments its
    /// dropped connections would send (FIN, RST) are cut off, so that order decides nothing.
    /// Peers learn of the crash as from a machine that lost power: their next segment on an
    /// old connection is answered with a reset, idle ones by keep-alive.
    fn crash_host(&self, sim: &mut turmoil::Sim<'_>, name: &str) {
        let others: Vec<&String> = self.hosts.iter().filter(|h| *h != name).collect();
        for other in &others {
            sim.partition(name, other.as_str());
        }
        sim.crash(name);
        for other in &others {
            sim.repair(name, other.as_str());
        }
        self.reapply_links_of(sim, name);
    }

    /// Put back what active episodes did to `host`'s links (after they were reset).
    fn reapply_links_of(&self, sim: &mut turmoil::Sim<'_>, host: &str) {
        for (_, applied) in &self.active {
            match applied {
                Applied::Partitioned(pairs) => {
                    for (a, b) in pairs.iter().filter(|(a, b)| a == host || b == host) {
                        sim.partition(a.as_str(), b.as_str());
                    }
                }
                Applied::PartitionedOneWay(from, to) if from == host || to == host => {
                    sim.partition_oneway(from.as_str(), to.as_str());
                }
                Applied::Held(pairs) => {
                    for (a, b) in pairs.iter().filter(|(a, b)| a == host || b == host) {
                        sim.hold(a.as_str(), b.as_str());
                    }
                }
                _ => {}
            }
        }
    }

    fn undo(&mut self, sim: &mut turmoil::Sim<'_>, applied: Applied, rng: &mut StdRng) {
        match applied {
            Applied::Crashed(node) => {
                sim.bounce(node_name(node));
                self.crashed.remove(&node);
            }
            Applied::CoordinatorCrashed(coordinator) => {
                sim.bounce(coordinator_name(coordinator));
                self.crashed_coordinators.remove(&coordinator);
            }
            Applied::Partitioned(pairs) => {
                for (a, b) in pairs {
                    sim.repair(a.as_str(), b.as_str());
                }
            }
            Applied::PartitionedOneWay(from, to) => {
                sim.repair_oneway(from.as_str(), to.as_str());
            }
            Applied::Held(mut pairs) => {
                // Released in a drawn order: the order links come back in matters.
                while !pairs.is_empty() {
                    let (a, b) = pairs.swap_remove(rng.gen_range(0..pairs.len()));
                    sim.release(a.as_str(), b.as_str());
                }
            }
            Applied::Lossy(a, b) => sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0),
            Applied::Slow(a, b) => {
                sim.set_link_max_message_latency(a.as_str(), b.as_str(), LATENCY_MAX)
            }
            Applied::Nothing => {}
        }
    }

    /// Undo every active episode, drop the rest of the plan, and set every link between the
    /// workload's hosts back to healthy (whatever overlapping episodes left behind).
    fn heal(&mut self, sim: &mut turmoil::Sim<'_>, observer: &mut Observer, rng: &mut StdRng) {
        self.pending.clear();
        let now = sim.elapsed();
        for (episode, applied) in std::mem::take(&mut self.active) {
            Self::log(observer, now, format!("heal {:?}", episode.fault));
            self.undo(sim, applied, rng);
        }
        for (i, a) in self.hosts.iter().enumerate() {
            for b in &self.hosts[i + 1..] {
                sim.repair(a.as_str(), b.as_str());
                sim.release(a.as_str(), b.as_str());
                sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                sim.set_link_max_message_latency(a.as_str(), b.as_str(), LATENCY_MAX);
            }
        }
        for node in std::mem::take(&mut self.crashed) {
            Self::log(observer, now, format!("heal restart node{node}"));
            sim.bounce(node_name(node));
        }
        for coordinator in std::mem::take(&mut self.crashed_coordinators) {
            Self::log(observer, now, format!("heal restart coord{coordinator}"));
            sim.bounce(coordinator_name(coordinator));
        }
    }
}
