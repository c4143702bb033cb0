//! Rhizome coordinator: the front end of a Rhizome cluster. It parses SQL-lite, plans each
//! statement against the table's schema, scatters shard queries and gathers their partials
//! (merged exactly), routes writes to shards, and answers over HTTP and the PostgreSQL wire
//! protocol. It talks to the shards through one seam, [`cluster::Cluster`].
//!
//! | module | what it holds |
//! |---|---|
//! | [`error`] | the crate's one error type, variants by phase |
//! | [`status`] | errors → HTTP status, JSON code and SQLSTATE (the only such mapping) |
//! | [`limits`] | named limits with units |
//! | [`statement`] | the SQL-lite statement types |
//! | [`parse`] | SQL text → statement (sqlparser, PostgreSQL dialect), rejecting the rest |
//! | [`plan`] | statement + schema → shard query / read and coordinator steps |
//! | [`cluster`] | the `Cluster` trait: table metadata and per-shard calls |
//! | [`local`] | `LocalCluster`: in-memory shard stores in one process |
//! | [`grpc`] | `GrpcCluster`: the cluster over real nodes (meta group, shard leaders) |
//! | [`dev`] | `DevCluster`: three nodes in this process, persistent in a data directory |
//! | [`executor`] | runs statements: write routing, scatter/gather, merge, EXPLAIN |
//! | [`metrics`] | statement, error and latency counters (Prometheus text) |
//! | [`http`] | the HTTP endpoint: `POST /v1/sql`, `/health`, `/ready`, `/metrics` |
//! | [`pg`] | the PostgreSQL wire protocol endpoint |
//! | [`params`] | bound parameters of the extended protocol, substituted as literals |
//! | [`sample`] | TPC-H `lineitem`: DDL, public queries, generated INSERTs |

pub mod cluster;
pub mod dev;
pub mod error;
pub mod executor;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod local;
pub mod metrics;
pub mod params;
pub mod parse;
pub mod pg;
pub mod plan;
pub mod sample;
pub mod statement;
pub mod status;

pub use error::{Error, Result};
