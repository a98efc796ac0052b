//! Scenario tests of the coordinator with injected time: every input
//! carries `now_ms`, and assertions look only at outputs and at the
//! public inspection methods. No sleeps, no runtime.

mod classic;
mod consumer;
mod membership;
mod migration;
mod offsets;
mod replay;
mod wire;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::{
    Effect, GroupConfig, GroupCoordinator, GroupError, JoinRequest, JoinResponse, Output, Protocol,
    ResponseToken, SyncRequest, SyncResponse,
};

pub(crate) const SESSION_MS: i32 = 10_000;
pub(crate) const REBALANCE_MS: i32 = 30_000;
pub(crate) const DELAY_MS: i64 = 3_000;
/// When a group whose members all join at time 0 has formed: a second
/// joiner during `group.initial.rebalance.delay.ms` extends the delay once.
pub(crate) const FORMED_MS: i64 = 2 * DELAY_MS;

pub(crate) fn coordinator() -> GroupCoordinator {
    coordinator_with(GroupConfig::default())
}

pub(crate) fn coordinator_with(config: GroupConfig) -> GroupCoordinator {
    let mut n = 0u32;
    GroupCoordinator::with_uuid_source(
        config,
        Box::new(move || {
            n += 1;
            format!("u{n}")
        }),
    )
}

/// ConsumerProtocolSubscription v0 with its version prefix, as a consumer
/// sends it in JoinGroup.
pub(crate) fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string((*t).to_owned()))
                .collect(),
        )
        .encode(&mut buf, 0)
        .unwrap();
    buf.freeze()
}

pub(crate) fn join_req(group: &str, member_id: &str, client: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: subscription(&["t"]),
        }],
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        client_id: client.into(),
        client_host: "/127.0.0.1".into(),
        api_version: 9,
    }
}

pub(crate) fn static_join_req(group: &str, member_id: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        ..join_req(group, member_id, instance)
    }
}

pub(crate) fn sync_req(
    group: &str,
    member_id: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| ((*m).to_owned(), Bytes::copy_from_slice(a)))
            .collect(),
    }
}

/// The JoinGroup answers in an output, by token.
pub(crate) fn joins<T>(out: &Output<T>) -> Vec<(ResponseToken, JoinResponse)> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::CompleteJoin { token, response } => Some((*token, response.clone())),
            _ => None,
        })
        .collect()
}

/// The SyncGroup answers in an output, by token.
pub(crate) fn syncs<T>(out: &Output<T>) -> Vec<(ResponseToken, SyncResponse)> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::CompleteSync { token, response } => Some((*token, response.clone())),
            _ => None,
        })
        .collect()
}

/// The single JoinGroup answer for `token` in `out`.
pub(crate) fn join_answer<T>(out: &Output<T>, token: ResponseToken) -> JoinResponse {
    let mut found = joins(out).into_iter().filter(|(t, _)| *t == token);
    let (_, r) = found
        .next()
        .unwrap_or_else(|| panic!("no join answer for token {token}: {:?}", out.effects));
    assert!(found.next().is_none(), "two answers for token {token}");
    r
}

pub(crate) fn sync_answer<T>(out: &Output<T>, token: ResponseToken) -> SyncResponse {
    let mut found = syncs(out).into_iter().filter(|(t, _)| *t == token);
    let (_, r) = found
        .next()
        .unwrap_or_else(|| panic!("no sync answer for token {token}: {:?}", out.effects));
    assert!(found.next().is_none(), "two answers for token {token}");
    r
}

/// KIP-394 two-step join: the first JoinGroup gets MEMBER_ID_REQUIRED and
/// an id, the second (parked under `token`) uses it. Returns the id and the
/// output of the second join.
pub(crate) fn join_with_id(
    c: &mut GroupCoordinator,
    now: i64,
    token: ResponseToken,
    group: &str,
    client: &str,
) -> (String, Output) {
    let first = c.join_group(now, 0, join_req(group, "", client));
    let r = join_answer(&first, 0);
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    let out = c.join_group(now, token, join_req(group, &r.member_id, client));
    (r.member_id, out)
}

/// Forms a Stable group of `clients` (joining at time 0); returns the
/// member ids in join order and the time the group became Stable. The
/// leader assigns `[i]` to the i-th member.
pub(crate) fn stable_group(
    c: &mut GroupCoordinator,
    group: &str,
    clients: &[&str],
) -> (Vec<String>, i64) {
    let mut ids = vec![];
    for (i, client) in clients.iter().enumerate() {
        let (id, out) = join_with_id(c, 0, 100 + i as u64, group, client);
        assert!(
            joins(&out).is_empty(),
            "initial rebalance waits for its delay"
        );
        ids.push(id);
    }
    let out = c.tick(FORMED_MS);
    assert_eq!(joins(&out).len(), clients.len());
    let leader = c.leader(group).unwrap();
    let assignments: Vec<(String, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), vec![i as u8]))
        .collect();
    let refs: Vec<(&str, &[u8])> = assignments
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_slice()))
        .collect();
    // Followers first, so their SyncGroups are parked until the leader's.
    for (i, id) in ids.iter().enumerate().filter(|(_, id)| **id != leader) {
        let out = c.sync_group(FORMED_MS, 200 + i as u64, sync_req(group, id, 1, &[]));
        assert!(out.is_noop(), "followers wait for the leader");
    }
    let i = ids.iter().position(|id| *id == leader).unwrap();
    let out = c.sync_group(
        FORMED_MS,
        200 + i as u64,
        sync_req(group, &leader, 1, &refs),
    );
    assert_eq!(syncs(&out).len(), clients.len());
    assert_eq!(out.records.len(), 1, "the assignment is persisted");
    assert_eq!(c.group_state(group), Some(crate::GroupState::Stable));
    (ids, FORMED_MS)
}
