//! The executor: parses a statement, plans it against the table's schema, and runs it on the
//! [`Cluster`].
//!
//! * Writes: rows are validated whole before any is sent, routed by a stable hash of the
//!   primary key (round-robin without one) and sent as one batch per shard, with a batch id
//!   so a retried send is applied once. UPDATE reads the matching records, checks the new
//!   rows, deletes the old ones and inserts the new ones, holding the coordinator's write
//!   lock exclusively so no other statement of this coordinator interleaves (queries take
//!   it shared). Across coordinators this needs shard-side support (not yet).
//! * Queries: one request per shard, all in parallel, each with a deadline; the partials are
//!   merged exactly, then HAVING, ORDER BY, LIMIT and the projection run here. A shard that
//!   fails or times out fails the whole statement with an error naming it.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::try_join_all;

use rhizome_core::query::{Aggregate, Condition, Partial, ResultColumn, ResultSet, ShardQuery};
use rhizome_core::value::{DataType, Value};

use crate::cluster::{BatchId, Cluster, ReadRequest, TableSpec};
use crate::error::{DataFault, Error, Result, ShardRef};
use crate::limits::{RESULT_ROWS_MAX, ROWS_PER_UPDATE_MAX, SHARD_TIMEOUT_MS};
use crate::metrics::Metrics;
use crate::parse::parse;
use crate::plan::{
    evaluate, plan_condition, plan_create_table, plan_insert, plan_select, plan_update, read_limit,
    render_aggregate, render_condition, render_predicate, store_value, AggregatePlan, ReadPlan,
    SelectPlan,
};
use crate::statement::{Select, Statement};

/// One shard's part of an insert: its batch id and rows.
type ShardBatch = (BatchId, Vec<Vec<Value>>);

/// Times a write batch is sent before its shard's failure fails the statement.
const WRITE_ATTEMPTS_MAX: u32 = 3;

/// The answer to one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The command word (`SELECT`, `INSERT`, …), as PostgreSQL tags its answers.
    pub command: &'static str,
    /// Result columns; empty for DDL and writes.
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<Value>>,
    /// Rows inserted, deleted or updated; rows returned by a query.
    pub rows_affected: u64,
    /// Shards the statement was sent to.
    pub shards: u32,
}

impl Output {
    fn command(command: &'static str, rows_affected: u64, shards: u32) -> Output {
        Output {
            command,
            columns: Vec::new(),
            rows: Vec::new(),
            rows_affected,
            shards,
        }
    }

    fn rows(columns: Vec<ResultColumn>, rows: Vec<Vec<Value>>, shards: u32) -> Output {
        Output {
            command: "SELECT",
            rows_affected: rows.len() as u64,
            columns,
            rows,
            shards,
        }
    }
}

/// Settings of an executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// How long one shard request may take.
    pub shard_timeout_ms: u64,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            shard_timeout_ms: SHARD_TIMEOUT_MS,
        }
    }
}

/// Runs SQL-lite statements on a cluster.
#[derive(Debug)]
pub struct Executor {
    cluster: Arc<dyn Cluster>,
    options: ExecutorOptions,
    metrics: Arc<Metrics>,
    /// This coordinator's part of every batch id.
    coordinator_id: u64,
    /// The next batch sequence number.
    batch_sequence: AtomicU64,
    /// Where the next row of a table without primary key goes (round-robin).
    round_robin: AtomicU64,
    /// INSERT, DELETE and queries share it; UPDATE holds it alone (read, delete, insert), so
    /// no statement of this coordinator sees an UPDATE half done.
    write_lock: tokio::sync::RwLock<()>,
}

impl Executor {
    /// An executor with a random coordinator id, which keeps coordinators and restarts apart.
    pub fn new(cluster: Arc<dyn Cluster>, options: ExecutorOptions) -> Executor {
        let coordinator_id = RandomState::new().build_hasher().finish();
        Executor::with_coordinator_id(cluster, options, coordinator_id)
    }

    /// An executor whose batch ids carry `coordinator_id` (a simulation derives it from its
    /// seed). It must differ from every other coordinator's and every earlier run's: a shard
    /// answers a batch id it has seen with its first answer.
    pub fn with_coordinator_id(
        cluster: Arc<dyn Cluster>,
        options: ExecutorOptions,
        coordinator_id: u64,
    ) -> Executor {
        Executor {
            cluster,
            options,
            metrics: Arc::new(Metrics::default()),
            coordinator_id,
            batch_sequence: AtomicU64::new(0),
            round_robin: AtomicU64::new(coordinator_id % 1024),
            write_lock: tokio::sync::RwLock::new(()),
        }
    }

    pub fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.cluster
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Parse and run one statement, counting it in the metrics.
    pub async fn execute(&self, sql: &str) -> Result<Output> {
        let started = Instant::now();
        let result = match parse(sql) {
            Ok(statement) => self.execute_statement(statement).await,
            Err(e) => Err(e),
        };
        self.metrics.observe(&result, started.elapsed());
        result
    }

    /// The columns a statement would answer with, without running it (for the PostgreSQL
    /// extended protocol's Describe).
    pub async fn describe(&self, sql: &str) -> Result<Vec<ResultColumn>> {
        match parse(sql)? {
            Statement::Select(select) => {
                let table = self.table(&select.table).await?;
                Ok(plan_select(&select, &table)?.columns().to_vec())
            }
            Statement::Explain(_) => Ok(explain_columns()),
            Statement::ShowTables => Ok(show_tables_columns()),
            Statement::Describe { .. } => Ok(describe_columns()),
            _ => Ok(Vec::new()),
        }
    }

    pub async fn execute_statement(&self, statement: Statement) -> Result<Output> {
        match statement {
            Statement::CreateTable(create) => {
                let spec = plan_create_table(&create)?;
                match self.cluster.create_table(spec).await {
                    Err(Error::TableExists(_)) if create.if_not_exists => {}
                    other => other?,
                }
                Ok(Output::command("CREATE TABLE", 0, 0))
            }
            Statement::DropTable { name, if_exists } => {
                match self.cluster.drop_table(&name).await {
                    Err(Error::UnknownTable(_)) if if_exists => {}
                    other => other?,
                }
                Ok(Output::command("DROP TABLE", 0, 0))
            }
            Statement::Insert(insert) => {
                let table = self.table(&insert.table).await?;
                let rows = plan_insert(&insert, &table)?;
                let _shared = self.write_lock.read().await;
                let inserted = self.insert_rows(&table, rows).await?;
                Ok(Output::command("INSERT", inserted, table.shards))
            }
            Statement::Delete { table, filter } => {
                let table = self.table(&table).await?;
                let condition = plan_condition(&filter, &table)?;
                let _shared = self.write_lock.read().await;
                let deleted = self.delete_where(&table, &condition).await?;
                Ok(Output::command("DELETE", deleted, table.shards))
            }
            Statement::Update(update) => {
                let table = self.table(&update.table).await?;
                let plan = plan_update(&update, &table)?;
                let _exclusive = self.write_lock.write().await;
                let width = table.schema.columns.len();
                let old_rows = self
                    .read_rows(
                        &table,
                        ReadRequest {
                            filter: plan.filter.clone(),
                            columns: (0..width).collect(),
                            order_by: Vec::new(),
                            limit: ROWS_PER_UPDATE_MAX + 1,
                        },
                    )
                    .await?;
                if old_rows.len() > ROWS_PER_UPDATE_MAX {
                    return Err(Error::LimitExceeded {
                        limit: "rows_per_update_max",
                        message: format!(
                            "UPDATE matches more than rows_per_update_max ({ROWS_PER_UPDATE_MAX}) rows"
                        ),
                    });
                }
                let mut new_rows = old_rows;
                for row in &mut new_rows {
                    for (index, value) in &plan.assignments {
                        row[*index] = value.clone();
                    }
                    for (value, def) in row.iter_mut().zip(&table.schema.columns) {
                        *value = store_value(def, value)?;
                    }
                }
                let updated = new_rows.len() as u64;
                if updated > 0 {
                    self.delete_where(&table, &plan.filter).await?;
                    self.insert_rows(&table, new_rows).await?;
                }
                Ok(Output::command("UPDATE", updated, table.shards))
            }
            Statement::Select(select) => {
                let table = self.table(&select.table).await?;
                let plan = plan_select(&select, &table)?;
                // Shared with INSERT and DELETE, exclusive of UPDATE: a query never sees an
                // UPDATE between its delete and its insert.
                let _shared = self.write_lock.read().await;
                match plan {
                    SelectPlan::Aggregate(plan) => self.run_aggregate(&table, plan).await,
                    SelectPlan::Read(plan) => self.run_read(&table, plan).await,
                }
            }
            Statement::ShowTables => {
                let rows = self
                    .cluster
                    .tables()
                    .await?
                    .into_iter()
                    .map(|t| {
                        vec![
                            Value::Text(t.name),
                            Value::Int(i64::from(t.shards)),
                            Value::Int(i64::from(t.replicas)),
                        ]
                    })
                    .collect();
                Ok(Output::rows(show_tables_columns(), rows, 0))
            }
            Statement::Describe { table } => {
                let table = self.table(&table).await?;
                let rows = table
                    .schema
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            Value::Text(c.name.clone()),
                            Value::Text(c.data_type.sql_name()),
                            Value::Boolean(c.nullable),
                            Value::Boolean(table.primary_key.contains(&c.name)),
                        ]
                    })
                    .collect();
                Ok(Output::rows(describe_columns(), rows, 0))
            }
            Statement::Explain(select) => self.explain(&select).await,
        }
    }

    async fn table(&self, name: &str) -> Result<TableSpec> {
        self.cluster
            .table(name)
            .await?
            .ok_or_else(|| Error::UnknownTable(name.to_string()))
    }

    /// Call `request` for every shard of the table in parallel, each under the deadline. The
    /// first failure fails the whole call, naming its shard.
    async fn scatter<T, F, Fut>(&self, table: &TableSpec, request: F) -> Result<Vec<T>>
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let requests = (0..table.shards).map(|shard| (shard, ())).collect();
        self.on_shards(table, requests, |shard, ()| request(shard))
            .await
    }

    /// Call `request` once per (shard, argument), in parallel, each under the deadline.
    async fn on_shards<A, T, F, Fut>(
        &self,
        table: &TableSpec,
        requests: Vec<(u32, A)>,
        request: F,
    ) -> Result<Vec<T>>
    where
        F: Fn(u32, A) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let timeout_ms = self.options.shard_timeout_ms;
        let calls = requests.into_iter().map(|(shard, argument)| {
            let call = request(shard, argument);
            async move {
                match tokio::time::timeout(Duration::from_millis(timeout_ms), call).await {
                    Ok(result) => result.map_err(|e| name_shard(e, &table.name, shard)),
                    Err(_) => Err(Error::Timeout {
                        shard: ShardRef {
                            table: table.name.clone(),
                            shard,
                        },
                        timeout_ms,
                    }),
                }
            }
        });
        try_join_all(calls).await
    }

    /// Route validated rows to their shards and send one batch per shard.
    async fn insert_rows(&self, table: &TableSpec, rows: Vec<Vec<Value>>) -> Result<u64> {
        let mut batches: Vec<Vec<Vec<Value>>> = vec![Vec::new(); table.shards as usize];
        let key_columns: Vec<usize> = table
            .primary_key
            .iter()
            .filter_map(|name| table.schema.column(name).ok().map(|(i, _)| i))
            .collect();
        for row in rows {
            let shard = if key_columns.is_empty() {
                self.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(table.shards)
            } else {
                key_hash(key_columns.iter().map(|&i| &row[i])) % u64::from(table.shards)
            };
            batches[shard as usize].push(row);
        }
        let sends: Vec<(u32, ShardBatch)> = batches
            .into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(shard, rows)| {
                let batch = BatchId {
                    coordinator: self.coordinator_id,
                    sequence: self.batch_sequence.fetch_add(1, Ordering::Relaxed),
                };
                (shard as u32, (batch, rows))
            })
            .collect();
        let counts = self
            .on_shards(table, sends, |shard, (batch, rows)| {
                self.send_batch(table, shard, batch, rows)
            })
            .await?;
        Ok(counts.iter().sum())
    }

    /// Send one batch, retrying a shard that is unavailable or slow with the same batch id.
    async fn send_batch(
        &self,
        table: &TableSpec,
        shard: u32,
        batch: BatchId,
        rows: Vec<Vec<Value>>,
    ) -> Result<u64> {
        let mut attempt = 1;
        loop {
            let result = self
                .cluster
                .insert(&table.name, shard, batch, rows.clone())
                .await;
            match result {
                Err(Error::Unavailable { .. } | Error::Timeout { .. })
                    if attempt < WRITE_ATTEMPTS_MAX =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn delete_where(&self, table: &TableSpec, condition: &Condition) -> Result<u64> {
        let counts = self
            .scatter(table, |shard| {
                self.cluster.delete(&table.name, shard, condition.clone())
            })
            .await?;
        Ok(counts.iter().sum())
    }

    async fn read_rows(&self, table: &TableSpec, request: ReadRequest) -> Result<Vec<Vec<Value>>> {
        let parts = self
            .scatter(table, |shard| {
                self.cluster.read(&table.name, shard, request.clone())
            })
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Scatter the shard query and merge the partials exactly.
    async fn merged_partial(&self, table: &TableSpec, query: &ShardQuery) -> Result<Partial> {
        let shards: Vec<u32> = (0..table.shards).collect();
        let timeout_ms = self.options.shard_timeout_ms;
        let answers = self
            .cluster
            .query_shards(
                &table.name,
                &shards,
                query,
                Duration::from_millis(timeout_ms),
            )
            .await;
        let mut merged = Partial::default();
        for (shard, answer) in shards.into_iter().zip(answers) {
            let partial = match answer {
                Some(result) => result.map_err(|e| name_shard(e, &table.name, shard))?,
                None => {
                    return Err(Error::Timeout {
                        shard: ShardRef {
                            table: table.name.clone(),
                            shard,
                        },
                        timeout_ms,
                    })
                }
            };
            merged
                .merge(partial)
                .map_err(|e| Error::Internal(format!("merging partials: {e}")))?;
        }
        Ok(merged)
    }

    async fn run_aggregate(&self, table: &TableSpec, plan: AggregatePlan) -> Result<Output> {
        let merged = self.merged_partial(table, &plan.query).await?;
        if merged.groups.len() > RESULT_ROWS_MAX && plan.limit.is_none() {
            return Err(too_many_rows());
        }
        let mut full = merged
            .finish(&plan.query, &table.schema)
            .map_err(|e| match e {
                rhizome_core::Error::Plan(message) if message.contains("out of range") => {
                    Error::data(DataFault::OutOfRange, message)
                }
                other => Error::Internal(format!("finishing the merged partial: {other}")),
            })?;
        if let Some(having) = &plan.having {
            full.rows.retain(|row| evaluate(having, row) == Some(true));
        }
        full.order_and_limit(&plan.order_by, plan.limit);
        if full.rows.len() > RESULT_ROWS_MAX {
            return Err(too_many_rows());
        }
        let rows = project(full.rows, &plan.projection);
        Ok(Output::rows(plan.columns, rows, table.shards))
    }

    async fn run_read(&self, table: &TableSpec, plan: ReadPlan) -> Result<Output> {
        let rows = self
            .read_rows(
                table,
                ReadRequest {
                    filter: plan.filter.clone(),
                    columns: plan.read_columns.clone(),
                    order_by: plan.order_by.clone(),
                    limit: read_limit(plan.limit),
                },
            )
            .await?;
        let mut merged = ResultSet {
            columns: Vec::new(),
            rows,
        };
        merged.order_and_limit(&plan.order_by, plan.limit);
        if merged.rows.len() > RESULT_ROWS_MAX {
            return Err(too_many_rows());
        }
        let rows = project(merged.rows, &plan.projection);
        Ok(Output::rows(plan.columns, rows, table.shards))
    }

    async fn explain(&self, select: &Select) -> Result<Output> {
        let table = self.table(&select.table).await?;
        let plan = plan_select(select, &table)?;
        let mut lines = Vec::new();
        let filter = match &plan {
            SelectPlan::Aggregate(p) => &p.query.filter,
            SelectPlan::Read(p) => &p.filter,
        };
        // Matching records per shard: an exact COUNT(*) of the filter, which the shard
        // answers from Rhizome cardinalities without materialising ids.
        let count_query = ShardQuery {
            filter: filter.clone(),
            group_by: Vec::new(),
            aggregates: vec![Aggregate::CountStar],
        };
        let stats = self
            .scatter(&table, |shard| self.cluster.stats(&table.name, shard))
            .await?;
        let counts = self
            .scatter(&table, |shard| {
                self.cluster.query(&table.name, shard, count_query.clone())
            })
            .await?;
        // Each shard's own plan: for an aggregate its shard query, for a read the filter
        // alone (no aggregates).
        let shard_query = match &plan {
            SelectPlan::Aggregate(p) => p.query.clone(),
            SelectPlan::Read(p) => ShardQuery {
                filter: p.filter.clone(),
                group_by: Vec::new(),
                aggregates: Vec::new(),
            },
        };
        let shard_plans = self
            .scatter(&table, |shard| {
                self.cluster
                    .explain(&table.name, shard, shard_query.clone())
            })
            .await?;
        lines.push(format!(
            "Gather from {} shards of {} (replicas {})",
            table.shards, table.name, table.replicas
        ));
        match &plan {
            SelectPlan::Aggregate(p) => {
                lines.push("  Shard query (every shard):".into());
                lines.push(format!("    filter: {}", render_condition(&p.query.filter)));
                if !p.query.group_by.is_empty() {
                    lines.push(format!("    group by: {}", p.query.group_by.join(", ")));
                }
                lines.push(format!(
                    "    aggregates: {}",
                    p.query
                        .aggregates
                        .iter()
                        .map(render_aggregate)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                lines.push(
                    "  Merge: partials exactly (counts and sums add, AVG as sum and count, MIN/MAX compare, DISTINCT sets unite, groups by value)"
                        .into(),
                );
                if let Some(having) = &p.having {
                    let names: Vec<String> = p
                        .query
                        .group_by
                        .iter()
                        .cloned()
                        .chain(p.query.aggregates.iter().map(render_aggregate))
                        .collect();
                    lines.push(format!("  Having: {}", render_predicate(having, &names)));
                }
            }
            SelectPlan::Read(p) => {
                lines.push("  Shard read (every shard):".into());
                lines.push(format!("    filter: {}", render_condition(&p.filter)));
                let names: Vec<&str> = p
                    .read_columns
                    .iter()
                    .map(|&i| table.schema.columns[i].name.as_str())
                    .collect();
                lines.push(format!("    columns: {}", names.join(", ")));
                lines.push(format!("    limit per shard: {}", read_limit(p.limit)));
                lines.push("  Merge: concatenate shard rows".into());
            }
        }
        let (order_by, limit, columns) = match &plan {
            SelectPlan::Aggregate(p) => (&p.order_by, p.limit, &p.columns),
            SelectPlan::Read(p) => (&p.order_by, p.limit, &p.columns),
        };
        if !order_by.is_empty() {
            lines.push(format!(
                "  Order by: {}",
                order_by
                    .iter()
                    .map(|o| format!(
                        "#{}{}",
                        o.column_index + 1,
                        if o.descending { " DESC" } else { "" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(limit) = limit {
            lines.push(format!("  Limit: {limit}"));
        }
        lines.push(format!(
            "  Project: {}",
            columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        // No cache Rhizomes are kept yet: every shard answers from its column Rhizomes.
        lines.push("  Cache Rhizomes used: none".into());
        lines.push("  Shards (live records, records matching the filter, bytes; plan):".into());
        for (shard, ((stats, count), shard_plan)) in
            stats.iter().zip(&counts).zip(&shard_plans).enumerate()
        {
            let matching = count
                .groups
                .values()
                .next()
                .and_then(|states| states.first())
                .map(|s| match s {
                    rhizome_core::query::AggState::Count(n) => *n,
                    _ => 0,
                })
                .unwrap_or(0);
            lines.push(format!(
                "    shard {shard}: {} live records, {matching} matching, {} bytes",
                stats.live_records, stats.bytes
            ));
            lines.extend(shard_plan.iter().map(|line| format!("      {line}")));
        }
        let rows = lines.into_iter().map(|l| vec![Value::Text(l)]).collect();
        Ok(Output {
            command: "EXPLAIN",
            ..Output::rows(explain_columns(), rows, table.shards)
        })
    }
}

fn too_many_rows() -> Error {
    Error::LimitExceeded {
        limit: "result_rows_max",
        message: format!(
            "the answer has more than result_rows_max ({RESULT_ROWS_MAX}) rows; add a LIMIT"
        ),
    }
}

/// Pick the output columns out of each row.
fn project(rows: Vec<Vec<Value>>, projection: &[usize]) -> Vec<Vec<Value>> {
    rows.into_iter()
        .map(|row| projection.iter().map(|&i| row[i].clone()).collect())
        .collect()
}

/// A cluster error as one naming its shard, unless it already names one or is about the
/// statement rather than the shard.
fn name_shard(error: Error, table: &str, shard: u32) -> Error {
    match error {
        e @ (Error::Unavailable { .. }
        | Error::Timeout { .. }
        | Error::Execution { .. }
        | Error::UnknownTable(_)) => e,
        other => Error::Execution {
            shard: ShardRef {
                table: table.to_string(),
                shard,
            },
            message: other.to_string(),
        },
    }
}

/// FNV-1a (64 bit) of the key values' rendered bytes, each followed by a separator: stable
/// across processes, builds and platforms, so every coordinator routes a key alike.
pub fn key_hash<'v>(values: impl Iterator<Item = &'v Value>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    const SEPARATOR: u8 = 0x1f;
    let mut hash = OFFSET;
    for value in values {
        for &byte in value.render().as_bytes().iter().chain(&[SEPARATOR]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

fn text_column(name: &str) -> ResultColumn {
    ResultColumn {
        name: name.into(),
        data_type: DataType::Text { max_chars: None },
    }
}

fn explain_columns() -> Vec<ResultColumn> {
    vec![text_column("plan")]
}

fn show_tables_columns() -> Vec<ResultColumn> {
    vec![
        text_column("table_name"),
        ResultColumn {
            name: "shards".into(),
            data_type: DataType::Int,
        },
        ResultColumn {
            name: "replicas".into(),
            data_type: DataType::Int,
        },
    ]
}

fn describe_columns() -> Vec<ResultColumn> {
    vec![
        text_column("column_name"),
        text_column("type"),
        ResultColumn {
            name: "nullable".into(),
            data_type: DataType::Boolean,
        },
        ResultColumn {
            name: "primary_key".into(),
            data_type: DataType::Boolean,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_stable() {
        // Proves routing does not depend on the process: FNV-1a of known bytes.
        assert_eq!(key_hash(std::iter::empty()), 0xcbf2_9ce4_8422_2325);
        let a = key_hash([Value::Int(42)].iter());
        assert_eq!(a, key_hash([Value::Int(42)].iter()));
        assert_ne!(a, key_hash([Value::Int(43)].iter()));
        // "4" "2" then separator: the same as rendering by hand.
        let mut expected: u64 = 0xcbf2_9ce4_8422_2325;
        for b in [b'4', b'2', 0x1f] {
            expected ^= u64::from(b);
            expected = expected.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(a, expected);
    }
}
