//! The gRPC services of a node: Raft transport, shard writes, shard queries and admin.
//! Every handler runs under a deadline ([`WRITE_TIMEOUT_MS`], [`READ_TIMEOUT_MS`]) and maps
//! its errors through [`crate::status`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::ServerState;
use proto::v1 as pb;
use proto::v1::admin_client::AdminClient;
use rhizome_core::query::{Condition, ShardQuery};
use rhizome_core::shard::Schema;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::app::{Group, Node};
use crate::error::{Error, Result};
use crate::meta::{MetaCommand, MetaOutcome, TableMeta, META_GROUP};
use crate::placement;
use crate::rebalance;
use crate::status::{from_read_error, from_write_error};
use crate::types::{
    BatchId, Command, CommandResponse, GroupSpec, NodeId, Raft, RecordRead, ShardKey, TypeConfig,
};
use rhizome_core::query::ResultSet;
use rhizome_core::value::Value;

/// Deadline of a write, from arrival to applied on the leader.
pub const WRITE_TIMEOUT_MS: u64 = 10_000;
/// Largest encoded insert batch (one Raft entry): bounds the size of an append-entries
/// message, which must reach a follower within a heartbeat interval.
pub const WRITE_BATCH_BYTES_MAX: usize = 8 << 20;
/// Shards one `QueryShards` call may name (a table has at most this many).
pub const QUERY_SHARDS_MAX: usize = 1024;
/// Deadline of a linearizable read.
pub const READ_TIMEOUT_MS: u64 = 10_000;
/// Deadline of an admin call (it may call other nodes).
pub const ADMIN_TIMEOUT_MS: u64 = 15_000;
/// Deadline of a replica change: new replicas copy the whole shard.
pub const CHANGE_REPLICAS_TIMEOUT_MS: u64 = 600_000;

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

async fn deadline<T>(
    what: &str,
    ms: u64,
    work: impl Future<Output = Result<T>>,
) -> std::result::Result<T, Status> {
    match tokio::time::timeout(Duration::from_millis(ms), work).await {
        Ok(result) => result.map_err(Status::from),
        Err(_) => Err(Status::from(Error::Unavailable {
            shard: what.to_string(),
            reason: format!("no answer within {ms} ms"),
        })),
    }
}

fn shard_key(shard: Option<pb::ShardRef>) -> Result<ShardKey> {
    let shard = shard.ok_or_else(|| Error::InvalidArgument("missing shard".into()))?;
    if !ShardKey::valid_table_name(&shard.table) {
        return Err(Error::InvalidArgument(format!(
            "bad table name {:?}: use letters, digits and _",
            shard.table
        )));
    }
    Ok(ShardKey::new(&shard.table, shard.shard))
}

fn batch_id(batch: Option<pb::BatchId>) -> Result<BatchId> {
    let batch = batch.ok_or_else(|| Error::InvalidArgument("missing batch id".into()))?;
    Ok(BatchId {
        client: batch.client,
        sequence: batch.sequence,
    })
}

/// `Raft`: hands openraft messages to the named group.
#[derive(Debug, Clone)]
pub struct RaftService {
    node: Arc<Node>,
}

impl RaftService {
    pub fn new(node: Arc<Node>) -> Self {
        RaftService { node }
    }

    /// The Raft handle of the named group: the meta group or a shard group.
    fn group(&self, name: &str) -> Result<Raft> {
        if name == META_GROUP {
            return Ok(self.node.meta().raft.clone());
        }
        let key = ShardKey::parse_group_name(name)
            .ok_or_else(|| Error::InvalidArgument(format!("bad group name {name:?}")))?;
        Ok(self.node.group(&key)?.raft.clone())
    }
}

fn reply<T: serde::Serialize>(value: &T) -> Response<pb::RaftReply> {
    Response::new(pb::RaftReply {
        payload_bincode: bincode::serialize(value).expect("raft replies serialise"),
    })
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<pb::RaftRequest>,
    ) -> std::result::Result<Response<pb::RaftReply>, Status> {
        let request = request.into_inner();
        let group = self.group(&request.group)?;
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode("append entries", &request.payload_bincode)?;
        Ok(reply(&group.append_entries(rpc).await))
    }

    async fn vote(
        &self,
        request: Request<pb::RaftRequest>,
    ) -> std::result::Result<Response<pb::RaftReply>, Status> {
        let request = request.into_inner();
        if let Some(key) = ShardKey::parse_group_name(&request.group) {
            if self.node.group(&key)?.lease.holds_votes() {
                // Before a restart this replica may have promised a leader its lease; the
                // promise was in memory, so keep it by voting for no one for a lease.
                return Err(Status::unavailable(format!(
                    "{}: opened less than a leader lease ago, not voting yet",
                    request.group
                )));
            }
        }
        let group = self.group(&request.group)?;
        let rpc: VoteRequest<NodeId> = decode("vote", &request.payload_bincode)?;
        Ok(reply(&group.vote(rpc).await))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::RaftRequest>,
    ) -> std::result::Result<Response<pb::RaftReply>, Status> {
        let request = request.into_inner();
        let group = self.group(&request.group)?;
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode("install snapshot", &request.payload_bincode)?;
        Ok(reply(&group.install_snapshot(rpc).await))
    }
}

/// `ShardWrite`: proposes write batches to a shard's group and answers once applied.
#[derive(Debug, Clone)]
pub struct ShardWriteService {
    node: Arc<Node>,
}

impl ShardWriteService {
    pub fn new(node: Arc<Node>) -> Self {
        ShardWriteService { node }
    }

    async fn write(&self, key: ShardKey, command: Command) -> Result<pb::WriteReply> {
        let group = self.node.group(&key)?;
        let name = key.group_name();
        #[cfg(feature = "canary")]
        if crate::canary::is_on(crate::canary::Canary::AckBeforeCommit)
            && matches!(
                command,
                Command::Insert { .. } | Command::InsertColumns { .. }
            )
        {
            let count = match &command {
                Command::Insert { rows, .. } => {
                    bincode::deserialize::<Vec<Vec<rhizome_core::value::Value>>>(rows)
                        .map_or(0, |rows| rows.len() as u64)
                }
                Command::InsertColumns { columns, .. } => {
                    rhizome_core::batch::ColumnBatch::decode(columns)
                        .map_or(0, |batch| batch.len() as u64)
                }
                _ => 0,
            };
            group
                .raft
                .client_write_ff(command)
                .await
                .map_err(|e| crate::status::from_fatal(&name, e))?;
            return Ok(pb::WriteReply {
                first_id: 0,
                count,
                duplicate: false,
                log_index: 0,
            });
        }
        let response = group
            .raft
            .client_write(command)
            .await
            .map_err(|e| from_write_error(&name, e))?;
        let log_index = response.log_id.index;
        match response.data {
            CommandResponse::Written {
                first_id,
                count,
                duplicate,
            } => Ok(pb::WriteReply {
                first_id,
                count,
                duplicate,
                log_index,
            }),
            CommandResponse::Stale => Err(Error::InvalidArgument(format!(
                "batch is older than the {} remembered for its client: it was applied before",
                crate::state_machine::SEQUENCES_PER_CLIENT_MAX
            ))),
            CommandResponse::Rejected { reason } => Err(Error::InvalidArgument(reason)),
            CommandResponse::None | CommandResponse::Meta(_) => Err(Error::Raft(
                "a shard write applied as something else".into(),
            )),
        }
    }
}

#[tonic::async_trait]
impl pb::shard_write_server::ShardWrite for ShardWriteService {
    async fn insert(
        &self,
        request: Request<pb::InsertRequest>,
    ) -> std::result::Result<Response<pb::WriteReply>, Status> {
        let request = request.into_inner();
        let work = async {
            let key = shard_key(request.shard)?;
            let batch = batch_id(request.batch)?;
            let bytes = request.rows_bincode.len().max(request.columns.len());
            if bytes > WRITE_BATCH_BYTES_MAX {
                return Err(Error::InvalidArgument(format!(
                    "batch of {bytes} bytes exceeds {WRITE_BATCH_BYTES_MAX}: split it"
                )));
            }
            let command = match (request.rows_bincode.is_empty(), request.columns.is_empty()) {
                (false, true) => Command::Insert {
                    batch,
                    rows: Bytes::from(request.rows_bincode),
                },
                (true, false) => Command::InsertColumns {
                    batch,
                    columns: Bytes::from(request.columns),
                },
                (true, true) => return Err(Error::InvalidArgument("empty rows".into())),
                (false, false) => {
                    return Err(Error::InvalidArgument(
                        "an insert carries rows or columns, not both".into(),
                    ))
                }
            };
            self.write(key, command).await
        };
        deadline("insert", WRITE_TIMEOUT_MS, work)
            .await
            .map(Response::new)
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> std::result::Result<Response<pb::WriteReply>, Status> {
        let request = request.into_inner();
        let work = async {
            let key = shard_key(request.shard)?;
            let batch = batch_id(request.batch)?;
            let condition: Condition = decode("condition", &request.condition_bincode)?;
            self.write(key, Command::Delete { batch, condition }).await
        };
        deadline("delete", WRITE_TIMEOUT_MS, work)
            .await
            .map(Response::new)
    }
}

/// `ShardQuery`: linearizable reads (the leader confirms its leadership first).
#[derive(Debug, Clone)]
pub struct ShardQueryService {
    node: Arc<Node>,
}

impl ShardQueryService {
    pub fn new(node: Arc<Node>) -> Self {
        ShardQueryService { node }
    }

    async fn linearizable(&self, shard: Option<pb::ShardRef>) -> Result<Arc<Group>> {
        let key = shard_key(shard)?;
        let group = self.node.group(&key)?;
        #[cfg(feature = "canary")]
        if crate::canary::is_on(crate::canary::Canary::StaleReads) {
            return Ok(group);
        }
        if group
            .lease
            .read(&group.raft, Duration::from_millis(READ_TIMEOUT_MS))
            .await
        {
            return Ok(group);
        }
        tracing::debug!(group = %key.group_name(), "no lease: confirming leadership for a read");
        group
            .reads
            .confirm(&group.raft)
            .await
            .map_err(|e| from_read_error(&key.group_name(), e))?;
        Ok(group)
    }
}

#[tonic::async_trait]
impl pb::shard_query_server::ShardQuery for ShardQueryService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> std::result::Result<Response<pb::QueryReply>, Status> {
        let request = request.into_inner();
        let work = async {
            let query: ShardQuery = decode("query", &request.query_bincode)?;
            let group = self.linearizable(request.shard).await?;
            let partial = group.state.read().store.query(&query)?;
            Ok(pb::QueryReply {
                partial_bincode: bincode::serialize(&partial).expect("partials serialise"),
            })
        };
        deadline("query", READ_TIMEOUT_MS, work)
            .await
            .map(Response::new)
    }

    async fn query_shards(
        &self,
        request: Request<pb::QueryShardsRequest>,
    ) -> std::result::Result<Response<pb::QueryShardsReply>, Status> {
        let request = request.into_inner();
        if request.shards.len() > QUERY_SHARDS_MAX {
            return Err(Status::invalid_argument(format!(
                "{} shards in one query, more than {QUERY_SHARDS_MAX}",
                request.shards.len()
            )));
        }
        let work = async {
            let query: Arc<ShardQuery> = Arc::new(decode("query", &request.query_bincode)?);
            // Every shard's linearizable read point first, side by side, then the
            // evaluations. A read point is a hop to the group's Raft core; asked for while
            // this node's other shards were being evaluated, it queued behind them on the
            // runtime's workers (a shard's read waited 2-14 ms behind a P4).
            let started = std::time::Instant::now();
            let groups = join_all(
                request
                    .shards
                    .into_iter()
                    .map(|shard| self.linearizable(Some(shard))),
            )
            .await;
            let read_wait_us = started.elapsed().as_micros() as u64;
            // Each shard on its own task, so the evaluations use every core, as separate
            // `Query` calls would.
            let tasks = groups.into_iter().map(|group| {
                let query = query.clone();
                tokio::spawn(async move {
                    let group = group?;
                    let started = std::time::Instant::now();
                    let partial = group.state.read().store.query(&query)?;
                    tracing::debug!(
                        group = %group.key.group_name(),
                        read_wait_us,
                        evaluate_us = started.elapsed().as_micros() as u64,
                        "shard query"
                    );
                    Ok::<_, Error>(bincode::serialize(&partial).expect("partials serialise"))
                })
            });
            let answers = join_all(tasks)
                .await
                .into_iter()
                .map(|answer| pb::ShardAnswer {
                    answer: Some(match answer {
                        Ok(Ok(partial)) => pb::shard_answer::Answer::PartialBincode(partial),
                        Ok(Err(e)) => pb::shard_answer::Answer::Failure(e.to_string()),
                        Err(e) => pb::shard_answer::Answer::Failure(format!("shard task: {e}")),
                    }),
                })
                .collect();
            Ok(pb::QueryShardsReply { answers })
        };
        deadline("query", READ_TIMEOUT_MS, work)
            .await
            .map(Response::new)
    }

    async fn explain(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> std::result::Result<Response<pb::ExplainReply>, Status> {
        let request = request.into_inner();
        let work = async {
            let query: ShardQuery = decode("query", &request.query_bincode)?;
            let group = self.linearizable(request.shard).await?;
            let lines = group.state.read().store.explain(&query)?;
            Ok(pb::ExplainReply { lines })
        };
        deadline("explain", READ_TIMEOUT_MS, work)
            .await
            .map(Response::new)
    }

    async fn count(
        &self,
        request: Request<pb::CountRequest>,
    ) -> std::result::Result<Response<pb::CountReply>, Status> {
        let request = request.into_inner();
        let work = async {
            let group = self.linearizable(request.shard).await?;
            let state = group.state.read();
            Ok(pb::CountReply {
                record_count: state.store.record_count(),
                live_count: state.store.live_count(),
                bytes: state.store.bytes().total(),
            })
        };
        deadline("count", READ_TIMEOUT_MS, work)
            .await
            .map(Response::new)
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> std::result::Result<Response<pb::ReadReply>, Status> {
        let request = request.into_inner();
        let work = async {
            let read: RecordRead = decode("read", &request.read_bincode)?;
            let group = self.linearizable(request.shard).await?;
            let state = group.state.read();
            let width = state.store.schema().columns.len();
            if let Some(&bad) = read.columns.iter().find(|&&c| c >= width) {
                return Err(Error::InvalidArgument(format!(
                    "column {bad} of a table of {width} columns"
                )));
            }
            if let Some(bad) = read
                .order_by
                .iter()
                .find(|o| o.column_index >= read.columns.len())
            {
                return Err(Error::InvalidArgument(format!(
                    "order by column {} of {} read",
                    bad.column_index,
                    read.columns.len()
                )));
            }
            // Without an order the first `limit` ids will do; with one, every match is read
            // and the best `limit` kept.
            let id_limit = if read.order_by.is_empty() {
                read.limit
            } else {
                usize::MAX
            };
            let ids = state.store.select_ids(&read.filter, id_limit)?;
            let rows = state.store.read(&ids, &read.columns);
            drop(state);
            let rows: Vec<Vec<Value>> = if read.order_by.is_empty() {
                rows
            } else {
                let mut sorted = ResultSet {
                    columns: Vec::new(),
                    rows,
                };
                sorted.order_and_limit(&read.order_by, Some(read.limit));
                sorted.rows
            };
            Ok(pb::ReadReply {
                rows_bincode: bincode::serialize(&rows).expect("values serialise"),
            })
        };
        deadline("read", READ_TIMEOUT_MS, work)
            .await
            .map(Response::new)
    }

    async fn digest(
        &self,
        request: Request<pb::DigestRequest>,
    ) -> std::result::Result<Response<pb::DigestReply>, Status> {
        let key = shard_key(request.into_inner().shard)?;
        let group = self.node.group(&key)?;
        let state = group.state.read();
        Ok(Response::new(pb::DigestReply {
            digest: state.store.digest(),
            applied_index: state.last_applied.map_or(0, |l| l.index),
            record_count: state.store.record_count(),
        }))
    }
}

/// `Admin`: table creation (placement, group creation), group opening, status.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: Arc<Node>,
}

impl AdminService {
    pub fn new(node: Arc<Node>) -> Self {
        AdminService { node }
    }

    async fn open_at(&self, id: NodeId, addr: &str, request: pb::OpenShardRequest) -> Result<()> {
        if id == self.node.id() {
            return open_shard(&self.node, request).await;
        }
        let channel = self.node.config.transport.channel(addr)?;
        AdminClient::new(channel)
            .open_shard(request)
            .await
            .map_err(|s| crate::status::error_from_status(addr, &s))?;
        Ok(())
    }

    /// Create a table: record it with its shard map in the meta group (which decides whether
    /// the name is free), then open each shard group on its replicas. If a group cannot be
    /// opened the table is dropped again, so a failed creation leaves no table behind.
    async fn create_table(&self, request: pb::CreateTableRequest) -> Result<()> {
        if !ShardKey::valid_table_name(&request.name) {
            return Err(Error::InvalidArgument(format!(
                "bad table name {:?}: use letters, digits and _",
                request.name
            )));
        }
        let schema: Schema = decode("schema", &request.schema_bincode)?;
        Schema::new(schema.columns.clone())?;
        if request.shards == 0 {
            return Err(Error::InvalidArgument(
                "a table needs at least one shard".into(),
            ));
        }
        if let Some(missing) = request
            .primary_key
            .iter()
            .find(|k| schema.column(k).is_err())
        {
            return Err(Error::InvalidArgument(format!(
                "primary key column {missing} is not in the schema"
            )));
        }
        let (metadata, _) = self.node.metadata().await?;
        if metadata.tables.contains_key(&request.name) {
            return Err(Error::AlreadyExists(format!("table {}", request.name)));
        }
        if metadata.nodes.is_empty() {
            return Err(Error::Unavailable {
                shard: META_GROUP.into(),
                reason: "the cluster is not initialised (Admin.Initialize)".into(),
            });
        }
        let replicas = match request.replicas {
            0 => placement::REPLICAS_DEFAULT,
            r => r as usize,
        };
        let nodes: Vec<NodeId> = metadata.placeable_nodes();
        let placement: Vec<Vec<NodeId>> = (0..request.shards)
            .map(|shard| {
                placement::replicas(&ShardKey::new(&request.name, shard), &nodes, replicas)
            })
            .collect();
        let table = TableMeta {
            name: request.name.clone(),
            schema,
            primary_key: request.primary_key.clone(),
            shards: request.shards,
            replicas: replicas.min(nodes.len()) as u32,
            placement,
        };
        match self
            .node
            .meta_propose(MetaCommand::CreateTableRequested {
                table: table.clone(),
                replicas: replicas as u32,
            })
            .await?
        {
            MetaOutcome::Done => {}
            MetaOutcome::TableExists(name) => {
                return Err(Error::AlreadyExists(format!("table {name}")))
            }
            other => return Err(Error::Raft(format!("create table applied as {other:?}"))),
        }
        if let Err(error) = self
            .open_table(&table, &metadata.nodes, &request.schema_bincode)
            .await
        {
            tracing::warn!(table = %table.name, %error, "opening the shard groups failed; dropping the table again");
            if let Err(e) = self.drop_table(&table.name).await {
                tracing::warn!(table = %table.name, error = %e, "dropping the half-created table");
            }
            return Err(error);
        }
        tracing::info!(table = %table.name, shards = table.shards, replicas = table.replicas, "table created");
        Ok(())
    }

    /// Open every shard group of a table on its replicas and initialise each on its first.
    async fn open_table(
        &self,
        table: &TableMeta,
        nodes: &BTreeMap<NodeId, String>,
        schema_bincode: &[u8],
    ) -> Result<()> {
        for (shard, owners) in (0..table.shards).zip(&table.placement) {
            let addr = |id: &NodeId| {
                nodes
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(format!("node {id} is not in the metadata")))
            };
            let members: Vec<pb::NodeInfo> = owners
                .iter()
                .map(|id| {
                    Ok(pb::NodeInfo {
                        id: *id,
                        addr: addr(id)?,
                    })
                })
                .collect::<Result<_>>()?;
            let open = |initialize| pb::OpenShardRequest {
                shard: Some(pb::ShardRef {
                    table: table.name.clone(),
                    shard,
                }),
                schema_bincode: schema_bincode.to_vec(),
                members: members.clone(),
                initialize,
            };
            for owner in owners {
                self.open_at(*owner, &addr(owner)?, open(false)).await?;
            }
            let first = &owners[0];
            self.open_at(*first, &addr(first)?, open(true)).await?;
        }
        Ok(())
    }

    /// Drop a table: remove it from the meta group, then close its shard groups and remove
    /// their files on every replica. A replica that cannot be reached keeps its files (logged).
    async fn drop_table(&self, name: &str) -> Result<()> {
        let table = match self
            .node
            .meta_propose(MetaCommand::DropTable(name.to_string()))
            .await?
        {
            MetaOutcome::Dropped(table) => table,
            MetaOutcome::UnknownTable(name) => {
                return Err(Error::NotFound(format!("table {name}")))
            }
            other => return Err(Error::Raft(format!("drop table applied as {other:?}"))),
        };
        let (metadata, _) = self.node.metadata().await?;
        for (shard, owners) in (0..table.shards).zip(&table.placement) {
            let key = table.shard_key(shard);
            for owner in owners {
                let result = match metadata.nodes.get(owner) {
                    _ if *owner == self.node.id() => self.node.drop_group(&key).await,
                    Some(addr) => self.drop_shard_at(addr, &key).await,
                    None => Err(Error::NotFound(format!("node {owner}"))),
                };
                if let Err(e) = result {
                    tracing::warn!(group = %key, node = owner, error = %e, "a dropped table's shard could not be removed");
                }
            }
        }
        tracing::info!(table = %name, "table dropped");
        Ok(())
    }

    async fn drop_shard_at(&self, addr: &str, key: &ShardKey) -> Result<()> {
        let channel = self.node.config.transport.channel(addr)?;
        AdminClient::new(channel)
            .drop_shard(pb::DropShardRequest {
                shard: Some(pb::ShardRef {
                    table: key.table.clone(),
                    shard: key.shard,
                }),
            })
            .await
            .map_err(|s| crate::status::error_from_status(addr, &s))?;
        Ok(())
    }
}

impl AdminService {
    /// Move a shard to `members`: learners first, caught up, then one membership change.
    async fn change_replicas(&self, request: pb::ChangeReplicasRequest) -> Result<Vec<NodeId>> {
        let key = shard_key(request.shard)?;
        let name = key.group_name();
        let group = self.node.group(&key)?;
        let members: BTreeMap<NodeId, String> = request
            .members
            .into_iter()
            .map(|n| (n.id, n.addr))
            .collect();
        if members.is_empty() || members.contains_key(&0) {
            return Err(Error::InvalidArgument(
                "a shard needs at least one replica, with non-zero node ids".into(),
            ));
        }
        // Only the leader changes membership; anyone else answers with the leader.
        group
            .raft
            .ensure_linearizable()
            .await
            .map_err(|e| from_read_error(&name, e))?;
        let schema_bincode =
            bincode::serialize(group.state.read().store.schema()).expect("schemas serialise");
        let current = group.raft.metrics().borrow().membership_config.clone();
        let known: std::collections::BTreeSet<NodeId> =
            current.membership().nodes().map(|(id, _)| *id).collect();
        for (&id, addr) in &members {
            if known.contains(&id) {
                continue;
            }
            let open = pb::OpenShardRequest {
                shard: Some(pb::ShardRef {
                    table: key.table.clone(),
                    shard: key.shard,
                }),
                schema_bincode: schema_bincode.clone(),
                members: Vec::new(),
                initialize: false,
            };
            self.open_at(id, addr, open).await?;
            tracing::info!(group = %name, node = id, "adding learner; waiting for it to catch up");
            group
                .raft
                .add_learner(id, openraft::BasicNode { addr: addr.clone() }, true)
                .await
                .map_err(|e| from_write_error(&name, e))?;
        }
        let voters: std::collections::BTreeSet<NodeId> = members.keys().copied().collect();
        group
            .raft
            .change_membership(voters, false)
            .await
            .map_err(|e| from_write_error(&name, e))?;
        tracing::info!(group = %name, voters = ?members.keys(), "replicas changed");
        Ok(members.keys().copied().collect())
    }
}

/// Open a shard group here, and initialise it when asked.
async fn open_shard(node: &Node, request: pb::OpenShardRequest) -> Result<()> {
    let key = shard_key(request.shard)?;
    let schema: Schema = decode("schema", &request.schema_bincode)?;
    let group = node
        .open_group(GroupSpec {
            key: key.clone(),
            schema,
        })
        .await?;
    if group.state.read().store.schema().columns.is_empty() {
        return Err(Error::Raft(format!("group {key} opened without a schema")));
    }
    if request.initialize {
        let members: BTreeMap<NodeId, String> = request
            .members
            .into_iter()
            .map(|n| (n.id, n.addr))
            .collect();
        if !members.contains_key(&node.id()) {
            return Err(Error::InvalidArgument(format!(
                "node {} initialising {key} is not among its members",
                node.id()
            )));
        }
        node.initialize_group(&key, &members).await?;
    }
    Ok(())
}

/// A shard group's status as this node sees it.
pub fn group_status(group: &Group) -> pb::GroupStatus {
    raft_status(&group.key.group_name(), &group.raft, &group.log)
}

/// A Raft group's status as this node sees it.
pub fn raft_status(name: &str, raft: &Raft, log: &crate::log_store::LogStore) -> pb::GroupStatus {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let state = match metrics.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    pb::GroupStatus {
        group: name.to_string(),
        leader_id: metrics.current_leader.unwrap_or(0),
        term: metrics.current_term,
        commit_index: log.committed().map_or(0, |l| l.index),
        applied_index: metrics.last_applied.map_or(0, |l| l.index),
        last_log_index: metrics.last_log_index.unwrap_or(0),
        snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        state: state.to_string(),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn initialize(
        &self,
        request: Request<pb::InitializeRequest>,
    ) -> std::result::Result<Response<pb::InitializeReply>, Status> {
        let members: BTreeMap<NodeId, String> = request
            .into_inner()
            .members
            .into_iter()
            .map(|n| (n.id, n.addr))
            .collect();
        deadline(
            "initialize",
            ADMIN_TIMEOUT_MS,
            self.node.initialize_cluster(members),
        )
        .await
        .map(|()| Response::new(pb::InitializeReply {}))
    }

    async fn drop_table(
        &self,
        request: Request<pb::DropTableRequest>,
    ) -> std::result::Result<Response<pb::DropTableReply>, Status> {
        let name = request.into_inner().name;
        deadline("drop table", ADMIN_TIMEOUT_MS, self.drop_table(&name))
            .await
            .map(|()| Response::new(pb::DropTableReply {}))
    }

    async fn metadata(
        &self,
        _request: Request<pb::MetadataRequest>,
    ) -> std::result::Result<Response<pb::MetadataReply>, Status> {
        deadline("metadata", READ_TIMEOUT_MS, self.node.metadata())
            .await
            .map(|(metadata, applied_index)| {
                Response::new(pb::MetadataReply {
                    metadata_bincode: bincode::serialize(&metadata).expect("metadata serialises"),
                    applied_index,
                })
            })
    }

    async fn meta_propose(
        &self,
        request: Request<pb::MetaProposeRequest>,
    ) -> std::result::Result<Response<pb::MetaProposeReply>, Status> {
        let work = async {
            let command: MetaCommand =
                decode("meta command", &request.into_inner().command_bincode)?;
            // Only here: the caller follows a NotLeader answer itself.
            self.node.meta_propose_here(command).await
        };
        deadline("meta propose", WRITE_TIMEOUT_MS, work)
            .await
            .map(|outcome| {
                Response::new(pb::MetaProposeReply {
                    outcome_bincode: bincode::serialize(&outcome).expect("meta outcomes serialise"),
                })
            })
    }

    async fn drop_shard(
        &self,
        request: Request<pb::DropShardRequest>,
    ) -> std::result::Result<Response<pb::DropShardReply>, Status> {
        let work = async {
            let key = shard_key(request.into_inner().shard)?;
            self.node.drop_group(&key).await
        };
        deadline("drop shard", ADMIN_TIMEOUT_MS, work)
            .await
            .map(|()| Response::new(pb::DropShardReply {}))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> std::result::Result<Response<pb::JoinReply>, Status> {
        let joining = request
            .into_inner()
            .node
            .ok_or_else(|| Status::from(Error::InvalidArgument("missing node".into())))?;
        let node = self.node.clone();
        let work = async move {
            match rebalance::meta_leader(&node).await? {
                None => {
                    // In a task of its own: a caller that goes away does not cut a move short.
                    let node = node.clone();
                    tokio::spawn(
                        async move { rebalance::join(&node, joining.id, joining.addr).await },
                    )
                    .await
                    .map_err(|e| Error::Raft(format!("the join task failed: {e}")))?
                }
                Some(addr) => {
                    let channel = node.config.transport.channel(&addr)?;
                    let mut message = Request::new(pb::JoinRequest {
                        node: Some(joining),
                    });
                    message.set_timeout(Duration::from_millis(rebalance::REBALANCE_TIMEOUT_MS));
                    AdminClient::new(channel)
                        .join(message)
                        .await
                        .map_err(|s| crate::status::error_from_status(&addr, &s))?;
                    Ok(())
                }
            }
        };
        deadline("join", rebalance::REBALANCE_TIMEOUT_MS, work)
            .await
            .map(|()| Response::new(pb::JoinReply {}))
    }

    async fn leave(
        &self,
        request: Request<pb::LeaveRequest>,
    ) -> std::result::Result<Response<pb::LeaveReply>, Status> {
        let id = request.into_inner().node_id;
        let node = self.node.clone();
        let work = async move {
            match rebalance::meta_leader(&node).await? {
                None => {
                    let node = node.clone();
                    tokio::spawn(async move { rebalance::leave(&node, id).await })
                        .await
                        .map_err(|e| Error::Raft(format!("the leave task failed: {e}")))?
                }
                Some(addr) => {
                    let channel = node.config.transport.channel(&addr)?;
                    let mut message = Request::new(pb::LeaveRequest { node_id: id });
                    message.set_timeout(Duration::from_millis(rebalance::REBALANCE_TIMEOUT_MS));
                    AdminClient::new(channel)
                        .leave(message)
                        .await
                        .map_err(|s| crate::status::error_from_status(&addr, &s))?;
                    Ok(())
                }
            }
        };
        deadline("leave", rebalance::REBALANCE_TIMEOUT_MS, work)
            .await
            .map(|()| Response::new(pb::LeaveReply {}))
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> std::result::Result<Response<pb::CreateTableReply>, Status> {
        let request = request.into_inner();
        deadline("create table", ADMIN_TIMEOUT_MS, self.create_table(request))
            .await
            .map(|()| Response::new(pb::CreateTableReply {}))
    }

    async fn open_shard(
        &self,
        request: Request<pb::OpenShardRequest>,
    ) -> std::result::Result<Response<pb::OpenShardReply>, Status> {
        let request = request.into_inner();
        deadline(
            "open shard",
            ADMIN_TIMEOUT_MS,
            open_shard(&self.node, request),
        )
        .await
        .map(|()| Response::new(pb::OpenShardReply {}))
    }

    async fn change_replicas(
        &self,
        request: Request<pb::ChangeReplicasRequest>,
    ) -> std::result::Result<Response<pb::ChangeReplicasReply>, Status> {
        let request = request.into_inner();
        deadline(
            "change replicas",
            CHANGE_REPLICAS_TIMEOUT_MS,
            self.change_replicas(request),
        )
        .await
        .map(|voters| Response::new(pb::ChangeReplicasReply { voters }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> std::result::Result<Response<pb::StatusReply>, Status> {
        let meta = self.node.meta();
        let mut groups = vec![raft_status(META_GROUP, &meta.raft, &meta.log)];
        groups.extend(self.node.groups().iter().map(|g| group_status(g)));
        Ok(Response::new(pb::StatusReply {
            node_id: self.node.id(),
            groups,
        }))
    }
}
