//! Online migration between the classic and the consumer protocol with
//! injected time: a classic group upgraded by a joining KIP-848 member,
//! classic members reconciled through JoinGroup/SyncGroup/Heartbeat inside
//! the consumer group, their timers, offsets, replay, and the downgrade
//! when the last KIP-848 member leaves.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

use super::*;
use crate::consumer::embedded::{decode_assignment, encode_assignment};
use crate::consumer::{Assignment, ConsumerHeartbeatRequest, TopicImage, TopicInfo};
use crate::{
    CommitPartition, CommitRequest, GroupState, HeartbeatRequest, LeaveRequest, LeavingMember,
    MigrationPolicy, Record,
};

const TOPIC_ID: Uuid = Uuid::from_u128(1);

fn topics() -> TopicImage {
    let mut image = TopicImage::new();
    image.insert(
        "a".into(),
        TopicInfo {
            topic_id: TOPIC_ID,
            partitions: 4,
        },
    );
    image
}

/// ConsumerProtocolSubscription v1 (with owned partitions) for topic "a".
fn subscription_owning(owned: &[i32]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("a")])
        .with_owned_partitions(vec![TopicPartition::default()
            .with_topic(StrBytes::from_static_str("a").into())
            .with_partitions(owned.to_vec())])
        .encode(&mut buf, 1)
        .unwrap();
    buf.freeze()
}

fn classic_join(member: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: subscription_owning(owned),
        }],
        ..join_req("g", member, member)
    }
}

fn assignment_of(partitions: &[i32]) -> Bytes {
    let mut a = Assignment::new();
    a.insert(TOPIC_ID, partitions.iter().copied().collect());
    encode_assignment(&a, &topics(), 1)
}

fn partitions_in(bytes: &Bytes) -> BTreeSet<i32> {
    decode_assignment(bytes)
        .unwrap()
        .into_iter()
        .flat_map(|(_, ps)| ps)
        .collect()
}

fn hb(member: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
    }
}

fn consumer_join(member: &str) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["a".into()]),
        subscribed_topic_regex: None,
        server_assignor: None,
        topic_partitions: Some(vec![]),
        client_id: "kip848".into(),
        client_host: "/127.0.0.1".into(),
        api_version: 1,
    }
}

fn consumer_hb(member: &str, epoch: i32, owned: &[i32]) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        subscribed_topic_names: None,
        topic_partitions: Some(vec![(TOPIC_ID, owned.to_vec())]),
        ..consumer_join(member)
    }
}

/// A Stable classic group "g" of m1 (partitions 0, 1) and m2 (2, 3) at
/// generation 1, whose members' assignments are real consumer-protocol
/// bytes. Returns the coordinator, the member ids and the time.
fn stable_classic_group(config: GroupConfig) -> (GroupCoordinator, [String; 2], i64) {
    let mut c = coordinator_with(config);
    assert!(c.set_topic_metadata(0, topics()).is_noop());
    let mut ids = vec![];
    for (i, client) in ["m1", "m2"].iter().enumerate() {
        let first = c.join_group(0, 0, classic_join("", &[]));
        let id = join_answer(&first, 0).member_id;
        let out = c.join_group(
            0,
            10 + i as u64,
            JoinRequest {
                client_id: (*client).into(),
                ..classic_join(&id, &[])
            },
        );
        assert!(joins(&out).is_empty());
        ids.push(id);
    }
    let out = c.tick(FORMED_MS);
    assert_eq!(joins(&out).len(), 2);
    let leader = c.leader("g").unwrap();
    let follower = ids.iter().find(|id| **id != leader).unwrap().clone();
    let a0 = assignment_of(&[0, 1]);
    let a1 = assignment_of(&[2, 3]);
    assert!(c
        .sync_group(FORMED_MS, 20, sync_req("g", &follower, 1, &[]))
        .is_noop());
    let refs: Vec<(&str, &[u8])> = vec![(ids[0].as_str(), &a0[..]), (ids[1].as_str(), &a1[..])];
    let out = c.sync_group(FORMED_MS, 21, sync_req("g", &leader, 1, &refs));
    assert_eq!(syncs(&out).len(), 2);
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    (c, [ids[0].clone(), ids[1].clone()], FORMED_MS)
}

fn owned_by(c: &GroupCoordinator) -> BTreeMap<String, (bool, Vec<i32>)> {
    let d = c
        .consumer_group_describe(&["g".into()])
        .remove(0)
        .1
        .unwrap();
    d.members
        .into_iter()
        .map(|m| {
            let ps = m
                .assignment
                .iter()
                .flat_map(|t| t.partitions.clone())
                .collect();
            (m.member_id, (m.uses_classic_protocol, ps))
        })
        .collect()
}

/// Drives classic member `id` through rejoin + sync until the coordinator
/// stops asking it to rejoin; returns its generation and partitions.
fn reconcile_classic(
    c: &mut GroupCoordinator,
    now: i64,
    id: &str,
    mut owned: Vec<i32>,
) -> (i32, Vec<i32>) {
    for round in 0..5 {
        let token = 1000 + round;
        let out = c.join_group(now, token, classic_join(id, &owned));
        let j = join_answer(&out, token);
        assert_eq!(j.error, None, "{j:?}");
        assert_eq!(j.leader, "", "nobody leads inside a consumer group");
        assert!(j.members.is_empty());
        assert_eq!(j.protocol_name.as_deref(), Some("range"));
        let out = c.sync_group(now, token + 100, sync_req("g", id, j.generation_id, &[]));
        let s = sync_answer(&out, token + 100);
        assert_eq!(s.error, None);
        owned = partitions_in(&s.assignment).into_iter().collect();
        match c.heartbeat(now, &hb(id, j.generation_id)) {
            Ok(()) => return (j.generation_id, owned),
            Err(GroupError::RebalanceInProgress) => continue,
            Err(e) => panic!("unexpected heartbeat error {e:?}"),
        }
    }
    panic!("member {id} did not converge");
}

#[test]
fn a_consumer_member_upgrades_a_stable_classic_group_online() {
    let (mut c, [m1, m2], now) = stable_classic_group(GroupConfig::default());
    let out = c.consumer_group_heartbeat(now, consumer_join("c1"));
    let r = out.response.clone().unwrap();
    assert!(c.is_consumer_group("g"));
    assert_eq!(
        out.records[0],
        Record::GroupMetadata {
            group: "g".into(),
            value: None
        },
        "the classic group is tombstoned first"
    );
    // Generation 1 carried over, then the join bumped it.
    assert_eq!(r.member_epoch, 2);
    assert_eq!(
        r.assignment,
        Some(vec![]),
        "every partition is still owned by a classic member"
    );
    let d = owned_by(&c);
    assert_eq!(d[&m1], (true, vec![0, 1]));
    assert_eq!(d[&m2], (true, vec![2, 3]));
    assert_eq!(d["c1"], (false, vec![]));

    // The classic members learn of the new epoch through heartbeats.
    assert_eq!(
        c.heartbeat(now + 1, &hb(&m1, 1)),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        c.heartbeat(now + 1, &hb(&m1, 7)),
        Err(GroupError::IllegalGeneration)
    );
    let (g1, p1) = reconcile_classic(&mut c, now + 2, &m1, vec![0, 1]);
    let (g2, p2) = reconcile_classic(&mut c, now + 3, &m2, vec![2, 3]);
    assert_eq!((g1, g2), (2, 2));
    // The KIP-848 member picks up what the classic members released.
    let owned_c1: Vec<i32> = vec![];
    let r = c
        .consumer_group_heartbeat(now + 4, consumer_hb("c1", 2, &owned_c1))
        .response
        .unwrap();
    let pc: Vec<i32> = r
        .assignment
        .map(|a| a.into_iter().flat_map(|(_, ps)| ps).collect())
        .unwrap_or_default();
    let mut all: Vec<i32> = p1.iter().chain(&p2).chain(&pc).copied().collect();
    all.sort();
    assert_eq!(
        all,
        vec![0, 1, 2, 3],
        "disjoint and complete: {p1:?} {p2:?} {pc:?}"
    );
    assert!(!pc.is_empty() && !p1.is_empty() && !p2.is_empty());
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    // A classic member in a consumer group commits with its generation
    // (any OffsetCommit version); a stale one is ILLEGAL_GENERATION.
    let commit = |generation, version| CommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: m1.clone(),
        group_instance_id: None,
        retention_time_ms: -1,
        api_version: version,
        topics: vec![(
            "a".into(),
            vec![CommitPartition {
                partition: p1[0],
                offset: 5,
                leader_epoch: -1,
                metadata: None,
            }],
        )],
    };
    let out = c.commit_offsets(now + 5, commit(2, 7));
    assert_eq!(out.response[0].1[0].error, None);
    let out = c.commit_offsets(now + 5, commit(1, 7));
    assert_eq!(
        out.response[0].1[0].error,
        Some(GroupError::IllegalGeneration)
    );
}

#[test]
fn parked_classic_requests_are_told_to_rejoin_when_the_group_upgrades() {
    let (mut c, [m1, _m2], now) = stable_classic_group(GroupConfig::default());
    // m1 rejoins (leader-style rebalance): the group prepares a rebalance
    // and parks m1's JoinGroup.
    let out = c.join_group(now, 50, classic_join(&m1, &[0, 1]));
    assert!(joins(&out).is_empty());
    let out = c.consumer_group_heartbeat(now + 1, consumer_join("c1"));
    assert!(out.response.is_ok());
    assert_eq!(
        join_answer(&out, 50).error,
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn upgrades_need_the_consumer_protocol_and_the_policy() {
    let config = GroupConfig {
        group_consumer_migration_policy: MigrationPolicy::Downgrade,
        ..GroupConfig::default()
    };
    let (mut c, _, now) = stable_classic_group(config);
    let out = c.consumer_group_heartbeat(now, consumer_join("c1"));
    assert_eq!(out.response, Err(GroupError::GroupIdNotFound));
    assert!(out.records.is_empty() && out.effects.is_empty());
    assert!(!c.is_consumer_group("g"));

    // A group of another protocol type (e.g. Kafka Connect) never upgrades.
    let mut c = coordinator();
    let connect = JoinRequest {
        protocol_type: "connect".into(),
        ..join_req("w", "", "worker")
    };
    let id = join_answer(&c.join_group(0, 0, connect.clone()), 0).member_id;
    let _ = c.join_group(
        0,
        1,
        JoinRequest {
            member_id: id,
            ..connect
        },
    );
    let _ = c.tick(FORMED_MS);
    let mut r = consumer_join("c1");
    r.group_id = "w".into();
    assert_eq!(
        c.consumer_group_heartbeat(FORMED_MS, r).response,
        Err(GroupError::GroupIdNotFound)
    );
}

#[test]
fn classic_joins_to_a_consumer_group_are_checked() {
    let (mut c, [m1, _], now) = stable_classic_group(GroupConfig::default());
    assert!(c
        .consumer_group_heartbeat(now, consumer_join("c1"))
        .response
        .is_ok());
    // KIP-394 still applies.
    let out = c.join_group(now, 1, classic_join("", &[]));
    let r = join_answer(&out, 1);
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    assert!(!r.member_id.is_empty());
    // A protocol no classic member supports.
    let out = c.join_group(
        now,
        2,
        JoinRequest {
            protocols: vec![Protocol {
                name: "roundrobin".into(),
                metadata: subscription_owning(&[]),
            }],
            ..classic_join(&r.member_id, &[])
        },
    );
    assert_eq!(
        join_answer(&out, 2).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    // Subscription bytes that are not the consumer protocol: refused, the
    // group unchanged.
    let members_before = c.member_ids("g");
    for garbage in [&b""[..], &b"\x00"[..], &b"\x00\x01\xff\xff\xff"[..]] {
        let out = c.join_group(
            now,
            9,
            JoinRequest {
                protocols: vec![Protocol {
                    name: "range".into(),
                    metadata: Bytes::copy_from_slice(garbage),
                }],
                ..classic_join(&r.member_id, &[])
            },
        );
        assert_eq!(
            join_answer(&out, 9).error,
            Some(GroupError::InconsistentGroupProtocol),
            "{garbage:?}"
        );
        assert!(out.records.is_empty());
    }
    assert_eq!(c.member_ids("g"), members_before);
    // SyncGroup and Heartbeat from a KIP-848 member id are unknown members.
    let out = c.sync_group(now, 3, sync_req("g", "c1", 2, &[]));
    assert_eq!(
        sync_answer(&out, 3).error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.heartbeat(now, &hb("c1", 2)),
        Err(GroupError::UnknownMemberId)
    );
    // A SyncGroup behind the group epoch must rejoin first.
    let out = c.sync_group(now, 4, sync_req("g", &m1, 1, &[]));
    assert_eq!(
        sync_answer(&out, 4).error,
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn a_classic_member_that_does_not_rejoin_or_sync_in_time_is_fenced() {
    let (mut c, [m1, m2], now) = stable_classic_group(GroupConfig::default());
    let mut c1_epoch = c
        .consumer_group_heartbeat(now, consumer_join("c1"))
        .response
        .unwrap()
        .member_epoch;
    // Everyone heartbeats; m1 is told to rejoin and never does, so it is
    // fenced once its rebalance timeout has passed since it was told.
    let mut keep_alive = |c: &mut GroupCoordinator, t: i64, classic: &[&str]| {
        for id in classic {
            let generation = if *id == m1 {
                1
            } else {
                c.generation("g").unwrap()
            };
            let _ = c.heartbeat(t, &hb(id, generation));
        }
        if let Ok(r) = c
            .consumer_group_heartbeat(t, consumer_hb("c1", c1_epoch, &[]))
            .response
        {
            c1_epoch = r.member_epoch;
        }
        c.tick(t)
    };
    assert_eq!(
        c.heartbeat(now, &hb(&m1, 1)),
        Err(GroupError::RebalanceInProgress)
    );
    let told = now;
    let mut t = now;
    while t + 1_000 < told + i64::from(REBALANCE_MS) {
        t += 1_000;
        let _ = keep_alive(&mut c, t, &[&m1]);
        assert!(c.member_ids("g").contains(&m1), "at {t}");
    }
    let out = c.tick(told + i64::from(REBALANCE_MS));
    assert!(
        !c.member_ids("g").contains(&m1),
        "fenced after the join timeout"
    );
    assert!(!out.records.is_empty());

    // m2 joins, then never sends SyncGroup: fenced once its rebalance
    // timeout has passed since it joined.
    let joined = told + i64::from(REBALANCE_MS) + 1;
    let out = c.join_group(joined, 60, classic_join(&m2, &[2, 3]));
    let generation = join_answer(&out, 60);
    assert_eq!(generation.error, None);
    let mut t = joined;
    while t + 1_000 < joined + i64::from(REBALANCE_MS) {
        t += 1_000;
        let _ = c.heartbeat(t, &hb(&m2, generation.generation_id));
        let _ = keep_alive(&mut c, t, &[]);
        assert!(c.member_ids("g").contains(&m2), "at {t}");
    }
    let _ = c.tick(joined + i64::from(REBALANCE_MS));
    assert!(
        !c.member_ids("g").contains(&m2),
        "fenced after the sync timeout"
    );
    assert_eq!(c.member_ids("g"), vec!["c1".to_owned()]);
}

#[test]
fn classic_members_expire_after_their_own_session_timeout() {
    let (mut c, [m1, m2], now) = stable_classic_group(GroupConfig::default());
    assert!(c
        .consumer_group_heartbeat(now, consumer_join("c1"))
        .response
        .is_ok());
    // Only c1 heartbeats; the classic session (10 s) is far shorter than
    // the consumer one (45 s).
    let _ = c.consumer_group_heartbeat(now + 5_000, consumer_hb("c1", 2, &[]));
    let _ = c.tick(now + i64::from(SESSION_MS) - 1);
    assert_eq!(c.member_ids("g").len(), 3);
    let _ = c.tick(now + i64::from(SESSION_MS));
    let ids = c.member_ids("g");
    assert!(!ids.contains(&m1) && !ids.contains(&m2), "{ids:?}");
    assert!(c.is_consumer_group("g"));
}

#[test]
fn the_last_consumer_member_leaving_downgrades_the_group() {
    let (mut c, [m1, m2], now) = stable_classic_group(GroupConfig::default());
    assert!(c
        .consumer_group_heartbeat(now, consumer_join("c1"))
        .response
        .is_ok());
    let (_, p1) = reconcile_classic(&mut c, now + 1, &m1, vec![0, 1]);
    let (_, p2) = reconcile_classic(&mut c, now + 2, &m2, vec![2, 3]);
    let epoch = c.generation("g").unwrap();
    let mut leave = consumer_hb("c1", -1, &[]);
    leave.topic_partitions = None;
    let out = c.consumer_group_heartbeat(now + 3, leave);
    assert!(out.response.is_ok());
    assert!(!c.is_consumer_group("g"), "downgraded");
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(c.generation("g"), Some(epoch));
    let Some(Record::GroupMetadata {
        value: Some(metadata),
        ..
    }) = out.records.last()
    else {
        panic!("the classic group is written last: {:?}", out.records);
    };
    assert_eq!(metadata.members.len(), 2);
    assert_eq!(metadata.protocol.as_deref(), Some("range"));
    let held: BTreeMap<String, BTreeSet<i32>> = metadata
        .members
        .iter()
        .map(|m| (m.member_id.clone(), partitions_in(&m.assignment)))
        .collect();
    assert_eq!(held[&m1], p1.iter().copied().collect());
    assert_eq!(held[&m2], p2.iter().copied().collect());
    assert!(out.records[..out.records.len() - 1]
        .iter()
        .all(Record::is_tombstone));

    // The classic protocol takes over: both rejoin, one leads and assigns.
    assert_eq!(
        c.heartbeat(now + 4, &hb(&m1, epoch)),
        Err(GroupError::RebalanceInProgress)
    );
    let out = c.join_group(now + 4, 70, classic_join(&m1, &[]));
    assert!(joins(&out).is_empty());
    let out = c.join_group(now + 5, 71, classic_join(&m2, &[]));
    assert_eq!(joins(&out).len(), 2);
    let r = join_answer(&out, 70);
    assert_eq!(r.generation_id, epoch + 1);
    assert!(!r.leader.is_empty());
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn without_downgrade_the_group_stays_a_consumer_group() {
    let config = GroupConfig {
        group_consumer_migration_policy: MigrationPolicy::Upgrade,
        ..GroupConfig::default()
    };
    let (mut c, [m1, m2], now) = stable_classic_group(config);
    assert!(c
        .consumer_group_heartbeat(now, consumer_join("c1"))
        .response
        .is_ok());
    let mut leave = consumer_hb("c1", -1, &[]);
    leave.topic_partitions = None;
    assert!(c.consumer_group_heartbeat(now + 1, leave).response.is_ok());
    assert!(c.is_consumer_group("g"));
    assert_eq!(c.member_ids("g"), {
        let mut v = vec![m1.clone(), m2.clone()];
        v.sort();
        v
    });
    // Classic members leaving through LeaveGroup empty it.
    let out = c.leave_group(
        now + 2,
        LeaveRequest {
            group_id: "g".into(),
            members: vec![
                LeavingMember {
                    member_id: m1.clone(),
                    group_instance_id: None,
                },
                LeavingMember {
                    member_id: "nobody".into(),
                    group_instance_id: None,
                },
            ],
        },
    );
    assert_eq!(out.response.members[0].1, None);
    assert_eq!(out.response.members[1].1, Some(GroupError::UnknownMemberId));
    assert_eq!(c.member_ids("g"), vec![m2]);
}

#[test]
fn an_upgraded_group_replays_with_its_classic_members() {
    let (mut c, [m1, _m2], now) = stable_classic_group(GroupConfig::default());
    let mut log: Vec<Record> = vec![];
    // The classic group's own record, as the log would hold it.
    let classic = c.describe_group("g").unwrap();
    assert_eq!(classic.members.len(), 2);
    let out = c.consumer_group_heartbeat(now, consumer_join("c1"));
    log.extend(out.records.clone());
    let out = c.join_group(now + 1, 5, classic_join(&m1, &[0, 1]));
    log.extend(out.records.clone());
    let before = c.consumer_group_describe(&["g".into()]);

    let mut replayed = coordinator();
    let _ = replayed.set_topic_metadata(0, topics());
    for record in log {
        let bytes = (record.encode_key(), record.encode_value());
        replayed.replay(Record::decode(&bytes.0, bytes.1.as_deref()).unwrap());
    }
    let _ = replayed.on_loaded(now + 2);
    assert_eq!(replayed.consumer_group_describe(&["g".into()]), before);
    // The replayed classic member is served as one.
    let generation = before[0]
        .1
        .as_ref()
        .unwrap()
        .members
        .iter()
        .find(|m| m.member_id == m1)
        .unwrap()
        .member_epoch;
    let out = replayed.sync_group(now + 3, 9, sync_req("g", &m1, generation, &[]));
    assert_ne!(
        sync_answer(&out, 9).error,
        Some(GroupError::UnknownMemberId)
    );
}

#[test]
fn static_members_are_upgraded_one_by_one_without_leaving() {
    // Two static classic members; their instances restart one by one as
    // KIP-848 consumers under the same group.instance.id, without a leave.
    let mut c = coordinator();
    assert!(c.set_topic_metadata(0, topics()).is_noop());
    let mut ids = vec![];
    for (i, instance) in ["i1", "i2"].iter().enumerate() {
        let out = c.join_group(
            0,
            i as u64,
            JoinRequest {
                group_instance_id: Some((*instance).into()),
                ..classic_join("", &[])
            },
        );
        assert!(joins(&out).is_empty());
        ids.push(format!("{instance}-u{}", i + 1));
    }
    let out = c.tick(FORMED_MS);
    let leader = c.leader("g").unwrap();
    for (token, r) in joins(&out) {
        assert_eq!(r.error, None, "{token}");
    }
    let a0 = assignment_of(&[0, 1]);
    let a1 = assignment_of(&[2, 3]);
    let follower = ids.iter().find(|id| **id != leader).unwrap();
    let _ = c.sync_group(
        FORMED_MS,
        10,
        SyncRequest {
            group_instance_id: Some(
                if follower.starts_with("i1") {
                    "i1"
                } else {
                    "i2"
                }
                .into(),
            ),
            ..sync_req("g", follower, 1, &[])
        },
    );
    let refs: Vec<(&str, &[u8])> = vec![(ids[0].as_str(), &a0[..]), (ids[1].as_str(), &a1[..])];
    let out = c.sync_group(
        FORMED_MS,
        11,
        SyncRequest {
            group_instance_id: Some(if leader.starts_with("i1") { "i1" } else { "i2" }.into()),
            ..sync_req("g", &leader, 1, &refs)
        },
    );
    assert_eq!(syncs(&out).len(), 2);

    // Instance i1 comes back speaking the consumer protocol.
    let mut r = consumer_join("k1");
    r.instance_id = Some("i1".into());
    let r = c
        .consumer_group_heartbeat(FORMED_MS + 1, r)
        .response
        .unwrap();
    assert_eq!(
        r.assignment.unwrap(),
        vec![(TOPIC_ID, vec![0, 1])],
        "it keeps i1's partitions"
    );
    let d = owned_by(&c);
    assert_eq!(d.len(), 2);
    assert_eq!(d["k1"], (false, vec![0, 1]));

    // ...and back (a rolling downgrade): i1 restarts as a classic consumer
    // again. It replaces the only KIP-848 member, so the group is classic
    // again at once, without a rebalance, and i1 keeps its partitions.
    let epoch = c.generation("g").unwrap();
    let out = c.join_group(
        FORMED_MS + 2,
        20,
        JoinRequest {
            group_instance_id: Some("i1".into()),
            ..classic_join("", &[0, 1])
        },
    );
    assert!(!c.is_consumer_group("g"), "downgraded");
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    let r = join_answer(&out, 20);
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, epoch);
    let out = c.sync_group(
        FORMED_MS + 3,
        21,
        SyncRequest {
            group_instance_id: Some("i1".into()),
            ..sync_req("g", &r.member_id, r.generation_id, &[])
        },
    );
    let s = sync_answer(&out, 21);
    assert_eq!(s.error, None);
    assert_eq!(partitions_in(&s.assignment), [0, 1].into_iter().collect());
    assert_eq!(c.member_ids("g").len(), 2);
}
