//! Helpers shared by the quorum tests: fast timeouts, bounded waits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use odradek_metadata::{MetadataImage, MetadataRecord};
use odradek_raft::{MetadataQuorum, NodeId, QuorumConfig, Transport};
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

/// Waits until one of the running nodes says it is the leader, and
/// returns its position in `nodes`.
pub async fn wait_leader<T: Transport>(nodes: &[Option<MetadataQuorum<T>>]) -> usize {
    bounded("a leader", async {
        loop {
            for (i, n) in nodes.iter().enumerate() {
                if n.as_ref().is_some_and(|n| n.is_leader()) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}
