//! The broker: configuration, controller, hosted partitions and the
//! background duties (flush scheduler, checkpoints, retention), wired
//! together. Handlers reach everything through `&Broker`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{
    delete_topics_request, AllocateProducerIdsRequest, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest,
};
use kafka_protocol::protocol::StrBytes;
use odradek_metadata::{MetadataImage, TopicImage};
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::controller::{Controller, NewTopic};
use crate::errors::ApiError;
use crate::groups::{GroupService, OFFSETS_TOPIC};
use crate::meta_properties;
use crate::replica_manager::ReplicaManager;

pub struct Broker {
    pub config: BrokerConfig,
    /// From this node's `meta.properties`; clients are told the cluster's
    /// (`cluster_id()`), which the first controller recorded.
    local_cluster_id: String,
    /// Changes on every start, so the controller tells a restart from a
    /// retried registration.
    pub incarnation_id: Uuid,
    pub controller: Controller,
    pub replicas: ReplicaManager,
    pub groups: Arc<GroupService>,
    pub clock: Arc<dyn Clock>,
    /// The metadata image whose changes the local partitions reflect.
    /// Handlers read this one, never the quorum's newer image, so what
    /// they see is what the replica manager has opened.
    applied: watch::Sender<Arc<MetadataImage>>,
    /// Set once the controller has unfenced this broker.
    pub unfenced: watch::Sender<bool>,
    /// Producer ids reserved from the controller and not yet handed out.
    producer_ids: tokio::sync::Mutex<std::ops::Range<i64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use log directory {dir}: {reason}")]
    LogDir { dir: String, reason: String },
    #[error(transparent)]
    Controller(#[from] crate::controller::ControllerStartError),
    #[error(transparent)]
    Storage(#[from] odradek_storage::StorageError),
}

/// How long a metadata change may take to reach this broker's partitions
/// after the controller committed it, before the request reports a timeout.
const METADATA_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);

impl Broker {
    /// Opens (or initialises) the data directory: meta.properties, the
    /// controller quorum, then every partition log, recovering as needed.
    pub async fn open(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Broker, StartError> {
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
        let controller = Controller::start(&config, &cluster_id, clock.clone()).await?;
        let replicas = ReplicaManager::open_with(
            &dir,
            config.topic_defaults.clone(),
            crate::replica_manager::ReplicaSettings::new(&config, clock.clone()),
        )?;
        let image = controller.image();
        replicas.remove_orphan_dirs(&image)?;
        replicas.apply_image(&image)?;
        let groups = Arc::new(GroupService::new(config.groups.clone()));
        let broker = Broker {
            config,
            local_cluster_id: cluster_id,
            incarnation_id: Uuid::new_v4(),
            controller,
            replicas,
            groups,
            clock,
            applied: watch::Sender::new(image),
            unfenced: watch::Sender::new(false),
            producer_ids: tokio::sync::Mutex::new(0..0),
        };
        broker.groups.sync_leadership(&broker, &broker.image());
        Ok(broker)
    }

    /// The cluster's id as recorded in the metadata log (this node's own
    /// until the first controller has recorded one).
    pub fn cluster_id(&self) -> String {
        self.image()
            .cluster_id()
            .unwrap_or(&self.local_cluster_id)
            .to_string()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The metadata as this broker's partitions reflect it.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.borrow().clone()
    }

    /// Waits until the applied image satisfies `ready` (a change the
    /// controller committed has reached this broker).
    pub async fn wait_for_image(
        &self,
        ready: impl Fn(&MetadataImage) -> bool,
    ) -> Result<Arc<MetadataImage>, ApiError> {
        let mut rx = self.applied.subscribe();
        let wait = async { rx.wait_for(|image| ready(image)).await.map(|i| i.clone()) };
        match tokio::time::timeout(METADATA_PROPAGATION_TIMEOUT, wait).await {
            Ok(Ok(image)) => Ok(image),
            _ => Err(ApiError::new(
                ResponseError::RequestTimedOut,
                "the metadata change did not reach this broker in time",
            )),
        }
    }

    /// Applies every image the quorum publishes to the local partitions,
    /// until `shutdown`. The only path by which metadata changes take effect.
    pub async fn follow_metadata(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut images = self.controller.subscribe();
        loop {
            let image = images.borrow_and_update().clone();
            if !Arc::ptr_eq(&image, &self.applied.borrow()) {
                let broker = self.clone();
                let applied = image.clone();
                // Opening and deleting logs touches the disk.
                let result = tokio::task::spawn_blocking(move || broker.apply(&applied)).await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = ?e, "applying metadata failed"),
                    Err(e) => tracing::error!(error = %e, "applying metadata panicked"),
                }
                self.applied.send_replace(image);
            }
            tokio::select! {
                changed = images.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Creates topics through the active controller and waits until they
    /// exist here. Internal topics are refused (the broker makes those).
    pub async fn create_topics(&self, request: &CreateTopicsRequest) -> CreateTopicsResponse {
        let mut forwarded = request.clone();
        forwarded
            .topics
            .retain(|t| !is_internal_topic(t.name.0.as_str()));
        let mut response = match self.controller.call(&forwarded).await {
            Ok(r) => r,
            Err(e) => crate::controller::active::topics_error(&forwarded, e),
        };
        let created: Vec<Uuid> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(|t| t.topic_id)
            .collect();
        if !request.validate_only && !created.is_empty() {
            if let Err(e) = self
                .wait_for_image(|image| created.iter().all(|id| image.topic_by_id(id).is_some()))
                .await
            {
                tracing::warn!(error = ?e, "created topics have not reached this broker yet");
            }
        }
        for t in request
            .topics
            .iter()
            .filter(|t| is_internal_topic(t.name.0.as_str()))
        {
            response.topics.push(
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "creation of internal topic {} is prohibited",
                        t.name.0
                    ))))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
        }
        response
    }

    /// Creates one topic (auto-creation, the offsets topic) and returns it
    /// as this broker sees it.
    pub async fn create_topic(&self, spec: &NewTopic) -> Result<Arc<TopicImage>, ApiError> {
        let request = CreateTopicsRequest::default().with_topics(vec![spec.to_request()]);
        let response = self.controller.call(&request).await?;
        let result = response.topics.first().ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownServerError,
                "empty CreateTopics answer",
            )
        })?;
        if result.error_code != 0 {
            return Err(ApiError {
                code: ResponseError::try_from_code(result.error_code)
                    .unwrap_or(ResponseError::UnknownServerError),
                message: result.error_message.as_ref().map(|m| m.to_string()),
            });
        }
        let id = result.topic_id;
        let image = self
            .wait_for_image(|image| image.topic_by_id(&id).is_some())
            .await?;
        Ok(image.topic_by_id(&id).expect("waited for it").clone())
    }

    /// A producer id never handed out before (InitProducerId).
    pub async fn new_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.is_empty() {
            let request =
                AllocateProducerIdsRequest::default().with_broker_id(BrokerId(self.config.node_id));
            let response = self.controller.call(&request).await?;
            if response.error_code != 0 {
                return Err(ApiError::bare(
                    ResponseError::try_from_code(response.error_code)
                        .unwrap_or(ResponseError::UnknownServerError),
                ));
            }
            let start = response.producer_id_start.0;
            *ids = start..start + response.producer_id_len as i64;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    /// Deletes a topic through the active controller.
    pub async fn delete_topic(&self, topic_id: Uuid) -> Result<(), ApiError> {
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
        let request = DeleteTopicsRequest::default().with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_topic_id(topic_id),
        ]);
        let response = self.controller.call(&request).await?;
        match response.responses.first() {
            Some(r) if r.error_code != 0 => Err(ApiError {
                code: ResponseError::try_from_code(r.error_code)
                    .unwrap_or(ResponseError::UnknownServerError),
                message: r.error_message.as_ref().map(|m| m.to_string()),
            }),
            _ => {
                self.wait_for_image(|image| image.topic_by_id(&topic_id).is_none())
                    .await?;
                Ok(())
            }
        }
    }

    fn apply(&self, image: &MetadataImage) -> Result<(), ApiError> {
        // Partitions take roles only from an image that has this process's
        // own registration, so everything committed before it (leaderships
        // moved while this node was down) is applied too: until then the
        // image may make this node leader for its previous incarnation.
        let (me, incarnation) = (self.config.node_id, self.incarnation_id);
        if image
            .broker(me)
            .is_some_and(|b| b.incarnation_id == incarnation)
            && self.replicas.enable_roles()
        {
            tracing::info!(
                "this broker's registration is in the metadata; partitions take their roles"
            );
        }
        self.groups.update_topics(image, self.now_ms());
        let applied = self.replicas.apply_image(image).map_err(|e| {
            tracing::error!(error = %e, "applying metadata to local logs failed");
            ApiError::from(&e)
        });
        self.groups.sync_leadership(self, image);
        applied
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
