//! The group coordinator's shell: routes each group to its
//! `__consumer_offsets` partition, runs the I/O-free core
//! (`odradek_group::GroupCoordinator`) for that partition, persists the
//! records it emits through the partition log, and answers parked
//! JoinGroup/SyncGroup requests when the core says so.
//!
//! Ownership: `GroupService` is owned by `Broker`. Each loaded partition
//! is a `Slot` whose core sits behind a mutex held only for the core call
//! and the log append (never across an await), so records reach the log
//! in the order the core produced them. The timer task (`run_timers`) is
//! spawned by the server and stops with it.

mod load;
mod persist;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use odradek_group::{Effect, GroupConfig, GroupCoordinator, GroupError, Output, ResponseToken};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::broker::Broker;
use crate::controller::NewTopic;
use crate::errors::ApiError;
use crate::partition::Partition;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Settings of the offsets topic and the coordinator, Kafka's names.
#[derive(Debug, Clone)]
pub struct GroupServiceConfig {
    /// `offsets.topic.num.partitions` (50).
    pub num_partitions: i32,
    /// `offsets.topic.replication.factor` (3 in Kafka; capped at the live
    /// broker count so a single node works out of the box).
    pub replication_factor: i16,
    /// `offsets.topic.segment.bytes` (100 MiB).
    pub segment_bytes: u64,
    pub core: GroupConfig,
}

pub struct GroupService {
    config: GroupServiceConfig,
    /// The offsets partitions this broker leads, loaded, by index. A group
    /// whose partition is not here gets NOT_COORDINATOR.
    slots: parking_lot::RwLock<BTreeMap<i32, Arc<Slot>>>,
    /// Partitions of the offsets topic (0 until it exists): routes groups.
    partition_count: AtomicI32,
    /// Serialises creating the offsets topic.
    init: tokio::sync::Mutex<()>,
    next_token: AtomicU64,
    /// Poked after every core call: a call may move the earliest deadline.
    timers_changed: Notify,
}

struct Slot {
    partition: Arc<Partition>,
    inner: Mutex<SlotInner>,
}

struct SlotInner {
    core: GroupCoordinator,
    parked: HashMap<ResponseToken, oneshot::Sender<Effect>>,
}

impl GroupService {
    pub fn new(config: GroupServiceConfig) -> GroupService {
        GroupService {
            config,
            slots: parking_lot::RwLock::new(BTreeMap::new()),
            partition_count: AtomicI32::new(0),
            init: tokio::sync::Mutex::new(()),
            next_token: AtomicU64::new(1),
            timers_changed: Notify::new(),
        }
    }

    pub fn num_partitions(&self) -> i32 {
        self.config.num_partitions
    }

    /// Creates the offsets topic on first use, as Kafka does on the first
    /// FindCoordinator. Loading follows leadership (`sync_leadership`).
    pub async fn ensure_topic(&self, broker: &Broker) -> Result<(), ApiError> {
        if broker.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let _init = self.init.lock().await;
        if broker.image().topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let live = broker.image().usable_brokers().len().max(1) as i16;
        // Kafka refuses to create the topic until enough brokers are up;
        // a single node caps the factor instead, so it works out of the box.
        let replication_factor = if broker.config.cluster.is_single_node() {
            self.config.replication_factor.min(live)
        } else if live < self.config.replication_factor {
            return Err(ApiError::new(
                ResponseError::CoordinatorNotAvailable,
                format!(
                    "{live} live brokers, fewer than offsets.topic.replication.factor={}",
                    self.config.replication_factor
                ),
            ));
        } else {
            self.config.replication_factor
        };
        let spec = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: self.config.num_partitions,
            replication_factor,
            assignments: Default::default(),
            configs: vec![
                ("cleanup.policy".into(), Some("compact".into())),
                ("compression.type".into(), Some("producer".into())),
                (
                    "segment.bytes".into(),
                    Some(self.config.segment_bytes.to_string()),
                ),
            ],
        };
        match broker.create_topic(&spec).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                broker
                    .wait_for_image(|image| image.topic(OFFSETS_TOPIC).is_some())
                    .await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Loads the coordinator of every offsets partition this broker now
    /// leads and unloads those it no longer leads (their parked requests
    /// get NOT_COORDINATOR). Runs after each metadata change is applied.
    pub fn sync_leadership(&self, broker: &Broker, image: &odradek_metadata::MetadataImage) {
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            self.slots.write().clear();
            self.partition_count.store(0, Ordering::Release);
            return;
        };
        self.partition_count
            .store(topic.partitions.len() as i32, Ordering::Release);
        let me = broker.config.node_id;
        let led: Vec<i32> = topic
            .partitions
            .iter()
            .filter(|(_, p)| p.leader == me)
            .map(|(i, _)| *i)
            .collect();
        let unloaded: Vec<i32> = {
            let mut slots = self.slots.write();
            let gone: Vec<i32> = slots
                .iter()
                .filter(|(i, s)| !led.contains(i) || s.partition.topic_id != topic.topic_id)
                .map(|(i, _)| *i)
                .collect();
            gone.iter().for_each(|i| {
                slots.remove(i);
            });
            gone
        };
        if !unloaded.is_empty() {
            tracing::info!(partitions = ?unloaded, "group coordinators unloaded: leadership moved");
        }
        let now = broker.now_ms();
        let topics = topic_image(image);
        let mut loaded = 0;
        for index in led {
            if self.slots.read().contains_key(&index) {
                continue;
            }
            let Some(partition) = broker.replicas.partition(&topic.topic_id, index) else {
                continue;
            };
            match self.load_slot(partition, now, topics.clone()) {
                Ok(slot) => {
                    self.slots.write().insert(index, slot);
                    loaded += 1;
                }
                Err(e) => {
                    tracing::error!(partition = index, error = ?e, "loading a group coordinator failed")
                }
            }
        }
        if loaded > 0 {
            tracing::info!(partitions = loaded, "group coordinators loaded");
            self.timers_changed.notify_one();
        }
    }

    fn load_slot(
        &self,
        partition: Arc<Partition>,
        now: i64,
        topics: odradek_group::consumer::TopicImage,
    ) -> Result<Arc<Slot>, ApiError> {
        let mut core = load::replay_partition(&partition, self.config.core.clone())?;
        let metadata_out = core.set_topic_metadata(now, topics);
        if !metadata_out.records.is_empty() {
            persist::append(&partition, &metadata_out.records, now)?;
        }
        let slot = Arc::new(Slot {
            partition,
            inner: Mutex::new(SlotInner {
                core,
                parked: HashMap::new(),
            }),
        });
        // Effects of loading (expired members) have no parked requests
        // yet; their records still need persisting.
        let out = slot.inner.lock().core.on_loaded(now);
        if !out.records.is_empty() {
            persist::append(&slot.partition, &out.records, now)?;
        }
        Ok(slot)
    }

    fn slot_for(&self, group_id: &str) -> Result<Arc<Slot>, GroupError> {
        let count = self.partition_count.load(Ordering::Acquire);
        if count == 0 {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let p = odradek_group::partition_for_group(group_id, count);
        self.slots
            .read()
            .get(&p)
            .cloned()
            .ok_or(GroupError::NotCoordinator)
    }

    /// Runs one call against the coordinator owning `group_id`: the core
    /// decides, its records are appended and made durable per the flush
    /// policy, then effects are delivered and the response returned.
    pub async fn call<T>(
        &self,
        broker: &Broker,
        group_id: &str,
        f: impl FnOnce(&mut SlotCall<'_>, i64) -> Output<T>,
    ) -> Result<T, GroupError> {
        let slot = self.slot_for(group_id)?;
        self.run(broker, &slot, f).await
    }

    async fn run<T>(
        &self,
        broker: &Broker,
        slot: &Slot,
        f: impl FnOnce(&mut SlotCall<'_>, i64) -> Output<T>,
    ) -> Result<T, GroupError> {
        let now = broker.now_ms();
        let (output, durable) = {
            let mut inner = slot.inner.lock();
            let SlotInner { core, parked } = &mut *inner;
            let mut call = SlotCall { core, parked };
            let output = f(&mut call, now);
            let durable = if output.records.is_empty() {
                Ok(None)
            } else {
                persist::append_durable(&slot.partition, &output.records, now).map(Some)
            };
            (output, durable)
        };
        self.timers_changed.notify_one();
        let durability = match durable {
            Ok(d) => d,
            Err(e) => return Err(self.fail_and_reload(slot, e)),
        };
        // Acknowledged only once flushed per the policy and replicated to
        // the ISR (Kafka's offsets.commit.required.acks=-1).
        if let Some(durability) = durability {
            if let Err(e) = durability
                .wait(&slot.partition, persist::COMMIT_TIMEOUT)
                .await
            {
                return Err(self.fail_and_reload(slot, e));
            }
        }
        deliver(slot, output.effects);
        Ok(output.response)
    }

    /// The core already applied a change that did not reach the log: answer
    /// every parked request NOT_COORDINATOR (by dropping its sender) and
    /// rebuild the core from what the log holds, as Kafka reverts to its
    /// last committed snapshot.
    fn fail_and_reload(&self, slot: &Slot, e: ApiError) -> GroupError {
        tracing::error!(error = ?e, "persisting group records failed; reloading the coordinator");
        let mut inner = slot.inner.lock();
        inner.parked.clear();
        match load::replay_partition(&slot.partition, self.config.core.clone()) {
            Ok(core) => inner.core = core,
            Err(e) => tracing::error!(error = ?e, "reloading the coordinator failed"),
        }
        GroupError::NotCoordinator
    }

    /// Runs a call whose answer may come later (JoinGroup, SyncGroup): the
    /// request is parked under a fresh token before the core runs, and this
    /// waits for the effect that answers it. NOT_COORDINATOR if the
    /// coordinator is unloaded or reloaded before then.
    pub async fn call_parked(
        &self,
        broker: &Broker,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator, i64, ResponseToken) -> Output,
    ) -> Result<Effect, GroupError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut answer = None;
        self.call(broker, group_id, |call, now| {
            let (tx, rx) = oneshot::channel();
            call.parked.insert(token, tx);
            answer = Some(rx);
            f(call.core, now, token)
        })
        .await?;
        match answer {
            Some(rx) => rx.await.map_err(|_| GroupError::NotCoordinator),
            None => Err(GroupError::NotCoordinator),
        }
    }

    /// Reads across every loaded coordinator (ListGroups).
    pub fn for_each_core<R>(&self, mut f: impl FnMut(&GroupCoordinator) -> R) -> Vec<R> {
        self.slots
            .read()
            .values()
            .map(|s| f(&s.inner.lock().core))
            .collect()
    }

    /// Reads the coordinator owning `group_id` without changing it.
    pub fn with_core<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&GroupCoordinator) -> R,
    ) -> Result<R, GroupError> {
        let slot = self.slot_for(group_id)?;
        let inner = slot.inner.lock();
        Ok(f(&inner.core))
    }

    /// Tells every coordinator the topics as they are now, so KIP-848 groups
    /// recompute their target assignments (topics created, deleted or
    /// grown). Called after each metadata change; no client waits on it, so
    /// its records are appended without waiting for a flush.
    pub fn update_topics(&self, image: &odradek_metadata::MetadataImage, now_ms: i64) {
        let slots: Vec<Arc<Slot>> = self.slots.read().values().cloned().collect();
        if slots.is_empty() {
            return;
        }
        let topics = topic_image(image);
        for slot in slots {
            let mut inner = slot.inner.lock();
            let out = inner.core.set_topic_metadata(now_ms, topics.clone());
            if !out.records.is_empty() {
                if let Err(e) = persist::append(&slot.partition, &out.records, now_ms) {
                    tracing::error!(error = ?e, "persisting group metadata update failed");
                }
            }
            for effect in out.effects {
                if let Some(tx) = inner.parked.remove(&token_of(&effect)) {
                    let _ = tx.send(effect);
                }
            }
        }
        self.timers_changed.notify_one();
    }

    /// A call that changes only timers (Heartbeat): no records, no effects.
    pub fn with_core_mut<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupCoordinator) -> R,
    ) -> Result<R, GroupError> {
        let slot = self.slot_for(group_id)?;
        let r = f(&mut slot.inner.lock().core);
        self.timers_changed.notify_one();
        Ok(r)
    }

    /// Fires session, rebalance and retention timers. Owned by the server;
    /// ends when `shutdown` fires.
    pub async fn run_timers(
        self: Arc<Self>,
        broker: Arc<Broker>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let now = broker.now_ms();
            let slots: Vec<Arc<Slot>> = self.slots.read().values().cloned().collect();
            let next = slots
                .iter()
                .filter_map(|s| s.inner.lock().core.next_deadline())
                .min();
            let wait_ms = next.map_or(1_000, |d| (d - now).clamp(0, 1_000)) as u64;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                _ = self.timers_changed.notified() => continue,
                _ = shutdown.changed() => return,
            }
            let now = broker.now_ms();
            for slot in &slots {
                let due = slot
                    .inner
                    .lock()
                    .core
                    .next_deadline()
                    .is_some_and(|d| d <= now);
                if due {
                    if let Err(e) = self
                        .run(&broker, slot, |call, now| call.core.tick(now))
                        .await
                    {
                        tracing::warn!(error = ?e, "group timer failed");
                    }
                }
            }
        }
    }
}

/// What a call closure may touch: the core and the parked-request table.
pub struct SlotCall<'a> {
    pub core: &'a mut GroupCoordinator,
    parked: &'a mut HashMap<ResponseToken, oneshot::Sender<Effect>>,
}

fn token_of(effect: &Effect) -> ResponseToken {
    match effect {
        Effect::CompleteJoin { token, .. } | Effect::CompleteSync { token, .. } => *token,
    }
}

fn deliver(slot: &Slot, effects: Vec<Effect>) {
    if effects.is_empty() {
        return;
    }
    let mut inner = slot.inner.lock();
    for effect in effects {
        if let Some(tx) = inner.parked.remove(&token_of(&effect)) {
            // The requester may have gone away (connection closed).
            let _ = tx.send(effect);
        }
    }
}

/// The topics KIP-848 assignors may hand out: every non-internal topic.
fn topic_image(image: &odradek_metadata::MetadataImage) -> odradek_group::consumer::TopicImage {
    image
        .topics()
        .filter(|t| !crate::broker::is_internal_topic(&t.name))
        .map(|t| {
            (
                t.name.to_string(),
                odradek_group::consumer::TopicInfo {
                    topic_id: t.topic_id,
                    partitions: t.partitions.len() as i32,
                },
            )
        })
        .collect()
}
