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
