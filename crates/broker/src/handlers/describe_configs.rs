//! DescribeConfigs (key 32): topic configs (with their sources) and this
//! broker's configs.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::topic_config::{self, ConfigEntry, SOURCE_DEFAULT, SOURCE_STATIC_BROKER};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// ConfigType STRING, used for broker settings.
const TYPE_STRING: i8 = 2;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: DescribeConfigsRequest = decode(req)?;
    let version = req.version();
    let results = request
        .resources
        .iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let wanted = |name: &str| {
                r.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match broker.image().topic(r.resource_name.as_str()) {
                    Some(topic) => {
                        topic_config::describe(&topic.configs, &broker.config.topic_defaults)
                    }
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "topic '{}' does not exist",
                                r.resource_name.as_str()
                            ))))
                    }
                },
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "broker {name} is not this broker ({})",
                                broker.config.node_id
                            ))));
                    }
                    broker_entries(broker)
                }
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "resource type {other} is not supported"
                        ))))
                }
            };
            let configs = entries
                .into_iter()
                .filter(|e| wanted(e.name))
                .map(|e| {
                    let synonyms = if request.include_synonyms {
                        vec![DescribeConfigsSynonym::default()
                            .with_name(StrBytes::from_static_str(e.name))
                            .with_value(Some(StrBytes::from_string(e.value.clone())))
                            .with_source(e.source)]
                    } else {
                        Vec::new()
                    };
                    let config_type = if r.resource_type == RESOURCE_TOPIC {
                        topic_config::config_type(e.name)
                    } else {
                        TYPE_STRING
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(e.name))
                        .with_value(Some(StrBytes::from_string(e.value)))
                        // Nothing is dynamically alterable yet.
                        .with_read_only(r.resource_type == RESOURCE_BROKER)
                        .with_config_source(e.source)
                        .with_synonyms(synonyms)
                        .with_config_type(if version >= 3 { config_type } else { 0 })
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    ready(
        req,
        &DescribeConfigsResponse::default().with_results(results),
    )
}

fn broker_entries(broker: &Broker) -> Vec<ConfigEntry> {
    broker
        .config
        .described
        .iter()
        .map(|(name, value, explicit)| ConfigEntry {
            name,
            value: value.clone(),
            source: if *explicit {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            },
        })
        .collect()
}
