//! OffsetCommit (key 8): acknowledged only once the commit record is in
//! the offsets partition (and fsynced if the flush policy says so).

use std::sync::Arc;

use kafka_protocol::messages::OffsetCommitRequest;
use odradek_group::wire;
use odradek_group::PartitionResult;
use odradek_protocol::frame::RawRequest;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: OffsetCommitRequest = decode(req)?;
    let commit = wire::commit_request(&request, req.version());
    let group_id = commit.group_id.clone();
    // The request's shape, to answer every partition when the call fails.
    let shape: Vec<(String, Vec<i32>)> = commit
        .topics
        .iter()
        .map(|(t, parts)| (t.clone(), parts.iter().map(|p| p.partition).collect()))
        .collect();
    let broker = broker.clone();
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let results = broker
            .groups
            .call(&broker, &group_id, |call, now| {
                call.core.commit_offsets(now, commit)
            })
            .await
            .unwrap_or_else(|e| {
                shape
                    .into_iter()
                    .map(|(t, parts)| {
                        let failed = parts
                            .into_iter()
                            .map(|partition| PartitionResult {
                                partition,
                                error: Some(e),
                            })
                            .collect();
                        (t, failed)
                    })
                    .collect()
            });
        respond(&req, &wire::commit_response(&results)).unwrap_or_default()
    })))
}
