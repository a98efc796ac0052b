//! KIP-848 consumer groups with injected time: joins, incremental
//! revocation and assignment, leaves, timeouts, assignors, regex
//! subscriptions, topic metadata changes, records and replay, offset
//! commits with member epochs, and classic ↔ consumer conversion.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::consumer::assignor::{self, MemberSpec};
use crate::consumer::{
    Assignment, ConsumerHeartbeatRequest, ConsumerHeartbeatResponse, TopicImage, TopicInfo,
};
use crate::{CommitPartition, CommitRequest, GroupState, Record};

const SESSION: i64 = 45_000;

fn tid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn image(topics: &[(&str, u128, i32)]) -> TopicImage {
    topics
        .iter()
        .map(|(name, id, n)| {
            (
                (*name).to_owned(),
                TopicInfo {
                    topic_id: tid(*id),
                    partitions: *n,
                },
            )
        })
        .collect()
}

fn req(group: &str, member: &str, epoch: i32) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        group_id: group.into(),
        member_id: member.into(),
        member_epoch: epoch,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        subscribed_topic_regex: None,
        server_assignor: None,
        topic_partitions: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        api_version: 1,
    }
}

fn join_req(group: &str, member: &str, topics: &[&str]) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(topics.iter().map(|t| (*t).to_owned()).collect()),
        topic_partitions: Some(vec![]),
        ..req(group, member, 0)
    }
}

fn owned_req(
    group: &str,
    member: &str,
    epoch: i32,
    owned: &[(u128, &[i32])],
) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        topic_partitions: Some(owned.iter().map(|(t, ps)| (tid(*t), ps.to_vec())).collect()),
        ..req(group, member, epoch)
    }
}

fn ok(out: &Output<Result<ConsumerHeartbeatResponse, GroupError>>) -> ConsumerHeartbeatResponse {
    out.response.clone().expect("heartbeat succeeds")
}

fn assigned(r: &ConsumerHeartbeatResponse) -> Vec<(Uuid, Vec<i32>)> {
    r.assignment.clone().expect("assignment in response")
}

/// A coordinator that knows topic "a" (id 1, 3 partitions).
fn setup() -> GroupCoordinator {
    let mut c = coordinator();
    let out = c.set_topic_metadata(0, image(&[("a", 1, 3)]));
    assert!(out.is_noop());
    c
}

fn heartbeat(
    c: &mut GroupCoordinator,
    now: i64,
    r: ConsumerHeartbeatRequest,
    log: &mut Vec<Record>,
) -> ConsumerHeartbeatResponse {
    let out = c.consumer_group_heartbeat(now, r);
    log.extend(out.records.clone());
    ok(&out)
}

#[test]
fn single_member_gets_every_partition() {
    let mut c = setup();
    let out = c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"]));
    let r = ok(&out);
    assert_eq!(r.member_id, "m1");
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(assigned(&r), vec![(tid(1), vec![0, 1, 2])]);
    let kinds: Vec<i16> = out
        .records
        .iter()
        .map(|r| i16::from_be_bytes(r.encode_key()[..2].try_into().unwrap()))
        .collect();
    // Member, partition metadata, group epoch, target member, target
    // epoch, current assignment — Kafka's order.
    assert_eq!(kinds, vec![5, 4, 3, 7, 6, 8]);
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(c.generation("g"), Some(1));
    // A plain heartbeat changes nothing and carries no assignment.
    let out = c.consumer_group_heartbeat(1_000, req("g", "m1", 1));
    assert!(out.records.is_empty());
    assert_eq!(ok(&out).assignment, None);
}

#[test]
fn empty_member_id_in_v0_is_generated() {
    let mut c = setup();
    let r = ok(&c.consumer_group_heartbeat(
        0,
        ConsumerHeartbeatRequest {
            api_version: 0,
            ..join_req("g", "", &["a"])
        },
    ));
    assert_eq!(r.member_id, "u1");
    // v1 requires the client's id.
    let out = c.consumer_group_heartbeat(0, join_req("g", "", &["a"]));
    assert_eq!(out.response, Err(GroupError::InvalidRequest));
    assert!(out.records.is_empty());
}

#[test]
fn second_member_revokes_then_assigns_and_both_converge() {
    let mut c = setup();
    let mut log = vec![];
    heartbeat(&mut c, 0, join_req("g", "m1", &["a"]), &mut log);
    // m2 joins: its target is partition 2, still owned by m1.
    let r2 = heartbeat(&mut c, 100, join_req("g", "m2", &["a"]), &mut log);
    assert_eq!(r2.member_epoch, 2);
    assert_eq!(assigned(&r2), vec![]);
    assert_eq!(c.group_state("g"), Some(GroupState::Reconciling));
    // m1 must revoke 2 first: it stays at epoch 1 with 0 and 1.
    let r1 = heartbeat(
        &mut c,
        200,
        owned_req("g", "m1", 1, &[(1, &[0, 1, 2])]),
        &mut log,
    );
    assert_eq!(r1.member_epoch, 1);
    assert_eq!(assigned(&r1), vec![(tid(1), vec![0, 1])]);
    // Still owning 2: nothing moves.
    let r1 = heartbeat(
        &mut c,
        300,
        owned_req("g", "m1", 1, &[(1, &[0, 1, 2])]),
        &mut log,
    );
    assert_eq!((r1.member_epoch, r1.assignment), (1, None));
    let r2 = heartbeat(&mut c, 300, owned_req("g", "m2", 2, &[]), &mut log);
    assert_eq!(r2.assignment, None, "partition 2 is not released yet");
    // m1 reports the revocation and moves to epoch 2.
    let r1 = heartbeat(
        &mut c,
        400,
        owned_req("g", "m1", 1, &[(1, &[0, 1])]),
        &mut log,
    );
    assert_eq!(r1.member_epoch, 2);
    // Now m2 gets partition 2.
    let r2 = heartbeat(&mut c, 500, owned_req("g", "m2", 2, &[]), &mut log);
    assert_eq!(assigned(&r2), vec![(tid(1), vec![2])]);
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));

    // m2 leaves: its partition goes back to m1 at the next heartbeat.
    let out = c.consumer_group_heartbeat(600, req("g", "m2", -1));
    let r = ok(&out);
    assert_eq!((r.member_id.as_str(), r.member_epoch), ("m2", -1));
    assert_eq!(c.generation("g"), Some(3));
    let r1 = heartbeat(
        &mut c,
        700,
        owned_req("g", "m1", 2, &[(1, &[0, 1])]),
        &mut log,
    );
    assert_eq!(r1.member_epoch, 3);
    assert_eq!(assigned(&r1), vec![(tid(1), vec![0, 1, 2])]);
    assert_eq!(c.member_ids("g"), vec!["m1".to_owned()]);
}

#[test]
fn session_timeout_fences_the_member() {
    let mut c = setup();
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"])));
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m2", &["a"])));
    ok(&c.consumer_group_heartbeat(10_000, owned_req("g", "m1", 1, &[(1, &[0, 1])])));
    // m2 never heartbeats again; m1's session runs from 10 s.
    assert_eq!(c.next_deadline(), Some(SESSION));
    let out = c.tick(SESSION);
    assert_eq!(c.member_ids("g"), vec!["m1".to_owned()]);
    let tombstones = out.records.iter().filter(|r| r.is_tombstone()).count();
    assert_eq!(tombstones, 3, "current assignment, target, subscription");
    assert_eq!(c.generation("g"), Some(3));
    let out = c.consumer_group_heartbeat(SESSION, req("g", "m2", 2));
    assert_eq!(out.response, Err(GroupError::UnknownMemberId));
    let out = c.tick(10_000 + SESSION);
    assert!(!out.records.is_empty());
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
}

#[test]
fn rebalance_timeout_fences_a_member_that_does_not_revoke() {
    let mut c = setup();
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"])));
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m2", &["a"])));
    let r1 = ok(&c.consumer_group_heartbeat(1_000, owned_req("g", "m1", 1, &[(1, &[0, 1, 2])])));
    assert_eq!(r1.member_epoch, 1);
    // m1 keeps heartbeating without revoking, past its 30 s rebalance timeout.
    ok(&c.consumer_group_heartbeat(20_000, owned_req("g", "m1", 1, &[(1, &[0, 1, 2])])));
    ok(&c.consumer_group_heartbeat(20_000, owned_req("g", "m2", 2, &[])));
    let _ = c.tick(31_000);
    assert_eq!(c.member_ids("g"), vec!["m2".to_owned()]);
    let out = c.consumer_group_heartbeat(31_000, owned_req("g", "m1", 1, &[(1, &[0, 1, 2])]));
    assert_eq!(out.response, Err(GroupError::UnknownMemberId));
    let r2 = ok(&c.consumer_group_heartbeat(31_000, owned_req("g", "m2", 2, &[])));
    assert_eq!(assigned(&r2), vec![(tid(1), vec![0, 1, 2])]);
}

#[test]
fn stale_and_unknown_epochs_are_fenced() {
    let mut c = setup();
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"])));
    let out = c.consumer_group_heartbeat(1, req("g", "m1", 7));
    assert_eq!(out.response, Err(GroupError::FencedMemberEpoch));
    assert!(out.records.is_empty());
    // Advance m1 to epoch 3 (two more members' joins and its reconciling).
    ok(&c.consumer_group_heartbeat(2, join_req("g", "m2", &["a"])));
    ok(&c.consumer_group_heartbeat(3, owned_req("g", "m1", 1, &[(1, &[0, 1])])));
    assert_eq!(
        c.consumer_group_describe(&["g".into()])[0]
            .1
            .as_ref()
            .unwrap()
            .members[0]
            .member_epoch,
        2
    );
    // The previous epoch is accepted only with a subset of the assignment.
    let out = c.consumer_group_heartbeat(4, owned_req("g", "m1", 1, &[(1, &[2])]));
    assert_eq!(out.response, Err(GroupError::FencedMemberEpoch));
    ok(&c.consumer_group_heartbeat(4, owned_req("g", "m1", 1, &[(1, &[0])])));
    let out = c.consumer_group_heartbeat(5, req("g", "nobody", 1));
    assert_eq!(out.response, Err(GroupError::UnknownMemberId));
    let out = c.consumer_group_heartbeat(5, req("missing", "m1", 1));
    assert_eq!(out.response, Err(GroupError::GroupIdNotFound));
}

#[test]
fn invalid_requests() {
    let mut c = setup();
    let cases = [
        (
            ConsumerHeartbeatRequest {
                rebalance_timeout_ms: -1,
                ..join_req("g", "m", &["a"])
            },
            GroupError::InvalidRequest,
        ),
        (
            ConsumerHeartbeatRequest {
                topic_partitions: None,
                ..join_req("g", "m", &["a"])
            },
            GroupError::InvalidRequest,
        ),
        (
            ConsumerHeartbeatRequest {
                subscribed_topic_names: None,
                ..join_req("g", "m", &["a"])
            },
            GroupError::InvalidRequest,
        ),
        (
            ConsumerHeartbeatRequest {
                server_assignor: Some("sticky".into()),
                ..join_req("g", "m", &["a"])
            },
            GroupError::UnsupportedAssignor,
        ),
        (
            ConsumerHeartbeatRequest {
                subscribed_topic_regex: Some("(".into()),
                ..join_req("g", "m", &[])
            },
            GroupError::InvalidRegularExpression,
        ),
        (
            ConsumerHeartbeatRequest {
                instance_id: Some(String::new()),
                ..join_req("g", "m", &["a"])
            },
            GroupError::InvalidRequest,
        ),
        (req("g", "m", -2), GroupError::InvalidRequest),
        (req("g", "m", -3), GroupError::InvalidRequest),
        (req("", "m", 1), GroupError::InvalidRequest),
    ];
    for (r, expected) in cases {
        let out = c.consumer_group_heartbeat(0, r.clone());
        assert_eq!(out.response, Err(expected), "{r:?}");
        assert!(out.records.is_empty());
    }
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn group_max_size() {
    let mut c = coordinator_with(GroupConfig {
        group_consumer_max_size: 1,
        ..GroupConfig::default()
    });
    let _ = c.set_topic_metadata(0, image(&[("a", 1, 3)]));
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"])));
    let out = c.consumer_group_heartbeat(0, join_req("g", "m2", &["a"]));
    assert_eq!(out.response, Err(GroupError::GroupMaxSizeReached));
    ok(&c.consumer_group_heartbeat(1, req("g", "m1", 1)));
}

fn spec(id: &str, topics: &[u128]) -> MemberSpec {
    MemberSpec {
        member_id: id.into(),
        instance_id: None,
        topics: topics.iter().map(|t| tid(*t)).collect(),
    }
}

fn flat(a: &BTreeMap<String, Assignment>) -> Vec<(String, Vec<(u128, i32)>)> {
    a.iter()
        .map(|(m, a)| {
            let parts = a
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_u128(), *p)))
                .collect();
            (m.clone(), parts)
        })
        .collect()
}

#[test]
fn uniform_and_range_assignors() {
    type Case<'a> = (
        &'a str,
        Vec<MemberSpec>,
        Vec<(u128, i32)>,
        Vec<(&'a str, Vec<(u128, i32)>)>,
        Vec<(&'a str, Vec<(u128, i32)>)>,
    );
    let cases: Vec<Case> = vec![
        (
            "two members, two topics of three",
            vec![spec("m1", &[1, 2]), spec("m2", &[1, 2])],
            vec![(1, 3), (2, 3)],
            vec![
                ("m1", vec![(1, 0), (1, 1), (1, 2)]),
                ("m2", vec![(2, 0), (2, 1), (2, 2)]),
            ],
            vec![
                ("m1", vec![(1, 0), (1, 1), (2, 0), (2, 1)]),
                ("m2", vec![(1, 2), (2, 2)]),
            ],
        ),
        (
            "three members, seven partitions",
            vec![spec("a", &[1]), spec("b", &[1]), spec("c", &[1])],
            vec![(1, 7)],
            vec![
                ("a", vec![(1, 0), (1, 1), (1, 2)]),
                ("b", vec![(1, 3), (1, 4)]),
                ("c", vec![(1, 5), (1, 6)]),
            ],
            vec![
                ("a", vec![(1, 0), (1, 1), (1, 2)]),
                ("b", vec![(1, 3), (1, 4)]),
                ("c", vec![(1, 5), (1, 6)]),
            ],
        ),
        (
            "different subscriptions",
            vec![spec("m1", &[1]), spec("m2", &[1, 2])],
            vec![(1, 2), (2, 2)],
            vec![("m1", vec![(1, 0), (1, 1)]), ("m2", vec![(2, 0), (2, 1)])],
            vec![("m1", vec![(1, 0)]), ("m2", vec![(1, 1), (2, 0), (2, 1)])],
        ),
        (
            "more members than partitions",
            vec![spec("m1", &[1]), spec("m2", &[1]), spec("m3", &[1])],
            vec![(1, 2)],
            vec![("m1", vec![(1, 0)]), ("m2", vec![(1, 1)]), ("m3", vec![])],
            vec![("m1", vec![(1, 0)]), ("m2", vec![(1, 1)]), ("m3", vec![])],
        ),
    ];
    for (name, members, partitions, uniform, range) in cases {
        let partitions: BTreeMap<Uuid, i32> =
            partitions.iter().map(|(t, n)| (tid(*t), *n)).collect();
        let own = |v: Vec<(&str, Vec<(u128, i32)>)>| -> Vec<(String, Vec<(u128, i32)>)> {
            v.into_iter().map(|(m, ps)| (m.to_owned(), ps)).collect()
        };
        let u = assignor::assign("uniform", &members, &partitions, &BTreeMap::new());
        assert_eq!(flat(&u), own(uniform), "uniform: {name}");
        let r = assignor::assign("range", &members, &partitions, &BTreeMap::new());
        assert_eq!(flat(&r), own(range), "range: {name}");
    }
}

#[test]
fn uniform_is_sticky() {
    let partitions: BTreeMap<Uuid, i32> = [(tid(1), 4)].into();
    let mut current = BTreeMap::new();
    current.insert(
        "m2".to_owned(),
        Assignment::from([(tid(1), [0, 1, 2, 3].into())]),
    );
    // m1 (first in order, so it gets no extra) joins m2, which keeps two.
    let members = [spec("m1", &[1]), spec("m2", &[1])];
    let out = assignor::assign("uniform", &members, &partitions, &current);
    assert_eq!(
        flat(&out),
        vec![
            ("m1".into(), vec![(1, 2), (1, 3)]),
            ("m2".into(), vec![(1, 0), (1, 1)])
        ]
    );
    // Heterogeneous: previous partitions stay where they are when balanced.
    let members = [spec("m1", &[1]), spec("m2", &[1, 2])];
    let partitions: BTreeMap<Uuid, i32> = [(tid(1), 4), (tid(2), 2)].into();
    let mut current = BTreeMap::new();
    current.insert(
        "m1".to_owned(),
        Assignment::from([(tid(1), [1, 2, 3].into())]),
    );
    let out = assignor::assign("uniform", &members, &partitions, &current);
    assert_eq!(
        flat(&out),
        vec![
            ("m1".into(), vec![(1, 1), (1, 2), (1, 3)]),
            ("m2".into(), vec![(1, 0), (2, 0), (2, 1)])
        ]
    );
}

#[test]
fn server_assignor_is_chosen_by_members() {
    let mut c = coordinator();
    let _ = c.set_topic_metadata(0, image(&[("a", 1, 3), ("b", 2, 3)]));
    let r = ok(&c.consumer_group_heartbeat(
        0,
        ConsumerHeartbeatRequest {
            server_assignor: Some("range".into()),
            ..join_req("g", "m1", &["a", "b"])
        },
    ));
    assert_eq!(
        assigned(&r),
        vec![(tid(1), vec![0, 1, 2]), (tid(2), vec![0, 1, 2])]
    );
    let d = c.consumer_group_describe(&["g".into()]);
    assert_eq!(d[0].1.as_ref().unwrap().assignor_name, "range");
    ok(&c.consumer_group_heartbeat(
        1,
        ConsumerHeartbeatRequest {
            server_assignor: Some("range".into()),
            ..join_req("g", "m2", &["a", "b"])
        },
    ));
    let d = c.consumer_group_describe(&["g".into()]);
    let m2 = &d[0].1.as_ref().unwrap().members[1];
    let target: Vec<(String, Vec<i32>)> = m2
        .target_assignment
        .iter()
        .map(|t| (t.topic_name.clone(), t.partitions.clone()))
        .collect();
    assert_eq!(target, vec![("a".into(), vec![2]), ("b".into(), vec![2])]);
}

#[test]
fn regex_subscription_follows_topic_metadata() {
    let mut c = coordinator();
    let _ = c.set_topic_metadata(
        0,
        image(&[
            ("orders-1", 1, 1),
            ("orders-2", 2, 2),
            ("other", 3, 1),
            ("__consumer_offsets", 4, 50),
        ]),
    );
    let r = ok(&c.consumer_group_heartbeat(
        0,
        ConsumerHeartbeatRequest {
            subscribed_topic_names: None,
            subscribed_topic_regex: Some("orders-.*|__.*".into()),
            ..join_req("g", "m1", &[])
        },
    ));
    assert_eq!(assigned(&r), vec![(tid(1), vec![0]), (tid(2), vec![0, 1])]);
    // A new matching topic bumps the group epoch; the next heartbeat gets it.
    let out = c.set_topic_metadata(
        10,
        image(&[
            ("orders-1", 1, 1),
            ("orders-2", 2, 2),
            ("orders-3", 5, 1),
            ("other", 3, 1),
        ]),
    );
    assert_eq!(out.records.len(), 2, "partition metadata and group epoch");
    assert_eq!(c.group_state("g"), Some(GroupState::Assigning));
    let r =
        ok(&c.consumer_group_heartbeat(20, owned_req("g", "m1", 1, &[(1, &[0]), (2, &[0, 1])])));
    assert_eq!(r.member_epoch, 2);
    assert_eq!(
        assigned(&r),
        vec![(tid(1), vec![0]), (tid(2), vec![0, 1]), (tid(5), vec![0])]
    );
    // A non-matching topic changes nothing.
    let mut img = c.topic_metadata().clone();
    img.insert(
        "unrelated".into(),
        TopicInfo {
            topic_id: tid(9),
            partitions: 1,
        },
    );
    assert!(c.set_topic_metadata(30, img).is_noop());
}

#[test]
fn new_partitions_bump_the_group_epoch_and_reassign() {
    let mut c = setup();
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"])));
    let out = c.set_topic_metadata(5, image(&[("a", 1, 5)]));
    assert_eq!(out.records.len(), 2);
    assert_eq!(c.generation("g"), Some(2));
    let r = ok(&c.consumer_group_heartbeat(6, owned_req("g", "m1", 1, &[(1, &[0, 1, 2])])));
    assert_eq!(r.member_epoch, 2);
    assert_eq!(assigned(&r), vec![(tid(1), vec![0, 1, 2, 3, 4])]);
    // Topic deleted: the partitions are revoked.
    let _ = c.set_topic_metadata(7, TopicImage::new());
    let r = ok(&c.consumer_group_heartbeat(8, owned_req("g", "m1", 2, &[(1, &[0, 1, 2, 3, 4])])));
    assert_eq!((r.member_epoch, assigned(&r)), (2, vec![]));
    let r = ok(&c.consumer_group_heartbeat(9, owned_req("g", "m1", 2, &[])));
    assert_eq!(r.member_epoch, 3);
}

#[test]
fn static_member_leaves_temporarily_and_is_replaced() {
    let mut c = setup();
    let static_join = |member: &str| ConsumerHeartbeatRequest {
        instance_id: Some("i1".into()),
        ..join_req("g", member, &["a"])
    };
    ok(&c.consumer_group_heartbeat(0, static_join("m1")));
    // Another member may not take the instance id while it is in use.
    let out = c.consumer_group_heartbeat(1, static_join("m2"));
    assert_eq!(out.response, Err(GroupError::UnreleasedInstanceId));
    let r = ok(&c.consumer_group_heartbeat(
        2,
        ConsumerHeartbeatRequest {
            instance_id: Some("i1".into()),
            ..req("g", "m1", -2)
        },
    ));
    assert_eq!(r.member_epoch, -2);
    assert_eq!(c.generation("g"), Some(1), "no rebalance");
    // The restarted instance comes back with a new id and the same partitions.
    let r = ok(&c.consumer_group_heartbeat(3, static_join("m2")));
    assert_eq!(r.member_epoch, 1);
    assert_eq!(assigned(&r), vec![(tid(1), vec![0, 1, 2])]);
    assert_eq!(c.member_ids("g"), vec!["m2".to_owned()]);
    assert_eq!(c.generation("g"), Some(1));
    // The old id is fenced.
    let out = c.consumer_group_heartbeat(
        4,
        ConsumerHeartbeatRequest {
            instance_id: Some("i1".into()),
            ..req("g", "m1", 1)
        },
    );
    assert_eq!(out.response, Err(GroupError::FencedInstanceId));
}

/// Encodes and decodes every record, as a trip through the log would.
fn through_the_log(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|r| Record::decode(&r.encode_key(), r.encode_value().as_deref()).unwrap())
        .collect()
}

#[test]
fn records_round_trip_and_replay_rebuilds_the_group() {
    let mut c = coordinator();
    let mut log = vec![];
    log.extend(
        c.set_topic_metadata(0, image(&[("a", 1, 3), ("b", 2, 2)]))
            .records,
    );
    heartbeat(&mut c, 0, join_req("g", "m1", &["a", "b"]), &mut log);
    heartbeat(
        &mut c,
        1,
        ConsumerHeartbeatRequest {
            instance_id: Some("inst".into()),
            rack_id: Some("r1".into()),
            ..join_req("g", "m2", &["a"])
        },
        &mut log,
    );
    heartbeat(
        &mut c,
        2,
        owned_req("g", "m1", 1, &[(1, &[0, 1, 2]), (2, &[0, 1])]),
        &mut log,
    );
    heartbeat(
        &mut c,
        3,
        ConsumerHeartbeatRequest {
            subscribed_topic_regex: Some("b".into()),
            ..join_req("h", "x", &[])
        },
        &mut log,
    );
    heartbeat(&mut c, 4, req("h", "x", -1), &mut log);
    // m1 must still revoke a-1 and a-2 (it stays at epoch 1 meanwhile).
    let commit = c.commit_offsets(5, commit_req("g", "m1", 1, 9));
    assert_eq!(commit.response[0].1[0].error, None);
    log.extend(commit.records);
    assert!(log.iter().any(Record::is_tombstone));

    let decoded = through_the_log(&log);
    assert_eq!(decoded, log, "every record decodes to itself");

    let mut replayed = coordinator();
    let _ = replayed.set_topic_metadata(100, c.topic_metadata().clone());
    for r in decoded {
        replayed.replay(r);
    }
    let out = replayed.on_loaded(100);
    assert!(out.records.is_empty(), "metadata unchanged: no new epoch");
    let strip = |c: &GroupCoordinator| {
        let mut groups = c.consumer_groups.clone();
        for g in groups.values_mut() {
            for m in g.members.values_mut() {
                m.session_deadline_ms = None;
                m.rebalance_deadline = None;
            }
        }
        groups
    };
    assert_eq!(strip(&replayed), strip(&c));
    assert_eq!(replayed.list_groups(&[]), c.list_groups(&[]));
    assert_eq!(
        replayed.consumer_group_describe(&["g".into(), "h".into()]),
        c.consumer_group_describe(&["g".into(), "h".into()])
    );
    assert_eq!(
        replayed.fetch_offsets("g", None),
        c.fetch_offsets("g", None)
    );
    // Timers restart at load: m1, still revoking, has its rebalance timeout.
    assert_eq!(replayed.next_deadline(), Some(100 + 30_000));
    let d = replayed.consumer_group_describe(&["g".into()]);
    assert_eq!(d[0].1.as_ref().unwrap().state, GroupState::Reconciling);
}

#[test]
fn consumer_record_bytes_match_kafka() {
    let r = Record::ConsumerGroupMetadata {
        group: "g".into(),
        epoch: Some(5),
    };
    assert_eq!(&r.encode_key()[..], &[0, 3, 0, 1, b'g']);
    // version 0, epoch, empty tagged fields.
    assert_eq!(&r.encode_value().unwrap()[..], &[0, 0, 0, 0, 0, 5, 0]);
    let r = Record::ConsumerGroupTargetAssignmentMember {
        group: "g".into(),
        member: "m".into(),
        partitions: Some(vec![crate::records::TopicPartitions {
            topic_id: tid(0x0102),
            partitions: vec![7],
        }]),
    };
    assert_eq!(&r.encode_key()[..], &[0, 7, 0, 1, b'g', 0, 1, b'm']);
    let mut expected = vec![0, 0, 2];
    expected.extend_from_slice(tid(0x0102).as_bytes());
    expected.extend_from_slice(&[2, 0, 0, 0, 7, 0, 0]);
    assert_eq!(&r.encode_value().unwrap()[..], &expected[..]);
    let tomb = Record::ConsumerGroupMemberMetadata {
        group: "g".into(),
        member: "m".into(),
        value: None,
    };
    assert_eq!(tomb.encode_value(), None);
    assert_eq!(Record::decode(&tomb.encode_key(), None).unwrap(), tomb);
}

fn commit_req(group: &str, member: &str, epoch: i32, version: i16) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        generation_id: epoch,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        api_version: version,
        topics: vec![(
            "a".into(),
            vec![CommitPartition {
                partition: 0,
                offset: 10,
                leader_epoch: -1,
                metadata: None,
            }],
        )],
    }
}

#[test]
fn offset_commit_and_fetch_check_the_member_epoch() {
    let mut c = setup();
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"])));
    let error = |out: Output<crate::TopicResults>| out.response[0].1[0].error;
    assert_eq!(
        error(c.commit_offsets(1, commit_req("g", "m1", 1, 9))),
        None
    );
    ok(&c.consumer_group_heartbeat(2, join_req("g", "m2", &["a"])));
    ok(&c.consumer_group_heartbeat(3, owned_req("g", "m1", 1, &[(1, &[0, 1])])));
    // m1 is at epoch 2 now.
    assert_eq!(
        error(c.commit_offsets(4, commit_req("g", "m1", 1, 9))),
        Some(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        error(c.commit_offsets(4, commit_req("g", "m1", 2, 9))),
        None
    );
    assert_eq!(
        error(c.commit_offsets(4, commit_req("g", "zz", 2, 9))),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        error(c.commit_offsets(4, commit_req("g", "", -1, 9))),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        error(c.commit_offsets(4, commit_req("g", "m1", 2, 8))),
        Some(GroupError::UnsupportedVersion)
    );

    assert_eq!(
        c.fetch_offsets_checked("g", Some("m1"), 1, None),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        c.fetch_offsets_checked("g", Some("zz"), 1, None),
        Err(GroupError::UnknownMemberId)
    );
    let fetched = c.fetch_offsets_checked("g", Some("m1"), 2, None).unwrap();
    assert_eq!(fetched[0].1[0].offset, 10);
    assert!(c.fetch_offsets_checked("g", None, -1, None).is_ok());

    // Once empty, admin commits (epoch -1) are accepted.
    ok(&c.consumer_group_heartbeat(5, req("g", "m1", -1)));
    ok(&c.consumer_group_heartbeat(5, req("g", "m2", -1)));
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(error(c.commit_offsets(6, commit_req("g", "", -1, 9))), None);
    assert!(
        c.is_consumer_group("g"),
        "no simple classic group was created"
    );
}

#[test]
fn list_describe_and_delete() {
    let mut c = setup();
    ok(&c.consumer_group_heartbeat(0, join_req("g", "m1", &["a"])));
    let (_, _) = stable_group(&mut c, "classic", &["x"]);
    let listed = c.list_groups(&[]);
    assert_eq!(listed.len(), 2);
    let g = listed.iter().find(|l| l.group_id == "g").unwrap();
    assert_eq!(
        (g.group_type, g.protocol_type.as_str(), g.state),
        ("consumer", "consumer", GroupState::Stable)
    );
    assert_eq!(c.list_groups(&[GroupState::Reconciling]), vec![]);
    // DescribeGroups does not describe consumer groups (GROUP_ID_NOT_FOUND).
    assert_eq!(c.describe_group("g"), None);
    let d = c.consumer_group_describe(&["g".into(), "classic".into(), String::new()]);
    let g = d[0].1.as_ref().unwrap();
    assert_eq!(
        (
            g.state,
            g.group_epoch,
            g.assignment_epoch,
            g.assignor_name.as_str()
        ),
        (GroupState::Stable, 1, 1, "uniform")
    );
    assert_eq!(g.members[0].assignment[0].topic_name, "a");
    assert_eq!(g.members[0].assignment[0].partitions, vec![0, 1, 2]);
    assert_eq!(d[1].1, Err(GroupError::GroupIdNotFound));
    assert_eq!(d[2].1, Err(GroupError::InvalidGroupId));

    let out = c.delete_groups(&["g".into()]);
    assert_eq!(out.response[0].1, Some(GroupError::NonEmptyGroup));
    ok(&c.consumer_group_heartbeat(1, req("g", "m1", -1)));
    let out = c.delete_groups(&["g".into()]);
    assert_eq!(out.response[0].1, None);
    assert!(out.records.iter().all(Record::is_tombstone));
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn empty_groups_convert_between_classic_and_consumer() {
    let mut c = setup();
    // A simple (empty classic) group with an offset.
    let out = c.commit_offsets(0, commit_req("g", "", -1, 9));
    assert_eq!(out.response[0].1[0].error, None);
    let out = c.consumer_group_heartbeat(1, join_req("g", "m1", &["a"]));
    ok(&out);
    assert_eq!(
        out.records[0],
        Record::GroupMetadata {
            group: "g".into(),
            value: None
        }
    );
    assert!(c.is_consumer_group("g"));
    assert_eq!(
        c.fetch_offsets("g", None)[0].1[0].offset,
        10,
        "offsets stay"
    );
    // A classic member joining the non-empty consumer group is served
    // inside it (online migration; see tests::migration).
    let out = c.join_group(2, 1, super::join_req("g", "", "classic"));
    assert_eq!(
        join_answer(&out, 1).error,
        Some(GroupError::MemberIdRequired)
    );
    assert!(c.is_consumer_group("g"));
    // Once empty, a classic join turns it back into a classic group.
    ok(&c.consumer_group_heartbeat(3, req("g", "m1", -1)));
    let out = c.join_group(4, 2, super::join_req("g", "", "classic"));
    assert_eq!(
        join_answer(&out, 2).error,
        Some(GroupError::MemberIdRequired)
    );
    assert!(!c.is_consumer_group("g"));
    assert!(out.records.iter().filter(|r| r.is_tombstone()).count() >= 3);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    // A non-empty classic group whose assignments are not the embedded
    // consumer protocol cannot be upgraded online.
    let (_, _) = stable_group(&mut c, "busy", &["x"]);
    let out = c.consumer_group_heartbeat(FORMED_MS, join_req("busy", "m1", &["a"]));
    assert_eq!(out.response, Err(GroupError::GroupIdNotFound));
}
