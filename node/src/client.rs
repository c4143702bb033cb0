//! A Rust client of a node cluster: it finds each shard's leader (following `NotLeader`
//! answers), retries a write with the *same* batch id until it is acknowledged or its deadline
//! passes (so a retry after a timeout is applied once), and runs linearizable shard queries.
//!
//! Batch ids are (client id, sequence); the client id is given by the caller (the seam for
//! deterministic simulation), sequences count up from 1.
//!
//! The client starts from the node addresses it is given and learns the cluster's node list
//! from the metadata: every [`Client::metadata`] read replaces it with `Metadata.nodes`, and
//! a shard that no known node hosts makes it read the metadata once and look again, so
//! shards placed on a node that joined later are found.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use proto::v1 as pb;
use proto::v1::admin_client::AdminClient;
use proto::v1::shard_query_client::ShardQueryClient;
use proto::v1::shard_write_client::ShardWriteClient;
use rhizome_core::query::{Condition, Partial, ShardQuery};
use rhizome_core::shard::Schema;
use rhizome_core::value::Value;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::meta::Metadata;
use crate::network::{Transport, MESSAGE_BYTES_MAX};
use crate::status::error_from_status;
use crate::types::{BatchId, NodeId, RecordRead, ShardKey};

/// Deadline of one RPC.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Deadline of a whole operation, retries included.
pub const OPERATION_TIMEOUT_MS: u64 = 30_000;
/// Deadline of a replica change (new replicas copy the whole shard).
pub const CHANGE_REPLICAS_TIMEOUT_MS: u64 = 600_000;
/// Pause before retrying after a transport failure or an unknown leader.
pub const RETRY_BACKOFF_MS: u64 = 50;

/// What to do after a failed attempt.
enum Next {
    /// Go straight to the leader we were told about.
    Retry,
    /// Wait a little, then try the next candidate.
    Backoff,
    /// This node does not host the shard: try the next.
    NotHere,
    /// An answer that retrying cannot change.
    Fail,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    pub batch: BatchId,
    pub first_id: u64,
    pub count: u64,
    /// The batch had been applied before (an earlier attempt went through).
    pub duplicate: bool,
    pub log_index: u64,
}

/// A client of the cluster's shard services.
#[derive(Debug)]
pub struct Client {
    transport: Arc<dyn Transport>,
    /// Every node's address, by id: where to look for leaders. Learnt from the metadata.
    nodes: Mutex<BTreeMap<NodeId, String>>,
    /// The last known leader address per shard.
    leaders: Mutex<HashMap<ShardKey, String>>,
    client_id: u64,
    next_sequence: AtomicU64,
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS));
    request
}

fn decode_partial(bytes: &[u8]) -> Result<Partial> {
    bincode::deserialize(bytes).map_err(|e| Error::Raft(format!("undecodable partial: {e}")))
}

fn shard_ref(key: &ShardKey) -> Option<pb::ShardRef> {
    Some(pb::ShardRef {
        table: key.table.clone(),
        shard: key.shard,
    })
}

impl Client {
    pub fn new(
        client_id: u64,
        nodes: BTreeMap<NodeId, String>,
        transport: Arc<dyn Transport>,
    ) -> Client {
        Client {
            transport,
            nodes: Mutex::new(nodes),
            leaders: Mutex::new(HashMap::new()),
            client_id,
            next_sequence: AtomicU64::new(1),
        }
    }

    /// The node addresses this client knows, by id.
    pub fn nodes(&self) -> BTreeMap<NodeId, String> {
        self.nodes.lock().expect("node list lock").clone()
    }

    /// Replace the known node addresses with the metadata's node list (kept as it is when
    /// that list is empty: an uninitialised cluster).
    pub fn learn_nodes(&self, nodes: &BTreeMap<NodeId, String>) {
        if nodes.is_empty() {
            return;
        }
        let mut known = self.nodes.lock().expect("node list lock");
        if *known != *nodes {
            tracing::debug!(nodes = ?nodes, "client learnt the node list");
            *known = nodes.clone();
        }
    }

    /// A fresh batch id of this client.
    pub fn next_batch(&self) -> BatchId {
        BatchId {
            client: self.client_id,
            sequence: self.next_sequence.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Run `call` against the shard's leader, following redirects and retrying transport
    /// failures until [`OPERATION_TIMEOUT_MS`]. Errors other than "not leader" and transport
    /// failures are returned at once.
    async fn with_leader<T, F, Fut>(&self, key: &ShardKey, mut call: F) -> Result<T>
    where
        F: FnMut(tonic::transport::Channel) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + Duration::from_millis(OPERATION_TIMEOUT_MS);
        let mut addresses: Vec<String> = self.nodes().into_values().collect();
        // Whether the node list was read again after every known node said "not here".
        let mut relearnt = false;
        let mut next_candidate = 0usize;
        let mut last_error = None;
        // Consecutive "not hosted here" answers: once every node said so, the shard is unknown.
        let mut not_found = 0usize;
        while Instant::now() < deadline {
            let cached = self
                .leaders
                .lock()
                .expect("leader cache lock")
                .get(key)
                .cloned();
            let addr = match cached {
                Some(addr) => addr,
                None => {
                    let addr = addresses[next_candidate % addresses.len()].clone();
                    next_candidate += 1;
                    addr
                }
            };
            let channel = self.transport.channel(&addr)?;
            match call(channel).await {
                Ok(value) => {
                    self.leaders
                        .lock()
                        .expect("leader cache lock")
                        .insert(key.clone(), addr);
                    return Ok(value);
                }
                Err(status) => {
                    let error = error_from_status(&addr, &status);
                    // Decide under the cache lock; wait (if at all) after releasing it.
                    let next = {
                        let mut leaders = self.leaders.lock().expect("leader cache lock");
                        match &error {
                            Error::NotLeader {
                                leader: Some((_, leader_addr)),
                                ..
                            } if *leader_addr != addr => {
                                leaders.insert(key.clone(), leader_addr.clone());
                                Next::Retry
                            }
                            Error::NotLeader { .. }
                            | Error::Transport { .. }
                            | Error::Unavailable { .. } => {
                                leaders.remove(key);
                                Next::Backoff
                            }
                            // Not hosted there (a node we guessed, or a leader the shard
                            // moved off): try another, until all said so.
                            Error::NotFound(_) => {
                                leaders.remove(key);
                                Next::NotHere
                            }
                            _ => Next::Fail,
                        }
                    };
                    match next {
                        Next::Retry => not_found = 0,
                        Next::Backoff => {
                            not_found = 0;
                            tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
                        }
                        Next::NotHere => {
                            not_found += 1;
                            if not_found >= addresses.len() {
                                // Perhaps placed on a node this client has not heard of.
                                if relearnt || self.metadata().await.is_err() {
                                    return Err(error);
                                }
                                relearnt = true;
                                addresses = self.nodes().into_values().collect();
                                not_found = 0;
                            }
                        }
                        Next::Fail => return Err(error),
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(Error::Unavailable {
            shard: key.to_string(),
            reason: format!(
                "no leader answered within {OPERATION_TIMEOUT_MS} ms; last error: {}",
                last_error.map_or("none".to_string(), |e| e.to_string())
            ),
        })
    }

    /// Insert rows into a shard as one batch with a fresh batch id.
    pub async fn insert(&self, key: &ShardKey, rows: &[Vec<Value>]) -> Result<WriteOutcome> {
        let rows = Bytes::from(bincode::serialize(rows).expect("values serialise"));
        self.insert_encoded(key, self.next_batch(), rows).await
    }

    /// Insert already bincode-encoded rows (`Vec<Vec<Value>>`) under a given batch id;
    /// calling it again with the same id changes nothing.
    pub async fn insert_encoded(
        &self,
        key: &ShardKey,
        batch: BatchId,
        rows: Bytes,
    ) -> Result<WriteOutcome> {
        self.insert_payload(key, batch, rows, Bytes::new()).await
    }

    /// Insert rows given by column (a [`ColumnBatch::encode`] encoding) under a given batch
    /// id; calling it again with the same id changes nothing.
    ///
    /// [`ColumnBatch::encode`]: rhizome_core::batch::ColumnBatch::encode
    pub async fn insert_columns(
        &self,
        key: &ShardKey,
        batch: BatchId,
        columns: Bytes,
    ) -> Result<WriteOutcome> {
        self.insert_payload(key, batch, Bytes::new(), columns).await
    }

    /// One insert: exactly one of `rows` and `columns` holds the batch.
    async fn insert_payload(
        &self,
        key: &ShardKey,
        batch: BatchId,
        rows: Bytes,
        columns: Bytes,
    ) -> Result<WriteOutcome> {
        let reply = self
            .with_leader(key, |channel| {
                let message = pb::InsertRequest {
                    shard: shard_ref(key),
                    batch: Some(pb::BatchId {
                        client: batch.client,
                        sequence: batch.sequence,
                    }),
                    rows_bincode: rows.to_vec(),
                    columns: columns.to_vec(),
                };
                async move {
                    ShardWriteClient::new(channel)
                        .max_encoding_message_size(MESSAGE_BYTES_MAX)
                        .insert(request(message))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(outcome(batch, reply))
    }

    /// Delete the live records of a shard that meet `condition`.
    pub async fn delete(&self, key: &ShardKey, condition: &Condition) -> Result<WriteOutcome> {
        let batch = self.next_batch();
        let condition = bincode::serialize(condition).expect("conditions serialise");
        let reply = self
            .with_leader(key, |channel| {
                let message = pb::DeleteRequest {
                    shard: shard_ref(key),
                    batch: Some(pb::BatchId {
                        client: batch.client,
                        sequence: batch.sequence,
                    }),
                    condition_bincode: condition.clone(),
                };
                async move {
                    ShardWriteClient::new(channel)
                        .delete(request(message))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(outcome(batch, reply))
    }

    /// Send `query` to the shard's leader through `call`, one of the ShardQuery calls that
    /// take a `QueryRequest` (Query, Explain).
    async fn query_call<T, Fut>(
        &self,
        key: &ShardKey,
        query: &ShardQuery,
        call: impl Fn(
            ShardQueryClient<tonic::transport::Channel>,
            tonic::Request<pb::QueryRequest>,
        ) -> Fut,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let query = bincode::serialize(query).expect("queries serialise");
        self.with_leader(key, |channel| {
            let message = pb::QueryRequest {
                shard: shard_ref(key),
                query_bincode: query.clone(),
            };
            let client =
                ShardQueryClient::new(channel).max_decoding_message_size(MESSAGE_BYTES_MAX);
            let reply = call(client, request(message));
            async move { reply.await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// A linearizable shard query.
    pub async fn query(&self, key: &ShardKey, query: &ShardQuery) -> Result<Partial> {
        let reply = self
            .query_call(key, query, |mut client, request| async move {
                client.query(request).await
            })
            .await?;
        decode_partial(&reply.partial_bincode)
    }

    /// Linearizable queries of several shards, answered in the order of `keys`: one
    /// `QueryShards` call per node that leads some of them as far as this client knows, then
    /// one [`Client::query`] (which finds leaders and retries) for each shard without a known
    /// leader or that its presumed leader could not answer. Each shard's answer is bounded by
    /// `timeout`; `None` in its place means it did not come in time.
    pub async fn query_shards(
        &self,
        keys: &[ShardKey],
        query: &ShardQuery,
        timeout: Duration,
    ) -> Vec<Option<Result<Partial>>> {
        let started = Instant::now();
        let encoded = bincode::serialize(query).expect("queries serialise");
        let mut by_leader: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        {
            let leaders = self.leaders.lock().expect("leader cache lock");
            for (index, key) in keys.iter().enumerate() {
                if let Some(addr) = leaders.get(key) {
                    by_leader.entry(addr.clone()).or_default().push(index);
                }
            }
        }
        let per_call = timeout.min(Duration::from_millis(REQUEST_TIMEOUT_MS));
        let batched = join_all(by_leader.into_iter().map(|(addr, indexes)| {
            let encoded = encoded.clone();
            async move {
                let message = pb::QueryShardsRequest {
                    shards: indexes
                        .iter()
                        .filter_map(|&i| shard_ref(&keys[i]))
                        .collect(),
                    query_bincode: encoded,
                };
                let mut call = tonic::Request::new(message);
                call.set_timeout(per_call);
                let reply = match self.transport.channel(&addr) {
                    Ok(channel) => ShardQueryClient::new(channel)
                        .max_decoding_message_size(MESSAGE_BYTES_MAX)
                        .query_shards(call)
                        .await
                        .map(tonic::Response::into_inner)
                        .ok(),
                    Err(_) => None,
                };
                let answers = reply
                    .filter(|reply| reply.answers.len() == indexes.len())
                    .map(|reply| reply.answers)
                    .unwrap_or_default();
                let mut answered = Vec::new();
                for (index, answer) in indexes.into_iter().zip(answers) {
                    if let Some(pb::shard_answer::Answer::PartialBincode(bytes)) = answer.answer {
                        answered.push((index, decode_partial(&bytes)));
                    }
                }
                answered
            }
        }))
        .await;
        let mut results: Vec<Option<Result<Partial>>> = keys.iter().map(|_| None).collect();
        for (index, answer) in batched.into_iter().flatten() {
            results[index] = Some(answer);
        }
        // The rest one at a time, in parallel, within what is left of the deadline.
        let left = timeout.saturating_sub(started.elapsed());
        let alone = join_all(
            results
                .iter()
                .enumerate()
                .filter(|(_, result)| result.is_none())
                .map(|(index, _)| async move {
                    let answer = tokio::time::timeout(left, self.query(&keys[index], query)).await;
                    (index, answer.ok())
                })
                .collect::<Vec<_>>(),
        )
        .await;
        for (index, answer) in alone {
            results[index] = answer;
        }
        results
    }

    /// Linearizable (record count, live count) of a shard.
    pub async fn count(&self, key: &ShardKey) -> Result<(u64, u64)> {
        let reply = self.count_reply(key).await?;
        Ok((reply.record_count, reply.live_count))
    }

    /// The shard leader's linearizable counts and sizes (one `Count` RPC).
    async fn count_reply(&self, key: &ShardKey) -> Result<pb::CountReply> {
        self.with_leader(key, |channel| {
            let message = pb::CountRequest {
                shard: shard_ref(key),
            };
            async move {
                ShardQueryClient::new(channel)
                    .count(request(message))
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await
    }

    /// One replica's digest of a shard (not linearizable): for comparing replicas.
    pub async fn digest(&self, addr: &str, key: &ShardKey) -> Result<pb::DigestReply> {
        let channel = self.transport.channel(addr)?;
        ShardQueryClient::new(channel)
            .digest(request(pb::DigestRequest {
                shard: shard_ref(key),
            }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| error_from_status(addr, &s))
    }

    /// Create a table through the node at `addr`: it places the shards and opens their groups.
    pub async fn create_table(
        &self,
        addr: &str,
        name: &str,
        schema: &Schema,
        shards: u32,
        replicas: u32,
    ) -> Result<()> {
        self.create_table_with_key(addr, name, schema, &[], shards, replicas)
            .await
    }

    /// [`Client::create_table`] with a primary key recorded in the metadata.
    pub async fn create_table_with_key(
        &self,
        addr: &str,
        name: &str,
        schema: &Schema,
        primary_key: &[String],
        shards: u32,
        replicas: u32,
    ) -> Result<()> {
        let channel = self.transport.channel(addr)?;
        let mut message = tonic::Request::new(pb::CreateTableRequest {
            name: name.to_string(),
            schema_bincode: bincode::serialize(schema).expect("schemas serialise"),
            shards,
            replicas,
            primary_key: primary_key.to_vec(),
        });
        message.set_timeout(Duration::from_millis(OPERATION_TIMEOUT_MS));
        AdminClient::new(channel)
            .create_table(message)
            .await
            .map_err(|s| error_from_status(addr, &s))?;
        Ok(())
    }

    /// Make the cluster: the node at `addr` initialises the meta group with `members`.
    pub async fn initialize(&self, addr: &str, members: &BTreeMap<NodeId, String>) -> Result<()> {
        let channel = self.transport.channel(addr)?;
        let mut message = tonic::Request::new(pb::InitializeRequest {
            members: members
                .iter()
                .map(|(&id, addr)| pb::NodeInfo {
                    id,
                    addr: addr.clone(),
                })
                .collect(),
        });
        message.set_timeout(Duration::from_millis(OPERATION_TIMEOUT_MS));
        AdminClient::new(channel)
            .initialize(message)
            .await
            .map_err(|s| error_from_status(addr, &s))?;
        Ok(())
    }

    /// Run an admin call on any node (each forwards to the meta leader), trying the nodes in
    /// turn through transport failures and elections until [`OPERATION_TIMEOUT_MS`].
    async fn on_any_node<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut(tonic::transport::Channel) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + Duration::from_millis(OPERATION_TIMEOUT_MS);
        let addresses: Vec<String> = self.nodes().into_values().collect();
        let mut attempt = 0usize;
        loop {
            let addr = &addresses[attempt % addresses.len()];
            attempt += 1;
            let error = match call(self.transport.channel(addr)?).await {
                Ok(value) => return Ok(value),
                Err(status) => error_from_status(addr, &status),
            };
            match error {
                Error::Transport { .. } | Error::Unavailable { .. } | Error::NotLeader { .. }
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
                }
                Error::Transport { .. } | Error::Unavailable { .. } | Error::NotLeader { .. } => {
                    return Err(Error::Unavailable {
                        shard: what.to_string(),
                        reason: format!(
                            "no node answered within {OPERATION_TIMEOUT_MS} ms: {error}"
                        ),
                    })
                }
                other => return Err(other),
            }
        }
    }

    /// The cluster metadata, read linearizably through the meta leader, with the meta log
    /// index it reflects.
    pub async fn metadata(&self) -> Result<(Metadata, u64)> {
        let reply = self
            .on_any_node("meta", |channel| async move {
                AdminClient::new(channel)
                    .metadata(request(pb::MetadataRequest {}))
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await?;
        let metadata: Metadata = bincode::deserialize(&reply.metadata_bincode)
            .map_err(|e| Error::Raft(format!("undecodable metadata: {e}")))?;
        self.learn_nodes(&metadata.nodes);
        Ok((metadata, reply.applied_index))
    }

    /// Add a node to the cluster (through any node; the meta leader runs it): it is listed,
    /// joins the meta group, and the shards the ring now places on it move there. Returns
    /// once every move is done. Joining a listed node again finishes a join cut short.
    pub async fn join(&self, id: NodeId, addr: &str) -> Result<()> {
        self.on_any_node("meta", |channel| {
            let mut message = tonic::Request::new(pb::JoinRequest {
                node: Some(pb::NodeInfo {
                    id,
                    addr: addr.to_string(),
                }),
            });
            message.set_timeout(Duration::from_millis(CHANGE_REPLICAS_TIMEOUT_MS));
            async move {
                AdminClient::new(channel)
                    .join(message)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await?;
        Ok(())
    }

    /// Take a node out of the cluster (through any node): its shards move off first.
    /// `NotFound` for an unknown node, `FailedPrecondition` for the last node.
    pub async fn leave(&self, id: NodeId) -> Result<()> {
        self.on_any_node("meta", |channel| {
            let mut message = tonic::Request::new(pb::LeaveRequest { node_id: id });
            message.set_timeout(Duration::from_millis(CHANGE_REPLICAS_TIMEOUT_MS));
            async move {
                AdminClient::new(channel)
                    .leave(message)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await?;
        Ok(())
    }

    /// Drop a table (through any node). `NotFound` when there is no such table.
    pub async fn drop_table(&self, name: &str) -> Result<()> {
        self.on_any_node("meta", |channel| {
            let mut message = tonic::Request::new(pb::DropTableRequest {
                name: name.to_string(),
            });
            message.set_timeout(Duration::from_millis(OPERATION_TIMEOUT_MS));
            async move {
                AdminClient::new(channel)
                    .drop_table(message)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await?;
        Ok(())
    }

    /// Create a table through any node; `AlreadyExists` when the name is taken.
    pub async fn create_table_anywhere(
        &self,
        name: &str,
        schema: &Schema,
        primary_key: &[String],
        shards: u32,
        replicas: u32,
    ) -> Result<()> {
        let schema_bincode = bincode::serialize(schema).expect("schemas serialise");
        self.on_any_node("meta", |channel| {
            let mut message = tonic::Request::new(pb::CreateTableRequest {
                name: name.to_string(),
                schema_bincode: schema_bincode.clone(),
                shards,
                replicas,
                primary_key: primary_key.to_vec(),
            });
            message.set_timeout(Duration::from_millis(OPERATION_TIMEOUT_MS));
            async move {
                AdminClient::new(channel)
                    .create_table(message)
                    .await
                    .map(tonic::Response::into_inner)
            }
        })
        .await?;
        Ok(())
    }

    /// A shard's plan for `query`, from its leader's store (EXPLAIN).
    pub async fn explain(&self, key: &ShardKey, query: &ShardQuery) -> Result<Vec<String>> {
        let reply = self
            .query_call(key, query, |mut client, request| async move {
                client.explain(request).await
            })
            .await?;
        Ok(reply.lines)
    }

    /// Read records of a shard, linearizably.
    pub async fn read(&self, key: &ShardKey, read: &RecordRead) -> Result<Vec<Vec<Value>>> {
        let read = bincode::serialize(read).expect("reads serialise");
        let reply = self
            .with_leader(key, |channel| {
                let message = pb::ReadRequest {
                    shard: shard_ref(key),
                    read_bincode: read.clone(),
                };
                async move {
                    ShardQueryClient::new(channel)
                        .max_decoding_message_size(MESSAGE_BYTES_MAX)
                        .read(request(message))
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        bincode::deserialize(&reply.rows_bincode)
            .map_err(|e| Error::Raft(format!("undecodable rows: {e}")))
    }

    /// Linearizable sizes of a shard: (live records, bytes of column data in memory).
    pub async fn stats(&self, key: &ShardKey) -> Result<(u64, u64)> {
        let reply = self.count_reply(key).await?;
        Ok((reply.live_count, reply.bytes))
    }

    /// Move a shard's replicas to `members` (ids and addresses); returns the new voters.
    /// Writes and reads of the shard go on meanwhile.
    pub async fn change_replicas(
        &self,
        key: &ShardKey,
        members: &BTreeMap<NodeId, String>,
    ) -> Result<Vec<NodeId>> {
        let reply = self
            .with_leader(key, |channel| {
                let mut message = tonic::Request::new(pb::ChangeReplicasRequest {
                    shard: shard_ref(key),
                    members: members
                        .iter()
                        .map(|(&id, addr)| pb::NodeInfo {
                            id,
                            addr: addr.clone(),
                        })
                        .collect(),
                });
                message.set_timeout(Duration::from_millis(CHANGE_REPLICAS_TIMEOUT_MS));
                async move {
                    AdminClient::new(channel)
                        .change_replicas(message)
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await?;
        Ok(reply.voters)
    }

    /// The status of the node at `addr`.
    pub async fn status(&self, addr: &str) -> Result<pb::StatusReply> {
        let channel = self.transport.channel(addr)?;
        AdminClient::new(channel)
            .status(request(pb::StatusRequest {}))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| error_from_status(addr, &s))
    }
}

fn outcome(batch: BatchId, reply: pb::WriteReply) -> WriteOutcome {
    WriteOutcome {
        batch,
        first_id: reply.first_id,
        count: reply.count,
        duplicate: reply.duplicate,
        log_index: reply.log_index,
    }
}
