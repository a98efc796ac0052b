//! The transport seam between voters.
//!
//! openraft talks to peers through [`RaftNetworkFactory`]/[`RaftNetwork`];
//! both are implemented once here ([`Network`], [`Client`]) over a small
//! [`Transport`] trait with two implementations: an in-process
//! [`router::Router`] that can drop and partition messages (tests), and
//! [`tcp::TcpTransport`]. Everything is generic; no trait objects.
//!
//! A request is one of three Raft RPCs ([`RaftRequest`]); the receiving
//! side hands it to its Raft node with [`dispatch`], the same function for
//! every transport.

use std::future::Future;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, SnapshotMismatch,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};

use crate::{NodeId, Raft, TypeConfig};

pub mod router;
pub mod tcp;
pub mod wire;

#[derive(Debug)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum RaftResponse {
    AppendEntries(AppendEntriesResponse<NodeId>),
    Vote(VoteResponse<NodeId>),
    InstallSnapshot(InstallSnapshotResponse<NodeId>),
    /// The snapshot chunk did not continue the stream the target expects;
    /// the leader restarts the stream.
    SnapshotMismatch(SnapshotMismatch),
    /// The target's Raft node is stopped or failed (fatal error text).
    Unavailable(String),
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no route to node {0}")]
    Unreachable(NodeId),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad response: {0}")]
    Protocol(String),
}

/// How requests reach other voters and how this voter receives them.
pub trait Transport: Clone + Send + Sync + 'static {
    type Conn: Connection;
    /// Receives requests for the local node while it lives; dropping it
    /// stops serving.
    type Serving: Send + Sync + 'static;

    /// A connection to `target`; connecting may happen lazily.
    fn connect(&self, target: NodeId, node: &BasicNode) -> Self::Conn;

    /// Starts handing incoming requests to `raft` (node `id`). Must be
    /// called within a Tokio runtime.
    fn serve(&self, id: NodeId, raft: Raft) -> std::io::Result<Self::Serving>;
}

/// One peer, one request at a time.
pub trait Connection: Send + Sync + 'static {
    fn call(
        &mut self,
        request: RaftRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<RaftResponse, TransportError>> + Send;
}

/// Hands a request to the local Raft node; the receiving half of every
/// transport.
pub async fn dispatch(raft: &Raft, request: RaftRequest) -> RaftResponse {
    match request {
        RaftRequest::AppendEntries(rpc) => match raft.append_entries(rpc).await {
            Ok(r) => RaftResponse::AppendEntries(r),
            Err(e) => RaftResponse::Unavailable(e.to_string()),
        },
        RaftRequest::Vote(rpc) => match raft.vote(rpc).await {
            Ok(r) => RaftResponse::Vote(r),
            Err(e) => RaftResponse::Unavailable(e.to_string()),
        },
        RaftRequest::InstallSnapshot(rpc) => match raft.install_snapshot(rpc).await {
            Ok(r) => RaftResponse::InstallSnapshot(r),
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                RaftResponse::SnapshotMismatch(m)
            }
            Err(e) => RaftResponse::Unavailable(e.to_string()),
        },
    }
}

/// openraft's network factory over a [`Transport`].
pub struct Network<T> {
    transport: T,
    /// Delay before retrying an unreachable peer.
    retry_backoff: Duration,
}

impl<T: Transport> Network<T> {
    pub fn new(transport: T, retry_backoff: Duration) -> Self {
        Network {
            transport,
            retry_backoff,
        }
    }
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = Client<T::Conn>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Client {
            target,
            conn: self.transport.connect(target, node),
            retry_backoff: self.retry_backoff,
        }
    }
}

/// openraft's client for one peer.
pub struct Client<C> {
    target: NodeId,
    conn: C,
    retry_backoff: Duration,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl<C: Connection> Client<C> {
    async fn call<E: std::error::Error>(
        &mut self,
        request: RaftRequest,
        option: &RPCOption,
    ) -> Result<RaftResponse, RpcError<E>> {
        match self.conn.call(request, option.hard_ttl()).await {
            Ok(RaftResponse::Unavailable(why)) => Err(RPCError::Unreachable(Unreachable::new(
                &TransportError::Protocol(format!("node {} unavailable: {why}", self.target)),
            ))),
            Ok(response) => Ok(response),
            // A peer we cannot reach is retried after a backoff; a garbled
            // or late response is retried at once.
            Err(e @ (TransportError::Unreachable(_) | TransportError::Io(_))) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn unexpected<E: std::error::Error>(&self, got: &RaftResponse) -> RpcError<E> {
        let e = TransportError::Protocol(format!("unexpected response {got:?}"));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl<C: Connection> RaftNetwork<TypeConfig> for Client<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        match self.call(RaftRequest::AppendEntries(rpc), &option).await? {
            RaftResponse::AppendEntries(r) => Ok(r),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        match self
            .call(RaftRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            RaftResponse::InstallSnapshot(r) => Ok(r),
            RaftResponse::SnapshotMismatch(m) => Err(RPCError::RemoteError(RemoteError::new(
                self.target,
                RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m)),
            ))),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        match self.call(RaftRequest::Vote(rpc), &option).await? {
            RaftResponse::Vote(r) => Ok(r),
            other => Err(self.unexpected(&other)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry_backoff))
    }
}
