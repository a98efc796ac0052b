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
    let listener = &broker.config.advertised_listeners[0];
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller.node_id()))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.config.node_id))
            .with_host(StrBytes::from_string(listener.host.clone()))
            .with_port(listener.port as i32)]);
    ready(req, &response)
}
