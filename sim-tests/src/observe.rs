//! Watches every replica between simulation steps: records a trace of what each Raft group
//! did (for the determinism check and for reading a failure) and checks Raft's invariants.
//!
//! Invariants, checked at every step on every running replica:
//! * at most one leader per term of a group, over the whole run (restarts included);
//! * a replica's term never goes down, across restarts too (the vote is durable);
//! * a replica's applied index never goes down while it runs, and is at most the commit
//!   index its log has recorded (or its snapshot's, after installing one);
//! * replicas that applied an entry at the same index applied it from the same term
//!   (state machine safety, sampled at each replica's last applied entry).
//!
//! "Nothing committed is lost" is checked at the end: each group's converged applied index is
//! at least the highest index any replica applied during the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use node::app::Node;
use node::types::NodeId;
use openraft::ServerState;

/// What a replica looked like at the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    state: ServerState,
    term: u64,
    leader: Option<NodeId>,
    applied: u64,
    last_log: u64,
    snapshot: u64,
}

#[derive(Debug, Default)]
pub struct Observer {
    /// (group, term) → the node seen leading it.
    leaders: BTreeMap<(String, u64), NodeId>,
    /// group → index → term of the entry a replica was seen to have applied there.
    applied_terms: BTreeMap<String, BTreeMap<u64, (u64, NodeId)>>,
    /// (node, group) → the replica at the last step of its current incarnation.
    seen: BTreeMap<(NodeId, String), Seen>,
    /// (node, group) → highest term seen, across incarnations.
    terms: BTreeMap<(NodeId, String), u64>,
    /// group → highest applied index seen on any replica.
    pub max_applied: BTreeMap<String, u64>,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
}

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl Observer {
    /// A node stopped (crash): its next observations start a new incarnation.
    pub fn forget_node(&mut self, node: NodeId) {
        self.seen.retain(|(id, _), _| *id != node);
    }

    pub fn observe(&mut self, now: Duration, nodes: &BTreeMap<NodeId, Arc<Node>>) {
        let ms = now.as_millis();
        for (&id, node) in nodes {
            for group in node.groups() {
                let name = group.key.group_name();
                let metrics = group.raft.metrics();
                let metrics = metrics.borrow();
                let committed = group.log.committed().map_or(0, |l| l.index);
                let seen = Seen {
                    state: metrics.state,
                    term: metrics.current_term,
                    leader: metrics.current_leader,
                    applied: metrics.last_applied.map_or(0, |l| l.index),
                    last_log: metrics.last_log_index.unwrap_or(0),
                    snapshot: metrics.snapshot.map_or(0, |l| l.index),
                };
                let key = (id, name.clone());
                if self.seen.get(&key) == Some(&seen) {
                    continue;
                }
                self.trace.push(format!(
                    "{ms} node{id} {name} {} term={} leader={:?} applied={} log={} snapshot={}",
                    state_name(seen.state),
                    seen.term,
                    seen.leader,
                    seen.applied,
                    seen.last_log,
                    seen.snapshot
                ));
                if seen.state == ServerState::Leader {
                    let leader = self.leaders.entry((name.clone(), seen.term)).or_insert(id);
                    if *leader != id {
                        self.violations.push(format!(
                            "at {ms} ms: {name} has two leaders in term {}: node{} and node{id}",
                            seen.term, *leader
                        ));
                    }
                }
                let term = self.terms.entry(key.clone()).or_insert(seen.term);
                if seen.term < *term {
                    self.violations.push(format!(
                        "at {ms} ms: node{id} {name} went back from term {} to {}",
                        *term, seen.term
                    ));
                }
                *term = (*term).max(seen.term);
                if let Some(before) = self.seen.get(&key) {
                    if seen.applied < before.applied {
                        self.violations.push(format!(
                            "at {ms} ms: node{id} {name} applied index went back from {} to {}",
                            before.applied, seen.applied
                        ));
                    }
                }
                if seen.applied > committed.max(seen.snapshot) {
                    self.violations.push(format!(
                        "at {ms} ms: node{id} {name} applied {} beyond its committed {committed}",
                        seen.applied
                    ));
                }
                if let Some(log_id) = metrics.last_applied {
                    let terms = self.applied_terms.entry(name.clone()).or_default();
                    let (term, by) = *terms
                        .entry(log_id.index)
                        .or_insert((log_id.leader_id.term, id));
                    if term != log_id.leader_id.term {
                        self.violations.push(format!(
                            "at {ms} ms: {name} index {} applied from term {term} on node{by} \
                             but from term {} on node{id}",
                            log_id.index, log_id.leader_id.term
                        ));
                    }
                }
                let max = self.max_applied.entry(name).or_insert(0);
                *max = (*max).max(seen.applied);
                self.seen.insert(key, seen);
            }
        }
    }
}
