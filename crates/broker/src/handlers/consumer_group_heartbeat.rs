//! ConsumerGroupHeartbeat (key 68): the KIP-848 protocol. Joining,
//! leaving, and reconciling the server-computed assignment all go
//! through heartbeats; nothing is parked.

use std::sync::Arc;

use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
use odradek_group::wire;
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest, peer: &str) -> Result<Reply, RequestError> {
    let request: ConsumerGroupHeartbeatRequest = decode(req)?;
    let heartbeat =
        wire::consumer_heartbeat_request(&request, req.version(), req.client_id(), peer);
    let group_id = heartbeat.group_id.clone();
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let result = broker
            .groups
            .call(&broker, &group_id, |call, now| {
                call.core.consumer_group_heartbeat(now, heartbeat)
            })
            .await
            .and_then(|r| r);
        respond(&req, &wire::consumer_heartbeat_response(&result)).unwrap_or_default()
    })))
}
