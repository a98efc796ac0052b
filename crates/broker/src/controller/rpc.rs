//! How brokers talk to the active controller: Kafka's own controller APIs
//! (BrokerRegistration, BrokerHeartbeat, AlterPartition, CreateTopics, …)
//! carried as opaque payloads over the controller quorum's listener.
//!
//! Payload: `api_key: i16 | api_version: i16 | request body` one way and
//! the response body the other. The bodies are kafka-protocol's encodings
//! of Kafka's message schemas; nothing here is hand-written codec.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::errors::ApiError;

/// A request the active controller serves, with the version brokers send.
pub trait ControllerApi: Encodable + Decodable + Default {
    const KEY: ApiKey;
    /// Every broker of this build sends and understands this version.
    const VERSION: i16;
    type Response: Encodable + Decodable + Default;
}

macro_rules! controller_api {
    ($req:ident, $resp:ident, $key:ident, $version:expr) => {
        impl ControllerApi for kafka_protocol::messages::$req {
            const KEY: ApiKey = ApiKey::$key;
            const VERSION: i16 = $version;
            type Response = kafka_protocol::messages::$resp;
        }
    };
}

controller_api!(
    BrokerRegistrationRequest,
    BrokerRegistrationResponse,
    BrokerRegistration,
    4
);
controller_api!(
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
    BrokerHeartbeat,
    1
);
controller_api!(
    AlterPartitionRequest,
    AlterPartitionResponse,
    AlterPartition,
    3
);
controller_api!(CreateTopicsRequest, CreateTopicsResponse, CreateTopics, 7);
controller_api!(DeleteTopicsRequest, DeleteTopicsResponse, DeleteTopics, 6);
controller_api!(
    AllocateProducerIdsRequest,
    AllocateProducerIdsResponse,
    AllocateProducerIds,
    0
);
controller_api!(ElectLeadersRequest, ElectLeadersResponse, ElectLeaders, 2);
controller_api!(
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
    AlterPartitionReassignments,
    0
);

pub fn encode_request<R: ControllerApi>(request: &R) -> Result<Vec<u8>, ApiError> {
    let mut buf = BytesMut::new();
    buf.put_i16(R::KEY as i16);
    buf.put_i16(R::VERSION);
    request
        .encode(&mut buf, R::VERSION)
        .map_err(|e| internal(format!("encoding {:?}: {e}", R::KEY)))?;
    Ok(buf.to_vec())
}

/// Splits a payload into its API, version and body.
pub fn split_request(payload: Vec<u8>) -> Result<(ApiKey, i16, Bytes), ApiError> {
    let mut buf = Bytes::from(payload);
    if buf.len() < 4 {
        return Err(internal(
            "controller request shorter than its header".into(),
        ));
    }
    let key = buf.get_i16();
    let version = buf.get_i16();
    let key = ApiKey::try_from(key).map_err(|_| internal(format!("unknown api key {key}")))?;
    Ok((key, version, buf))
}

pub fn decode_body<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, ApiError> {
    T::decode(&mut body, version).map_err(|e| internal(format!("decoding controller request: {e}")))
}

pub fn encode_response<R: Encodable>(response: &R, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    match response.encode(&mut buf, version) {
        Ok(()) => buf.to_vec(),
        // Only a bug gets here; an empty payload fails decoding on the
        // broker, which retries.
        Err(e) => {
            tracing::error!(error = %e, "encoding a controller response failed");
            Vec::new()
        }
    }
}

pub fn decode_response<R: ControllerApi>(payload: Vec<u8>) -> Result<R::Response, ApiError> {
    let mut buf = Bytes::from(payload);
    R::Response::decode(&mut buf, R::VERSION)
        .map_err(|e| internal(format!("decoding {:?} response: {e}", R::KEY)))
}

fn internal(message: String) -> ApiError {
    ApiError::new(ResponseError::UnknownServerError, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId};

    #[test]
    fn request_round_trip() {
        let req = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(3))
            .with_want_shut_down(true);
        let payload = encode_request(&req).unwrap();
        let (key, version, body) = split_request(payload).unwrap();
        assert_eq!((key, version), (ApiKey::BrokerHeartbeat, 1));
        let back: BrokerHeartbeatRequest = decode_body(body, version).unwrap();
        assert_eq!(back, req);
        assert!(split_request(vec![0, 1]).is_err());
    }
}
