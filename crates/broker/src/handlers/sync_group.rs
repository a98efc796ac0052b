//! SyncGroup (key 14): followers wait for the leader's assignment.

use std::sync::Arc;

use kafka_protocol::messages::SyncGroupRequest;
use odradek_group::{wire, Effect, GroupError, SyncResponse};
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: SyncGroupRequest = decode(req)?;
    let sync = wire::sync_request(&request);
    let group_id = sync.group_id.clone();
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let response = match broker
            .groups
            .call_parked(&broker, &group_id, |core, now, token| {
                core.sync_group(now, token, sync)
            })
            .await
        {
            Ok(Effect::CompleteSync { response, .. }) => response,
            Ok(_) => SyncResponse::error(GroupError::NotCoordinator),
            Err(e) => SyncResponse::error(e),
        };
        respond(&req, &wire::sync_response(&response)).unwrap_or_default()
    })))
}
