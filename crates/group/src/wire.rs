//! Mapping between `kafka-protocol` message structs and the domain types,
//! so a broker handler is: decode → `wire::*_request` → coordinator →
//! `wire::*_response` → encode. Version differences live here.

use kafka_protocol::messages::consumer_group_describe_response::{
    self as cgd, ConsumerGroupDescribeResponse,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    self as cgh, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::{
    HeartbeatRequest as WireHeartbeat, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::classic::{
    HeartbeatRequest, JoinRequest, LeaveRequest, LeaveResponse, LeavingMember, Protocol,
    SyncRequest,
};
use crate::consumer::{
    ConsumerGroupDescription, ConsumerHeartbeatRequest, ConsumerHeartbeatResponse,
    DescribedTopicPartitions,
};
use crate::error::{error_code, GroupError};
use crate::offsets::{CommitPartition, CommitRequest, TopicResults};
use crate::output::{JoinResponse, SyncResponse};

fn s(v: &StrBytes) -> String {
    v.as_str().to_owned()
}

fn os(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(s)
}

fn sb(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// JoinGroup request → domain. `client_id` comes from the request header
/// and `client_host` is the peer address as Kafka prints it ("/1.2.3.4").
pub fn join_request(
    req: &JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinRequest {
    JoinRequest {
        group_id: s(&req.group_id),
        member_id: s(&req.member_id),
        group_instance_id: os(&req.group_instance_id),
        protocol_type: s(&req.protocol_type),
        protocols: req
            .protocols
            .iter()
            .map(|p| Protocol {
                name: s(&p.name),
                metadata: p.metadata.clone(),
            })
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        client_id: client_id.to_owned(),
        client_host: client_host.to_owned(),
        api_version: version,
    }
}

/// Domain → JoinGroup response at `version`.
pub fn join_response(resp: &JoinResponse, version: i16) -> JoinGroupResponse {
    // protocol_name is nullable only from v7; older versions send "".
    let protocol_name = match (&resp.protocol_name, version) {
        (Some(n), _) => Some(sb(n)),
        (None, v) if v < 7 => Some(StrBytes::default()),
        (None, _) => None,
    };
    JoinGroupResponse::default()
        .with_error_code(error_code(resp.error))
        .with_generation_id(resp.generation_id)
        .with_protocol_type(resp.protocol_type.as_deref().map(sb))
        .with_protocol_name(protocol_name)
        .with_leader(sb(&resp.leader))
        .with_skip_assignment(resp.skip_assignment)
        .with_member_id(sb(&resp.member_id))
        .with_members(
            resp.members
                .iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(&m.member_id))
                        .with_group_instance_id(m.group_instance_id.as_deref().map(sb))
                        .with_metadata(m.metadata.clone())
                })
                .collect(),
        )
}

/// SyncGroup request → domain.
pub fn sync_request(req: &SyncGroupRequest) -> SyncRequest {
    SyncRequest {
        group_id: s(&req.group_id),
        generation_id: req.generation_id,
        member_id: s(&req.member_id),
        group_instance_id: os(&req.group_instance_id),
        protocol_type: os(&req.protocol_type),
        protocol_name: os(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (s(&a.member_id), a.assignment.clone()))
            .collect(),
    }
}

/// Domain → SyncGroup response.
pub fn sync_response(resp: &SyncResponse) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(error_code(resp.error))
        .with_protocol_type(resp.protocol_type.as_deref().map(sb))
        .with_protocol_name(resp.protocol_name.as_deref().map(sb))
        .with_assignment(resp.assignment.clone())
}

/// Heartbeat request → domain.
pub fn heartbeat_request(req: &WireHeartbeat) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: s(&req.group_id),
        generation_id: req.generation_id,
        member_id: s(&req.member_id),
        group_instance_id: os(&req.group_instance_id),
    }
}

/// Heartbeat outcome → response.
pub fn heartbeat_response(result: Result<(), GroupError>) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(error_code(result.err()))
}

/// LeaveGroup request → domain: v0–v2 name one member at the top level,
/// v3+ carry a batch.
pub fn leave_request(req: &LeaveGroupRequest, version: i16) -> LeaveRequest {
    let members = if version < 3 {
        vec![LeavingMember {
            member_id: s(&req.member_id),
            group_instance_id: None,
        }]
    } else {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member_id: s(&m.member_id),
                group_instance_id: os(&m.group_instance_id),
            })
            .collect()
    };
    LeaveRequest {
        group_id: s(&req.group_id),
        members,
    }
}

/// Domain → LeaveGroup response. Before v3 the single member's error is
/// the top-level error.
pub fn leave_response(resp: &LeaveResponse, version: i16) -> LeaveGroupResponse {
    if version < 3 {
        let member_error = resp.members.first().and_then(|(_, e)| *e);
        return LeaveGroupResponse::default()
            .with_error_code(error_code(resp.error.or(member_error)));
    }
    LeaveGroupResponse::default()
        .with_error_code(error_code(resp.error))
        .with_members(
            resp.members
                .iter()
                .map(|(m, e)| {
                    MemberResponse::default()
                        .with_member_id(sb(&m.member_id))
                        .with_group_instance_id(m.group_instance_id.as_deref().map(sb))
                        .with_error_code(error_code(*e))
                })
                .collect(),
        )
}

/// OffsetCommit request → domain. Topic ids (v10+) must be resolved to
/// names by the shell first; this reads names only.
pub fn commit_request(req: &OffsetCommitRequest, version: i16) -> CommitRequest {
    CommitRequest {
        group_id: s(&req.group_id),
        generation_id: req.generation_id_or_member_epoch,
        member_id: s(&req.member_id),
        group_instance_id: os(&req.group_instance_id),
        retention_time_ms: if (2..=4).contains(&version) {
            req.retention_time_ms
        } else {
            -1
        },
        api_version: version,
        topics: req
            .topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| CommitPartition {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: os(&p.committed_metadata),
                    })
                    .collect();
                (s(&t.name), parts)
            })
            .collect(),
    }
}

/// Domain → OffsetCommit response.
pub fn commit_response(results: &TopicResults) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        results
            .iter()
            .map(|(topic, parts)| {
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition)
                                    .with_error_code(error_code(p.error))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// ConsumerGroupHeartbeat request → domain. `client_id` comes from the
/// request header, `client_host` is the peer address ("/1.2.3.4").
pub fn consumer_heartbeat_request(
    req: &ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        group_id: s(&req.group_id),
        member_id: s(&req.member_id),
        member_epoch: req.member_epoch,
        instance_id: os(&req.instance_id),
        rack_id: os(&req.rack_id),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| s(&n.0)).collect()),
        subscribed_topic_regex: os(&req.subscribed_topic_regex),
        server_assignor: os(&req.server_assignor),
        topic_partitions: req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.clone()))
                .collect()
        }),
        client_id: client_id.to_owned(),
        client_host: client_host.to_owned(),
        api_version: version,
    }
}

/// Domain → ConsumerGroupHeartbeat response. Errors carry no member id,
/// as in Kafka.
pub fn consumer_heartbeat_response(
    result: &Result<ConsumerHeartbeatResponse, GroupError>,
) -> ConsumerGroupHeartbeatResponse {
    match result {
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_member_id(None),
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(&r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.as_ref().map(|tps| {
                cgh::Assignment::default().with_topic_partitions(
                    tps.iter()
                        .map(|(id, ps)| {
                            cgh::TopicPartitions::default()
                                .with_topic_id(*id)
                                .with_partitions(ps.clone())
                        })
                        .collect(),
                )
            })),
    }
}

fn describe_assignment(tps: &[DescribedTopicPartitions]) -> cgd::Assignment {
    cgd::Assignment::default().with_topic_partitions(
        tps.iter()
            .map(|tp| {
                cgd::TopicPartitions::default()
                    .with_topic_id(tp.topic_id)
                    .with_topic_name(TopicName(sb(&tp.topic_name)))
                    .with_partitions(tp.partitions.clone())
            })
            .collect(),
    )
}

/// Domain → ConsumerGroupDescribe response (the shell adds
/// `authorized_operations` if asked). From v1 each member's `member_type`
/// says whether it joined through ConsumerGroupHeartbeat (1) or JoinGroup
/// (0, a classic consumer inside a consumer group).
pub fn consumer_describe_response(
    groups: &[(String, Result<ConsumerGroupDescription, GroupError>)],
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let described = groups
        .iter()
        .map(|(id, result)| {
            let entry = cgd::DescribedGroup::default()
                .with_group_id(kafka_protocol::messages::GroupId(sb(id)));
            match result {
                Err(e) => entry.with_error_code(e.code()),
                Ok(d) => entry
                    .with_group_state(StrBytes::from_static_str(d.state.as_str()))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(sb(&d.assignor_name))
                    .with_members(
                        d.members
                            .iter()
                            .map(|m| {
                                cgd::Member::default()
                                    .with_member_id(sb(&m.member_id))
                                    .with_instance_id(m.instance_id.as_deref().map(sb))
                                    .with_rack_id(m.rack_id.as_deref().map(sb))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(sb(&m.client_id))
                                    .with_client_host(sb(&m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names
                                            .iter()
                                            .map(|t| TopicName(sb(t)))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(
                                        m.subscribed_topic_regex.as_deref().map(sb),
                                    )
                                    .with_assignment(describe_assignment(&m.assignment))
                                    .with_target_assignment(describe_assignment(
                                        &m.target_assignment,
                                    ))
                                    .with_member_type(match (version, m.uses_classic_protocol) {
                                        (0, _) => -1,
                                        (_, true) => 0,
                                        (_, false) => 1,
                                    })
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(described)
}
