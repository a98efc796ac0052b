//! `MetadataQuorum`: the one type the broker's controller uses.
//!
//! It owns a Raft node (log store, state machine, network) for one
//! controller voter, or for an observer (an openraft learner: a node that
//! is not a voter but receives the committed log). The active controller
//! proposes record batches; every node (leader or not) publishes its
//! applied image, and forwards requests to the active controller.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use odradek_metadata::{MetadataImage, MetadataRecord};
use openraft::error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, RaftMetrics, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::forward::{ControllerClient, ForwardError, ForwardHandler};
use crate::network::{Endpoint, HandlerSlot, Network, Transport};
use crate::{LogStore, MetadataCommand, NodeId, Raft, StateMachine, METADATA_DIR};

/// One voter's (or observer's) configuration. Kafka names in the comments
/// are the broker configs this will be filled from.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// The data directory (`log.dirs`' first entry, or
    /// `metadata.log.dir`); the log lives in `<dir>/__cluster_metadata-0/`.
    pub dir: PathBuf,
    /// `controller.quorum.voters`: every voter, this one included (an
    /// observer is not), with the address its controller listener is
    /// reachable at. Every voter must be started with the same map.
    pub voters: BTreeMap<NodeId, String>,
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time in this range
    /// starts an election. Failover time is about `election_timeout_max_ms`.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot, so that a briefly lagging
    /// voter catches up from the log rather than from a snapshot.
    pub entries_kept_after_snapshot: u64,
    /// How long to wait before retrying a peer that cannot be reached.
    pub retry_backoff_ms: u64,
}

impl QuorumConfig {
    /// Defaults sized for a local or LAN cluster: failover well under the
    /// 3 s target of the cluster issue.
    pub fn new(node_id: NodeId, dir: impl Into<PathBuf>, voters: BTreeMap<NodeId, String>) -> Self {
        QuorumConfig {
            node_id,
            dir: dir.into(),
            voters,
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_every_entries: 1000,
            entries_kept_after_snapshot: 1000,
            retry_backoff_ms: 200,
        }
    }

    /// A quorum of one: this node is the only voter and needs no network.
    pub fn single(node_id: NodeId, dir: impl Into<PathBuf>) -> Self {
        QuorumConfig::new(node_id, dir, BTreeMap::from([(node_id, String::new())]))
    }

    fn raft_config(&self) -> Result<Config, StartError> {
        let config = Config {
            cluster_name: "odradek-metadata".into(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            snapshot_max_chunk_size: 1 << 20,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid quorum config: {0}")]
    Config(String),
    #[error("metadata quorum storage at {path}: {source}")]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This voter is not the leader. The leader, if known, is where the
    /// request belongs (Kafka's NOT_CONTROLLER).
    #[error("not the active controller; leader is {leader_id:?} at {leader_addr:?}")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// The Raft node stopped (shutdown or a fatal storage error).
    #[error("metadata quorum stopped: {0}")]
    Stopped(String),
    /// openraft refused a membership change ([`MetadataQuorum::add_learner`]).
    #[error("membership change refused: {0}")]
    Membership(String),
}

/// A committed proposal: its log index and the image right after it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub index: u64,
    pub image: Arc<MetadataImage>,
}

pub struct MetadataQuorum<T: Transport> {
    node_id: NodeId,
    raft: Raft,
    image: watch::Receiver<Arc<MetadataImage>>,
    /// The forward handler, shared with the endpoint that serves peers.
    handler: HandlerSlot,
    /// Forwards to the leader: from the metrics, or locally.
    client: ControllerClient<T>,
    /// Keeps this node reachable; dropped by `shutdown`.
    serving: Option<T::Serving>,
}

impl<T: Transport> MetadataQuorum<T> {
    /// Opens the log and snapshot under `config.dir`, starts the Raft node
    /// and serves requests from peers through `transport`. On a voter's
    /// first start the cluster is initialised with `config.voters`
    /// (every voter may do so: the initial membership entry is identical).
    ///
    /// A single voter (a quorum of one) leads within milliseconds; more
    /// voters elect with the configured timeouts.
    pub async fn start(config: QuorumConfig, transport: T) -> Result<Self, StartError> {
        if !config.voters.contains_key(&config.node_id) {
            return Err(StartError::Config(format!(
                "node {} is not among the voters {:?}",
                config.node_id,
                config.voters.keys()
            )));
        }
        let quorum = Self::open(&config, transport, true).await?;
        let raft = &quorum.raft;
        let members: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(&id, addr)| (id, BasicNode::new(addr)))
            .collect();
        match raft.initialize(members).await {
            // Initialising also starts an election at once.
            Ok(()) => tracing::info!(node = config.node_id, "initialised metadata quorum"),
            // Already initialised: restarted, or a peer's entry arrived first.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                if config.voters.len() == 1 {
                    quorum.elect_alone().await?;
                }
            }
            Err(e) => return Err(StartError::Raft(e.to_string())),
        }
        Ok(quorum)
    }

    /// Starts a node that is not a voter: an observer (an openraft
    /// learner) that receives the committed log and publishes the image
    /// like a voter, but never votes or leads. `config.voters` are the
    /// controller voters; `config.node_id` must not be among them. It
    /// receives nothing until the leader adds it with [`Self::add_learner`]
    /// at the address `transport` serves on; after a restart it follows
    /// again on its own.
    pub async fn start_observer(config: QuorumConfig, transport: T) -> Result<Self, StartError> {
        if config.voters.contains_key(&config.node_id) {
            return Err(StartError::Config(format!(
                "node {} is a voter; observers are not among {:?}",
                config.node_id,
                config.voters.keys()
            )));
        }
        Self::open(&config, transport, false).await
    }

    async fn open(config: &QuorumConfig, transport: T, voter: bool) -> Result<Self, StartError> {
        let raft_config = Arc::new(config.raft_config()?);
        let dir = config.dir.join(METADATA_DIR);
        let storage = |source| StartError::Storage {
            path: dir.clone(),
            source,
        };
        let log_store = LogStore::open(&dir).map_err(storage)?;
        let state_machine = StateMachine::open(&dir).map_err(storage)?;
        let image = state_machine.subscribe();
        let retry_backoff = Duration::from_millis(config.retry_backoff_ms);
        let network = Network::new(transport.clone(), retry_backoff);
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let handler: HandlerSlot = Arc::new(RwLock::new(None));
        let endpoint = Endpoint::new(config.node_id, raft.clone(), handler.clone());
        let serving = transport
            .serve(endpoint.clone())
            .map_err(|e| StartError::Raft(format!("cannot serve: {e}")))?;
        let client = ControllerClient::local(
            transport,
            config.voters.clone(),
            endpoint,
            voter,
            retry_backoff,
        );
        Ok(MetadataQuorum {
            node_id: config.node_id,
            raft,
            image,
            handler,
            client,
            serving: Some(serving),
        })
    }

    /// The only voter needs no votes: campaign now. openraft already
    /// elects at `initialize` and restores a voter that led before as
    /// leader at startup; a voter that restarts as a follower (it crashed
    /// mid-campaign) would otherwise wait for the next tick, every 1.5
    /// heartbeat intervals.
    async fn elect_alone(&self) -> Result<(), StartError> {
        let fatal = |e: openraft::error::Fatal<NodeId>| StartError::Raft(e.to_string());
        let state = self
            .raft
            .with_raft_state(|s| s.server_state)
            .await
            .map_err(fatal)?;
        if state == ServerState::Follower {
            self.raft.trigger().elect().await.map_err(fatal)?;
        }
        Ok(())
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Replicates `records` as one entry and waits until it is committed
    /// and applied here. Only the leader accepts proposals. There is no
    /// time limit: a leader cut off from its majority waits until it
    /// learns of a new leader, so callers bound the wait themselves (a
    /// timeout leaves the outcome unknown: the entry may still commit).
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<Committed, ProposeError> {
        match self.raft.client_write(MetadataCommand::new(records)).await {
            Ok(r) => Ok(Committed {
                index: r.log_id.index,
                image: r.data,
            }),
            Err(e) => Err(propose_error(e)),
        }
    }

    /// Installs (or, with `None`, removes) the handler for requests
    /// forwarded to this node while it is the active controller. Until one
    /// is installed, forwards to this node fail as unavailable (and
    /// clients retry until their timeout). The handler may hold this
    /// quorum; `shutdown` removes it, which breaks the cycle.
    pub fn set_forward_handler(&self, handler: Option<Arc<dyn ForwardHandler>>) {
        *self.handler.write().expect("handler lock poisoned") = handler;
    }

    /// Sends `payload` to the active controller's forward handler and
    /// returns its answer. The leader comes from this node's Raft metrics,
    /// waiting for one up to `timeout`; when this node leads, its own
    /// handler is called with no network. Retries a new leader after a
    /// redirection or failure until `timeout` (at least once delivery; see
    /// [`crate::forward`]). An observer not yet added by the leader asks
    /// the voters who leads.
    pub async fn forward(
        &self,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ForwardError> {
        self.client.forward(payload, timeout).await
    }

    /// Makes node `node_id`, serving at `addr`, an observer: the leader
    /// replicates the committed log (or a snapshot) to it from now on.
    /// Returns once the membership change is committed, not when the
    /// observer has caught up. Adding a node that is already a learner at
    /// `addr`, or a voter, changes nothing; a learner at another address
    /// gets the new one. Only the leader accepts it (`NotLeader`
    /// elsewhere); a concurrent membership change is waited for.
    pub async fn add_learner(&self, node_id: NodeId, addr: String) -> Result<(), ProposeError> {
        let node = BasicNode::new(addr);
        let mut metrics = self.raft.metrics();
        loop {
            // Off the leader, openraft refuses whatever the change.
            let existing = if self.is_leader() {
                let m = metrics.borrow();
                let membership = m.membership_config.membership();
                if membership.voter_ids().any(|id| id == node_id) {
                    return Ok(());
                }
                membership.get_node(&node_id).cloned()
            } else {
                None
            };
            let result = match existing {
                Some(n) if n == node => return Ok(()),
                Some(_) => {
                    let change = ChangeMembers::SetNodes(BTreeMap::from([(node_id, node.clone())]));
                    self.raft.change_membership(change, true).await
                }
                None => self.raft.add_learner(node_id, node.clone(), false).await,
            };
            match result {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) => {
                    // Another change (e.g. another observer) is not yet
                    // committed: retry once the membership is applied.
                    let applied = metrics.wait_for(|m| {
                        m.last_applied.as_ref() >= m.membership_config.log_id().as_ref()
                    });
                    if applied.await.is_err() {
                        return Err(ProposeError::Stopped("metrics closed".into()));
                    }
                }
                Err(e) => return Err(propose_error(e)),
            }
        }
    }

    /// The applied image, updated after every applied command.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// The current leader as this voter knows it, with its address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.addr.clone();
        Some((id, addr))
    }

    pub fn is_leader(&self) -> bool {
        self.leader().is_some_and(|(id, _)| id == self.node_id)
    }

    /// Waits until some leader is known, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// openraft's metrics: term, state, last log and applied index.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, BasicNode>> {
        self.raft.metrics()
    }

    /// The underlying Raft node, for tests and diagnostics.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Stops serving peers and stops the Raft node. Everything
    /// acknowledged is already durable, so this is also what a crash
    /// looks like to the rest of the quorum.
    pub async fn shutdown(mut self) {
        self.serving = None;
        self.set_forward_handler(None);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft task ended abnormally");
        }
    }
}

fn propose_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader {
            leader_id: f.leader_id,
            leader_addr: f.leader_node.map(|n| n.addr),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ProposeError::Membership(e.to_string())
        }
        RaftError::Fatal(f) => ProposeError::Stopped(f.to_string()),
    }
}
