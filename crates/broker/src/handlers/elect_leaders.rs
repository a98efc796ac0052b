//! ElectLeaders (key 43): preferred or unclean leader election, decided by
//! the active controller. The answer comes once the election is committed
//! to the metadata log; brokers follow it from there.

use std::sync::Arc;

use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let mut request: ElectLeadersRequest = decode(req)?;
    // v0 has no election type: it always meant preferred.
    if req.version() == 0 {
        request.election_type = 0;
    }
    let response = match broker.controller.call(&request).await {
        Ok(r) => r,
        Err(e) => ElectLeadersResponse::default().with_error_code(e.code()),
    };
    ready(req, &response)
}
