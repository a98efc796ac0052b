//! Forwarding opaque requests to the active controller (the Raft leader).
//!
//! Brokers send some requests (registration, heartbeats, AlterPartition,
//! CreateTopics…) to the active controller. This crate carries them as
//! bytes: a `Forward` on the controller listener reaches the leader's
//! [`ForwardHandler`], whose answer travels back as bytes. What the bytes
//! mean, and which Kafka error a failure becomes, is the broker's business.
//!
//! [`ControllerClient`] finds the leader and sends there:
//! - on a voter ([`MetadataQuorum::forward`](crate::MetadataQuorum::forward))
//!   from its own Raft metrics, calling the handler directly (no network)
//!   when it leads;
//! - on any other node from the voters' addresses
//!   (`controller.quorum.voters`): the last leader it reached, else the
//!   answer of the first voter that knows one (`WhoLeads`). An observer
//!   (a learner) uses its metrics once it follows the leader.
//!
//! A voter that is not the leader does not call its handler: it answers
//! `NotLeader` with the leader it knows of, and the client goes there.
//!
//! **Delivery is at least once within the timeout**, as in Kafka's
//! broker-to-controller channel: a request is resent to the (new) leader
//! after a `NotLeader` answer, an unavailable leader, or a broken
//! connection, and a connection that breaks after the request was written
//! leaves it unknown whether the old leader handled it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use openraft::BasicNode;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::network::{
    leader_of, Connection, Endpoint, RaftRequest, RaftResponse, Transport, TransportError,
};
use crate::{NodeId, TcpTransport};

/// The active controller's handler for forwarded requests: bytes in,
/// bytes out. It runs in its own task; a slow request holds up only the
/// connection it came on.
///
/// Any `Fn(Vec<u8>) -> impl Future<Output = Vec<u8>>` closure is a
/// handler.
pub trait ForwardHandler: Send + Sync + 'static {
    fn handle(&self, payload: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
}

impl<F, Fut> ForwardHandler for F
where
    F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send + 'static,
{
    fn handle(&self, payload: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        Box::pin(self(payload))
    }
}

/// Why a forwarded request got no answer from the active controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// No leader was known, or the nodes asked kept naming others, until
    /// the timeout (an election that did not finish, no reachable voter).
    #[error("no active controller known")]
    NoLeader,
    /// The request was sent but its answer did not come in time; the
    /// leader may still handle it.
    #[error("the active controller did not answer in time")]
    Timeout,
    /// The leader could not be reached, or could not handle the request
    /// (no handler installed, stopping), until the timeout. The last
    /// failure.
    #[error("cannot forward to the active controller: {0}")]
    Transport(String),
}

/// Idle connections kept per node.
const MAX_IDLE: usize = 4;
/// Connections one client has open at once (beyond, requests queue), well
/// under the listener's [`MAX_CONNECTIONS`](crate::network::tcp::MAX_CONNECTIONS).
const MAX_IN_FLIGHT: usize = 8;
/// The longest a `WhoLeads` to one voter may take before the next is asked.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);

/// This node's own Raft node, when the client runs on a voter or observer.
struct Local {
    endpoint: Endpoint,
    voter: bool,
}

/// Sends opaque requests to the active controller; see the module docs.
/// Share one per process: it keeps the leader it last reached and a few
/// idle connections per node. Concurrent calls use separate connections,
/// at most eight at once.
pub struct ControllerClient<T: Transport = TcpTransport> {
    transport: T,
    voters: BTreeMap<NodeId, String>,
    local: Option<Local>,
    retry_backoff: Duration,
    /// The leader last reached or redirected to; a voter ignores it.
    known: Mutex<Option<(NodeId, String)>>,
    idle: Mutex<IdleConns<T::Conn>>,
    in_flight: Semaphore,
}

/// Idle connections by node and address.
type IdleConns<C> = HashMap<(NodeId, String), Vec<C>>;

impl ControllerClient<TcpTransport> {
    /// A client over TCP for a node that is not a voter, from
    /// `controller.quorum.voters`.
    pub fn new(voters: BTreeMap<NodeId, String>) -> Self {
        ControllerClient::with_transport(TcpTransport::unbound(), voters)
    }
}

/// What one call has learnt so far.
struct Attempt {
    /// Where the last `NotLeader` answer pointed; tried next.
    hint: Option<(NodeId, String)>,
    /// Redirected at least once: later redirections wait a backoff first,
    /// so that nodes that disagree about the leader are not ping-ponged.
    redirected: bool,
    /// The node that just failed; the next attempt waits a backoff.
    failed: Option<NodeId>,
    /// What to report if the deadline passes.
    last: ForwardError,
}

impl<T: Transport> ControllerClient<T> {
    /// A client over any transport (tests use the in-process router).
    pub fn with_transport(transport: T, voters: BTreeMap<NodeId, String>) -> Self {
        ControllerClient {
            transport,
            voters,
            local: None,
            retry_backoff: DEFAULT_BACKOFF,
            known: Mutex::new(None),
            idle: Mutex::new(HashMap::new()),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// How long to wait before retrying after a failure (100 ms unless
    /// set).
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The client a voter or observer uses: it reads the leader from the
    /// local Raft metrics and calls its own handler when it leads.
    pub(crate) fn local(
        transport: T,
        voters: BTreeMap<NodeId, String>,
        endpoint: Endpoint,
        voter: bool,
        retry_backoff: Duration,
    ) -> Self {
        let mut client = ControllerClient::with_transport(transport, voters);
        client.local = Some(Local { endpoint, voter });
        client.retry_backoff = retry_backoff;
        client
    }

    /// The voters this client walks when it knows no leader.
    pub fn voters(&self) -> &BTreeMap<NodeId, String> {
        &self.voters
    }

    /// The leader this client goes to first: the last one it reached or
    /// was redirected to, if any. (A voter goes by its metrics instead.)
    pub fn last_leader(&self) -> Option<(NodeId, String)> {
        self.known.lock().expect("client lock poisoned").clone()
    }

    /// Sends `payload` to the active controller's handler and returns its
    /// answer, retrying elsewhere (see the module docs) until `timeout`.
    pub async fn forward(
        &self,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ForwardError> {
        let deadline = Instant::now() + timeout;
        let mut attempt = Attempt {
            hint: None,
            redirected: false,
            failed: None,
            last: ForwardError::NoLeader,
        };
        loop {
            let Some((id, addr)) = self.find_leader(&mut attempt, deadline).await else {
                return Err(attempt.last);
            };
            if Instant::now() >= deadline && attempt.last != ForwardError::NoLeader {
                return Err(attempt.last);
            }
            let request = RaftRequest::Forward(payload.clone());
            let failure = match self.call(id, &addr, request, deadline).await {
                Ok(RaftResponse::Forwarded(answer)) => {
                    self.remember(Some((id, addr)));
                    return Ok(answer);
                }
                Ok(RaftResponse::NotLeader {
                    leader_id,
                    leader_addr,
                }) => {
                    tracing::debug!(node = id, ?leader_id, "forward redirected");
                    attempt.last = ForwardError::NoLeader;
                    let hint = leader_id
                        .and_then(|l| Some((l, leader_addr.or_else(|| self.addr_of(l))?)))
                        .filter(|(l, _)| *l != id);
                    self.remember(hint.clone());
                    if attempt.redirected || hint.is_none() {
                        attempt.failed = Some(id);
                    } else {
                        attempt.hint = hint;
                    }
                    attempt.redirected = true;
                    continue;
                }
                Ok(RaftResponse::Unavailable(why)) => why,
                Ok(other) => format!("unexpected response {other:?}"),
                Err(TransportError::Timeout(_)) => return Err(ForwardError::Timeout),
                Err(e) => e.to_string(),
            };
            tracing::debug!(node = id, %addr, error = %failure, "forward failed");
            self.forget(id, &addr);
            attempt.failed = Some(id);
            attempt.last = ForwardError::Transport(format!("node {id} at {addr}: {failure}"));
        }
    }

    /// The leader to try next, or `None` once `deadline` passes without
    /// one.
    async fn find_leader(
        &self,
        attempt: &mut Attempt,
        deadline: Instant,
    ) -> Option<(NodeId, String)> {
        if let Some(hint) = attempt.hint.take() {
            return Some(hint);
        }
        if let Some(bad) = attempt.failed.take() {
            // Give the cluster a moment; a node with metrics stops waiting
            // as soon as it hears of another leader.
            let until = deadline.min(Instant::now() + self.retry_backoff);
            match &self.local {
                Some(local) => {
                    let mut metrics = local.endpoint.raft().metrics();
                    let other = metrics.wait_for(|m| m.current_leader != Some(bad));
                    let _ = tokio::time::timeout_at(until, other).await;
                }
                None => tokio::time::sleep_until(until).await,
            }
        }
        if let Some(local) = &self.local {
            if local.voter {
                // A voter's own metrics are authoritative: wait on them.
                let mut metrics = local.endpoint.raft().metrics();
                let known = metrics.wait_for(|m| leader_of(m).1.is_some());
                let m = tokio::time::timeout_at(deadline, known).await.ok()?.ok()?;
                let (id, addr) = leader_of(&m);
                return Some((id?, addr?));
            }
        }
        loop {
            if let Some(leader) = self.local_leader().or_else(|| self.last_leader()) {
                return Some(leader);
            }
            if let Some(leader) = self.ask_voters(deadline).await {
                self.remember(Some(leader.clone()));
                return Some(leader);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep_until(deadline.min(Instant::now() + self.retry_backoff)).await;
        }
    }

    /// The leader an observer's metrics name.
    fn local_leader(&self) -> Option<(NodeId, String)> {
        let local = self.local.as_ref()?;
        let (id, addr) = leader_of(&local.endpoint.raft().metrics().borrow());
        Some((id?, addr?))
    }

    /// Asks the voters in turn who leads; the first that knows answers.
    async fn ask_voters(&self, deadline: Instant) -> Option<(NodeId, String)> {
        for (&voter, addr) in &self.voters {
            let probe = deadline.min(Instant::now() + PROBE_TIMEOUT);
            match self.call(voter, addr, RaftRequest::WhoLeads, probe).await {
                Ok(RaftResponse::Leader { id: Some(id), addr }) => {
                    if let Some(addr) = addr.or_else(|| self.addr_of(id)) {
                        return Some((id, addr));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(node = voter, %addr, error = %e, "who-leads failed");
                    self.forget(voter, addr);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        None
    }

    fn addr_of(&self, id: NodeId) -> Option<String> {
        if let Some(local) = &self.local {
            let metrics = local.endpoint.raft().metrics();
            let m = metrics.borrow();
            if let Some(node) = m.membership_config.membership().get_node(&id) {
                return Some(node.addr.clone());
            }
        }
        self.voters.get(&id).cloned()
    }

    fn remember(&self, leader: Option<(NodeId, String)>) {
        *self.known.lock().expect("client lock poisoned") = leader;
    }

    /// `id` failed: drop its idle connections and stop assuming it leads.
    fn forget(&self, id: NodeId, addr: &str) {
        self.idle
            .lock()
            .expect("client lock poisoned")
            .remove(&(id, addr.to_string()));
        let mut known = self.known.lock().expect("client lock poisoned");
        if known.as_ref().is_some_and(|(k, _)| *k == id) {
            *known = None;
        }
    }

    /// One request to node `id`: its own endpoint directly, another node
    /// over an idle or new connection.
    async fn call(
        &self,
        id: NodeId,
        addr: &str,
        request: RaftRequest,
        deadline: Instant,
    ) -> Result<RaftResponse, TransportError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        if let Some(local) = self.local.as_ref().filter(|l| l.endpoint.id() == id) {
            return tokio::time::timeout(timeout, local.endpoint.handle(request))
                .await
                .map_err(|_| TransportError::Timeout(timeout));
        }
        let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, self.in_flight.acquire()).await
        else {
            return Err(TransportError::Timeout(timeout));
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        let key = (id, addr.to_string());
        let idle = self
            .idle
            .lock()
            .expect("client lock poisoned")
            .get_mut(&key)
            .and_then(Vec::pop);
        let (conn, result) = match idle {
            Some(mut conn) => {
                let result = conn.call(request.clone(), timeout).await;
                match result {
                    // An idle connection may have been closed by the peer
                    // (e.g. it restarted): retry once on a new one.
                    Err(ref e) if !matches!(e, TransportError::Timeout(_)) => {
                        tracing::debug!(node = id, error = %e, "idle connection failed");
                        let timeout = deadline.saturating_duration_since(Instant::now());
                        let mut conn = self.transport.connect(id, &BasicNode::new(addr));
                        let result = conn.call(request, timeout).await;
                        (conn, result)
                    }
                    result => (conn, result),
                }
            }
            None => {
                let mut conn = self.transport.connect(id, &BasicNode::new(addr));
                let result = conn.call(request, timeout).await;
                (conn, result)
            }
        };
        if result.is_ok() {
            let mut idle = self.idle.lock().expect("client lock poisoned");
            let conns = idle.entry(key).or_default();
            if conns.len() < MAX_IDLE {
                conns.push(conn);
            }
        }
        result
    }
}
