//! openraft's network over tonic: every Raft message of every group goes through the `Raft`
//! gRPC service as bincode bytes, naming its group.
//!
//! The [`Transport`] trait is the seam for a simulated network: it hands out a tonic
//! [`Channel`] per peer address. [`TcpTransport`] connects lazily over real TCP and keeps one
//! channel per peer; a tonic channel reconnects by itself after a peer restarts. A simulation
//! builds its channels with `Endpoint::connect_with_connector_lazy` over its own streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use proto::v1::raft_client::RaftClient;
use proto::v1::RaftRequest;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;
use crate::lease::LeaseClock;
use crate::types::{NodeId, TypeConfig};

/// Largest gRPC message either way (snapshot chunks, append-entries batches, row batches).
pub const MESSAGE_BYTES_MAX: usize = 256 << 20;
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Longest deadline of a Raft RPC (openraft gives each its own, shorter or not).
pub const RAFT_RPC_TIMEOUT_MS: u64 = 60_000;
/// An HTTP/2 ping goes out after this long without traffic on a connection…
pub const KEEPALIVE_INTERVAL_MS: u64 = 5_000;
/// …and a connection whose ping is not answered within this is closed, so the channel
/// reconnects: a connection whose peer vanished (power loss, a partition that dropped its
/// packets) would otherwise hold every later request until each one's deadline.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 5_000;

/// Hands out channels to peers: the seam where a simulated network plugs in.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// A channel to `addr` (`host:port`). May connect lazily.
    fn channel(&self, addr: &str) -> Result<Channel, Error>;
}

/// Real TCP, one lazily connected channel per peer address.
#[derive(Debug, Default)]
pub struct TcpTransport {
    channels: Mutex<HashMap<String, Channel>>,
}

/// The endpoint every transport connects to `addr` (`host:port`) with: the same timeouts and
/// keep-alive over real TCP and over a simulated network.
pub fn endpoint(addr: &str) -> Result<Endpoint, Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::InvalidArgument(format!("bad peer address {addr}: {e}")))?
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .http2_keep_alive_interval(Duration::from_millis(KEEPALIVE_INTERVAL_MS))
        .keep_alive_timeout(Duration::from_millis(KEEPALIVE_TIMEOUT_MS))
        .keep_alive_while_idle(true))
}

impl Transport for TcpTransport {
    fn channel(&self, addr: &str) -> Result<Channel, Error> {
        let mut channels = self.channels.lock().expect("channel map lock poisoned");
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = endpoint(addr)?.tcp_nodelay(true).connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Builds openraft network clients of one group.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    pub group: String,
    pub transport: Arc<dyn Transport>,
    /// Told of every acknowledged append-entries, when the group serves lease reads.
    pub lease: Option<Arc<LeaseClock>>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> GroupNetwork {
        GroupNetwork {
            group: self.group.clone(),
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            lease: self.lease.clone(),
        }
    }
}

/// One group's link to one peer.
#[derive(Debug)]
pub struct GroupNetwork {
    group: String,
    target: NodeId,
    addr: String,
    transport: Arc<dyn Transport>,
    lease: Option<Arc<LeaseClock>>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl GroupNetwork {
    async fn call<Req, Resp, E>(
        &self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: serde::Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel = self
            .transport
            .channel(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        let payload =
            bincode::serialize(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut grpc_request = tonic::Request::new(RaftRequest {
            group: self.group.clone(),
            payload_bincode: payload,
        });
        let timeout = option
            .hard_ttl()
            .min(Duration::from_millis(RAFT_RPC_TIMEOUT_MS));
        grpc_request.set_timeout(timeout);
        let reply = match method {
            Method::AppendEntries => client.append_entries(grpc_request).await,
            Method::Vote => client.vote(grpc_request).await,
            Method::InstallSnapshot => client.install_snapshot(grpc_request).await,
        };
        let reply = reply.map_err(|status| {
            let error = Error::Transport {
                addr: self.addr.clone(),
                reason: status.to_string(),
            };
            match status.code() {
                tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&error)),
                _ => RPCError::Network(NetworkError::new(&error)),
            }
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            bincode::deserialize(&reply.into_inner().payload_bincode)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for GroupNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let sent = tokio::time::Instant::now();
        let response = self.call(Method::AppendEntries, &rpc, &option).await;
        if let (Some(lease), Ok(answer)) = (&self.lease, &response) {
            // Any answer but a higher vote means the peer took `rpc.vote` as its leader's
            // (a log conflict included): it refreshed its lease on receipt, after `sent`.
            if !matches!(answer, AppendEntriesResponse::HigherVote(_)) {
                lease.acknowledged(self.target, &rpc.vote, sent);
            }
        }
        response
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
