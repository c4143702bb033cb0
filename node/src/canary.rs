//! Deliberately broken behaviour, compiled only with the `canary` feature and off unless a
//! thread turns it on: the simulation turns it on to prove that it catches the bug.
//!
//! The bug: a write is acknowledged as soon as it is handed to Raft, before it is committed.
//! A leader that crashes or is cut off before replicating it loses a write its client was
//! told had succeeded.

use std::cell::Cell;

thread_local! {
    static ACK_BEFORE_COMMIT: Cell<bool> = const { Cell::new(false) };
}

/// From now on, writes served by futures polled on this thread are acknowledged early.
pub fn ack_before_commit_on_this_thread(on: bool) {
    ACK_BEFORE_COMMIT.with(|cell| cell.set(on));
}

pub fn ack_before_commit() -> bool {
    ACK_BEFORE_COMMIT.with(Cell::get)
}
