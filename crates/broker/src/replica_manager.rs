//! The partitions this broker hosts, kept in step with the metadata image.
//!
//! `apply_image` is the only way partitions appear, disappear or change
//! role: the controller commits a change, the broker applies the new image
//! here, and the same call at start-up opens every existing log. A broker
//! hosts exactly the partitions whose replicas include it, leads those
//! whose leader it is, and follows the rest; one code path for create,
//! delete, reassignment, leader change and recovery.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use odradek_metadata::{MetadataImage, PartitionImage, TopicImage};
use odradek_storage::{
    parse_partition_dir, read_checkpoint, read_partition_metadata, write_checkpoint,
    write_partition_metadata, Log, Offsets, StorageError, TopicPartition,
    RECOVERY_POINT_CHECKPOINT, REPLICATION_CHECKPOINT,
};
use parking_lot::RwLock;
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::partition::Partition;
use crate::replication::leader::Assignment;
use crate::topic_config::EffectiveTopicConfig;

/// What the replica manager needs to know about this broker.
#[derive(Clone)]
pub struct ReplicaSettings {
    /// `node.id`.
    pub node_id: i32,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    pub clock: Arc<dyn Clock>,
}

impl ReplicaSettings {
    pub fn new(config: &BrokerConfig, clock: Arc<dyn Clock>) -> ReplicaSettings {
        ReplicaSettings {
            node_id: config.node_id,
            replica_lag_time_max_ms: config.cluster.replica_lag_time_max_ms,
            clock,
        }
    }
}

pub struct ReplicaManager {
    log_dir: PathBuf,
    broker_topic_defaults: BTreeMap<String, String>,
    settings: ReplicaSettings,
    partitions: RwLock<HashMap<(Uuid, i32), Arc<Partition>>>,
    /// Recovery points read at start-up, consumed as logs are opened.
    initial_recovery_points: parking_lot::Mutex<Offsets>,
    /// High watermarks read at start-up (`replication-offset-checkpoint`),
    /// consumed as logs are opened.
    initial_high_watermarks: parking_lot::Mutex<Offsets>,
    /// Where each registered broker listens, per the last applied image
    /// (fetchers connect to leaders here).
    endpoints: RwLock<HashMap<i32, (String, u16)>>,
    /// Bumped after every applied image; the fetchers reconfigure on it.
    changes: watch::Sender<u64>,
    /// Whether `apply_image` gives partitions their roles. Off from start-up
    /// until [`ReplicaManager::enable_roles`]: see there.
    roles_enabled: AtomicBool,
}

impl ReplicaManager {
    pub fn open_with(
        log_dir: &Path,
        broker_topic_defaults: BTreeMap<String, String>,
        settings: ReplicaSettings,
    ) -> Result<ReplicaManager, StorageError> {
        let recovery_points = read_checkpoint(&log_dir.join(RECOVERY_POINT_CHECKPOINT))?;
        let high_watermarks = read_checkpoint(&log_dir.join(REPLICATION_CHECKPOINT))?;
        let roles_enabled = AtomicBool::new(false);
        Ok(ReplicaManager {
            log_dir: log_dir.to_path_buf(),
            broker_topic_defaults,
            settings,
            partitions: RwLock::new(HashMap::new()),
            initial_recovery_points: parking_lot::Mutex::new(recovery_points),
            initial_high_watermarks: parking_lot::Mutex::new(high_watermarks),
            endpoints: RwLock::new(HashMap::new()),
            changes: watch::Sender::new(0),
            roles_enabled,
        })
    }

    pub fn node_id(&self) -> i32 {
        self.settings.node_id
    }

    /// From now on, [`ReplicaManager::apply_image`] makes partitions leaders
    /// and followers as the image says. Until then it only opens, creates
    /// and deletes logs, and every partition stays a follower of no leader
    /// (no fetching, no produce, no leader epoch recorded).
    ///
    /// The broker calls this once the image shows this process's own
    /// registration (Kafka's broker, likewise, acts on partition metadata
    /// only after it registered and caught up with the metadata log). The
    /// image replayed at start-up, and what the quorum adds before this
    /// process registers, describe the previous incarnation: it may make
    /// this node leader of partitions that others have led since, and a
    /// leader records its new epoch in the log at once (`make_leader`).
    /// Returns whether roles were off until now.
    pub fn enable_roles(&self) -> bool {
        !self.roles_enabled.swap(true, Ordering::AcqRel)
    }

    pub fn roles_enabled(&self) -> bool {
        self.roles_enabled.load(Ordering::Acquire)
    }

    pub fn partition(&self, topic_id: &Uuid, index: i32) -> Option<Arc<Partition>> {
        self.partitions.read().get(&(*topic_id, index)).cloned()
    }

    /// The hosted partition, or Kafka's error for a request naming it
    /// (`getPartitionOrError`): a partition the image has but this broker
    /// does not host means the client's metadata is stale
    /// (NOT_LEADER_OR_FOLLOWER); one the image lacks is `unknown`.
    pub fn hosted(
        &self,
        image: &MetadataImage,
        topic_id: &Uuid,
        index: i32,
        unknown: kafka_protocol::error::ResponseError,
    ) -> Result<Arc<Partition>, kafka_protocol::error::ResponseError> {
        match self.partition(topic_id, index) {
            Some(p) => Ok(p),
            None if image.partition(topic_id, index).is_some() => {
                Err(kafka_protocol::error::ResponseError::NotLeaderOrFollower)
            }
            None => Err(unknown),
        }
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Tells the fetchers that roles may have changed (after every image).
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// `(host, port)` of broker `id` as registered.
    pub fn endpoint(&self, id: i32) -> Option<(String, u16)> {
        self.endpoints.read().get(&id).cloned()
    }

    pub fn effective_config(&self, topic: &TopicImage) -> EffectiveTopicConfig {
        EffectiveTopicConfig::from_maps(&topic.configs, &self.broker_topic_defaults)
    }

    fn hosts(&self, p: &PartitionImage) -> bool {
        p.replicas.contains(&self.settings.node_id)
    }

    /// Makes the hosted partitions match `image`: deletes the logs of
    /// partitions this broker is no longer a replica of (topic deleted,
    /// replica moved away), opens or creates the logs of those it now is,
    /// updates configs, and makes each partition leader or follower at the
    /// image's leader epoch (once roles are enabled: see
    /// [`ReplicaManager::enable_roles`]). A failure on one partition does
    /// not stop the others; the first is returned.
    pub fn apply_image(&self, image: &MetadataImage) -> Result<(), StorageError> {
        let mut first_error: Option<StorageError> = None;
        let mut note = |e: StorageError| {
            tracing::error!(error = %e, "applying metadata to a partition failed");
            first_error.get_or_insert(e);
        };
        let removed: Vec<Arc<Partition>> = {
            let mut partitions = self.partitions.write();
            let gone: Vec<(Uuid, i32)> = partitions
                .keys()
                .filter(|(id, index)| !image.partition(id, *index).is_some_and(|p| self.hosts(p)))
                .copied()
                .collect();
            gone.iter().filter_map(|k| partitions.remove(k)).collect()
        };
        for p in removed {
            tracing::info!(topic = %p.topic, partition = p.index, "no longer a replica; deleting the log");
            // Wakes fetches and produces parked on it so they answer now.
            if let Err(e) = p.delete_files() {
                note(e);
            }
        }
        *self.endpoints.write() = image
            .brokers()
            .filter_map(|b| {
                u16::try_from(b.port)
                    .ok()
                    .map(|port| (b.broker_id, (b.host.clone(), port)))
            })
            .collect();
        let now_ms = self.settings.clock.now_ms();
        let eligible = |id: i32| image.is_usable(id);
        let roles = self.roles_enabled();
        for topic in image.topics() {
            let config = self.effective_config(topic);
            for (&index, state) in &topic.partitions {
                if !self.hosts(state) {
                    continue;
                }
                let partition = match self.partition(&topic.topic_id, index) {
                    Some(p) => {
                        if *p.config() != config {
                            p.set_config(config.clone());
                        }
                        p
                    }
                    None => match self.open_partition(topic, index, &config) {
                        Ok(p) => {
                            self.partitions
                                .write()
                                .insert((topic.topic_id, index), p.clone());
                            p
                        }
                        Err(e) => {
                            note(e);
                            continue;
                        }
                    },
                };
                if !roles {
                    continue;
                }
                if let Err(e) = self.apply_role(&partition, state, &eligible, now_ms) {
                    note(e);
                }
            }
        }
        self.changes.send_modify(|n| *n += 1);
        first_error.map_or(Ok(()), Err)
    }

    fn apply_role(
        &self,
        partition: &Partition,
        state: &PartitionImage,
        eligible: &dyn Fn(i32) -> bool,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let lag = self.settings.replica_lag_time_max_ms;
        let me = self.settings.node_id;
        if state.leader == me {
            let assignment = Assignment {
                local_id: me,
                replicas: &state.replicas,
                isr: &state.isr,
                partition_epoch: state.partition_epoch,
            };
            partition.make_leader(&assignment, state.leader_epoch, eligible, now_ms, lag)
        } else {
            partition.make_follower(state.leader, state.leader_epoch);
            Ok(())
        }
    }

    fn open_partition(
        &self,
        topic: &TopicImage,
        index: i32,
        config: &EffectiveTopicConfig,
    ) -> Result<Arc<Partition>, StorageError> {
        let dir = self.log_dir.join(format!("{}-{}", topic.name, index));
        discard_if_other_topic(&dir, topic.topic_id)?;
        let tp = TopicPartition::new(topic.name.to_string(), index);
        let recovery_point = self.initial_recovery_points.lock().remove(&tp).unwrap_or(0);
        let mut log = Log::open(&dir, config.log_config(), recovery_point)?;
        // The checkpointed high watermark (clamped to the log); a leader
        // moves it on as its ISR allows.
        let hw = self.initial_high_watermarks.lock().remove(&tp).unwrap_or(0);
        log.set_high_watermark(hw);
        if read_partition_metadata(&dir)?.is_none() {
            write_partition_metadata(&dir, *topic.topic_id.as_bytes())?;
        }
        Ok(Arc::new(Partition::new(
            topic.name.clone(),
            topic.topic_id,
            index,
            log,
            config.clone(),
        )))
    }

    /// Writes the recovery-point and high-watermark checkpoint files.
    pub fn write_checkpoints(&self) -> Result<(), StorageError> {
        let partitions = self.all_partitions();
        let offsets = |f: &dyn Fn(&Partition) -> i64| -> Offsets {
            partitions
                .iter()
                .map(|p| (TopicPartition::new(p.topic.to_string(), p.index), f(p)))
                .collect()
        };
        write_checkpoint(
            &self.log_dir.join(RECOVERY_POINT_CHECKPOINT),
            &offsets(&|p| p.recovery_point()),
        )?;
        write_checkpoint(
            &self.log_dir.join(REPLICATION_CHECKPOINT),
            &offsets(&|p| p.high_watermark()),
        )?;
        Ok(())
    }

    /// Removes directories that belong to no topic in `image`: leftovers of
    /// a deletion interrupted by a crash. Directories of partitions that
    /// exist but are assigned elsewhere are kept: the image at start-up may
    /// be behind the cluster's (a replica moved here since), and a later
    /// image that removes this broker deletes them.
    pub fn remove_orphan_dirs(&self, image: &MetadataImage) -> Result<(), StorageError> {
        let entries = match std::fs::read_dir(&self.log_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&self.log_dir, e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("__cluster_metadata") {
                continue;
            }
            let Some(tp) = parse_partition_dir(&name) else {
                continue;
            };
            let known = image
                .topic(&tp.topic)
                .is_some_and(|t| t.partitions.contains_key(&tp.partition));
            if !known {
                tracing::info!(dir = %path.display(), "removing log directory of a deleted topic");
                std::fs::remove_dir_all(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        Ok(())
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        context: format!("{}", path.display()),
        source,
    }
}

/// A directory left by a deleted topic of the same name (its
/// `partition.metadata` names another topic id) is removed, never reused.
fn discard_if_other_topic(dir: &Path, topic_id: Uuid) -> Result<(), StorageError> {
    match read_partition_metadata(dir) {
        Ok(Some(id)) if id != *topic_id.as_bytes() => {}
        Ok(_) => return Ok(()),
        // Unreadable metadata: the directory cannot be proven ours.
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "unreadable partition.metadata"),
    }
    tracing::warn!(dir = %dir.display(), "log directory belongs to an older topic of the same name; removing it");
    std::fs::remove_dir_all(dir).map_err(|e| io_error(dir, e))
}

#[cfg(test)]
mod tests {
    use odradek_metadata::MetadataRecord;

    use super::*;

    fn image(leader: i32, leader_epoch: i32) -> (MetadataImage, Uuid) {
        let topic_id = Uuid::from_u128(7);
        let records = [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id,
            },
            MetadataRecord::Partition {
                topic_id,
                partition: 0,
                state: PartitionImage::new(vec![1, 2], leader, leader_epoch),
            },
        ];
        (MetadataImage::from_records(&records), topic_id)
    }

    #[test]
    fn partitions_take_roles_only_once_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ReplicaSettings {
            node_id: 1,
            replica_lag_time_max_ms: 30_000,
            clock: Arc::new(crate::clock::SystemClock),
        };
        let rm = ReplicaManager::open_with(dir.path(), BTreeMap::new(), settings).unwrap();
        assert!(!rm.roles_enabled());
        // An image that (still) names this node leader: the log is opened,
        // but nothing leads, follows, or records the epoch.
        let (stale, topic_id) = image(1, 3);
        rm.apply_image(&stale).unwrap();
        let p = rm.partition(&topic_id, 0).expect("hosted");
        assert!(!p.is_leader());
        assert_eq!(p.followed_leader(), Some(odradek_metadata::NO_LEADER));
        assert_eq!(p.latest_epoch(), None);
        assert!(rm.enable_roles());
        assert!(!rm.enable_roles(), "once");
        let (current, _) = image(2, 4);
        rm.apply_image(&current).unwrap();
        assert_eq!(p.followed_leader(), Some(2));
        assert_eq!(p.leader_epoch(), 4);
        assert_eq!(p.latest_epoch(), None);
        let (led, _) = image(1, 5);
        rm.apply_image(&led).unwrap();
        assert!(p.is_leader());
        assert_eq!(p.latest_epoch(), Some(5));
    }
}
