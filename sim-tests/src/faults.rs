//! Faults: a plan of episodes drawn from the seed, each started and ended by the driver at
//! fixed simulated times, then a full heal.
//!
//! Episodes mostly follow one another with a gap, so the cluster has moments to make
//! progress; some overlap (two faults at once). An episode's targets that depend on the
//! cluster's state (the current leader of a group) are resolved when it starts, from the state
//! the seed led to.
//!
//! The node faults are drawn over every node host, the spare of a membership seed included
//! (it may crash or be cut off before, while or after it joins), so joins and leaves run
//! through crashes and partitions of the meta leader, the shard leaders, the joining and the
//! leaving node; the driver retries them until they finish.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

/// What goes wrong during one episode. Node numbers are 1-based ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The node crashes and restarts from its disk when the episode ends; its disk keeps
    /// only what it fsynced (see [`crate::disk`]). With `torn_log`, the crash also caught a
    /// log append half-written: the tail of one of its groups' Raft logs holds a partial
    /// record (never fsynced, so never acknowledged).
    Crash { node: u64, torn_log: bool },
    /// The node is cut off from every other node (clients still reach it).
    Isolate { node: u64 },
    /// The leader of a group (by index in the cluster's group list, resolved at the start) is
    /// cut off from every other host, clients included.
    IsolateLeader { group: usize },
    /// Messages from one node to another are dropped; the other way works.
    OneWay { from: u64, to: u64 },
    /// Messages between two hosts are held, then delivered when the episode ends: two nodes,
    /// or a coordinator and a node or its SQL client.
    Hold { a: String, b: String },
    /// Several links (as for [`Fault::Hold`]) are held, then released one by one in a drawn
    /// order.
    Clog { links: Vec<(String, String)> },
    /// The nodes split in two sides that cannot reach each other (clients reach both).
    Split { side: Vec<u64> },
    /// Each step, the link between two hosts (nodes or clients) breaks with this probability
    /// (and mends the next): the messages sent while it is broken are lost.
    Loss {
        a: String,
        b: String,
        rate_per_mille: u32,
    },
    /// Messages between two hosts (nodes or clients) take up to this long.
    Latency { a: String, b: String, max_ms: u64 },
    /// The coordinator (1-based) crashes and starts afresh when the episode ends (it keeps
    /// nothing on disk).
    CrashCoordinator { coordinator: u64 },
    /// The coordinator is cut off from every node, and with `from_clients` from its clients
    /// too.
    IsolateCoordinator {
        coordinator: u64,
        from_clients: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Episode {
    pub start: Duration,
    pub end: Duration,
    pub fault: Fault,
}

/// Settings of a fault plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    pub nodes: u64,
    /// Workload clients talking to the nodes (hosts `client1`…), whose links to nodes may be
    /// lossy or slow too.
    pub clients: u64,
    /// Workload clients talking SQL to a coordinator (the hosts after the direct clients).
    pub sql_clients: u64,
    /// Coordinators (hosts `coord1`…): crashed, isolated, their links lossy or slow.
    pub coordinators: u64,
    /// Groups whose leader an episode may isolate.
    pub groups: usize,
    /// No episode starts after this.
    pub until: Duration,
    /// Share of crashes that are long (long enough for a snapshot to be needed).
    pub long_crash_percent: u32,
}

/// The coordinator that SQL client `client` (its host number, after the `direct_clients`)
/// talks to.
pub fn coordinator_of(client: u64, direct_clients: u64, coordinators: u64) -> u64 {
    (client - direct_clients - 1) % coordinators + 1
}

/// Two ends of a link: two nodes, or a quarter of the time a client and a node; with
/// coordinators, a coordinator and a node, or an SQL client and its coordinator, an eighth of
/// the time each.
fn pick_link(rng: &mut StdRng, settings: &PlanSettings) -> (String, String) {
    let (a, b) = pick_two(rng, settings.nodes);
    let coordinators = settings.coordinators;
    match rng.gen_range(0..8) {
        0 | 1 if settings.clients > 0 => {
            let client = rng.gen_range(1..=settings.clients);
            (format!("client{client}"), format!("node{b}"))
        }
        2 if coordinators > 0 => {
            let coordinator = rng.gen_range(1..=coordinators);
            (format!("coord{coordinator}"), format!("node{b}"))
        }
        3 if coordinators > 0 && settings.sql_clients > 0 => {
            let client = settings.clients + rng.gen_range(1..=settings.sql_clients);
            let coordinator = coordinator_of(client, settings.clients, coordinators);
            (format!("client{client}"), format!("coord{coordinator}"))
        }
        _ => (format!("node{a}"), format!("node{b}")),
    }
}

/// A link to hold: two nodes, or a quarter of the time (with coordinators) a coordinator and
/// a node, or an SQL client and its coordinator, so a coordinator's requests and answers
/// arrive late and in bursts, released in drawn orders.
fn pick_held_link(rng: &mut StdRng, settings: &PlanSettings) -> (String, String) {
    let (a, b) = pick_two(rng, settings.nodes);
    let coordinators = settings.coordinators;
    match rng.gen_range(0..8) {
        0 if coordinators > 0 => {
            let coordinator = rng.gen_range(1..=coordinators);
            (format!("coord{coordinator}"), format!("node{b}"))
        }
        1 if coordinators > 0 && settings.sql_clients > 0 => {
            let client = settings.clients + rng.gen_range(1..=settings.sql_clients);
            let coordinator = coordinator_of(client, settings.clients, coordinators);
            (format!("client{client}"), format!("coord{coordinator}"))
        }
        _ => (format!("node{a}"), format!("node{b}")),
    }
}

fn crash_length_ms(rng: &mut StdRng, settings: &PlanSettings) -> u64 {
    let long = rng.gen_range(0..100) < settings.long_crash_percent;
    if long {
        rng.gen_range(8_000..15_000)
    } else {
        rng.gen_range(200..3_000)
    }
}

fn pick_two(rng: &mut StdRng, nodes: u64) -> (u64, u64) {
    let a = rng.gen_range(1..=nodes);
    let b = (a + rng.gen_range(1..nodes) - 1) % nodes + 1;
    (a, b)
}

/// Draw a plan of episodes.
pub fn plan(rng: &mut StdRng, settings: PlanSettings) -> Vec<Episode> {
    let mut episodes = Vec::new();
    let mut at = Duration::from_millis(rng.gen_range(500..2_000));
    while at < settings.until {
        let nodes = settings.nodes;
        let (a, b) = pick_two(rng, nodes);
        // Two more kinds of episode when there are coordinators.
        let kinds = if settings.coordinators > 0 { 12 } else { 10 };
        let (fault, length_ms) = match rng.gen_range(0..kinds) {
            0 => {
                let length = crash_length_ms(rng, &settings);
                let torn_log = rng.gen_bool(0.5);
                (Fault::Crash { node: a, torn_log }, length)
            }
            1 => (Fault::Isolate { node: a }, rng.gen_range(1_000..5_000)),
            2 => (
                Fault::IsolateLeader {
                    group: rng.gen_range(0..settings.groups),
                },
                rng.gen_range(1_000..5_000),
            ),
            3 => (
                Fault::OneWay { from: a, to: b },
                rng.gen_range(1_000..4_000),
            ),
            4 => {
                let (a, b) = pick_held_link(rng, &settings);
                (Fault::Hold { a, b }, rng.gen_range(200..2_000))
            }
            5 => {
                let mut links = BTreeSet::new();
                for _ in 0..rng.gen_range(2..=4) {
                    links.insert(pick_held_link(rng, &settings));
                }
                (
                    Fault::Clog {
                        links: links.into_iter().collect(),
                    },
                    rng.gen_range(500..3_000),
                )
            }
            6 => {
                let (a, b) = pick_link(rng, &settings);
                (
                    Fault::Loss {
                        a,
                        b,
                        rate_per_mille: rng.gen_range(5..50),
                    },
                    rng.gen_range(1_000..4_000),
                )
            }
            7 => {
                let (a, b) = pick_link(rng, &settings);
                (
                    Fault::Latency {
                        a,
                        b,
                        max_ms: rng.gen_range(100..600),
                    },
                    rng.gen_range(1_000..4_000),
                )
            }
            8 => {
                // A random proper, non-empty subset of the nodes.
                let mask = rng.gen_range(1..(1u64 << nodes) - 1);
                let side = (1..=nodes).filter(|n| mask & (1 << (n - 1)) != 0).collect();
                (Fault::Split { side }, rng.gen_range(1_000..5_000))
            }
            9 => {
                let length = crash_length_ms(rng, &settings);
                let torn_log = rng.gen_bool(0.5);
                (Fault::Crash { node: b, torn_log }, length)
            }
            10 => {
                let coordinator = rng.gen_range(1..=settings.coordinators);
                let length = crash_length_ms(rng, &settings);
                (Fault::CrashCoordinator { coordinator }, length)
            }
            _ => {
                let coordinator = rng.gen_range(1..=settings.coordinators);
                let from_clients = rng.gen_bool(0.5);
                (
                    Fault::IsolateCoordinator {
                        coordinator,
                        from_clients,
                    },
                    rng.gen_range(1_000..5_000),
                )
            }
        };
        let end = at + Duration::from_millis(length_ms);
        episodes.push(Episode {
            start: at,
            end,
            fault,
        });
        // Mostly one episode after another; a third of them overlap the next one (two nodes
        // down at once, a partition during a crash).
        at = if rng.gen_range(0..3) == 0 {
            at + Duration::from_millis(rng.gen_range(0..=length_ms))
        } else {
            end + Duration::from_millis(rng.gen_range(200..1_500))
        };
    }
    episodes
}
