//! [`GrpcCluster`]: the [`Cluster`] over real nodes, through the node client
//! ([`node::client::Client`]).
//!
//! * **Metadata** (tables, shard map) comes from the meta group, read linearizably through
//!   its leader and cached for [`META_CACHE_MS`]; this coordinator's own CREATE and DROP
//!   refresh the cache at once, and a shard that answers "not hosted" refreshes it too, so
//!   a table dropped by another coordinator is seen as gone at its first use.
//! * **Writes** go to each shard's leader with the executor's batch id (client = the
//!   coordinator's id); the client retries on a leader change or a timeout with the same
//!   id, and the shard's state machine applies an id once.
//! * **Queries, record reads, stats** go to the shard's leader, which confirms its leadership
//!   with a quorum before answering (linearizable). The executor sends them to every shard
//!   in parallel under its deadline; a shard that cannot answer fails the statement with an
//!   error naming it.
//! * **Readiness**: a watcher polls every node's status every [`READY_POLL_MS`]; the cluster
//!   is ready when the meta group and every shard group of every table has a leader.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
// Tokio's clock (the wall clock in production): a simulation runs the coordinator on its own
// clock, and the metadata cache's age decides when it is read again.
use tokio::time::Instant;

use node::client::Client;
use node::meta::{Metadata, META_GROUP};
use node::network::Transport;
use node::services::WRITE_BATCH_BYTES_MAX;
use node::types::{NodeId, RecordRead, ShardKey};
use rhizome_core::batch::ColumnBatch;
use rhizome_core::query::{Condition, Partial, ShardQuery};
use rhizome_core::value::Value;

use crate::cluster::{BatchId, Cluster, ReadRequest, ShardStats, TableSpec};
use crate::error::{Error, Result, ShardRef};
use crate::limits::TABLES_MAX;

/// How long cached metadata is used before it is read again from the meta leader.
pub const META_CACHE_MS: u64 = 1_000;
/// Interval of the readiness watcher's status polls.
pub const READY_POLL_MS: u64 = 200;
/// Deadline of one readiness poll's metadata read (it needs the meta group's quorum).
pub const READY_POLL_TIMEOUT_MS: u64 = 2_000;

/// The cluster of nodes, as the executor sees it.
#[derive(Debug)]
pub struct GrpcCluster {
    /// Knows every node's address: the ones given, then the metadata's node list (so nodes
    /// that join later are reached).
    client: Client,
    /// The last metadata read, and when.
    cache: Mutex<Option<(Arc<Metadata>, Instant)>>,
    /// Whether the meta group and every shard had a leader at the last poll.
    ready: AtomicBool,
}

impl GrpcCluster {
    /// A cluster of `nodes` reached through `transport`. Starts the readiness watcher, which
    /// ends when the cluster is dropped; must be called inside a tokio runtime.
    pub fn connect(
        nodes: BTreeMap<NodeId, String>,
        transport: Arc<dyn Transport>,
    ) -> Arc<GrpcCluster> {
        // Deletes and metadata calls use the client's own batch ids; inserts carry the
        // executor's. A random id keeps coordinators (and restarts) apart.
        let client_id = RandomState::new().build_hasher().finish();
        GrpcCluster::connect_with_id(nodes, transport, client_id)
    }

    /// [`GrpcCluster::connect`] with the node client's id chosen by the caller (a simulation
    /// derives it from its seed). Two coordinators, or two runs of one, must not share an id:
    /// a shard answers a batch id it has seen with its first answer.
    pub fn connect_with_id(
        nodes: BTreeMap<NodeId, String>,
        transport: Arc<dyn Transport>,
        client_id: u64,
    ) -> Arc<GrpcCluster> {
        let cluster = Arc::new(GrpcCluster {
            client: Client::new(client_id, nodes, transport),
            cache: Mutex::new(None),
            ready: AtomicBool::new(false),
        });
        tokio::spawn(watch_readiness(Arc::downgrade(&cluster)));
        cluster
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The metadata, from the cache while it is fresh.
    async fn metadata(&self) -> Result<Arc<Metadata>> {
        if let Some((metadata, at)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            if at.elapsed() < Duration::from_millis(META_CACHE_MS) {
                return Ok(metadata);
            }
        }
        self.refresh().await
    }

    /// Read the metadata from the meta leader and cache it.
    async fn refresh(&self) -> Result<Arc<Metadata>> {
        let (metadata, _) = self
            .client
            .metadata()
            .await
            .map_err(|e| Error::Cluster(format!("reading the cluster metadata: {e}")))?;
        let metadata = Arc::new(metadata);
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// A node error of one shard call as a coordinator error naming the shard. A shard no
    /// node hosts is an unknown table if the table is gone from the metadata.
    async fn shard_error(&self, table: &str, shard: u32, error: node::Error) -> Error {
        let shard_ref = ShardRef {
            table: table.to_string(),
            shard,
        };
        match error {
            node::Error::NotFound(reason) => match self.refresh().await {
                Ok(metadata) if !metadata.tables.contains_key(table) => {
                    Error::UnknownTable(table.to_string())
                }
                _ => Error::Unavailable {
                    shard: shard_ref,
                    reason,
                },
            },
            e @ (node::Error::NotLeader { .. }
            | node::Error::Unavailable { .. }
            | node::Error::Transport { .. }
            | node::Error::Io { .. }) => Error::Unavailable {
                shard: shard_ref,
                reason: e.to_string(),
            },
            other => Error::Execution {
                shard: shard_ref,
                message: other.to_string(),
            },
        }
    }

    /// Whether the meta group and every shard group has a leader, from every node's status.
    async fn poll_ready(&self) -> bool {
        let mut led: BTreeSet<String> = BTreeSet::new();
        for addr in self.client.nodes().values() {
            if let Ok(status) = self.client.status(addr).await {
                for group in status.groups {
                    if group.state == "leader" {
                        led.insert(group.group);
                    }
                }
            }
        }
        if !led.contains(META_GROUP) {
            return false;
        }
        // A linearizable read: a meta leader that lost its quorum does not count.
        let refreshed =
            tokio::time::timeout(Duration::from_millis(READY_POLL_TIMEOUT_MS), self.refresh())
                .await;
        let Ok(Ok(metadata)) = refreshed else {
            return false;
        };
        metadata.tables.values().all(|table| {
            (0..table.shards).all(|shard| led.contains(&table.shard_key(shard).group_name()))
        })
    }
}

/// Poll readiness until the cluster is dropped.
async fn watch_readiness(cluster: Weak<GrpcCluster>) {
    let mut was_ready = false;
    loop {
        let Some(strong) = cluster.upgrade() else {
            return;
        };
        let ready = strong.poll_ready().await;
        strong.ready.store(ready, Ordering::Release);
        if ready != was_ready {
            if ready {
                tracing::info!("cluster ready: the meta group and every shard have a leader");
            } else {
                tracing::warn!("cluster not ready: a group has no leader");
            }
            was_ready = ready;
        }
        drop(strong);
        tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
    }
}

fn spec_of(table: &node::meta::TableMeta) -> TableSpec {
    TableSpec {
        name: table.name.clone(),
        schema: table.schema.clone(),
        primary_key: table.primary_key.clone(),
        shards: table.shards,
        replicas: table.replicas,
    }
}

#[async_trait]
impl Cluster for GrpcCluster {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    async fn create_table(&self, spec: TableSpec) -> Result<()> {
        let metadata = self.refresh().await?;
        if metadata.tables.contains_key(&spec.name) {
            return Err(Error::TableExists(spec.name));
        }
        if metadata.tables.len() >= TABLES_MAX {
            return Err(Error::LimitExceeded {
                limit: "tables_max",
                message: format!("the cluster holds tables_max ({TABLES_MAX}) tables"),
            });
        }
        let result = self
            .client
            .create_table_anywhere(
                &spec.name,
                &spec.schema,
                &spec.primary_key,
                spec.shards,
                spec.replicas,
            )
            .await;
        // Whatever happened, the next statement must see the metadata as it is now.
        let _ = self.refresh().await;
        match result {
            Ok(()) => Ok(()),
            Err(node::Error::AlreadyExists(_)) => Err(Error::TableExists(spec.name)),
            Err(e) => Err(Error::Cluster(format!("creating table {}: {e}", spec.name))),
        }
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        let result = self.client.drop_table(name).await;
        let _ = self.refresh().await;
        match result {
            Ok(()) => Ok(()),
            Err(node::Error::NotFound(_)) => Err(Error::UnknownTable(name.to_string())),
            Err(e) => Err(Error::Cluster(format!("dropping table {name}: {e}"))),
        }
    }

    async fn tables(&self) -> Result<Vec<TableSpec>> {
        Ok(self
            .metadata()
            .await?
            .tables
            .values()
            .map(spec_of)
            .collect())
    }

    async fn table(&self, name: &str) -> Result<Option<TableSpec>> {
        Ok(self.metadata().await?.tables.get(name).map(spec_of))
    }

    async fn insert(
        &self,
        table: &str,
        shard: u32,
        batch: BatchId,
        rows: Vec<Vec<Value>>,
    ) -> Result<u64> {
        // The rows go by column: checked once here, smaller in the log, and applied a
        // column at a time on every replica.
        let metadata = self.metadata().await?;
        let Some(spec) = metadata.tables.get(table) else {
            return Err(Error::UnknownTable(table.to_string()));
        };
        let encoded = ColumnBatch::from_rows(&spec.schema, &rows)
            .map_err(|e| Error::Execution {
                shard: ShardRef {
                    table: table.to_string(),
                    shard,
                },
                message: format!("the rows no longer fit the table: {e}"),
            })?
            .encode();
        if encoded.len() > WRITE_BATCH_BYTES_MAX {
            return Err(Error::LimitExceeded {
                limit: "write_batch_bytes_max",
                message: format!(
                    "the rows for {table} shard {shard} take {} bytes, more than one write batch may ({WRITE_BATCH_BYTES_MAX}); insert fewer rows per statement",
                    encoded.len()
                ),
            });
        }
        let batch = node::types::BatchId {
            client: batch.coordinator,
            sequence: batch.sequence,
        };
        let key = ShardKey::new(table, shard);
        match self
            .client
            .insert_columns(&key, batch, Bytes::from(encoded))
            .await
        {
            Ok(outcome) => Ok(outcome.count),
            Err(e) => Err(self.shard_error(table, shard, e).await),
        }
    }

    async fn delete(&self, table: &str, shard: u32, filter: Condition) -> Result<u64> {
        let key = ShardKey::new(table, shard);
        match self.client.delete(&key, &filter).await {
            Ok(outcome) => Ok(outcome.count),
            Err(e) => Err(self.shard_error(table, shard, e).await),
        }
    }

    async fn query(&self, table: &str, shard: u32, query: ShardQuery) -> Result<Partial> {
        let key = ShardKey::new(table, shard);
        match self.client.query(&key, &query).await {
            Ok(partial) => Ok(partial),
            Err(e) => Err(self.shard_error(table, shard, e).await),
        }
    }

    /// One `QueryShards` call per node that leads some of the shards (the node client
    /// knows the leaders from earlier answers), one query each for the rest.
    async fn query_shards(
        &self,
        table: &str,
        shards: &[u32],
        query: &ShardQuery,
        timeout: Duration,
    ) -> Vec<Option<Result<Partial>>> {
        let keys: Vec<ShardKey> = shards.iter().map(|&s| ShardKey::new(table, s)).collect();
        let answers = self.client.query_shards(&keys, query, timeout).await;
        let mut results = Vec::with_capacity(answers.len());
        for (&shard, answer) in shards.iter().zip(answers) {
            results.push(match answer {
                None => None,
                Some(Ok(partial)) => Some(Ok(partial)),
                Some(Err(e)) => Some(Err(self.shard_error(table, shard, e).await)),
            });
        }
        results
    }

    async fn read(&self, table: &str, shard: u32, request: ReadRequest) -> Result<Vec<Vec<Value>>> {
        let key = ShardKey::new(table, shard);
        let read = RecordRead {
            filter: request.filter,
            columns: request.columns,
            order_by: request.order_by,
            limit: request.limit,
        };
        match self.client.read(&key, &read).await {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.shard_error(table, shard, e).await),
        }
    }

    async fn explain(&self, table: &str, shard: u32, query: ShardQuery) -> Result<Vec<String>> {
        let key = ShardKey::new(table, shard);
        match self.client.explain(&key, &query).await {
            Ok(lines) => Ok(lines),
            Err(e) => Err(self.shard_error(table, shard, e).await),
        }
    }

    async fn stats(&self, table: &str, shard: u32) -> Result<ShardStats> {
        let key = ShardKey::new(table, shard);
        match self.client.stats(&key).await {
            Ok((live_records, bytes)) => Ok(ShardStats {
                live_records,
                bytes,
            }),
            Err(e) => Err(self.shard_error(table, shard, e).await),
        }
    }
}
