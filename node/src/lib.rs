//! Rhizome storage node.
//!
//! A node hosts many shards; every shard is its own Raft group whose state machine is a
//! [`rhizome_core::shard::ShardStore`]. This crate will hold the Raft log store, the state
//! machine adapter, the gRPC services (Raft, shard writes, shard queries, cache commands,
//! admin) and the spindle manager. See `DESIGN.md` §3–4 in the repository root's docs.
