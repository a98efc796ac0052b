//! OffsetDelete (key 47): drop committed offsets of partitions the group no
//! longer consumes.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use odradek_group::error_code;
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: OffsetDeleteRequest = decode(req)?;
    let group = request.group_id.0.to_string();
    let topics: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let outcome = broker
            .groups
            .call(&broker, &group, |call, _now| {
                call.core.delete_offsets(&group, &topics)
            })
            .await
            .and_then(|r| r);
        let response = match outcome {
            Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
            Ok(results) => OffsetDeleteResponse::default().with_topics(
                results
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition)
                                            .with_error_code(error_code(p.error))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        };
        respond(&req, &response).unwrap_or_default()
    })))
}
