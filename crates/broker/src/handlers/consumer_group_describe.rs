//! ConsumerGroupDescribe (key 69): KIP-848 groups with members and their
//! current and target assignments.

use std::sync::Arc;

use kafka_protocol::messages::ConsumerGroupDescribeRequest;
use odradek_group::wire;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: ConsumerGroupDescribeRequest = decode(req)?;
    let described: Vec<_> = request
        .group_ids
        .iter()
        .map(|id| {
            let id = id.0.to_string();
            let result = broker
                .groups
                .with_core(&id, |core| {
                    core.consumer_group_describe(std::slice::from_ref(&id))
                })
                .map_err(|e| vec![(id.clone(), Err(e))])
                .unwrap_or_else(|e| e);
            result.into_iter().next().expect("one answer per group id")
        })
        .collect();
    ready(
        req,
        &wire::consumer_describe_response(&described, req.version()),
    )
}
