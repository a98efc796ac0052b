//! Classic group state machine: every transition and error code.

use super::*;
use crate::{GroupState, HeartbeatRequest, LeaveRequest, LeavingMember, Record};

pub(super) fn hb(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
    }
}

pub(super) fn leave(group: &str, members: &[(&str, Option<&str>)]) -> LeaveRequest {
    LeaveRequest {
        group_id: group.into(),
        members: members
            .iter()
            .map(|(m, i)| LeavingMember {
                member_id: (*m).into(),
                group_instance_id: i.map(Into::into),
            })
            .collect(),
    }
}

#[test]
fn kip394_first_join_gets_member_id_required_and_new_group_is_persisted() {
    let mut c = coordinator();
    let out = c.join_group(0, 1, join_req("g", "", "client"));
    let r = join_answer(&out, 1);
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    assert_eq!(r.member_id, "client-u1", "Kafka's <client.id>-<uuid>");
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    // A new group is written to the log right away (empty metadata).
    match &out.records[..] {
        [Record::GroupMetadata {
            group,
            value: Some(v),
        }] => {
            assert_eq!(group, "g");
            assert_eq!((v.generation, v.members.len()), (0, 0));
        }
        other => panic!("expected one empty group record, got {other:?}"),
    }
}

#[test]
fn join_before_v4_skips_member_id_required() {
    let mut c = coordinator();
    let mut req = join_req("g", "", "client");
    req.api_version = 3;
    let out = c.join_group(0, 1, req);
    assert!(
        joins(&out).is_empty(),
        "parked until the initial delay ends"
    );
    assert_eq!(c.member_ids("g"), vec!["client-u1".to_string()]);
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn initial_rebalance_waits_for_the_delay_then_completes() {
    let mut c = coordinator();
    let (m1, out) = join_with_id(&mut c, 0, 1, "g", "a");
    assert!(joins(&out).is_empty());
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(c.next_deadline(), Some(DELAY_MS));
    assert!(c.tick(DELAY_MS - 1).is_noop());

    let out = c.tick(DELAY_MS);
    let r = join_answer(&out, 1);
    assert_eq!(r.error, None);
    assert_eq!(
        (r.generation_id, r.leader.as_str(), r.member_id.as_str()),
        (1, m1.as_str(), m1.as_str())
    );
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1, "the leader gets the member list");
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn initial_delay_is_extended_by_late_joiners_up_to_the_rebalance_timeout() {
    let mut c = coordinator();
    let _ = join_with_id(&mut c, 0, 1, "g", "a");
    // A second member arrives during the delay: one more delay is granted.
    let _ = join_with_id(&mut c, 2_000, 2, "g", "b");
    assert!(c.tick(DELAY_MS).is_noop());
    assert_eq!(c.next_deadline(), Some(2 * DELAY_MS));
    let out = c.tick(2 * DELAY_MS);
    assert_eq!(joins(&out).len(), 2);
    assert_eq!(c.generation("g"), Some(1));
}

#[test]
fn three_members_rebalance_and_sync_their_assignments() {
    let mut c = coordinator();
    let (ids, _) = stable_group(&mut c, "g", &["a", "b", "c"]);
    assert_eq!(c.leader("g").as_deref(), Some(ids[0].as_str()));
    assert_eq!(c.generation("g"), Some(1));
    // Each member got its own assignment; a later SyncGroup in Stable
    // answers from memory.
    for (i, id) in ids.iter().enumerate() {
        let out = c.sync_group(FORMED_MS + 1, 300, sync_req("g", id, 1, &[]));
        assert_eq!(
            sync_answer(&out, 300).assignment,
            Bytes::from(vec![i as u8])
        );
    }
    let desc = c.describe_group("g").unwrap();
    assert_eq!(desc.protocol_data, "range");
    assert_eq!(desc.members.len(), 3);
}

#[test]
fn leader_join_response_lists_members_and_followers_get_none() {
    let mut c = coordinator();
    let _ = join_with_id(&mut c, 0, 1, "g", "a");
    let _ = join_with_id(&mut c, 0, 2, "g", "b");
    assert!(c.tick(DELAY_MS).is_noop(), "b's arrival extended the delay");
    let out = c.tick(FORMED_MS);
    assert_eq!(join_answer(&out, 1).members.len(), 2);
    assert!(join_answer(&out, 2).members.is_empty());
}

#[test]
fn group_metadata_record_after_sync_holds_members_and_assignments() {
    let mut c = coordinator();
    let _ = join_with_id(&mut c, 0, 1, "g", "a");
    let out = c.tick(DELAY_MS);
    let m = join_answer(&out, 1).member_id;
    let out = c.sync_group(DELAY_MS, 2, sync_req("g", &m, 1, &[(&m, b"A")]));
    assert_eq!(sync_answer(&out, 2).assignment, Bytes::from_static(b"A"));
    match &out.records[..] {
        [Record::GroupMetadata { value: Some(v), .. }] => {
            assert_eq!(v.generation, 1);
            assert_eq!(v.leader.as_deref(), Some(m.as_str()));
            assert_eq!(v.members[0].assignment, Bytes::from_static(b"A"));
            assert_eq!(v.members[0].subscription, subscription(&["t"]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn heartbeat_errors_and_rebalance_in_progress() {
    let mut c = coordinator();
    assert_eq!(
        c.heartbeat(0, &hb("nope", "m", 1)),
        Err(GroupError::UnknownMemberId)
    );
    let (ids, t) = stable_group(&mut c, "g", &["a", "b"]);
    assert_eq!(c.heartbeat(t, &hb("g", &ids[0], 1)), Ok(()));
    assert_eq!(
        c.heartbeat(t, &hb("g", &ids[0], 0)),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat(t, &hb("g", "stranger", 1)),
        Err(GroupError::UnknownMemberId)
    );
    // A third member triggers a rebalance; members learn it by heartbeat.
    let _ = join_with_id(&mut c, t, 9, "g", "c");
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.heartbeat(t, &hb("g", &ids[1], 1)),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn session_timeout_removes_a_silent_member_and_the_rest_rebalance() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a", "b", "c"]);
    // a and b heartbeat; c goes silent.
    let t2 = t + i64::from(SESSION_MS) - 1;
    c.heartbeat(t2, &hb("g", &ids[0], 1)).unwrap();
    c.heartbeat(t2, &hb("g", &ids[1], 1)).unwrap();
    let out = c.tick(t + i64::from(SESSION_MS));
    assert!(out.effects.is_empty());
    assert_eq!(c.member_ids("g").len(), 2, "c was removed");
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));

    // Survivors rejoin with their ids; when both are in, the join completes
    // at once (not the initial delay: this group had a generation).
    let t3 = t + i64::from(SESSION_MS) + 5;
    assert_eq!(
        c.heartbeat(t3, &hb("g", &ids[0], 1)),
        Err(GroupError::RebalanceInProgress)
    );
    assert!(joins(&c.join_group(t3, 11, join_req("g", &ids[0], "a"))).is_empty());
    let out = c.join_group(t3, 12, join_req("g", &ids[1], "b"));
    assert_eq!(join_answer(&out, 11).generation_id, 2);
    assert_eq!(join_answer(&out, 12).generation_id, 2);
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a", "b"]);
    // The leader rejoins (forcing a rebalance); b keeps heartbeating but
    // never rejoins.
    let _ = c.join_group(t, 11, join_req("g", &ids[0], "a"));
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    let deadline = t + i64::from(REBALANCE_MS);
    for now in (t..deadline).step_by(5_000) {
        let _ = c.heartbeat(now, &hb("g", &ids[1], 1));
    }
    let out = c.tick(deadline);
    assert_eq!(join_answer(&out, 11).generation_id, 2);
    assert_eq!(c.member_ids("g"), vec![ids[0].clone()]);
}

#[test]
fn sync_timeout_drops_members_that_never_sync() {
    let mut c = coordinator();
    let _ = join_with_id(&mut c, 0, 1, "g", "a");
    let _ = join_with_id(&mut c, 0, 2, "g", "b");
    let out = c.tick(FORMED_MS);
    let leader = join_answer(&out, 1).member_id;
    let follower = join_answer(&out, 2).member_id;
    let out = c.sync_group(FORMED_MS, 3, sync_req("g", &leader, 1, &[(&leader, b"x")]));
    assert_eq!(sync_answer(&out, 3).error, None);
    // The follower keeps its session alive but never sends SyncGroup.
    let deadline = FORMED_MS + i64::from(REBALANCE_MS);
    for now in (FORMED_MS..deadline).step_by(5_000) {
        c.heartbeat(now, &hb("g", &follower, 1)).unwrap();
        c.heartbeat(now, &hb("g", &leader, 1)).unwrap();
    }
    let _ = c.tick(deadline);
    assert_eq!(c.member_ids("g"), vec![leader]);
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn followers_sync_is_parked_until_the_leader_syncs() {
    let mut c = coordinator();
    let _ = join_with_id(&mut c, 0, 1, "g", "a");
    let _ = join_with_id(&mut c, 0, 2, "g", "b");
    let out = c.tick(FORMED_MS);
    let (leader, follower) = (
        join_answer(&out, 1).member_id,
        join_answer(&out, 2).member_id,
    );
    assert!(c
        .sync_group(FORMED_MS, 3, sync_req("g", &follower, 1, &[]))
        .is_noop());
    let out = c.sync_group(
        FORMED_MS,
        4,
        sync_req("g", &leader, 1, &[(&follower, b"F")]),
    );
    assert_eq!(sync_answer(&out, 3).assignment, Bytes::from_static(b"F"));
    assert_eq!(
        sync_answer(&out, 4).assignment,
        Bytes::new(),
        "unassigned members get empty"
    );
}

#[test]
fn a_join_during_completing_rebalance_cancels_parked_syncs() {
    let mut c = coordinator();
    let _ = join_with_id(&mut c, 0, 1, "g", "a");
    let _ = join_with_id(&mut c, 0, 2, "g", "b");
    let out = c.tick(FORMED_MS);
    let follower = join_answer(&out, 2).member_id;
    assert!(c
        .sync_group(FORMED_MS, 3, sync_req("g", &follower, 1, &[]))
        .is_noop());
    let (_, out) = join_with_id(&mut c, FORMED_MS, 5, "g", "c");
    assert_eq!(
        sync_answer(&out, 3).error,
        Some(GroupError::RebalanceInProgress)
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn sync_group_errors() {
    let mut c = coordinator();
    let out = c.sync_group(0, 1, sync_req("nope", "m", 1, &[]));
    assert_eq!(
        sync_answer(&out, 1).error,
        Some(GroupError::UnknownMemberId)
    );
    let (ids, t) = stable_group(&mut c, "g", &["a", "b"]);
    let out = c.sync_group(t, 2, sync_req("g", &ids[0], 7, &[]));
    assert_eq!(
        sync_answer(&out, 2).error,
        Some(GroupError::IllegalGeneration)
    );
    let out = c.sync_group(t, 3, sync_req("g", "stranger", 1, &[]));
    assert_eq!(
        sync_answer(&out, 3).error,
        Some(GroupError::UnknownMemberId)
    );
    let mut wrong = sync_req("g", &ids[0], 1, &[]);
    wrong.protocol_name = Some("roundrobin".into());
    let out = c.sync_group(t, 4, wrong);
    assert_eq!(
        sync_answer(&out, 4).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let _ = join_with_id(&mut c, t, 9, "g", "c");
    let out = c.sync_group(t, 5, sync_req("g", &ids[1], 1, &[]));
    assert_eq!(
        sync_answer(&out, 5).error,
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn join_validation_errors() {
    let mut c = coordinator_with(GroupConfig {
        group_max_size: 1,
        ..GroupConfig::default()
    });
    let out = c.join_group(0, 1, join_req("", "", "a"));
    assert_eq!(join_answer(&out, 1).error, Some(GroupError::InvalidGroupId));
    let mut req = join_req("g", "", "a");
    req.session_timeout_ms = 10;
    let out = c.join_group(0, 2, req);
    assert_eq!(
        join_answer(&out, 2).error,
        Some(GroupError::InvalidSessionTimeout)
    );
    let out = c.join_group(0, 3, join_req("g", "made-up", "a"));
    assert_eq!(
        join_answer(&out, 3).error,
        Some(GroupError::UnknownMemberId)
    );
    let mut req = join_req("g", "", "a");
    req.protocol_type = String::new();
    let out = c.join_group(0, 4, req);
    assert_eq!(
        join_answer(&out, 4).error,
        Some(GroupError::InconsistentGroupProtocol)
    );

    // group.max.size = 1: the second member is refused.
    let (_, t) = stable_group(&mut c, "h", &["a"]);
    let out = c.join_group(t, 5, join_req("h", "", "b"));
    assert_eq!(
        join_answer(&out, 5).error,
        Some(GroupError::GroupMaxSizeReached)
    );
}

#[test]
fn inconsistent_protocol_type_or_protocols_are_refused() {
    let mut c = coordinator();
    let (_, t) = stable_group(&mut c, "g", &["a"]);
    let mut req = join_req("g", "", "b");
    req.protocol_type = "connect".into();
    let out = c.join_group(t, 1, req);
    assert_eq!(
        join_answer(&out, 1).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let mut req = join_req("g", "", "b");
    req.protocols[0].name = "roundrobin".into();
    let out = c.join_group(t, 2, req);
    assert_eq!(
        join_answer(&out, 2).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn the_protocol_all_members_support_wins_the_vote() {
    let mut c = coordinator();
    let mut a = join_req("g", "", "a");
    a.api_version = 3;
    a.protocols.insert(
        0,
        Protocol {
            name: "cooperative-sticky".into(),
            metadata: subscription(&["t"]),
        },
    );
    let _ = c.join_group(0, 1, a);
    let mut b = join_req("g", "", "b");
    b.api_version = 3;
    let _ = c.join_group(0, 2, b);
    let out = c.tick(FORMED_MS);
    // a prefers cooperative-sticky, but b only speaks range.
    assert_eq!(join_answer(&out, 1).protocol_name.as_deref(), Some("range"));
}

#[test]
fn pending_member_expires_after_its_session_timeout() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a"]);
    let out = c.join_group(t, 1, join_req("g", "", "b"));
    let pending = join_answer(&out, 1).member_id;
    let _ = c.tick(t + i64::from(SESSION_MS) - 1);
    let _ = c.heartbeat(t + i64::from(SESSION_MS) - 1, &hb("g", &ids[0], 1));
    let _ = c.tick(t + i64::from(SESSION_MS));
    // The id is forgotten: coming back with it is UNKNOWN_MEMBER_ID.
    let out = c.join_group(
        t + i64::from(SESSION_MS) + 1,
        2,
        join_req("g", &pending, "b"),
    );
    assert_eq!(
        join_answer(&out, 2).error,
        Some(GroupError::UnknownMemberId)
    );
}

#[test]
fn follower_rejoin_with_same_metadata_in_stable_gets_current_generation() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a", "b"]);
    let out = c.join_group(t, 1, join_req("g", &ids[1], "b"));
    let r = join_answer(&out, 1);
    assert_eq!((r.error, r.generation_id), (None, 1));
    assert_eq!(c.group_state("g"), Some(GroupState::Stable), "no rebalance");
}
