//! CreateTopics (key 19): validated by the controller, optionally only
//! validated (`validate_only`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, message, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::controller::NewTopic;
use crate::topic_config;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: CreateTopicsRequest = decode(req)?;
    let results = request
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            // Kafka refuses a name listed twice in one request, for both.
            if request.topics.iter().filter(|o| o.name == t.name).count() > 1 {
                return result
                    .with_error_code(kafka_protocol::error::ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "topic listed more than once in the request",
                    )));
            }
            let spec = NewTopic {
                name,
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect::<BTreeMap<_, _>>(),
                configs: t
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect(),
            };
            match broker.create_topic(&spec, request.validate_only) {
                Ok(topic) => {
                    let rf = topic
                        .partitions
                        .values()
                        .next()
                        .map_or(0, |p| p.replicas.len());
                    result
                        .with_topic_id(topic.topic_id)
                        .with_num_partitions(topic.partitions.len() as i32)
                        .with_replication_factor(rf as i16)
                        .with_configs(Some(describe_configs(broker, &topic.configs)))
                }
                Err(e) => result
                    .with_error_code(e.code())
                    .with_error_message(message(&e))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    ready(req, &CreateTopicsResponse::default().with_topics(results))
}

/// The topic's effective configs with their sources (CreateTopics v5+).
fn describe_configs(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    topic_config::describe(overrides, &broker.config.topic_defaults)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(Some(StrBytes::from_string(e.value)))
                .with_config_source(e.source)
        })
        .collect()
}
