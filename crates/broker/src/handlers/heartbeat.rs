//! Heartbeat (key 12).

use std::sync::Arc;

use kafka_protocol::messages::HeartbeatRequest;
use odradek_group::wire;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: HeartbeatRequest = decode(req)?;
    let heartbeat = wire::heartbeat_request(&request);
    let now = broker.now_ms();
    let result = broker
        .groups
        .with_core_mut(&heartbeat.group_id, |core| core.heartbeat(now, &heartbeat))
        .and_then(|r| r);
    ready(req, &wire::heartbeat_response(result))
}
