//! DeleteGroups (key 42): only empty groups; their offsets go with them.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use odradek_group::error_code;
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: DeleteGroupsRequest = decode(req)?;
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for id in &request.groups_names {
            let group = id.0.to_string();
            let outcome = broker
                .groups
                .call(&broker, &group, |call, _now| {
                    call.core.delete_groups(std::slice::from_ref(&group))
                })
                .await;
            let error = match outcome {
                Ok(mut per_group) => per_group.pop().and_then(|(_, e)| e),
                Err(e) => Some(e),
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(error_code(error)),
            );
        }
        respond(&req, &DeleteGroupsResponse::default().with_results(results)).unwrap_or_default()
    })))
}
