//! `rhizome-node`: a Rhizome storage node. It hosts many shard replicas; every shard of every
//! table is its own Raft group (openraft, storage-v2) whose state machine is a `rhizome-core`
//! [`ShardStore`](rhizome_core::shard::ShardStore). See `DESIGN.md` §3–4.
//!
//! Layout, in the openraft-examples manner:
//!
//! | module | what it holds |
//! |---|---|
//! | [`error`] | the crate's one error type |
//! | [`status`] | the one mapping between [`Error`] and gRPC status codes (both ways) |
//! | [`types`] | `declare_raft_types!`, the replicated [`types::Command`]s, shard keys, batch ids |
//! | [`log_store`] | the durable Raft log: a CRC32C-checked, fsynced record file per group |
//! | [`state_machine`] | the shard state machine: `ShardStore`, batch-id dedup, snapshots as segment files |
//! | [`network`] | openraft's network over tonic, with a transport seam for simulated networks |
//! | [`services`] | the gRPC services: Raft, shard writes, shard queries, admin |
//! | [`placement`] | shard placement on a consistent hash ring with virtual nodes |
//! | [`app`] | wires it together: a node, its groups, its server |
//! | [`client`] | a Rust client: finds leaders, retries with the same batch id |

pub mod app;
pub mod client;
pub mod error;
pub mod log_store;
pub mod network;
pub mod placement;
pub mod services;
pub mod state_machine;
pub mod status;
pub mod types;

pub use error::{Error, Result};
