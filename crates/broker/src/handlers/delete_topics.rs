//! DeleteTopics (key 20): by name (v0–v5 `topic_names`, v6 `topics`) or by
//! topic id (v6).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use odradek_protocol::frame::RawRequest;
use uuid::Uuid;

use super::{decode, message, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: DeleteTopicsRequest = decode(req)?;
    let targets: Vec<(Option<TopicName>, Uuid)> = if req.version() >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.clone()), Uuid::nil()))
            .collect()
    };
    let mut results = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        results.push({
            let image = broker.image();
            let topic = match &name {
                Some(n) => image.topic(n.0.as_str()),
                None => image.topic_by_id(&id),
            };
            let result = DeletableTopicResult::default()
                .with_name(name.clone())
                .with_topic_id(id);
            let outcome = match topic {
                None if name.is_some() => {
                    Err(ApiError::bare(ResponseError::UnknownTopicOrPartition))
                }
                None => Err(ApiError::bare(ResponseError::UnknownTopicId)),
                Some(t) => {
                    let (topic_name, topic_id) = (t.name.clone(), t.topic_id);
                    broker
                        .delete_topic(topic_id)
                        .await
                        .map(|()| (topic_name, topic_id))
                }
            };
            match outcome {
                Ok((topic_name, topic_id)) => {
                    tracing::info!(topic = %topic_name, "deleted topic");
                    result
                        .with_name(Some(TopicName(
                            kafka_protocol::protocol::StrBytes::from_string(topic_name.to_string()),
                        )))
                        .with_topic_id(topic_id)
                }
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(message(&e)),
            }
        });
    }
    ready(
        req,
        &DeleteTopicsResponse::default().with_responses(results),
    )
}
