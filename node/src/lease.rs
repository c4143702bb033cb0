//! Leader leases: linearizable reads without a round of messages per read.
//!
//! A replica that acknowledges an append-entries (a heartbeat included) from a leader
//! refuses to vote for anyone else for its election timeout afterwards (openraft's *leader
//! lease*: a follower whose committed vote was refreshed less than `election_timeout_max` ago
//! rejects vote requests). So once a quorum of a group's voters has acknowledged messages this
//! leader sent at time *t* or later, no other leader can be elected before *t* plus the
//! shortest election timeout of the cluster, and this leader's committed index covers every
//! write acknowledged before then. [`LeaseClock`] records, per peer, the send time of the
//! latest acknowledged append-entries (it is fed by [`crate::network::GroupNetwork`]); a read
//! that finds a quorum of acknowledgements younger than the lease ([`RaftSettings::lease_ms`],
//! half the shortest election timeout, leaving the other half for clocks that run at different
//! rates) reads the committed index and waits until it is applied — no messages. Otherwise it
//! falls back to a confirmation round ([`crate::reads::ReadBarrier`]).
//!
//! A follower's promise lives in memory, so a replica that restarts could vote at once. Each
//! group therefore refuses to vote for [`RaftSettings::lease_ms`] after it is opened
//! ([`LeaseClock::holds_votes`]), which keeps every promise made before the restart.
//!
//! [`RaftSettings::lease_ms`]: crate::app::RaftSettings::lease_ms

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use openraft::{ServerState, Vote};
// Tokio's clock: the simulation runs each host on its own simulated clock.
use tokio::time::Instant;

use crate::types::{NodeId, Raft};

/// The acknowledgements one group's leader has received, and the lease they give.
#[derive(Debug)]
pub struct LeaseClock {
    /// How long an acknowledgement of a message sent at *t* keeps this replica the only
    /// possible leader: until *t* + `lease`. Zero turns lease reads off.
    lease: Duration,
    /// When this group was opened: it votes for no one until `opened + lease`.
    opened: Instant,
    /// Per peer: the vote its latest acknowledged append-entries carried, and when that
    /// message was sent.
    acks: Mutex<BTreeMap<NodeId, (Vote<NodeId>, Instant)>>,
}

impl LeaseClock {
    pub fn new(lease: Duration) -> LeaseClock {
        LeaseClock {
            lease,
            opened: Instant::now(),
            acks: Mutex::new(BTreeMap::new()),
        }
    }

    /// `target` acknowledged an append-entries carrying `vote`, sent at `sent`: it accepted
    /// `vote`'s leader and will not vote for another for its election timeout.
    pub fn acknowledged(&self, target: NodeId, vote: &Vote<NodeId>, sent: Instant) {
        let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        match acks.get_mut(&target) {
            Some((known, at)) if known == vote => *at = (*at).max(sent),
            _ => {
                acks.insert(target, (*vote, sent));
            }
        }
    }

    /// Whether this group must not vote yet: it was opened less than a lease ago, and before
    /// that (before a restart) it may have acknowledged a leader whose lease still runs.
    pub fn holds_votes(&self) -> bool {
        !self.lease.is_zero() && self.opened.elapsed() < self.lease
    }

    /// Whether every config of `joint` (one, or two during a membership change) has a
    /// majority of voters that acknowledged `vote` from messages sent less than a lease
    /// before `now`; `me` counts as acknowledged.
    fn quorum_fresh(
        &self,
        me: NodeId,
        vote: &Vote<NodeId>,
        joint: &[Vec<NodeId>],
        now: Instant,
    ) -> bool {
        if self.lease.is_zero() {
            return false;
        }
        let acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        joint.iter().all(|voters| {
            let fresh = voters
                .iter()
                .filter(|&&id| {
                    id == me
                        || acks
                            .get(&id)
                            .is_some_and(|(v, sent)| v == vote && now < *sent + self.lease)
                })
                .count();
            fresh * 2 > voters.len()
        })
    }

    /// Serve a linearizable read under the lease: if this replica is the leader, has
    /// committed an entry of its own term and holds a quorum's lease, wait until its
    /// committed index is applied and answer `true`. `false`: the caller confirms
    /// leadership with a round of messages instead (which also produces the right error for
    /// a replica that is not the leader).
    pub async fn read(&self, raft: &Raft, wait: Duration) -> bool {
        if self.lease.is_zero() {
            return false;
        }
        let Ok(Some((me, vote, committed, joint))) = raft
            .with_raft_state(|state| {
                if state.server_state != ServerState::Leader || !state.vote_ref().is_committed() {
                    return None;
                }
                let vote = *state.vote_ref();
                // A new leader's committed index may lag what its predecessor committed
                // until an entry of its own term commits (one leader per term).
                let committed = state
                    .committed
                    .filter(|c| c.leader_id.term == vote.leader_id().term)?;
                let me = vote.leader_id().voted_for()?;
                let joint = state
                    .membership_state
                    .effective()
                    .get_joint_config()
                    .clone();
                Some((me, vote, committed, joint))
            })
            .await
        else {
            return false;
        };
        // Checked after the committed index was read: a lease that holds now held then.
        if !self.quorum_fresh(me, &vote, &joint, Instant::now()) {
            return false;
        }
        let applied = raft.metrics().borrow().last_applied.map(|a| a.index);
        if applied >= Some(committed.index) {
            return true;
        }
        raft.wait(Some(wait))
            .applied_index_at_least(Some(committed.index), "lease read")
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Vote;

    const LEASE: Duration = Duration::from_millis(1_000);

    fn vote(term: u64, leader: NodeId) -> Vote<NodeId> {
        Vote::new_committed(term, leader)
    }

    #[tokio::test]
    async fn a_quorum_of_fresh_acknowledgements_of_this_vote_holds_the_lease() {
        // Proves: the lease holds exactly while a majority (the leader counting itself) has
        // acknowledged this leader's vote from messages sent less than a lease ago.
        let clock = LeaseClock::new(LEASE);
        let v = vote(3, 1);
        let voters = vec![vec![1, 2, 3]];
        let start = Instant::now();
        assert!(
            !clock.quorum_fresh(1, &v, &voters, start),
            "no acknowledgement yet"
        );
        clock.acknowledged(2, &v, start);
        assert!(clock.quorum_fresh(1, &v, &voters, start + LEASE / 2));
        assert!(
            !clock.quorum_fresh(1, &v, &voters, start + LEASE),
            "the lease ends a lease after the acknowledged message was sent"
        );
        // An older send time does not move the lease back.
        clock.acknowledged(2, &v, start + LEASE / 2);
        clock.acknowledged(2, &v, start);
        assert!(clock.quorum_fresh(1, &v, &voters, start + LEASE));
        // Acknowledgements of another vote (an earlier term) count for nothing.
        assert!(!clock.quorum_fresh(1, &vote(4, 1), &voters, start + LEASE / 2));
        // A replica that is not a voter has no say, and five voters need three.
        let five = vec![vec![1, 2, 3, 4, 5]];
        clock.acknowledged(6, &v, start + LEASE / 2);
        assert!(!clock.quorum_fresh(1, &v, &five, start + LEASE));
        clock.acknowledged(4, &v, start + LEASE / 2);
        assert!(clock.quorum_fresh(1, &v, &five, start + LEASE));
    }

    #[tokio::test]
    async fn a_joint_membership_needs_a_quorum_of_each_config() {
        let clock = LeaseClock::new(LEASE);
        let v = vote(2, 1);
        let now = Instant::now();
        let joint = vec![vec![1, 2, 3], vec![3, 4, 5]];
        clock.acknowledged(2, &v, now);
        assert!(!clock.quorum_fresh(1, &v, &joint, now), "old config only");
        clock.acknowledged(4, &v, now);
        assert!(
            !clock.quorum_fresh(1, &v, &joint, now),
            "one of three in the new config"
        );
        clock.acknowledged(5, &v, now);
        assert!(clock.quorum_fresh(1, &v, &joint, now));
    }

    #[tokio::test]
    async fn a_zero_lease_never_holds_and_never_holds_votes() {
        let clock = LeaseClock::new(Duration::ZERO);
        let v = vote(1, 1);
        let now = Instant::now();
        clock.acknowledged(2, &v, now);
        clock.acknowledged(3, &v, now);
        assert!(!clock.quorum_fresh(1, &v, &[vec![1, 2, 3]], now));
        assert!(!clock.holds_votes());
    }

    #[tokio::test]
    async fn a_group_holds_its_votes_for_a_lease_after_it_opens() {
        // Proves: a replica opened (or reopened after a crash) votes for no one until a lease
        // has passed, so a promise it made before a restart is kept.
        let short = Duration::from_millis(200);
        let clock = LeaseClock::new(short);
        assert!(clock.holds_votes());
        tokio::time::sleep(short).await;
        assert!(!clock.holds_votes());
        assert!(LeaseClock::new(LEASE).holds_votes());
    }
}
