//! [`LocalCluster`]: every shard of every table as an in-memory [`ShardStore`] in this
//! process, each behind its own lock, so the whole coordinator runs and is tested without
//! nodes. Replicas are recorded but not kept (one copy per shard); nothing is persisted.
//!
//! Shard work runs on tokio's blocking pool, so a scatter over N shards uses the cores.
//! Tests can make a shard fail ([`LocalCluster::set_shard_failing`]) or answer late
//! ([`LocalCluster::set_shard_delay`]) to check that a query fails whole, naming the shard.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use rhizome_core::query::{Condition, Partial, ResultSet, ShardQuery};
use rhizome_core::shard::{ShardStore, StoreOptions};
use rhizome_core::value::Value;

use crate::cluster::{BatchId, Cluster, ReadRequest, ShardStats, TableSpec};
use crate::error::{Error, Result, ShardRef};
use crate::limits::TABLES_MAX;

/// Batch ids each shard remembers for idempotent retries (oldest forgotten first).
const APPLIED_BATCHES_MAX: usize = 4_096;

/// An in-process cluster of in-memory shard stores.
#[derive(Debug, Default)]
pub struct LocalCluster {
    /// Tables by name.
    tables: RwLock<BTreeMap<String, Arc<LocalTable>>>,
    /// Shards that answer every call with `Unavailable` (fault injection for tests).
    failing: Mutex<HashSet<(String, u32)>>,
    /// Shards that answer every call this late (fault injection for tests).
    delays: Mutex<HashMap<(String, u32), Duration>>,
}

#[derive(Debug)]
struct LocalTable {
    spec: TableSpec,
    shards: Vec<Arc<LocalShard>>,
}

#[derive(Debug)]
struct LocalShard {
    /// The shard's records.
    store: RwLock<ShardStore>,
    /// Answers of recently applied batches, by id.
    applied: Mutex<AppliedBatches>,
}

#[derive(Debug, Default)]
struct AppliedBatches {
    order: VecDeque<BatchId>,
    answers: HashMap<BatchId, u64>,
}

impl LocalCluster {
    pub fn new() -> LocalCluster {
        LocalCluster::default()
    }

    /// Make one shard fail (or recover): its calls answer [`Error::Unavailable`].
    pub fn set_shard_failing(&self, table: &str, shard: u32, failing: bool) {
        let mut set = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing {
            set.insert((table.to_string(), shard));
        } else {
            set.remove(&(table.to_string(), shard));
        }
    }

    /// Make one shard answer every call after `delay` (zero: at once).
    pub fn set_shard_delay(&self, table: &str, shard: u32, delay: Duration) {
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        if delay.is_zero() {
            delays.remove(&(table.to_string(), shard));
        } else {
            delays.insert((table.to_string(), shard), delay);
        }
    }

    fn shard(&self, table: &str, shard: u32) -> Result<Arc<LocalShard>> {
        let shard_ref = || ShardRef {
            table: table.to_string(),
            shard,
        };
        if self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(table.to_string(), shard))
        {
            return Err(Error::Unavailable {
                shard: shard_ref(),
                reason: "the shard is marked failing".into(),
            });
        }
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        let local = tables
            .get(table)
            .ok_or_else(|| Error::UnknownTable(table.to_string()))?;
        local
            .shards
            .get(shard as usize)
            .cloned()
            .ok_or_else(|| Error::Unavailable {
                shard: shard_ref(),
                reason: format!("the table has {} shards", local.shards.len()),
            })
    }

    /// Run shard work on the blocking pool; a core error becomes one naming the shard.
    async fn on_shard<T, F>(&self, table: &str, shard: u32, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&LocalShard) -> rhizome_core::Result<T> + Send + 'static,
    {
        let delay = self
            .delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(table.to_string(), shard))
            .copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let local = self.shard(table, shard)?;
        let shard_ref = ShardRef {
            table: table.to_string(),
            shard,
        };
        let joined = tokio::task::spawn_blocking(move || work(&local)).await;
        match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::Execution {
                shard: shard_ref,
                message: e.to_string(),
            }),
            Err(e) => Err(Error::Execution {
                shard: shard_ref,
                message: format!("shard task failed: {e}"),
            }),
        }
    }
}

#[async_trait]
impl Cluster for LocalCluster {
    fn is_ready(&self) -> bool {
        true
    }

    async fn create_table(&self, spec: TableSpec) -> Result<()> {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        if tables.contains_key(&spec.name) {
            return Err(Error::TableExists(spec.name));
        }
        if tables.len() >= TABLES_MAX {
            return Err(Error::LimitExceeded {
                limit: "tables_max",
                message: format!("the cluster holds tables_max ({TABLES_MAX}) tables"),
            });
        }
        let shards = (0..spec.shards)
            .map(|_| {
                Arc::new(LocalShard {
                    store: RwLock::new(ShardStore::new(
                        spec.schema.clone(),
                        StoreOptions::in_memory(),
                    )),
                    applied: Mutex::new(AppliedBatches::default()),
                })
            })
            .collect();
        tables.insert(spec.name.clone(), Arc::new(LocalTable { spec, shards }));
        Ok(())
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        tables
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::UnknownTable(name.to_string()))
    }

    async fn tables(&self) -> Result<Vec<TableSpec>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        Ok(tables.values().map(|t| t.spec.clone()).collect())
    }

    async fn table(&self, name: &str) -> Result<Option<TableSpec>> {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        Ok(tables.get(name).map(|t| t.spec.clone()))
    }

    async fn insert(
        &self,
        table: &str,
        shard: u32,
        batch: BatchId,
        rows: Vec<Vec<Value>>,
    ) -> Result<u64> {
        self.on_shard(table, shard, move |local| {
            let mut applied = local.applied.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(&answer) = applied.answers.get(&batch) {
                return Ok(answer);
            }
            let mut store = local.store.write().unwrap_or_else(|e| e.into_inner());
            let ids = store.insert_batch(&rows)?;
            let count = ids.end - ids.start;
            applied.answers.insert(batch, count);
            applied.order.push_back(batch);
            if applied.order.len() > APPLIED_BATCHES_MAX {
                if let Some(oldest) = applied.order.pop_front() {
                    applied.answers.remove(&oldest);
                }
            }
            Ok(count)
        })
        .await
    }

    async fn delete(&self, table: &str, shard: u32, filter: Condition) -> Result<u64> {
        self.on_shard(table, shard, move |local| {
            let mut store = local.store.write().unwrap_or_else(|e| e.into_inner());
            store.delete_where(&filter)
        })
        .await
    }

    async fn query(&self, table: &str, shard: u32, query: ShardQuery) -> Result<Partial> {
        self.on_shard(table, shard, move |local| {
            let store = local.store.read().unwrap_or_else(|e| e.into_inner());
            store.query(&query)
        })
        .await
    }

    async fn read(&self, table: &str, shard: u32, request: ReadRequest) -> Result<Vec<Vec<Value>>> {
        self.on_shard(table, shard, move |local| {
            let store = local.store.read().unwrap_or_else(|e| e.into_inner());
            let id_limit = if request.order_by.is_empty() {
                request.limit
            } else {
                usize::MAX
            };
            let ids = store.select_ids(&request.filter, id_limit)?;
            let rows = store.read(&ids, &request.columns);
            if request.order_by.is_empty() {
                return Ok(rows);
            }
            let mut sorted = ResultSet {
                columns: Vec::new(),
                rows,
            };
            sorted.order_and_limit(&request.order_by, Some(request.limit));
            Ok(sorted.rows)
        })
        .await
    }

    async fn explain(&self, table: &str, shard: u32, query: ShardQuery) -> Result<Vec<String>> {
        self.on_shard(table, shard, move |local| {
            let store = local.store.read().unwrap_or_else(|e| e.into_inner());
            store.explain(&query)
        })
        .await
    }

    async fn stats(&self, table: &str, shard: u32) -> Result<ShardStats> {
        self.on_shard(table, shard, move |local| {
            let store = local.store.read().unwrap_or_else(|e| e.into_inner());
            Ok(ShardStats {
                live_records: store.live_count(),
                bytes: store.bytes().total(),
            })
        })
        .await
    }
}
