//! Watches every replica between simulation steps: records a trace of what each Raft group
//! did (for the determinism check and for reading a failure) and checks Raft's invariants.
//!
//! Invariants, checked at every step on every running replica:
//! * at most one leader per term of a group, over the whole run (restarts included). The node
//!   builds openraft with `single-term-leader` (standard Raft: a voter grants one vote per
//!   term), so a second leader in a term is a violation; such terms are also counted
//!   ([`Observer::shared_terms`]) for the report;
//! * a replica's term never goes down, across restarts too (the vote is durable);
//! * a replica's applied index never goes down while it runs, and is at most the commit
//!   index its log has recorded (or its snapshot's, after installing one);
//! * replicas that applied an entry at the same index applied it from the same term
//!   (state machine safety, sampled at each replica's last applied entry);
//! * a replica restarted after a crash holds every log entry it had flushed before (Raft
//!   counts a flushed entry toward a commit; a crash keeps only what was fsynced).
//!
//! "Nothing committed is lost" is checked at the end: each group's converged applied index is
//! at least the highest index any replica applied during the run.

use std::collections::{BTreeMap, BTreeSet};
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

/// Per log index: the term of the entry applied there (one leader per term: the term names
/// the leader), and the replica that was seen applying it.
type AppliedLeaders = BTreeMap<u64, (u64, NodeId)>;

#[derive(Debug, Default)]
pub struct Observer {
    /// (group, term) → the nodes seen leading it.
    leaders: BTreeMap<(String, u64), BTreeSet<NodeId>>,
    /// Terms in which more than one node was leader.
    pub shared_terms: usize,
    /// group → index → (leader id of the entry a replica was seen to have applied there, the
    /// replica).
    applied_terms: BTreeMap<String, AppliedLeaders>,
    /// (node, group) → the replica at the last step of its current incarnation.
    seen: BTreeMap<(NodeId, String), Seen>,
    /// (node, group) → highest term seen, across incarnations.
    terms: BTreeMap<(NodeId, String), u64>,
    /// group → highest applied index seen on any replica.
    pub max_applied: BTreeMap<String, u64>,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    /// (node, group) → the last log index its replica had flushed when the node crashed.
    flushed_at_crash: BTreeMap<(NodeId, String), u64>,
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
    /// A node stopped (crash): its next observations start a new incarnation, whose logs must
    /// still hold every entry the crashed one had flushed.
    pub fn forget_node(&mut self, node: NodeId) {
        for ((id, group), seen) in &self.seen {
            if *id == node {
                self.flushed_at_crash
                    .insert((*id, group.clone()), seen.last_log);
            }
        }
        self.seen.retain(|(id, _), _| *id != node);
    }

    pub fn observe(&mut self, now: Duration, nodes: &BTreeMap<NodeId, Arc<Node>>) {
        let ms = now.as_millis();
        for (&id, node) in nodes {
            // A group the node no longer hosts was closed (its replica moved off, or the node
            // left): if it comes back, it is a new replica starting from term 0.
            let hosted: BTreeSet<String> =
                node.groups().iter().map(|g| g.key.group_name()).collect();
            self.seen
                .retain(|(node, group), _| *node != id || hosted.contains(group));
            self.terms
                .retain(|(node, group), _| *node != id || hosted.contains(group));
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
                if !self.seen.contains_key(&key) {
                    if let Some(flushed) = self.flushed_at_crash.remove(&key) {
                        if seen.last_log < flushed {
                            self.violations.push(format!(
                                "at {ms} ms: node{id} {name} restarted with its log at {}, \
                                 below the {flushed} it had flushed (and acknowledged) before \
                                 crashing",
                                seen.last_log
                            ));
                        }
                    }
                }
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
                    let leaders = self.leaders.entry((name.clone(), seen.term)).or_default();
                    if leaders.insert(id) && leaders.len() == 2 {
                        self.shared_terms += 1;
                        self.violations.push(format!(
                            "at {ms} ms: {name} has two leaders in term {}: nodes {leaders:?}",
                            seen.term
                        ));
                    }
                    // The leader id (term, node) is the vote a quorum granted: it must match.
                    let vote = metrics.vote;
                    if vote.leader_id().term != seen.term
                        || vote.leader_id().voted_for() != Some(id)
                        || !vote.is_committed()
                    {
                        self.violations.push(format!(
                            "at {ms} ms: node{id} leads {name} in term {} on vote {vote}",
                            seen.term
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
                    let leader_id = log_id.leader_id.term;
                    let terms = self.applied_terms.entry(name.clone()).or_default();
                    let (first, by) = *terms.entry(log_id.index).or_insert((leader_id, id));
                    if first != leader_id {
                        self.violations.push(format!(
                            "at {ms} ms: {name} index {} applied from leader {first:?} on \
                             node{by} but from leader {leader_id:?} on node{id}",
                            log_id.index
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
