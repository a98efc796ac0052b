//! FindCoordinator (key 10): every group's coordinator is this broker (a
//! single node leads every `__consumer_offsets` partition). Creates the
//! offsets topic on first use, as Kafka does.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, message, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;

const KEY_TYPE_GROUP: i8 = 0;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: FindCoordinatorRequest = decode(req)?;
    let keys: Vec<StrBytes> = if req.version() >= 4 {
        request.coordinator_keys.clone()
    } else {
        vec![request.key.clone()]
    };
    let listener = &broker.config.advertised_listeners[0];
    let answers: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| {
            let entry = Coordinator::default().with_key(key.clone());
            match locate(broker, request.key_type, &key) {
                Ok(()) => entry
                    .with_node_id(BrokerId(broker.config.node_id))
                    .with_host(StrBytes::from_string(listener.host.clone()))
                    .with_port(listener.port as i32),
                Err(e) => entry
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(e.code())
                    .with_error_message(message(&e)),
            }
        })
        .collect();
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

fn locate(broker: &Broker, key_type: i8, key: &StrBytes) -> Result<(), ApiError> {
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
    broker.groups.ensure_loaded(broker)
}
