//! DescribeCluster (key 60): this broker, the controller, the cluster id.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

/// KIP-919 endpoint types.
const ENDPOINT_BROKERS: i8 = 1;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: DescribeClusterRequest = decode(req)?;
    if req.version() >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        let response = DescribeClusterResponse::default()
            .with_endpoint_type(request.endpoint_type)
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "this listener serves brokers; controllers are not separately addressable",
            )));
        return ready(req, &response);
    }
    let image = broker.image();
    // v2 (KIP-1073) lists fenced brokers too, flagged.
    let brokers = image
        .brokers()
        .filter(|b| request.include_fenced_brokers || !b.fenced)
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.broker_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
                .with_is_fenced(b.fenced)
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id()))
        .with_controller_id(BrokerId(crate::cluster_view::controller_id(broker, &image)))
        .with_brokers(brokers);
    ready(req, &response)
}
