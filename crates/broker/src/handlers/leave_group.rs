//! LeaveGroup (key 13): one member (v0–v2) or a batch (v3+).

use std::sync::Arc;

use kafka_protocol::messages::LeaveGroupRequest;
use odradek_group::{wire, LeaveResponse};
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: LeaveGroupRequest = decode(req)?;
    let version = req.version();
    let leave = wire::leave_request(&request, version);
    let group_id = leave.group_id.clone();
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let response = broker
            .groups
            .call(&broker, &group_id, |call, now| {
                call.core.leave_group(now, leave)
            })
            .await
            .unwrap_or_else(|e| LeaveResponse {
                error: Some(e),
                members: Vec::new(),
            });
        respond(&req, &wire::leave_response(&response, version)).unwrap_or_default()
    })))
}
