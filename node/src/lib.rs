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
//! | [`blocking`] | where disk and CPU-heavy steps run: the blocking pool, or inline in a simulation |
//! | [`log_store`] | the durable Raft log: a CRC32C-checked, fsynced record file per group |
//! | [`meta`] | the meta group: nodes, tables, shard map; its state machine and snapshots |
//! | [`state_machine`] | the shard state machine: `ShardStore`, batch-id dedup, snapshots as segment files |
//! | [`network`] | openraft's network over tonic, with a transport seam for simulated networks |
//! | [`services`] | the gRPC services: Raft, shard writes, shard queries, admin |
//! | [`lease`] | leader leases: linearizable reads without a round of messages each |
//! | [`reads`] | leadership confirmations shared among concurrent reads (when no lease holds) |
//! | [`placement`] | shard placement on a consistent hash ring with virtual nodes |
//! | [`rebalance`] | joining and leaving nodes: shard moves to the ring's placement, recorded in the meta group |
//! | [`app`] | wires it together: a node, its groups, its server |
//! | [`client`] | a Rust client: finds leaders, retries with the same batch id |

//! ## Choices where the design is silent
//!
//! * **Wire payloads** are bincode (`Partial` has non-string map keys, so not JSON); rows
//!   stay encoded in the log entry (`Bytes`) and are decoded once per replica on apply.
//! * **Batch ids** are (client, sequence). Each shard remembers the outcome of a client's last
//!   64 batches, for 4096 clients (least recently written evicted); a retry inside that window
//!   is answered `duplicate`, one older is rejected as stale. Part of every snapshot.
//! * **Snapshots** save the whole `ShardStore` into a fresh `snap-<n>` directory reached
//!   through a `live` symlink (the store cannot be told to save elsewhere), then `CURRENT`
//!   is replaced; the shipped snapshot is an archive of those files with a CRC32C per file.
//! * **Tables** are created through any node (`Admin.CreateTable`): the table and its shard
//!   map (placed on the ring over the nodes the meta group lists) are recorded in the meta
//!   group first — the log decides which of two creations of a name wins — then each shard
//!   group is opened on its replicas; if that fails the table is dropped again. Each group's
//!   `GROUP` file lets a restarted node reopen it. `DropTable` removes the table from the
//!   meta group, then closes its groups and removes their files (a replica that is down
//!   then keeps its files; nothing cleans them up yet).
//! * **The meta group** is hosted (idle) on every node from its start; `Admin.Initialize`
//!   makes it with the first three members by id as voters and records every member as a
//!   node. Metadata reads and changes go through its leader (any node forwards).
//! * **Timing**: openraft 0.9 gives append-entries the heartbeat interval as deadline, so
//!   heartbeats are 500 ms (elections 2–4 s) and an append carries at most 2 entries of at
//!   most 8 MiB. Tests use faster settings through [`app::RaftSettings`].
//! * **Linearizable reads** are served under the leader's lease ([`lease`]): a leader whose
//!   messages a quorum acknowledged less than half an election timeout ago reads its
//!   committed index and answers once that is applied, with no messages; otherwise it
//!   confirms its leadership with a round first ([`reads`]). Followers keep the promise
//!   behind the lease (no vote for another leader within their election timeout) across a
//!   restart by voting for no one during a lease after a group opens.
//!   `RaftSettings::lease_reads = false` always confirms with a round.
//! * **Seams for simulation**: [`network::Transport`] hands out channels (a simulated network
//!   builds them over its own streams); [`app::serve`] takes any stream of connections; all
//!   waiting uses tokio time; the client id is given by the caller; [`blocking`] runs disk
//!   steps inline on a simulation's thread. openraft 0.9 draws its election timeouts from
//!   `rand::thread_rng` itself; [`app::RaftSettings::election_timeout_seed`] pins each
//!   group's timeout to a value derived from a seed instead.

pub mod allocator;
pub mod app;
pub mod blocking;
#[cfg(feature = "canary")]
pub mod canary;
pub mod client;
pub mod error;
pub mod lease;
pub mod log_store;
pub mod meta;
pub mod network;
pub mod placement;
pub mod reads;
pub mod rebalance;
pub mod services;
pub mod state_machine;
pub mod status;
pub mod types;

pub use error::{Error, Result};
