//! The broker's side of the controller quorum.
//!
//! Cluster metadata is a Raft-replicated log (`odradek_raft`) among the
//! controller voters: the KRaft design. Every node publishes the image it
//! has applied; changes go to the active controller (the Raft leader) as
//! Kafka controller requests (`rpc`), which it plans and proposes
//! (`active`). A single node is a quorum of one and runs the same path.

pub mod active;
pub mod rpc;
pub mod topics;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, MetadataLog};
use odradek_raft::{ForwardError, QuorumConfig, TcpTransport};
use tokio::sync::watch;

pub use active::{ActiveController, Quorum};
pub use topics::{plan_topic_creation, validate_topic_name, NewTopic, TopicDefaults};

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::errors::ApiError;
use rpc::ControllerApi;

/// How long a broker waits for the active controller to answer one
/// request before reporting REQUEST_TIMED_OUT (the request may still
/// take effect, as in Kafka).
const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Controller {
    node_id: i32,
    quorum: Arc<Quorum>,
    /// Present on nodes with the controller role.
    active: Option<Arc<ActiveController>>,
    /// On a broker-only node: where the active controller replicates the
    /// metadata log to (it registers this node as an openraft learner).
    observer_addr: Option<String>,
}

/// The registration listener name under which a broker-only node
/// announces its metadata-replication address. Never shown to clients.
pub const METADATA_LISTENER: &str = "ODRADEK_METADATA";

#[derive(Debug, thiserror::Error)]
pub enum ControllerStartError {
    #[error("controller quorum: {0}")]
    Quorum(#[from] odradek_raft::StartError),
    #[error("cannot bind the controller listener {addr}: {error}\nhint: another process uses the port; change the CONTROLLER entry of listeners and controller.quorum.voters")]
    Bind { addr: String, error: std::io::Error },
    #[error("migrating the single-node metadata log: {0}")]
    Migrate(String),
}

impl Controller {
    pub async fn start(
        config: &BrokerConfig,
        cluster_id: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Controller, ControllerStartError> {
        let cluster = &config.cluster;
        let dir = config.log_dir();
        let node_id = config.node_id;
        let voter_addrs = || -> BTreeMap<u64, String> {
            cluster
                .voters
                .iter()
                .map(|(id, a)| (*id as u64, a.clone()))
                .collect()
        };
        if !cluster.roles.controller {
            return Self::start_observer(config, voter_addrs()).await;
        }
        let (voters, transport) = if cluster.voters.is_empty() {
            (
                BTreeMap::from([(node_id as u64, String::new())]),
                TcpTransport::unbound(),
            )
        } else {
            let listener = cluster
                .controller_listener(&config.listeners)
                .expect("validated: controllers have a controller listener");
            let addr = format!("{}:{}", listener.host, listener.port);
            let transport =
                TcpTransport::bind(&addr).map_err(|error| ControllerStartError::Bind {
                    addr: addr.clone(),
                    error,
                })?;
            (voter_addrs(), transport)
        };
        let mut quorum_config = QuorumConfig::new(node_id as u64, dir, voters);
        quorum_config.election_timeout_min_ms = cluster.election_timeout_ms;
        quorum_config.election_timeout_max_ms = cluster.election_timeout_ms * 2;
        quorum_config.heartbeat_interval_ms = (cluster.election_timeout_ms / 5).max(10);
        let quorum = Arc::new(Quorum::start(quorum_config, transport).await?);
        let active = Arc::new(ActiveController::new(
            TopicDefaults {
                num_partitions: config.num_partitions,
                replication_factor: config.default_replication_factor,
            },
            cluster_id.to_string(),
            cluster.broker_session_timeout_ms,
            clock,
        ));
        active.attach(&quorum);
        let serving = active.clone();
        let handler: Arc<dyn odradek_raft::ForwardHandler> = Arc::new(move |payload: Vec<u8>| {
            let active = serving.clone();
            async move { active.handle(payload).await }
        });
        quorum.set_forward_handler(Some(handler));
        let controller = Controller {
            node_id,
            quorum,
            active: Some(active),
            observer_addr: None,
        };
        if cluster.voters.is_empty() {
            controller.migrate_single_node_log(dir).await?;
        }
        Ok(controller)
    }

    /// A broker-only node: an observer of the quorum. It binds an
    /// ephemeral port on the client listener's host for the leader's
    /// replication traffic and announces it when registering.
    async fn start_observer(
        config: &BrokerConfig,
        voters: BTreeMap<u64, String>,
    ) -> Result<Controller, ControllerStartError> {
        let host = config
            .advertised_client_listener()
            .map(|l| l.host.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "127.0.0.1".into());
        let bind = format!("{host}:0");
        let transport = TcpTransport::bind(&bind).map_err(|error| ControllerStartError::Bind {
            addr: bind.clone(),
            error,
        })?;
        let addr = transport
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(bind);
        let mut quorum_config = QuorumConfig::new(config.node_id as u64, config.log_dir(), voters);
        quorum_config.election_timeout_min_ms = config.cluster.election_timeout_ms;
        quorum_config.election_timeout_max_ms = config.cluster.election_timeout_ms * 2;
        quorum_config.heartbeat_interval_ms = (config.cluster.election_timeout_ms / 5).max(10);
        let quorum = Arc::new(Quorum::start_observer(quorum_config, transport).await?);
        Ok(Controller {
            node_id: config.node_id,
            quorum,
            active: None,
            observer_addr: Some(addr),
        })
    }

    /// The address a broker-only node receives the metadata log on.
    pub fn observer_addr(&self) -> Option<&str> {
        self.observer_addr.as_deref()
    }

    /// A data directory from before the controller quorum holds its
    /// metadata in `__cluster_metadata-0/metadata.log`. On the first start
    /// with the quorum, its records become the quorum's first entry and
    /// the file is renamed so this happens once.
    async fn migrate_single_node_log(&self, dir: &Path) -> Result<(), ControllerStartError> {
        let old = dir.join(odradek_raft::METADATA_DIR).join("metadata.log");
        if !old.exists() {
            return Ok(());
        }
        let migrate = |e: String| ControllerStartError::Migrate(e);
        let (_log, records) = MetadataLog::open(dir).map_err(|e| migrate(e.to_string()))?;
        if !records.is_empty() && self.image().topics().next().is_none() {
            self.quorum
                .wait_for_leader(Duration::from_secs(10))
                .await
                .ok_or_else(|| migrate("no leader elected".into()))?;
            self.quorum
                .propose(records.clone())
                .await
                .map_err(|e| migrate(e.to_string()))?;
            tracing::info!(
                records = records.len(),
                "migrated the single-node metadata log into the controller quorum"
            );
        }
        std::fs::rename(&old, old.with_extension("log.migrated"))
            .map_err(|e| migrate(e.to_string()))?;
        Ok(())
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The image this node has applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image().borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.image()
    }

    /// The metadata log index this node has applied (a heartbeat reports
    /// it so the controller knows the broker has caught up).
    pub fn applied_index(&self) -> i64 {
        self.quorum
            .metrics()
            .borrow()
            .last_applied
            .map_or(-1, |l| l.index as i64)
    }

    /// The node id of the active controller, if one is known.
    pub fn active_controller_id(&self) -> Option<i32> {
        self.quorum.leader().map(|(id, _)| id as i32)
    }

    pub fn active(&self) -> Option<&Arc<ActiveController>> {
        self.active.as_ref()
    }

    /// Sends one request to the active controller and waits for its answer.
    pub async fn call<R: ControllerApi>(&self, request: &R) -> Result<R::Response, ApiError> {
        self.call_within(request, CONTROLLER_REQUEST_TIMEOUT).await
    }

    /// `call` with a time limit of its own (heartbeats must not outlive
    /// the session they keep alive).
    pub async fn call_within<R: ControllerApi>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ApiError> {
        let payload = rpc::encode_request(request)?;
        let answer = self
            .quorum
            .forward(payload, timeout)
            .await
            .map_err(|e| match e {
                ForwardError::Timeout => ApiError::new(
                    ResponseError::RequestTimedOut,
                    "the active controller did not answer in time",
                ),
                other => ApiError::new(ResponseError::NotController, other.to_string()),
            })?;
        rpc::decode_response::<R>(answer)
    }

    /// Stops this node's Raft member. Everything it acknowledged is
    /// durable, so to the other voters this looks like a crash.
    pub async fn shutdown(&self) {
        if let Err(e) = self.quorum.raft().shutdown().await {
            tracing::warn!(error = %e, "raft task ended abnormally");
        }
    }
}
