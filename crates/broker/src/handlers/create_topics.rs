//! CreateTopics (key 19): validated by the controller, optionally only
//! validated (`validate_only`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::topic_config;

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let mut request: CreateTopicsRequest = decode(req)?;
    // Kafka refuses a name listed twice in one request, for both entries;
    // those never reach the controller.
    let duplicated = |name: &TopicName, all: &[CreatableTopic]| {
        all.iter().filter(|o| &o.name == name).count() > 1
    };
    let all = request.topics.clone();
    request.topics.retain(|t| !duplicated(&t.name, &all));
    let mut response = broker.create_topics(&request).await;
    let image = broker.image();
    for result in response.topics.iter_mut().filter(|t| t.error_code == 0) {
        if let Some(topic) = image.topic_by_id(&result.topic_id) {
            result.configs = Some(describe_configs(broker, &topic.configs));
        }
    }
    let mut results = Vec::with_capacity(all.len());
    for t in &all {
        if duplicated(&t.name, &all) {
            results.push(
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(kafka_protocol::error::ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "topic listed more than once in the request",
                    ))),
            );
        } else if let Some(pos) = response.topics.iter().position(|r| r.name == t.name) {
            results.push(response.topics.swap_remove(pos));
        }
    }
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
