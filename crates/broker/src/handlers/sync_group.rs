//! SyncGroup (key 14): followers wait for the leader's assignment.

use std::sync::Arc;

use kafka_protocol::messages::SyncGroupRequest;
use odradek_group::{wire, Effect, GroupError, SyncResponse};
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;
use crate::groups::GroupService;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: SyncGroupRequest = decode(req)?;
    let sync = wire::sync_request(&request);
    let group_id = sync.group_id.clone();
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let token = broker.groups.next_token();
        let mut parked = None;
        let outcome = broker
            .groups
            .call(&broker, &group_id, |call, now| {
                parked = Some(GroupService::park(call, token));
                call.core.sync_group(now, token, sync)
            })
            .await;
        let response = match (outcome, parked) {
            (Err(e), _) => SyncResponse::error(e),
            (Ok(()), Some(rx)) => match rx.await {
                Ok(Effect::CompleteSync { response, .. }) => response,
                _ => SyncResponse::error(GroupError::NotCoordinator),
            },
            (Ok(()), None) => SyncResponse::error(GroupError::NotCoordinator),
        };
        respond(&req, &wire::sync_response(&response)).unwrap_or_default()
    })))
}
