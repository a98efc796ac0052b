//! JoinGroup (key 11): parked until the rebalance completes.

use std::sync::Arc;

use kafka_protocol::messages::JoinGroupRequest;
use odradek_group::{wire, Effect, GroupError, JoinResponse};
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest, peer: &str) -> Result<Reply, RequestError> {
    let request: JoinGroupRequest = decode(req)?;
    let version = req.version();
    let join = wire::join_request(&request, version, req.client_id(), peer);
    let member_id = join.member_id.clone();
    let group_id = join.group_id.clone();
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let response = match broker
            .groups
            .call_parked(&broker, &group_id, |core, now, token| {
                core.join_group(now, token, join)
            })
            .await
        {
            Ok(Effect::CompleteJoin { response, .. }) => response,
            Ok(_) => JoinResponse::error(member_id, GroupError::NotCoordinator),
            Err(e) => JoinResponse::error(member_id, e),
        };
        respond(&req, &wire::join_response(&response, version)).unwrap_or_default()
    })))
}
