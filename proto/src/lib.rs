//! gRPC message and service definitions shared by `node` and `coordinator`.
//!
//! Layout:
//!
//! | path | what it holds |
//! |---|---|
//! | `proto/rhizome.proto` | the services: `Raft` (transport of openraft messages, per group), `ShardWrite` (insert, delete), `ShardQuery` (partials, record reads, counts, digests), `Admin` (initialise the meta group, create and drop tables, metadata, node-to-node meta proposals and shard opening/dropping, status; join and leave reserved); cache commands are reserved |
//! | `build.rs` | compiles the `.proto` with `protox` and `tonic-build` (no system `protoc`) |
//! | [`v1`] | the generated messages, clients (`*_client`) and servers (`*_server`) |
//!
//! Payloads that are Rust types of `rhizome-core` or openraft travel as bincode bytes in
//! fields whose names end in `_bincode`.

/// Generated code for package `rhizome.v1`.
#[allow(missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("rhizome.v1");
}
