//! The broker: configuration, controller, hosted partitions and the
//! background duties (flush scheduler, checkpoints, retention), wired
//! together. Handlers reach everything through `&Broker`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, TopicImage};

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::controller::{Controller, NewTopic, TopicDefaults};
use crate::errors::ApiError;
use crate::groups::{GroupService, OFFSETS_TOPIC};
use crate::meta_properties;
use crate::replica_manager::ReplicaManager;

pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub controller: Controller,
    pub replicas: ReplicaManager,
    pub groups: Arc<GroupService>,
    pub clock: Arc<dyn Clock>,
    /// Producer ids reserved from the controller and not yet handed out.
    producer_ids: parking_lot::Mutex<std::ops::Range<i64>>,
}

/// Producer ids are reserved from the controller in blocks of this size,
/// as Kafka's AllocateProducerIds does.
const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use log directory {dir}: {reason}")]
    LogDir { dir: String, reason: String },
    #[error(transparent)]
    Metadata(#[from] odradek_metadata::MetadataLogError),
    #[error(transparent)]
    Storage(#[from] odradek_storage::StorageError),
    #[error("cannot load group coordinators: {0}")]
    Groups(String),
}

impl Broker {
    /// Opens (or initialises) the data directory: meta.properties, the
    /// metadata log, then every partition log, recovering as needed.
    pub fn open(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Broker, StartError> {
        let dir = config.log_dir().clone();
        std::fs::create_dir_all(&dir).map_err(|e| StartError::LogDir {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let cluster_id =
            meta_properties::load_or_create(&dir, config.node_id).map_err(|reason| {
                StartError::LogDir {
                    dir: dir.display().to_string(),
                    reason,
                }
            })?;
        let controller = Controller::open(&dir, config.node_id)?;
        let replicas = ReplicaManager::open(&dir, config.topic_defaults.clone())?;
        let image = controller.image();
        replicas.remove_orphan_dirs(&image)?;
        replicas.apply_image(&image)?;
        let groups = Arc::new(GroupService::new(config.groups.clone()));
        let broker = Broker {
            config,
            cluster_id,
            controller,
            replicas,
            groups,
            clock,
            producer_ids: parking_lot::Mutex::new(0..0),
        };
        broker
            .groups
            .load_existing(&broker)
            .map_err(|e| StartError::Groups(format!("{e:?}")))?;
        Ok(broker)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    pub fn topic_defaults(&self) -> TopicDefaults {
        TopicDefaults {
            num_partitions: self.config.num_partitions,
            replication_factor: self.config.default_replication_factor,
            live_brokers: vec![self.config.node_id],
        }
    }

    /// Creates a topic through the controller and opens its logs here.
    /// Internal topics are created by the broker itself, never on request.
    pub fn create_topic(
        &self,
        spec: &NewTopic,
        validate_only: bool,
    ) -> Result<Arc<TopicImage>, ApiError> {
        if is_internal_topic(&spec.name) {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("creation of internal topic {} is prohibited", spec.name),
            ));
        }
        self.controller
            .create_topic(spec, &self.topic_defaults(), validate_only, |image| {
                self.apply(image)
            })
    }

    /// Creates an internal topic (`__consumer_offsets`).
    pub fn create_internal_topic(&self, spec: &NewTopic) -> Result<Arc<TopicImage>, ApiError> {
        self.controller
            .create_topic(spec, &self.topic_defaults(), false, |image| {
                self.apply(image)
            })
    }

    /// A producer id never handed out before (InitProducerId).
    pub fn new_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock();
        if ids.is_empty() {
            *ids = self.controller.allocate_producer_ids(PRODUCER_ID_BLOCK)?;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    pub fn delete_topic(&self, topic_id: uuid::Uuid) -> Result<(), ApiError> {
        if self
            .image()
            .topic_by_id(&topic_id)
            .is_some_and(|t| is_internal_topic(&t.name))
        {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "internal topics cannot be deleted",
            ));
        }
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(
                ResponseError::TopicDeletionDisabled,
                "topic deletion is disabled (delete.topic.enable=false)",
            ));
        }
        self.controller
            .delete_topic(topic_id, |image| self.apply(image))
    }

    fn apply(&self, image: &MetadataImage) -> Result<(), ApiError> {
        self.groups.update_topics(image, self.now_ms());
        self.replicas.apply_image(image).map_err(|e| {
            tracing::error!(error = %e, "applying metadata to local logs failed");
            ApiError::from(&e)
        })
    }

    /// Runs the periodic duties until `shutdown` fires. Owned by the server
    /// task; stops when the server stops.
    pub async fn run_background(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let tick_ms = self.config.log_flush_scheduler_interval_ms.min(1000);
        let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_checkpoint = self.now_ms();
        let mut last_retention = self.now_ms();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = self.now_ms();
            for p in self.replicas.all_partitions() {
                if let Err(e) = p.flush_if_due(now).await {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = ?e, "scheduled flush failed");
                }
            }
            let checkpoint_every = self
                .config
                .replica_high_watermark_checkpoint_interval_ms
                .min(self.config.log_flush_offset_checkpoint_interval_ms)
                as i64;
            // Checkpoints fsync and retention unlinks files: both run on the
            // blocking pool so request handling on the runtime's workers
            // never waits behind the disk (this showed as p99 spikes).
            if now - last_checkpoint >= checkpoint_every {
                last_checkpoint = now;
                let broker = self.clone();
                let written =
                    tokio::task::spawn_blocking(move || broker.replicas.write_checkpoints()).await;
                if let Ok(Err(e)) = written {
                    tracing::warn!(error = %e, "writing checkpoints failed");
                }
            }
            if now - last_retention >= self.config.log_retention_check_interval_ms as i64 {
                last_retention = now;
                let broker = self.clone();
                let _ = tokio::task::spawn_blocking(move || broker.enforce_retention(now)).await;
            }
        }
    }

    pub fn enforce_retention(&self, now_ms: i64) {
        for p in self.replicas.all_partitions() {
            match p.enforce_retention(now_ms) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments")
                }
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }

    /// Flushes every log and writes checkpoints: the last step of a clean
    /// shutdown, after in-flight requests have finished.
    pub async fn flush_and_checkpoint(&self) {
        for p in self.replicas.all_partitions() {
            if let Err(e) = p.flush_all().await {
                tracing::error!(topic = %p.topic, partition = p.index, error = ?e, "flush at shutdown failed");
            }
        }
        if let Err(e) = self.replicas.write_checkpoints() {
            tracing::error!(error = %e, "writing checkpoints at shutdown failed");
        }
    }
}

/// Topics the broker owns; clients may read them but never write, create
/// or delete them.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC
}
