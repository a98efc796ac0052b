//! The partitions this broker hosts, kept in step with the metadata image.
//!
//! `apply_image` is the only way partitions appear or disappear: the
//! controller commits a change, the broker applies the new image here, and
//! the same call at start-up opens every existing log. One code path for
//! create, delete and recovery.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use odradek_metadata::{MetadataImage, TopicImage};
use odradek_storage::{
    parse_partition_dir, read_checkpoint, read_partition_metadata, write_checkpoint,
    write_partition_metadata, Log, Offsets, StorageError, TopicPartition,
    RECOVERY_POINT_CHECKPOINT, REPLICATION_CHECKPOINT,
};
use parking_lot::RwLock;
use uuid::Uuid;

use crate::partition::Partition;
use crate::topic_config::EffectiveTopicConfig;

type TopicPartitions = Arc<[Arc<Partition>]>;

pub struct ReplicaManager {
    log_dir: PathBuf,
    broker_topic_defaults: BTreeMap<String, String>,
    topics: RwLock<HashMap<Uuid, TopicPartitions>>,
    /// Recovery points read at start-up, consumed as logs are opened.
    initial_recovery_points: parking_lot::Mutex<Offsets>,
}

impl ReplicaManager {
    pub fn open(
        log_dir: &Path,
        broker_topic_defaults: BTreeMap<String, String>,
    ) -> Result<ReplicaManager, StorageError> {
        let recovery_points = read_checkpoint(&log_dir.join(RECOVERY_POINT_CHECKPOINT))?;
        Ok(ReplicaManager {
            log_dir: log_dir.to_path_buf(),
            broker_topic_defaults,
            topics: RwLock::new(HashMap::new()),
            initial_recovery_points: parking_lot::Mutex::new(recovery_points),
        })
    }

    pub fn partition(&self, topic_id: &Uuid, index: i32) -> Option<Arc<Partition>> {
        let topics = self.topics.read();
        let partitions = topics.get(topic_id)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| partitions.get(i))
            .cloned()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|p| p.iter().cloned())
            .collect()
    }

    pub fn effective_config(&self, topic: &TopicImage) -> EffectiveTopicConfig {
        EffectiveTopicConfig::from_maps(&topic.configs, &self.broker_topic_defaults)
    }

    /// Makes the hosted partitions match `image`: deletes logs of topics
    /// that are gone, opens or creates logs of topics that are new, and
    /// updates configs of the rest.
    pub fn apply_image(&self, image: &MetadataImage) -> Result<(), StorageError> {
        let removed: Vec<TopicPartitions> = {
            let mut topics = self.topics.write();
            let gone: Vec<Uuid> = topics
                .keys()
                .filter(|id| image.topic_by_id(id).is_none())
                .copied()
                .collect();
            gone.iter().filter_map(|id| topics.remove(id)).collect()
        };
        for partitions in removed {
            for p in partitions.iter() {
                // Wake fetches parked on it so they answer UNKNOWN_TOPIC now.
                p.hw_advanced().notify_waiters();
                p.delete_files()?;
            }
        }
        for topic in image.topics() {
            let existing = self.topics.read().get(&topic.topic_id).cloned();
            let config = self.effective_config(topic);
            match existing {
                Some(partitions) if partitions.len() == topic.partitions.len() => {
                    if *partitions[0].config() != config {
                        partitions.iter().for_each(|p| p.set_config(config.clone()));
                    }
                }
                _ => {
                    let opened = self.open_topic(topic, &config)?;
                    self.topics.write().insert(topic.topic_id, opened);
                }
            }
        }
        Ok(())
    }

    fn open_topic(
        &self,
        topic: &TopicImage,
        config: &EffectiveTopicConfig,
    ) -> Result<TopicPartitions, StorageError> {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (&index, image) in &topic.partitions {
            let dir = self.log_dir.join(format!("{}-{}", topic.name, index));
            discard_if_other_topic(&dir, topic.topic_id)?;
            let recovery_point = self
                .initial_recovery_points
                .lock()
                .remove(&TopicPartition::new(topic.name.to_string(), index))
                .unwrap_or(0);
            let mut log = Log::open(&dir, config.log_config(), recovery_point)?;
            // A single replica is the whole ISR: everything in its log is
            // committed, so the high watermark is the log end.
            let leo = log.log_end_offset();
            log.set_high_watermark(leo);
            if read_partition_metadata(&dir)?.is_none() {
                write_partition_metadata(&dir, *topic.topic_id.as_bytes())?;
            }
            partitions.push(Arc::new(Partition::new(
                topic.name.clone(),
                topic.topic_id,
                index,
                log,
                config.clone(),
                image.leader_epoch,
            )));
        }
        Ok(partitions.into())
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
    /// a deletion interrupted by a crash.
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
