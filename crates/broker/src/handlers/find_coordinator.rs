//! FindCoordinator (key 10): a group's coordinator is the leader of its
//! `__consumer_offsets` partition. Creates the offsets topic on first use,
//! as Kafka does.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, message, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::groups::OFFSETS_TOPIC;
use odradek_metadata::BrokerImage;

const KEY_TYPE_GROUP: i8 = 0;

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: FindCoordinatorRequest = decode(req)?;
    let keys: Vec<StrBytes> = if req.version() >= 4 {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let mut answers: Vec<Coordinator> = Vec::with_capacity(keys.len());
    for key in keys {
        let entry = Coordinator::default().with_key(key.clone());
        answers.push(match locate(broker, request.key_type, &key).await {
            Ok(b) => entry
                .with_node_id(BrokerId(b.broker_id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(b.port),
            Err(e) => entry
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(e.code())
                .with_error_message(message(&e)),
        });
    }
    let response = if req.version() >= 4 {
        FindCoordinatorResponse::default().with_coordinators(answers)
    } else {
        let c = answers.into_iter().next().unwrap_or_default();
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(if req.version() >= 1 {
                c.error_message
            } else {
                None
            })
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    };
    ready(req, &response)
}

/// The broker leading the group's `__consumer_offsets` partition.
async fn locate(broker: &Broker, key_type: i8, key: &StrBytes) -> Result<BrokerImage, ApiError> {
    if key_type != KEY_TYPE_GROUP {
        return Err(ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            "transaction coordinators are not available yet",
        ));
    }
    if key.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "group id is empty",
        ));
    }
    broker.groups.ensure_topic(broker).await?;
    let image = broker.image();
    let unavailable = || {
        ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            "the group's offsets partition has no live leader",
        )
    };
    let topic = image.topic(OFFSETS_TOPIC).ok_or_else(unavailable)?;
    let index = odradek_group::partition_for_group(key.as_str(), topic.partitions.len() as i32);
    let leader = topic
        .partitions
        .get(&index)
        .map(|p| p.leader)
        .ok_or_else(unavailable)?;
    image
        .broker(leader)
        .filter(|b| !b.fenced)
        .cloned()
        .ok_or_else(unavailable)
}
