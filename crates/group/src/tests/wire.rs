//! The kafka-protocol mappings handle version differences.

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::{GroupId, JoinGroupRequest, LeaveGroupRequest};
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::wire;
use crate::{LeaveResponse, LeavingMember};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

#[test]
fn join_v0_uses_the_session_timeout_as_rebalance_timeout() {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_session_timeout_ms(12_000)
        .with_protocol_type(sb("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(sb("range"))
            .with_metadata(Bytes::from_static(b"m"))]);
    let d = wire::join_request(&req, 0, "cid", "/1.2.3.4");
    assert_eq!(
        (d.rebalance_timeout_ms, d.session_timeout_ms),
        (12_000, 12_000)
    );
    assert_eq!(d.protocols[0].name, "range");
    assert_eq!(
        (d.client_id.as_str(), d.client_host.as_str(), d.api_version),
        ("cid", "/1.2.3.4", 0)
    );
}

#[test]
fn join_error_response_has_a_protocol_name_before_v7_only() {
    let r = JoinResponse::error("m".into(), GroupError::MemberIdRequired);
    let v6 = wire::join_response(&r, 6);
    assert_eq!(v6.error_code, 79);
    assert_eq!(
        v6.protocol_name.as_ref().map(|s| s.to_string()),
        Some(String::new())
    );
    assert_eq!(v6.generation_id, -1);
    let v7 = wire::join_response(&r, 7);
    assert_eq!(v7.protocol_name, None);
}

#[test]
fn leave_before_v3_is_a_batch_of_one_with_a_top_level_error() {
    let req = LeaveGroupRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_member_id(sb("m"));
    let d = wire::leave_request(&req, 1);
    assert_eq!(d.members.len(), 1);
    let resp = LeaveResponse {
        error: None,
        members: vec![(
            LeavingMember {
                member_id: "m".into(),
                group_instance_id: None,
            },
            Some(GroupError::UnknownMemberId),
        )],
    };
    assert_eq!(wire::leave_response(&resp, 1).error_code, 25);
    let v3 = wire::leave_response(&resp, 3);
    assert_eq!((v3.error_code, v3.members[0].error_code), (0, 25));
}

#[test]
fn consumer_heartbeat_maps_both_ways() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable};

    let mut c = coordinator();
    let id = uuid::Uuid::from_u128(7);
    let _ = c.set_topic_metadata(
        0,
        [(
            "t".to_owned(),
            crate::TopicInfo {
                topic_id: id,
                partitions: 2,
            },
        )]
        .into(),
    );
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb("g")))
        .with_member_id(sb("m"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(sb("t"))]))
        .with_topic_partitions(Some(Vec::<TopicPartitions>::new()));
    let d = wire::consumer_heartbeat_request(&req, 1, "cid", "/1.2.3.4");
    assert_eq!(d.subscribed_topic_names, Some(vec!["t".to_owned()]));
    assert_eq!(d.topic_partitions, Some(vec![]));
    let out = c.consumer_group_heartbeat(0, d);
    let resp = wire::consumer_heartbeat_response(&out.response);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.member_epoch, 1);
    let a = resp.assignment.as_ref().unwrap();
    assert_eq!(a.topic_partitions[0].topic_id, id);
    assert_eq!(a.topic_partitions[0].partitions, vec![0, 1]);
    let mut buf = bytes::BytesMut::new();
    resp.encode(&mut buf, 1).unwrap();
    let back =
        kafka_protocol::messages::ConsumerGroupHeartbeatResponse::decode(&mut buf.freeze(), 1)
            .unwrap();
    assert_eq!(back, resp);

    let err = wire::consumer_heartbeat_response(&Err(GroupError::FencedMemberEpoch));
    assert_eq!((err.error_code, err.member_id), (110, None));

    let described = c.consumer_group_describe(&["g".into(), "nope".into()]);
    let resp = wire::consumer_describe_response(&described, 1);
    assert_eq!(resp.groups[0].group_state.as_str(), "Stable");
    assert_eq!(resp.groups[0].assignor_name.as_str(), "uniform");
    let m = &resp.groups[0].members[0];
    assert_eq!(m.assignment.topic_partitions[0].topic_name.0.as_str(), "t");
    assert_eq!(m.member_type, 1);
    assert_eq!(resp.groups[1].error_code, 69);
}
