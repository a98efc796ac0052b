//! Metadata (key 3): brokers, controller, topics and partitions; creates
//! requested topics when auto-creation is enabled.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use odradek_metadata::{MetadataImage, TopicImage, NO_LEADER};
use odradek_protocol::frame::RawRequest;
use uuid::Uuid;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::controller::NewTopic;

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: MetadataRequest = decode(req)?;
    let version = req.version();
    // v0: an empty list means all topics; v1+: null means all, empty none.
    let wanted = match &request.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t.as_slice()),
    };
    // v4 added the flag; older clients always auto-create.
    let allow_auto_create = version < 4 || request.allow_auto_topic_creation;
    let topics = match wanted {
        None => {
            let image = broker.image();
            let mut all: Vec<_> = image.topics().cloned().collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            all.iter().map(|t| topic_entry(&image, t)).collect()
        }
        Some(requested) => {
            let mut topics = Vec::with_capacity(requested.len());
            for t in requested {
                topics.push(
                    lookup_topic(
                        broker,
                        t.name.as_ref().map(|n| n.0.as_str()),
                        t.topic_id,
                        allow_auto_create,
                    )
                    .await,
                );
            }
            topics
        }
    };
    let image = broker.image();
    let brokers = crate::cluster_view::live_brokers(&image)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.broker_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id())))
        .with_controller_id(BrokerId(crate::cluster_view::controller_id(broker, &image)))
        .with_topics(topics);
    ready(req, &response)
}

async fn lookup_topic(
    broker: &Broker,
    name: Option<&str>,
    topic_id: Uuid,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    let image = broker.image();
    let found = match name {
        Some(name) => image.topic(name).cloned(),
        None => image.topic_by_id(&topic_id).cloned(),
    };
    if let Some(topic) = found {
        return topic_entry(&image, &topic);
    }
    let Some(name) = name else {
        return MetadataResponseTopic::default()
            .with_topic_id(topic_id)
            .with_error_code(ResponseError::UnknownTopicId.code());
    };
    let error_entry = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
            .with_error_code(code.code())
    };
    if let Err(e) = crate::controller::validate_topic_name(name) {
        return error_entry(e.code);
    }
    if !(allow_auto_create && broker.config.auto_create_topics_enable) {
        return error_entry(ResponseError::UnknownTopicOrPartition);
    }
    if crate::broker::is_internal_topic(name) {
        // Kafka creates internal topics with their own settings on demand.
        return match broker.groups.ensure_topic(broker).await {
            Ok(()) => {
                let image = broker.image();
                image.topic(name).map_or_else(
                    || error_entry(ResponseError::LeaderNotAvailable),
                    |t| topic_entry(&image, t),
                )
            }
            Err(e) => error_entry(e.code),
        };
    }
    let spec = NewTopic {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        ..Default::default()
    };
    match broker.create_topic(&spec).await {
        Ok(topic) => {
            tracing::info!(topic = name, "auto-created topic");
            topic_entry(&broker.image(), &topic)
        }
        // Another request created it between our lookup and our create.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {
            let image = broker.image();
            match image.topic(name) {
                Some(t) => topic_entry(&image, t),
                None => error_entry(ResponseError::LeaderNotAvailable),
            }
        }
        Err(e) => error_entry(e.code),
    }
}

fn topic_entry(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(index, p)| {
            // Kafka reports a leaderless partition as LEADER_NOT_AVAILABLE
            // (retriable: clients refresh and retry).
            let error = if p.leader == NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(*index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(
                    crate::cluster_view::offline_replicas(image, p)
                        .map(BrokerId)
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name.to_string(),
        ))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
}
