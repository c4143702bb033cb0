//! gRPC message and service definitions shared by `node` and `coordinator`.
//!
//! Will hold the `.proto` files (Raft, shard writes, shard queries, cache commands, admin)
//! compiled with `tonic-build` through `protox`, so no system `protoc` is needed.
