//! One module per Kafka API; `dispatch` is a match of one-call arms.
//!
//! `SUPPORTED_APIS` is both the dispatch whitelist and the ApiVersions
//! answer, so what is advertised and what is implemented cannot drift.

mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_topics;
mod delete_groups;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod partition_reassignments;
mod produce;
mod sync_group;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use odradek_protocol::frame::{encode_response, RawRequest};

use crate::broker::Broker;

/// (API, lowest version served, highest version served).
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    // v10 addresses topics by id, which the group core does not yet map.
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
];

pub fn supported_range(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .map(|(_, min, max)| (*min, *max))
}

/// What the connection writes for one request, in request order.
pub enum Reply {
    /// The response frame is ready.
    Ready(Bytes),
    /// The response completes later: a fetch waiting for data, a produce
    /// waiting for its fsync. Later requests' responses queue behind it.
    /// An empty frame closes the connection (the response failed to encode).
    Later(BoxFuture<'static, Bytes>),
    /// acks=0 produce: Kafka sends nothing back.
    Nothing,
}

/// A request the connection cannot continue after; Kafka closes the
/// connection in these cases.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{api:?} v{version} is not supported (served: {range})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        range: String,
    },
    #[error("{api:?} v{version} body could not be decoded: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("an acks=0 produce failed; closing the connection as Kafka does")]
    AcksZeroFailure,
    #[error(transparent)]
    Encode(#[from] odradek_protocol::frame::EncodeError),
}

/// `peer` is the client's address as Kafka prints it (`/127.0.0.1`).
pub async fn dispatch(
    broker: &Arc<Broker>,
    req: RawRequest,
    peer: &str,
) -> Result<Reply, RequestError> {
    let version = req.version();
    let supported = supported_range(req.api_key);
    let in_range = supported.is_some_and(|(min, max)| (min..=max).contains(&version));
    if !in_range {
        if req.api_key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 with the list so the client can pick.
            return Ok(Reply::Ready(api_versions::unsupported_version(&req)?));
        }
        return Err(RequestError::UnsupportedVersion {
            api: req.api_key,
            version,
            range: supported.map_or("none".into(), |(a, b)| format!("{a}..={b}")),
        });
    }
    match req.api_key {
        ApiKey::ApiVersions => api_versions::handle(&req),
        ApiKey::Metadata => metadata::handle(broker, &req).await,
        ApiKey::CreateTopics => create_topics::handle(broker, &req).await,
        ApiKey::DeleteTopics => delete_topics::handle(broker, &req).await,
        ApiKey::Produce => produce::handle(broker, &req),
        ApiKey::Fetch => fetch::handle(broker, &req).await,
        ApiKey::ListOffsets => list_offsets::handle(broker, &req),
        ApiKey::FindCoordinator => find_coordinator::handle(broker, &req).await,
        ApiKey::JoinGroup => join_group::handle(broker, &req, peer),
        ApiKey::SyncGroup => sync_group::handle(broker, &req),
        ApiKey::Heartbeat => heartbeat::handle(broker, &req),
        ApiKey::LeaveGroup => leave_group::handle(broker, &req),
        ApiKey::OffsetCommit => offset_commit::handle(broker, &req),
        ApiKey::OffsetFetch => offset_fetch::handle(broker, &req),
        ApiKey::ListGroups => list_groups::handle(broker, &req),
        ApiKey::DescribeGroups => describe_groups::handle(broker, &req),
        ApiKey::DeleteGroups => delete_groups::handle(broker, &req),
        ApiKey::OffsetDelete => offset_delete::handle(broker, &req),
        ApiKey::InitProducerId => init_producer_id::handle(broker, &req).await,
        ApiKey::DescribeConfigs => describe_configs::handle(broker, &req),
        ApiKey::DescribeCluster => describe_cluster::handle(broker, &req),
        ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat::handle(broker, &req, peer),
        ApiKey::ConsumerGroupDescribe => consumer_group_describe::handle(broker, &req),
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(broker, &req),
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(broker, &req),
        ApiKey::ElectLeaders => elect_leaders::handle(broker, &req).await,
        ApiKey::AlterPartitionReassignments => partition_reassignments::alter(broker, &req).await,
        ApiKey::ListPartitionReassignments => partition_reassignments::list(broker, &req),
        other => Err(RequestError::UnsupportedVersion {
            api: other,
            version,
            range: "none".into(),
        }),
    }
}

/// Decodes a request body. Bytes after the last field are ignored, as
/// Kafka ignores them: librdkafka 2.16 sends three extra bytes after its
/// Metadata v13 request, and a stricter broker would disconnect it.
fn decode<T: Decodable>(req: &RawRequest) -> Result<T, RequestError> {
    let mut body = req.body.clone();
    T::decode(&mut body, req.version()).map_err(|e| RequestError::Malformed {
        api: req.api_key,
        version: req.version(),
        reason: e.to_string(),
    })
}

fn respond<T: Encodable>(req: &RawRequest, body: &T) -> Result<Bytes, RequestError> {
    Ok(encode_response(
        req.api_key,
        req.version(),
        req.correlation_id(),
        body,
    )?)
}

fn ready<T: Encodable>(req: &RawRequest, body: &T) -> Result<Reply, RequestError> {
    respond(req, body).map(Reply::Ready)
}

/// An error message only for versions whose schema has the field.
fn message(e: &crate::errors::ApiError) -> Option<kafka_protocol::protocol::StrBytes> {
    e.message
        .as_ref()
        .map(|m| kafka_protocol::protocol::StrBytes::from_string(m.clone()))
}
