//! The active controller: what the Raft leader of the controller quorum
//! does with the requests brokers send it. Each request is planned as a
//! pure function of the image (`odradek_controller`, `topics`) and the
//! resulting records are proposed as one entry.
//!
//! Writes are serialised by `write_lock`: a plan reads the image that the
//! previous proposal left, so two requests never plan against the same
//! state (this is the KRaft controller's single event thread).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use odradek_controller::BrokerLiveness;
use odradek_metadata::{MetadataImage, MetadataRecord};
use odradek_raft::{MetadataQuorum, ProposeError, TcpTransport};
use parking_lot::Mutex;

use super::rpc;
use super::topics::{plan_topic_creation, NewTopic, TopicDefaults};
use crate::clock::Clock;
use crate::errors::ApiError;

pub type Quorum = MetadataQuorum<TcpTransport>;

pub struct ActiveController {
    defaults: TopicDefaults,
    /// This node's `meta.properties` cluster id: the first active
    /// controller records it, and every node then reports that one.
    local_cluster_id: String,
    clock: Arc<dyn Clock>,
    quorum: OnceLock<Weak<Quorum>>,
    write_lock: tokio::sync::Mutex<()>,
    liveness: Mutex<BrokerLiveness>,
    /// The Raft term in which liveness was last reset: a new leader does
    /// not know when brokers last heartbeated and gives each a full session.
    liveness_term: AtomicU64,
    /// What this controller saw since it was elected (see `silent_voters`).
    election: Mutex<Option<Election>>,
}

/// The start of this controller's term, to spot a dead voter-broker early.
struct Election {
    since_ms: i64,
    /// The first log index of the term: every live voter acknowledges it
    /// within a Raft heartbeat or two.
    first_index: u64,
    heard: HashSet<i32>,
}

/// A new controller gives every broker a full session before fencing it,
/// which would put a whole session timeout on top of the election when the
/// old controller's node died. A broker that is also a voter, has not
/// acknowledged a single entry of the new term and has not heartbeated
/// this long after the election is as good as dead, and is fenced now.
const SILENT_VOTER_GRACE_MS: i64 = 500;

/// The voter-brokers to fence early (see [`SILENT_VOTER_GRACE_MS`]):
/// unfenced, silent since the election, and behind the term's first entry
/// in Raft replication.
fn silent_voters(
    image: &MetadataImage,
    election: &Election,
    replication: &BTreeMap<u64, Option<u64>>,
    now_ms: i64,
) -> Vec<i32> {
    if now_ms - election.since_ms < SILENT_VOTER_GRACE_MS {
        return Vec::new();
    }
    image
        .brokers()
        .filter(|b| !b.fenced && !election.heard.contains(&b.broker_id))
        .filter(|b| {
            replication
                .get(&(b.broker_id as u64))
                .is_some_and(|matched| matched.is_none_or(|i| i < election.first_index))
        })
        .map(|b| b.broker_id)
        .collect()
}

impl ActiveController {
    pub fn new(
        defaults: TopicDefaults,
        local_cluster_id: String,
        session_timeout_ms: u64,
        clock: Arc<dyn Clock>,
    ) -> ActiveController {
        ActiveController {
            defaults,
            local_cluster_id,
            clock,
            quorum: OnceLock::new(),
            write_lock: tokio::sync::Mutex::new(()),
            liveness: Mutex::new(BrokerLiveness::new(session_timeout_ms as i64)),
            liveness_term: AtomicU64::new(0),
            election: Mutex::new(None),
        }
    }

    /// Connects the controller to the quorum it proposes to (the quorum
    /// holds this controller as its forwarding handler, hence the `Weak`).
    pub fn attach(&self, quorum: &Arc<Quorum>) {
        let _ = self.quorum.set(Arc::downgrade(quorum));
    }

    fn quorum(&self) -> Result<Arc<Quorum>, ApiError> {
        self.quorum
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| ApiError::new(ResponseError::NotController, "controller is stopping"))
    }

    fn image(&self) -> Result<Arc<MetadataImage>, ApiError> {
        Ok(self.quorum()?.image().borrow().clone())
    }

    /// Proposes `records` as one entry and returns its log index (the
    /// current applied index when there is nothing to write).
    async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ApiError> {
        let quorum = self.quorum()?;
        if records.is_empty() {
            return Ok(quorum
                .metrics()
                .borrow()
                .last_applied
                .map_or(0, |l| l.index));
        }
        // The cluster id rides on the first change ever made (a broker's
        // registration), so no broker is unfenced, and none serves
        // clients, before every node reports the same id.
        let mut records = records;
        if quorum.image().borrow().cluster_id().is_none() {
            records.insert(
                0,
                MetadataRecord::ClusterId {
                    cluster_id: self.local_cluster_id.clone(),
                },
            );
        }
        match quorum.propose(records).await {
            Ok(c) => Ok(c.index),
            Err(ProposeError::NotLeader { .. }) => Err(ApiError::new(
                ResponseError::NotController,
                "this node stopped being the active controller",
            )),
            Err(e @ (ProposeError::Stopped(_) | ProposeError::Membership(_))) => Err(
                ApiError::new(ResponseError::UnknownServerError, e.to_string()),
            ),
        }
    }

    /// Serves one forwarded request; the answer is the encoded response.
    pub async fn handle(&self, payload: Vec<u8>) -> Vec<u8> {
        let (key, version, body) = match rpc::split_request(payload) {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(error = ?e, "malformed controller request");
                return Vec::new();
            }
        };
        macro_rules! serve {
            ($req:ty, $method:ident) => {{
                match rpc::decode_body::<$req>(body, version) {
                    Ok(req) => rpc::encode_response(&self.$method(req).await, version),
                    Err(e) => {
                        tracing::warn!(error = ?e, "undecodable controller request");
                        Vec::new()
                    }
                }
            }};
        }
        match key {
            ApiKey::BrokerRegistration => serve!(BrokerRegistrationRequest, register),
            ApiKey::BrokerHeartbeat => serve!(BrokerHeartbeatRequest, heartbeat),
            ApiKey::AlterPartition => serve!(AlterPartitionRequest, alter_partition),
            ApiKey::CreateTopics => serve!(CreateTopicsRequest, create_topics),
            ApiKey::DeleteTopics => serve!(DeleteTopicsRequest, delete_topics),
            ApiKey::AllocateProducerIds => {
                serve!(AllocateProducerIdsRequest, allocate_producer_ids)
            }
            ApiKey::ElectLeaders => serve!(ElectLeadersRequest, elect_leaders),
            ApiKey::AlterPartitionReassignments => {
                serve!(AlterPartitionReassignmentsRequest, alter_reassignments)
            }
            other => {
                tracing::warn!(api = ?other, "controller request of an unserved API");
                Vec::new()
            }
        }
    }

    async fn register(&self, req: BrokerRegistrationRequest) -> BrokerRegistrationResponse {
        let _w = self.write_lock.lock().await;
        let now = self.clock.now_ms();
        let id = req.broker_id.0;
        let result = async {
            let image = self.image()?;
            let listener = req
                .listeners
                .iter()
                .find(|l| l.name.as_str() != super::METADATA_LISTENER)
                .ok_or_else(|| {
                    ApiError::new(ResponseError::InvalidRequest, "registration without a listener")
                })?;
            let same = image
                .broker(id)
                .is_some_and(|b| b.incarnation_id == req.incarnation_id);
            let records = if same {
                Vec::new()
            } else {
                let alive = self.liveness.lock().is_alive(id, now);
                odradek_controller::plan_register_broker(
                    &image,
                    id,
                    req.incarnation_id,
                    listener.host.as_str(),
                    listener.port as i32,
                    req.rack.as_ref().map(|r| r.to_string()),
                    alive,
                )?
            };
            let index = self.propose(records).await?;
            self.liveness.lock().heartbeat(id, now);
            // A broker-only node receives the metadata log as a learner.
            if let Some(m) = req
                .listeners
                .iter()
                .find(|l| l.name.as_str() == super::METADATA_LISTENER)
            {
                let addr = format!("{}:{}", m.host, m.port);
                self.quorum()?
                    .add_learner(id as u64, addr)
                    .await
                    .map_err(|e| ApiError::new(ResponseError::NotController, e.to_string()))?;
            }
            tracing::info!(broker = id, host = %listener.host, port = listener.port, "broker registered");
            Ok::<_, ApiError>(index as i64)
        }
        .await;
        match result {
            Ok(epoch) => BrokerRegistrationResponse::default().with_broker_epoch(epoch),
            Err(e) => BrokerRegistrationResponse::default()
                .with_error_code(e.code())
                .with_broker_epoch(-1),
        }
    }

    async fn heartbeat(&self, req: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
        let id = req.broker_id.0;
        let now = self.clock.now_ms();
        let respond =
            |code: ResponseError| BrokerHeartbeatResponse::default().with_error_code(code.code());
        let image = match self.image() {
            Ok(i) => i,
            Err(e) => return respond(e.code),
        };
        let Some(registered) = image.broker(id).cloned() else {
            return respond(ResponseError::BrokerIdNotRegistered);
        };
        self.liveness.lock().heartbeat(id, now);
        if let Some(e) = self.election.lock().as_mut() {
            e.heard.insert(id);
        }
        let wants_unfence = registered.fenced
            && !req.want_fence
            && !req.want_shut_down
            // Caught up with its own registration: it can serve metadata.
            && req.current_metadata_offset >= req.broker_epoch;
        let needs_shutdown = req.want_shut_down && !registered.in_controlled_shutdown;
        if wants_unfence || needs_shutdown {
            let _w = self.write_lock.lock().await;
            let image = match self.image() {
                Ok(i) => i,
                Err(e) => return respond(e.code),
            };
            let records = if needs_shutdown {
                tracing::info!(broker = id, "controlled shutdown: moving leaderships away");
                odradek_controller::plan_controlled_shutdown(&image, id)
            } else {
                tracing::info!(broker = id, "unfencing broker");
                odradek_controller::plan_unfence_broker(&image, id)
            };
            if let Err(e) = self.propose(records).await {
                return respond(e.code);
            }
        }
        let image = match self.image() {
            Ok(i) => i,
            Err(e) => return respond(e.code),
        };
        let fenced = image.broker(id).is_none_or(|b| b.fenced);
        BrokerHeartbeatResponse::default()
            .with_is_caught_up(true)
            .with_is_fenced(fenced)
            .with_should_shut_down(req.want_shut_down && !leads_any(&image, id))
    }

    async fn alter_partition(&self, req: AlterPartitionRequest) -> AlterPartitionResponse {
        let _w = self.write_lock.lock().await;
        let mut image = match self.image() {
            Ok(i) => (*i).clone(),
            Err(e) => return AlterPartitionResponse::default().with_error_code(e.code()),
        };
        let mut records = Vec::new();
        let mut topics = Vec::new();
        for t in &req.topics {
            let mut partitions = Vec::new();
            for p in &t.partitions {
                let new_isr: Vec<i32> = if p.new_isr_with_epochs.is_empty() {
                    p.new_isr.iter().map(|b| b.0).collect()
                } else {
                    p.new_isr_with_epochs
                        .iter()
                        .map(|b| b.broker_id.0)
                        .collect()
                };
                let out = alter_partition_response::PartitionData::default()
                    .with_partition_index(p.partition_index);
                match odradek_controller::plan_alter_partition(
                    &image,
                    req.broker_id.0,
                    t.topic_id,
                    p.partition_index,
                    p.leader_epoch,
                    p.partition_epoch,
                    &new_isr,
                ) {
                    Ok((planned, state)) => {
                        planned.iter().for_each(|r| image.apply(r));
                        records.extend(planned);
                        partitions.push(
                            out.with_leader_id(BrokerId(state.leader))
                                .with_leader_epoch(state.leader_epoch)
                                .with_isr(state.isr.iter().map(|&b| BrokerId(b)).collect())
                                .with_partition_epoch(state.partition_epoch),
                        );
                    }
                    Err(e) => partitions.push(out.with_error_code(e.code.code())),
                }
            }
            topics.push(
                alter_partition_response::TopicData::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions),
            );
        }
        match self.propose(records).await {
            Ok(_) => AlterPartitionResponse::default().with_topics(topics),
            Err(e) => AlterPartitionResponse::default().with_error_code(e.code()),
        }
    }

    async fn create_topics(&self, req: CreateTopicsRequest) -> CreateTopicsResponse {
        use create_topics_response::CreatableTopicResult;
        let _w = self.write_lock.lock().await;
        let mut image = match self.image() {
            Ok(i) => (*i).clone(),
            Err(e) => return topics_error(&req, e),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for t in &req.topics {
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let spec = NewTopic::from_request(t);
            match plan_topic_creation(&spec, &image, &self.defaults) {
                Ok(planned) => {
                    planned.iter().for_each(|r| image.apply(r));
                    let topic = image
                        .topic(&spec.name)
                        .expect("planned records create the topic");
                    let rf = topic
                        .partitions
                        .values()
                        .next()
                        .map_or(0, |p| p.replicas.len());
                    results.push(
                        result
                            .with_topic_id(topic.topic_id)
                            .with_num_partitions(topic.partitions.len() as i32)
                            .with_replication_factor(rf as i16),
                    );
                    records.extend(planned);
                }
                Err(e) => results.push(
                    result
                        .with_error_code(e.code())
                        .with_error_message(e.message.map(StrBytes::from_string))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                ),
            }
        }
        if !req.validate_only {
            if let Err(e) = self.propose(records).await {
                return topics_error(&req, e);
            }
        }
        CreateTopicsResponse::default().with_topics(results)
    }

    async fn delete_topics(&self, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
        use delete_topics_response::DeletableTopicResult;
        let _w = self.write_lock.lock().await;
        let image = match self.image() {
            Ok(i) => i,
            Err(e) => {
                return DeleteTopicsResponse::default().with_responses(
                    req.topics
                        .iter()
                        .map(|t| {
                            DeletableTopicResult::default()
                                .with_name(t.name.clone())
                                .with_topic_id(t.topic_id)
                                .with_error_code(e.code())
                        })
                        .collect(),
                )
            }
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for t in &req.topics {
            let found = match &t.name {
                Some(n) => image.topic(n.0.as_str()),
                None => image.topic_by_id(&t.topic_id),
            };
            let result = DeletableTopicResult::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id);
            results.push(match found {
                Some(topic) => {
                    records.push(MetadataRecord::RemoveTopic {
                        topic_id: topic.topic_id,
                    });
                    result
                        .with_name(Some(TopicName(StrBytes::from_string(
                            topic.name.to_string(),
                        ))))
                        .with_topic_id(topic.topic_id)
                }
                None if t.name.is_some() => {
                    result.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                }
                None => result.with_error_code(ResponseError::UnknownTopicId.code()),
            });
        }
        if let Err(e) = self.propose(records).await {
            results
                .iter_mut()
                .filter(|r| r.error_code == 0)
                .for_each(|r| r.error_code = e.code());
        }
        DeleteTopicsResponse::default().with_responses(results)
    }

    async fn allocate_producer_ids(
        &self,
        _req: AllocateProducerIdsRequest,
    ) -> AllocateProducerIdsResponse {
        /// Kafka's block size for AllocateProducerIds.
        const BLOCK: i64 = 1000;
        let _w = self.write_lock.lock().await;
        let result = async {
            let start = self.image()?.next_producer_id();
            self.propose(vec![MetadataRecord::ProducerIds {
                next_producer_id: start + BLOCK,
            }])
            .await?;
            Ok::<_, ApiError>(start)
        }
        .await;
        match result {
            Ok(start) => AllocateProducerIdsResponse::default()
                .with_producer_id_start(ProducerId(start))
                .with_producer_id_len(BLOCK as i32),
            Err(e) => AllocateProducerIdsResponse::default().with_error_code(e.code()),
        }
    }

    async fn elect_leaders(&self, req: ElectLeadersRequest) -> ElectLeadersResponse {
        use elect_leaders_response::{PartitionResult, ReplicaElectionResult};
        let _w = self.write_lock.lock().await;
        let mut image = match self.image() {
            Ok(i) => (*i).clone(),
            Err(e) => return ElectLeadersResponse::default().with_error_code(e.code()),
        };
        let preferred = req.election_type == 0;
        // No list means every partition of every topic.
        let wanted: Vec<(TopicName, Vec<i32>)> = match &req.topic_partitions {
            Some(list) => list
                .iter()
                .map(|t| (t.topic.clone(), t.partitions.clone()))
                .collect(),
            None => image
                .topics()
                .map(|t| {
                    (
                        TopicName(StrBytes::from_string(t.name.to_string())),
                        t.partitions.keys().copied().collect(),
                    )
                })
                .collect(),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, partitions) in wanted {
            let mut partition_result = Vec::new();
            for p in partitions {
                let r = PartitionResult::default().with_partition_id(p);
                partition_result.push(
                    match plan_partition(&mut image, &mut records, topic.0.as_str(), |img, id| {
                        odradek_controller::plan_elect_leader(img, id, p, preferred)
                    }) {
                        Ok(()) => r,
                        Err(e) => r
                            .with_error_code(e.code())
                            .with_error_message(e.message.map(StrBytes::from_string)),
                    },
                );
            }
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(topic)
                    .with_partition_result(partition_result),
            );
        }
        match self.propose(records).await {
            Ok(_) => ElectLeadersResponse::default().with_replica_election_results(results),
            Err(e) => ElectLeadersResponse::default().with_error_code(e.code()),
        }
    }

    async fn alter_reassignments(
        &self,
        req: AlterPartitionReassignmentsRequest,
    ) -> AlterPartitionReassignmentsResponse {
        use alter_partition_reassignments_response::{
            ReassignablePartitionResponse, ReassignableTopicResponse,
        };
        let _w = self.write_lock.lock().await;
        let mut image = match self.image() {
            Ok(i) => (*i).clone(),
            Err(e) => {
                return AlterPartitionReassignmentsResponse::default().with_error_code(e.code())
            }
        };
        let mut records = Vec::new();
        let mut responses = Vec::new();
        for t in &req.topics {
            let mut partitions = Vec::new();
            for p in &t.partitions {
                let target: Option<Vec<i32>> =
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                let r = ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index);
                partitions.push(
                    match plan_partition(&mut image, &mut records, t.name.0.as_str(), |img, id| {
                        odradek_controller::plan_reassignment(img, id, p.partition_index, target)
                    }) {
                        Ok(()) => r,
                        Err(e) => r
                            .with_error_code(e.code())
                            .with_error_message(e.message.map(StrBytes::from_string)),
                    },
                );
            }
            responses.push(
                ReassignableTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        match self.propose(records).await {
            Ok(_) => AlterPartitionReassignmentsResponse::default().with_responses(responses),
            Err(e) => AlterPartitionReassignmentsResponse::default().with_error_code(e.code()),
        }
    }

    /// Fences brokers whose session expired, while this node leads the
    /// quorum. Runs until `shutdown`.
    pub async fn run_liveness(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let Ok(quorum) = self.quorum() else { return };
            if !quorum.is_leader() {
                continue;
            }
            let term = quorum.metrics().borrow().current_term;
            let now = self.clock.now_ms();
            let Ok(image) = self.image() else { continue };
            if self.liveness_term.swap(term, Ordering::AcqRel) != term {
                self.liveness
                    .lock()
                    .reset(image.brokers().map(|b| b.broker_id), now);
                let first_index = quorum.metrics().borrow().last_log_index.unwrap_or(0);
                *self.election.lock() = Some(Election {
                    since_ms: now,
                    first_index,
                    heard: HashSet::new(),
                });
                continue;
            }
            let mut expired = self.liveness.lock().expired(&image, now);
            let early = {
                let mut election = self.election.lock();
                let replication: BTreeMap<u64, Option<u64>> = quorum
                    .metrics()
                    .borrow()
                    .replication
                    .as_ref()
                    .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
                    .unwrap_or_default();
                let early = election
                    .as_ref()
                    .map(|e| silent_voters(&image, e, &replication, now))
                    .unwrap_or_default();
                // One early check per term; then sessions decide.
                if election
                    .as_ref()
                    .is_some_and(|e| now - e.since_ms >= SILENT_VOTER_GRACE_MS)
                {
                    *election = None;
                }
                early
            };
            let early: Vec<i32> = early.into_iter().filter(|b| !expired.contains(b)).collect();
            for &b in &early {
                tracing::warn!(broker = b, "voter silent since this controller's election");
            }
            expired.extend(early.iter().copied());
            for broker in expired {
                let _w = self.write_lock.lock().await;
                // A registration or heartbeat may have come in while this
                // waited for the lock: the session is checked again under it.
                let alive = self.liveness.lock().is_alive(broker, self.clock.now_ms());
                if alive && !early.contains(&broker) {
                    continue;
                }
                let Ok(image) = self.image() else { break };
                tracing::warn!(
                    broker,
                    "broker session expired; fencing it and moving its leaderships"
                );
                let records = odradek_controller::plan_fence_broker(&image, broker);
                if let Err(e) = self.propose(records).await {
                    tracing::warn!(broker, error = ?e, "fencing failed");
                }
            }
        }
    }
}

/// Plans one partition of a topic named in a request against the working
/// `image`, applying the plan to it at once so the next plan of the same
/// request sees it, and collecting its records for one proposal.
fn plan_partition(
    image: &mut MetadataImage,
    records: &mut Vec<MetadataRecord>,
    topic: &str,
    plan: impl FnOnce(
        &MetadataImage,
        uuid::Uuid,
    ) -> Result<Vec<MetadataRecord>, odradek_controller::PlanError>,
) -> Result<(), ApiError> {
    let id = image
        .topic(topic)
        .map(|t| t.topic_id)
        .ok_or_else(|| ApiError::bare(ResponseError::UnknownTopicOrPartition))?;
    let planned = plan(image, id)?;
    planned.iter().for_each(|r| image.apply(r));
    records.extend(planned);
    Ok(())
}

/// Whether `broker` still leads a partition.
fn leads_any(image: &MetadataImage, broker: i32) -> bool {
    image
        .topics()
        .any(|t| t.partitions.values().any(|p| p.leader == broker))
}

/// Every topic of a CreateTopics request failed the same way.
pub fn topics_error(req: &CreateTopicsRequest, e: ApiError) -> CreateTopicsResponse {
    CreateTopicsResponse::default().with_topics(
        req.topics
            .iter()
            .map(|t| {
                create_topics_response::CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(e.code())
                    .with_error_message(e.message.clone().map(StrBytes::from_string))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn three_unfenced() -> MetadataImage {
        let mut records = Vec::new();
        for id in 1..=3 {
            records.push(MetadataRecord::RegisterBroker {
                broker_id: id,
                incarnation_id: Uuid::new_v4(),
                host: "h".into(),
                port: id,
                rack: None,
            });
            records.push(MetadataRecord::BrokerState {
                broker_id: id,
                fenced: false,
                in_controlled_shutdown: false,
            });
        }
        MetadataImage::from_records(&records)
    }

    #[test]
    fn only_a_voter_silent_in_both_ways_after_the_grace_is_fenced_early() {
        let image = three_unfenced();
        let election = Election {
            since_ms: 1_000,
            first_index: 50,
            heard: HashSet::from([3]),
        };
        // 1 leads (this controller), 2 never acked the term, 3 heartbeated
        // but lags in Raft.
        let replication = BTreeMap::from([(1, Some(50)), (2, Some(40)), (3, Some(10))]);
        assert!(silent_voters(&image, &election, &replication, 1_400).is_empty());
        assert_eq!(
            silent_voters(&image, &election, &replication, 1_500),
            vec![2]
        );
        let caught_up = BTreeMap::from([(1, Some(50)), (2, Some(50)), (3, Some(10))]);
        assert!(silent_voters(&image, &election, &caught_up, 1_500).is_empty());
        // A broker that is not a voter is left to its session.
        let no_voter = BTreeMap::from([(1, Some(50))]);
        assert!(silent_voters(&image, &election, &no_voter, 1_500).is_empty());
    }
}
