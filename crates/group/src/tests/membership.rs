//! Static membership (KIP-345/KIP-814), LeaveGroup, listing and unload.

use super::classic::{hb, leave};
use super::*;
use crate::{GroupState, HeartbeatRequest, LeaveRequest, LeavingMember, Record};

#[test]
fn kip345_static_member_rejoins_stable_group_without_rebalance() {
    let mut c = coordinator();
    let _ = c.join_group(0, 1, static_join_req("g", "", "inst-a"));
    let _ = c.join_group(0, 2, static_join_req("g", "", "inst-b"));
    let out = c.tick(FORMED_MS);
    let a = join_answer(&out, 1).member_id;
    let b = join_answer(&out, 2).member_id;
    assert_eq!(a, "inst-a-u1", "static ids are <group.instance.id>-<uuid>");
    let out = c.sync_group(
        FORMED_MS,
        3,
        sync_req("g", &a, 1, &[(&a, b"A"), (&b, b"B")]),
    );
    assert_eq!(sync_answer(&out, 3).assignment, Bytes::from_static(b"A"));

    // b restarts and rejoins with its instance id and no member id.
    let t = FORMED_MS + 1_000;
    let out = c.join_group(t, 4, static_join_req("g", "", "inst-b"));
    let r = join_answer(&out, 4);
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1, "same generation: no rebalance");
    assert_ne!(r.member_id, b);
    assert!(!r.skip_assignment, "b is not the leader");
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(out.records.len(), 1, "the new member id is persisted");

    // The new id syncs and keeps b's assignment; the old id is fenced.
    let out = c.sync_group(
        t,
        5,
        SyncRequest {
            group_instance_id: Some("inst-b".into()),
            ..sync_req("g", &r.member_id, 1, &[])
        },
    );
    assert_eq!(sync_answer(&out, 5).assignment, Bytes::from_static(b"B"));
    let stale = HeartbeatRequest {
        group_instance_id: Some("inst-b".into()),
        ..hb("g", &b, 1)
    };
    assert_eq!(c.heartbeat(t, &stale), Err(GroupError::FencedInstanceId));
}

#[test]
fn kip814_static_leader_rejoin_skips_assignment() {
    let mut c = coordinator();
    let _ = c.join_group(0, 1, static_join_req("g", "", "inst-a"));
    let out = c.tick(DELAY_MS);
    let a = join_answer(&out, 1).member_id;
    let _ = c.sync_group(DELAY_MS, 2, sync_req("g", &a, 1, &[(&a, b"A")]));
    let out = c.join_group(DELAY_MS + 1, 3, static_join_req("g", "", "inst-a"));
    let r = join_answer(&out, 3);
    assert!(r.skip_assignment);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn static_member_parked_join_is_fenced_by_its_replacement() {
    let mut c = coordinator();
    let _ = c.join_group(0, 1, static_join_req("g", "", "inst-a"));
    // Same instance id again while the first join is parked.
    let out = c.join_group(10, 2, static_join_req("g", "", "inst-a"));
    assert_eq!(
        join_answer(&out, 1).error,
        Some(GroupError::FencedInstanceId)
    );
    let out = c.tick(DELAY_MS);
    assert_eq!(join_answer(&out, 2).error, None);
    assert_eq!(c.member_ids("g").len(), 1);
}

#[test]
fn leader_leaving_mid_rebalance_hands_leadership_to_a_joined_member() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a", "b", "c"]);
    assert_eq!(c.leader("g").as_deref(), Some(ids[0].as_str()));
    // A rebalance starts (new member d); b and c rejoin, d is in.
    let (d, _) = join_with_id(&mut c, t, 10, "g", "d");
    let _ = c.join_group(t, 11, join_req("g", &ids[1], "b"));
    let _ = c.join_group(t, 12, join_req("g", &ids[2], "c"));
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    // The leader leaves instead of rejoining: the join completes now.
    let out = c.leave_group(t + 1, leave("g", &[(&ids[0], None)]));
    assert_eq!(out.response.members[0].1, None);
    let new_leader = c.leader("g").unwrap();
    assert_ne!(new_leader, ids[0]);
    let answers = joins(&out);
    assert_eq!(answers.len(), 3);
    for (_, r) in &answers {
        assert_eq!(
            (r.generation_id, r.leader.as_str()),
            (2, new_leader.as_str())
        );
        assert_eq!(
            r.members.len(),
            if r.member_id == new_leader { 3 } else { 0 }
        );
    }
    assert!(c.member_ids("g").contains(&d));
}

#[test]
fn batched_leave_reports_per_member_and_removes_static_by_instance_id() {
    let mut c = coordinator();
    let _ = c.join_group(0, 1, static_join_req("g", "", "inst-a"));
    let _ = c.join_group(0, 2, join_req("g", "", "b"));
    let _ = c.join_group(0, 3, {
        let mut r = join_req("g", "", "c");
        r.api_version = 3;
        r
    });
    let out = c.tick(FORMED_MS);
    assert_eq!(joins(&out).len(), 2);
    let c_id = join_answer(&out, 3).member_id;
    let out = c.leave_group(
        FORMED_MS,
        leave(
            "g",
            &[
                ("", Some("inst-a")),
                ("nobody", None),
                (&c_id, None),
                ("", Some("inst-x")),
            ],
        ),
    );
    let errors: Vec<_> = out.response.members.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        errors,
        vec![
            None,
            Some(GroupError::UnknownMemberId),
            None,
            Some(GroupError::UnknownMemberId)
        ]
    );
    assert!(c.member_ids("g").is_empty());
    // Everyone left, but b's KIP-394 pending id may still come back, so the
    // join phase waits for the (now zero) rebalance timeout, then empties.
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    let _ = c.tick(FORMED_MS);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    let out = c.leave_group(0, leave("nope", &[("m", None)]));
    assert_eq!(out.response.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn last_member_leaving_empties_the_group_and_persists_it() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a"]);
    let out = c.leave_group(t, leave("g", &[(&ids[0], None)]));
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(c.generation("g"), Some(2));
    match &out.records[..] {
        [Record::GroupMetadata { value: Some(v), .. }] => {
            assert_eq!(
                (v.generation, v.members.len(), v.protocol_type.as_str()),
                (2, 0, "consumer")
            );
        }
        other => panic!("{other:?}"),
    }
    let fenced = LeaveRequest {
        group_id: "g".into(),
        members: vec![LeavingMember {
            member_id: "x".into(),
            group_instance_id: None,
        }],
    };
    assert_eq!(
        c.leave_group(t, fenced).response.members[0].1,
        Some(GroupError::UnknownMemberId)
    );
}

#[test]
fn list_groups_filters_by_state() {
    let mut c = coordinator();
    stable_group(&mut c, "stable", &["a"]);
    let _ = c.join_group(FORMED_MS, 1, join_req("empty", "", "a"));
    let all = c.list_groups(&[]);
    assert_eq!(all.len(), 2);
    let stable = c.list_groups(&[GroupState::Stable]);
    assert_eq!(stable.len(), 1);
    assert_eq!(
        (
            stable[0].group_id.as_str(),
            stable[0].protocol_type.as_str()
        ),
        ("stable", "consumer")
    );
    assert_eq!(
        GroupState::parse("completingrebalance"),
        Some(GroupState::CompletingRebalance)
    );
}

#[test]
fn unload_answers_parked_requests_with_not_coordinator() {
    let mut c = coordinator();
    let _ = join_with_id(&mut c, 0, 1, "g", "a");
    let out = c.on_unloaded();
    assert_eq!(join_answer(&out, 1).error, Some(GroupError::NotCoordinator));
    assert_eq!(c.group_state("g"), Some(GroupState::Dead));
    let out = c.join_group(0, 2, join_req("g", "", "b"));
    assert_eq!(
        join_answer(&out, 2).error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(
        c.heartbeat(0, &hb("g", "x", 0)),
        Err(GroupError::CoordinatorNotAvailable)
    );
}
