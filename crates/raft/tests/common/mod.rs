//! Helpers shared by the quorum tests: fast timeouts, bounded waits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use odradek_metadata::{MetadataImage, MetadataRecord};
use odradek_raft::{
    ForwardHandler, MetadataQuorum, NodeId, QuorumConfig, Router, RouterTransport, TcpTransport,
    Transport,
};
use tokio::sync::watch;
use uuid::Uuid;

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Short Raft timers so elections take a few hundred milliseconds, and
/// frequent snapshots with no log kept behind them, so a lagging voter
/// has to catch up from a snapshot.
pub fn config(id: NodeId, data: &Path, voters: &BTreeMap<NodeId, String>) -> QuorumConfig {
    let mut c = QuorumConfig::new(id, data.join(format!("node-{id}")), voters.clone());
    c.heartbeat_interval_ms = 50;
    c.election_timeout_min_ms = 200;
    c.election_timeout_max_ms = 400;
    c.snapshot_every_entries = 4;
    c.entries_kept_after_snapshot = 0;
    c.retry_backoff_ms = 50;
    c
}

/// A topic with one partition: the batch CreateTopics appends.
pub fn topic(name: &str) -> Vec<MetadataRecord> {
    let topic_id = Uuid::new_v4();
    vec![
        MetadataRecord::Topic {
            name: name.into(),
            topic_id,
        },
        MetadataRecord::Partition {
            topic_id,
            partition: 0,
            state: odradek_metadata::PartitionImage::new(vec![1, 2, 3], 1, 0),
        },
    ]
}

pub async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until the published image satisfies `pred`.
pub async fn wait_image(
    rx: &mut watch::Receiver<Arc<MetadataImage>>,
    what: &str,
    pred: impl Fn(&MetadataImage) -> bool,
) -> Arc<MetadataImage> {
    bounded(what, rx.wait_for(|i| pred(i)))
        .await
        .expect("image channel closed")
        .clone()
}

/// Waits until one of the running nodes says it is the leader and every
/// running node agrees, and returns its position in `nodes`.
pub async fn wait_leader<T: Transport>(nodes: &[Option<MetadataQuorum<T>>]) -> usize {
    bounded("a leader", async {
        loop {
            for (i, n) in nodes.iter().enumerate() {
                if n.as_ref().is_some_and(|n| n.is_leader()) {
                    let leader = n.as_ref().unwrap().node_id();
                    let agreed = nodes
                        .iter()
                        .flatten()
                        .all(|n| n.metrics().borrow().current_leader == Some(leader));
                    if agreed {
                        return i;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Steadier timers for tests that pin the leader down: on a loaded
/// machine the short timers of [`config`] may let leadership move
/// between a test learning the leader and using it.
pub fn steady_config(id: NodeId, data: &Path, voters: &BTreeMap<NodeId, String>) -> QuorumConfig {
    let mut c = config(id, data, voters);
    c.heartbeat_interval_ms = 100;
    c.election_timeout_min_ms = 1000;
    c.election_timeout_max_ms = 2000;
    c
}

/// A forward handler that answers `"<id>:<payload>"`, so a test sees
/// which node handled a request.
pub fn echo(id: NodeId) -> Arc<dyn ForwardHandler> {
    Arc::new(move |payload: Vec<u8>| async move { answer(id, &payload) })
}

pub fn answer(id: NodeId, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{id}:").into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Binds `n` controller listeners on 127.0.0.1 ephemeral ports; returns
/// them with the voters map (ids from 1).
pub fn tcp_voters(n: usize) -> (Vec<TcpTransport>, BTreeMap<NodeId, String>) {
    let transports: Vec<TcpTransport> = (0..n)
        .map(|_| TcpTransport::bind("127.0.0.1:0").unwrap())
        .collect();
    let voters = transports
        .iter()
        .enumerate()
        .map(|(i, t)| (i as NodeId + 1, t.local_addr().unwrap().to_string()))
        .collect();
    (transports, voters)
}

/// Starts a voter per transport (ids from 1), each with an [`echo`]
/// forward handler and [`steady_config`].
pub async fn start_tcp(
    data: &Path,
    transports: Vec<TcpTransport>,
    voters: &BTreeMap<NodeId, String>,
) -> Vec<Option<MetadataQuorum<TcpTransport>>> {
    let mut nodes = Vec::new();
    for (i, t) in transports.into_iter().enumerate() {
        let id = i as NodeId + 1;
        let q = MetadataQuorum::start(steady_config(id, data, voters), t)
            .await
            .unwrap();
        q.set_forward_handler(Some(echo(id)));
        nodes.push(Some(q));
    }
    nodes
}

/// Waits until `node`'s metrics name `leader` as the leader.
pub async fn wait_knows_leader<T: Transport>(node: &MetadataQuorum<T>, leader: NodeId) {
    bounded("the leader to be known", async {
        let mut m = node.metrics();
        m.wait_for(|m| m.current_leader == Some(leader))
            .await
            .unwrap();
    })
    .await;
}

/// Voters 1–3 addressed by name on the in-process router.
pub fn router_voters() -> BTreeMap<NodeId, String> {
    (1..=3).map(|id| (id, format!("node-{id}"))).collect()
}

/// Starts voter `id` of [`router_voters`] with `config_for` (e.g.
/// [`config`] or [`steady_config`]).
pub async fn start_router_node(
    router: &Router,
    data: &Path,
    id: NodeId,
    config_for: fn(NodeId, &Path, &BTreeMap<NodeId, String>) -> QuorumConfig,
) -> MetadataQuorum<RouterTransport> {
    MetadataQuorum::start(config_for(id, data, &router_voters()), router.transport(id))
        .await
        .unwrap()
}

/// Starts all three voters of [`router_voters`].
pub async fn start_router_nodes(
    router: &Router,
    data: &Path,
    config_for: fn(NodeId, &Path, &BTreeMap<NodeId, String>) -> QuorumConfig,
) -> Vec<Option<MetadataQuorum<RouterTransport>>> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Some(start_router_node(router, data, id, config_for).await));
    }
    nodes
}

/// Shuts down every node still running.
pub async fn shutdown_all<T: Transport>(
    nodes: impl IntoIterator<Item = Option<MetadataQuorum<T>>>,
) {
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}
