//! `MetadataQuorum`: the one type the broker's controller uses.
//!
//! It owns a Raft node (log store, state machine, network) for one
//! controller voter. The active controller proposes record batches; every
//! voter (leader or not) publishes its applied image.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use odradek_metadata::{MetadataImage, MetadataRecord};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, RaftMetrics, SnapshotPolicy};
use tokio::sync::watch;

use crate::network::{Network, Transport};
use crate::{LogStore, MetadataCommand, NodeId, Raft, StateMachine, METADATA_DIR};

/// One voter's configuration. Kafka names in the comments are the broker
/// configs this will be filled from.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// The data directory (`log.dirs`' first entry, or
    /// `metadata.log.dir`); the log lives in `<dir>/__cluster_metadata-0/`.
    pub dir: PathBuf,
    /// `controller.quorum.voters`: every voter, this one included, with
    /// the address its controller listener is reachable at. Every voter
    /// must be started with the same map.
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
    /// Keeps this voter reachable; dropped by `shutdown`.
    serving: Option<T::Serving>,
}

impl<T: Transport> MetadataQuorum<T> {
    /// Opens the log and snapshot under `config.dir`, starts the Raft node
    /// and serves requests from peers through `transport`. On a voter's
    /// first start the cluster is initialised with `config.voters`
    /// (every voter may do so: the initial membership entry is identical).
    pub async fn start(config: QuorumConfig, transport: T) -> Result<Self, StartError> {
        if !config.voters.contains_key(&config.node_id) {
            return Err(StartError::Config(format!(
                "node {} is not among the voters {:?}",
                config.node_id,
                config.voters.keys()
            )));
        }
        let raft_config = Arc::new(config.raft_config()?);
        let dir = config.dir.join(METADATA_DIR);
        let storage = |source| StartError::Storage {
            path: dir.clone(),
            source,
        };
        let log_store = LogStore::open(&dir).map_err(storage)?;
        let state_machine = StateMachine::open(&dir).map_err(storage)?;
        let image = state_machine.subscribe();
        let network = Network::new(
            transport.clone(),
            Duration::from_millis(config.retry_backoff_ms),
        );
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let serving = transport
            .serve(config.node_id, raft.clone())
            .map_err(|e| StartError::Raft(format!("cannot serve: {e}")))?;
        let members: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(&id, addr)| (id, BasicNode::new(addr)))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!(node = config.node_id, "initialised metadata quorum"),
            // Already initialised: restarted, or a peer's entry arrived first.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(StartError::Raft(e.to_string())),
        }
        Ok(MetadataQuorum {
            node_id: config.node_id,
            raft,
            image,
            serving: Some(serving),
        })
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
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader {
                    leader_id: f.leader_id,
                    leader_addr: f.leader_node.map(|n| n.addr),
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                unreachable!("a metadata command is not a membership change: {e}")
            }
            Err(RaftError::Fatal(f)) => Err(ProposeError::Stopped(f.to_string())),
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
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft task ended abnormally");
        }
    }
}
