//! The transport seam between voters.
//!
//! openraft talks to peers through [`RaftNetworkFactory`]/[`RaftNetwork`];
//! both are implemented once here ([`Network`], [`Client`]) over a small
//! [`Transport`] trait with two implementations: an in-process
//! [`router::Router`] that can drop and partition messages (tests), and
//! [`tcp::TcpTransport`]. Everything is generic; no trait objects.
//!
//! A request is one of three Raft RPCs or one of two controller requests
//! ([`RaftRequest`]); the receiving side hands it to its [`Endpoint`], the
//! same code for every transport. The controller requests carry opaque
//! forwarded payloads to the active controller's [`ForwardHandler`] and
//! answer "who leads?" for nodes that are not voters (see `forward`).

use std::future::Future;
use std::sync::{Arc, RwLock};
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
use openraft::{BasicNode, RaftMetrics, RaftNetwork, RaftNetworkFactory};

use crate::forward::ForwardHandler;
use crate::{NodeId, Raft, TypeConfig};

pub mod router;
pub mod tcp;
pub mod wire;

#[derive(Debug, Clone)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// An opaque request for the active controller's forward handler.
    Forward(Vec<u8>),
    /// Which node leads, as the target knows it.
    WhoLeads,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RaftResponse {
    AppendEntries(AppendEntriesResponse<NodeId>),
    Vote(VoteResponse<NodeId>),
    InstallSnapshot(InstallSnapshotResponse<NodeId>),
    /// The snapshot chunk did not continue the stream the target expects;
    /// the leader restarts the stream.
    SnapshotMismatch(SnapshotMismatch),
    /// The target's Raft node is stopped or failed (fatal error text), or
    /// it leads but has no forward handler, or the handler failed.
    Unavailable(String),
    /// The forward handler's answer to a `Forward`.
    Forwarded(Vec<u8>),
    /// The answer to `WhoLeads`: the leader the target knows of, if any.
    Leader {
        id: Option<NodeId>,
        addr: Option<String>,
    },
    /// The target of a `Forward` is not the leader; the handler was not
    /// called. Names the leader the target knows of, if any.
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
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

    /// Starts handing incoming requests to `endpoint`. Must be called
    /// within a Tokio runtime.
    fn serve(&self, endpoint: Endpoint) -> std::io::Result<Self::Serving>;
}

/// One peer, one request at a time.
pub trait Connection: Send + Sync + 'static {
    fn call(
        &mut self,
        request: RaftRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<RaftResponse, TransportError>> + Send;
}

/// The slot holding a node's forward handler; settable at any time.
pub(crate) type HandlerSlot = Arc<RwLock<Option<Arc<dyn ForwardHandler>>>>;

/// The receiving half of every transport: one node's Raft and forward
/// handler. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    id: NodeId,
    raft: Raft,
    handler: HandlerSlot,
}

impl Endpoint {
    pub(crate) fn new(id: NodeId, raft: Raft, handler: HandlerSlot) -> Endpoint {
        Endpoint { id, raft, handler }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Answers one request. A `Forward` reaches the handler only while
    /// this node's metrics say it leads; the handler runs in its own task,
    /// so it completes even if the caller stops waiting.
    pub async fn handle(&self, request: RaftRequest) -> RaftResponse {
        let raft = &self.raft;
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
            RaftRequest::WhoLeads => {
                let (id, addr) = leader_of(&raft.metrics().borrow());
                RaftResponse::Leader { id, addr }
            }
            RaftRequest::Forward(payload) => self.forward(payload).await,
        }
    }

    async fn forward(&self, payload: Vec<u8>) -> RaftResponse {
        let (leader_id, leader_addr) = leader_of(&self.raft.metrics().borrow());
        if leader_id != Some(self.id) {
            return RaftResponse::NotLeader {
                leader_id,
                leader_addr,
            };
        }
        let handler = self.handler.read().expect("handler lock poisoned").clone();
        let Some(handler) = handler else {
            return RaftResponse::Unavailable(format!("node {} has no forward handler", self.id));
        };
        match tokio::spawn(handler.handle(payload)).await {
            Ok(response) => RaftResponse::Forwarded(response),
            Err(e) => RaftResponse::Unavailable(format!("forward handler failed: {e}")),
        }
    }
}

/// The leader named by `metrics` and its address from the membership.
pub(crate) fn leader_of(
    metrics: &RaftMetrics<NodeId, BasicNode>,
) -> (Option<NodeId>, Option<String>) {
    let id = metrics.current_leader;
    let addr = id.and_then(|id| {
        let membership = metrics.membership_config.membership();
        membership.get_node(&id).map(|n| n.addr.clone())
    });
    (id, addr)
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
