//! Linearizable reads of one shard group, with leadership confirmations shared among
//! concurrent readers.
//!
//! A read is linearizable when the leader confirms its leadership with a quorum (read index)
//! *after* the read arrived, and answers once it has applied up to that index. Each
//! confirmation costs a round of append-entries to the followers, so [`ReadBarrier`] lets
//! every read that arrived before a round started share that round: one round is in flight
//! at a time, reads arriving during it wait for the next one, which starts as soon as the
//! first ends. A lone reader pays one round, as before; N concurrent readers pay about two
//! rounds instead of N.

use std::sync::{Arc, Mutex};

use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::oneshot;

use crate::types::{NodeId, Raft};

/// What a confirmation round answers: openraft's own error when this replica cannot serve a
/// linearizable read (not the leader, no quorum, stopped).
pub type ReadResult =
    Result<(), RaftError<NodeId, CheckIsLeaderError<NodeId, openraft::BasicNode>>>;

/// Readers waiting for the next round, and whether a round runs.
#[derive(Debug, Default)]
struct Pending {
    running: bool,
    waiters: Vec<oneshot::Sender<ReadResult>>,
}

/// Shares leadership confirmations among one group's concurrent linearizable reads.
#[derive(Debug, Default, Clone)]
pub struct ReadBarrier {
    pending: Arc<Mutex<Pending>>,
}

impl ReadBarrier {
    /// Wait until `raft` has confirmed its leadership in a round that started after this call
    /// and applied up to that round's read index.
    pub async fn confirm(&self, raft: &Raft) -> ReadResult {
        let (send, receive) = oneshot::channel();
        let start = {
            let mut pending = self.pending.lock().expect("read barrier lock poisoned");
            pending.waiters.push(send);
            !std::mem::replace(&mut pending.running, true)
        };
        if start {
            // The rounds run on their own task, so a reader that gives up (its deadline
            // passed) does not strand the others waiting on the round it started.
            tokio::spawn(run_rounds(self.pending.clone(), raft.clone()));
        }
        match receive.await {
            Ok(result) => result,
            // The round's task ended without answering: the runtime is shutting down.
            Err(_) => raft.ensure_linearizable().await.map(|_| ()),
        }
    }
}

/// Run confirmation rounds while readers wait: each round serves every reader that arrived
/// before it started.
async fn run_rounds(pending: Arc<Mutex<Pending>>, raft: Raft) {
    loop {
        let waiters = {
            let mut pending = pending.lock().expect("read barrier lock poisoned");
            if pending.waiters.is_empty() {
                pending.running = false;
                return;
            }
            std::mem::take(&mut pending.waiters)
        };
        let result = raft.ensure_linearizable().await.map(|_| ());
        for waiter in waiters {
            // A reader that gave up has dropped its receiver; nothing to tell it.
            let _ = waiter.send(result.clone());
        }
    }
}
