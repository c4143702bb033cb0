//! The seam between the coordinator and the nodes that hold the shards.
//!
//! The executor talks only to [`Cluster`]: table metadata, and per-shard writes, queries and
//! record reads. [`crate::local::LocalCluster`] implements it in one process over in-memory
//! shard stores; the gRPC implementation over real nodes implements the same trait.
//!
//! Every per-shard call names one shard of one table. An implementation answers a failure
//! that is the shard's (unreachable, no leader, timed out) with [`Error::Unavailable`] or
//! [`Error::Timeout`] naming it, so the executor can fail the whole statement with it.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;

use rhizome_core::query::{Condition, OrderBy, Partial, ShardQuery};
use rhizome_core::shard::Schema;
use rhizome_core::value::Value;

use crate::error::Result;

/// A table as the cluster's metadata holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub name: String,
    pub schema: Schema,
    /// Column names of the primary key (routing only; empty: round-robin).
    pub primary_key: Vec<String>,
    pub shards: u32,
    pub replicas: u32,
}

/// Identifies one insert batch, so a retried send is applied once: a shard that has applied
/// a batch id answers the retry with the first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchId {
    /// Distinguishes coordinators (chosen at random when one starts).
    pub coordinator: u64,
    /// Increases with every batch a coordinator sends.
    pub sequence: u64,
}

/// A record read on one shard: the live records that meet `filter`, their `columns` (schema
/// indexes) in that order, sorted by `order_by` (indexes into `columns`) when given, at most
/// `limit` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRequest {
    pub filter: Condition,
    pub columns: Vec<usize>,
    pub order_by: Vec<OrderBy>,
    pub limit: usize,
}

/// What EXPLAIN shows about one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardStats {
    /// Records inserted and not deleted.
    pub live_records: u64,
    /// Bytes of the shard's column data in memory.
    pub bytes: u64,
}

/// The cluster as the executor sees it.
#[async_trait]
pub trait Cluster: Send + Sync + std::fmt::Debug + 'static {
    /// Whether every shard can be asked (`/ready`).
    fn is_ready(&self) -> bool;

    /// Create a table of `spec.shards` shards with `spec.replicas` replicas each.
    /// [`crate::Error::TableExists`] when the name is taken.
    async fn create_table(&self, spec: TableSpec) -> Result<()>;

    /// Drop a table and all its shards. [`crate::Error::UnknownTable`] when there is none.
    async fn drop_table(&self, name: &str) -> Result<()>;

    /// Every table, ordered by name.
    async fn tables(&self) -> Result<Vec<TableSpec>>;

    /// One table, or `None`.
    async fn table(&self, name: &str) -> Result<Option<TableSpec>>;

    /// Append rows (already validated against the schema, in schema order) to one shard,
    /// all or nothing; returns how many were appended. A batch id seen before is not applied
    /// again and answers as the first time did.
    async fn insert(
        &self,
        table: &str,
        shard: u32,
        batch: BatchId,
        rows: Vec<Vec<Value>>,
    ) -> Result<u64>;

    /// Delete the live records of one shard that meet the condition; returns how many.
    async fn delete(&self, table: &str, shard: u32, filter: Condition) -> Result<u64>;

    /// Evaluate a shard query on one shard.
    async fn query(&self, table: &str, shard: u32, query: ShardQuery) -> Result<Partial>;

    /// Evaluate one shard query on several shards of a table, answers in the order of
    /// `shards`; `None` for a shard that did not answer within `timeout`. By default each
    /// shard is asked with [`Cluster::query`], all in parallel; an implementation may bundle
    /// the shards a node leads into one call.
    async fn query_shards(
        &self,
        table: &str,
        shards: &[u32],
        query: &ShardQuery,
        timeout: Duration,
    ) -> Vec<Option<Result<Partial>>> {
        join_all(shards.iter().map(|&shard| async move {
            tokio::time::timeout(timeout, self.query(table, shard, query.clone()))
                .await
                .ok()
        }))
        .await
    }

    /// Read records of one shard.
    async fn read(&self, table: &str, shard: u32, request: ReadRequest) -> Result<Vec<Vec<Value>>>;

    /// Sizes of one shard, for EXPLAIN.
    async fn stats(&self, table: &str, shard: u32) -> Result<ShardStats>;

    /// One shard's plan for `query` (its leaves, their sizes, how each AND is evaluated),
    /// for EXPLAIN.
    async fn explain(&self, table: &str, shard: u32, query: ShardQuery) -> Result<Vec<String>>;
}
