//! Deliberately broken behaviour, compiled only with the `canary` feature and off unless a
//! thread turns it on: the simulation turns each on to prove that it catches the bug.

use std::cell::Cell;

/// A bug the simulation must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canary {
    /// An insert is acknowledged as soon as it is handed to Raft, before it is committed: a
    /// leader that crashes, is cut off or is not the leader loses a write its client was told
    /// had succeeded.
    AckBeforeCommit,
    /// Queries answer from the local replica without the leader confirming its leadership
    /// first: a deposed leader (or a follower) answers with a state that misses acknowledged
    /// writes.
    StaleReads,
    /// Raft log appends are acknowledged (openraft's `LogFlushed`) without being fsynced, and
    /// so are committed ids (only votes and truncations still fsync the log): a replica
    /// counts toward a commit with entries that a crash (power loss) then takes from its
    /// disk.
    AckBeforeFsync,
}

thread_local! {
    static ACTIVE: Cell<Option<Canary>> = const { Cell::new(None) };
}

/// From now on, requests served by futures polled on this thread behave as `canary` says.
pub fn set_on_this_thread(canary: Option<Canary>) {
    ACTIVE.with(|cell| cell.set(canary));
}

/// Whether `canary` is on for this thread.
pub fn is_on(canary: Canary) -> bool {
    ACTIVE.with(Cell::get) == Some(canary)
}
