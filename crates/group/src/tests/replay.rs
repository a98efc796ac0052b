//! Loading: replaying the records a coordinator wrote rebuilds its state.

use super::*;
use crate::{CommitPartition, CommitRequest, GroupState, HeartbeatRequest, Record};

/// Encodes and decodes every record, as a trip through the log would.
fn through_the_log(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|r| Record::decode(&r.encode_key(), r.encode_value().as_deref()).unwrap())
        .collect()
}

#[test]
fn replay_rebuilds_groups_members_and_offsets() {
    let mut log = vec![];
    let mut c = coordinator();
    // Collect every record the coordinator asks to persist.
    let (id_a, out) = join_with_id(&mut c, 0, 1, "g", "a");
    log.extend(out.records);
    let out = c.tick(DELAY_MS);
    log.extend(out.records);
    let out = c.sync_group(DELAY_MS, 2, sync_req("g", &id_a, 1, &[(&id_a, b"A")]));
    log.extend(out.records);
    let out = c.commit_offsets(
        DELAY_MS,
        CommitRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: id_a.clone(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 9,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 2,
                    offset: 99,
                    leader_epoch: 3,
                    metadata: Some("m".into()),
                }],
            )],
        },
    );
    log.extend(out.records);
    let _ = c.commit_offsets(
        DELAY_MS,
        crate::CommitRequest {
            group_id: "gone".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 9,
            topics: vec![],
        },
    );
    let out = c.delete_groups(&["gone".into()]);
    log.extend(out.records);

    let mut loaded = coordinator();
    for r in through_the_log(&log) {
        loaded.replay(r);
    }
    assert!(loaded.on_loaded(10_000).is_noop());
    assert_eq!(loaded.group_state("g"), Some(GroupState::Stable));
    assert_eq!(loaded.generation("g"), Some(1));
    assert_eq!(loaded.leader("g"), Some(id_a.clone()));
    assert_eq!(loaded.group_state("gone"), None);
    assert_eq!(loaded.describe_group("g"), c.describe_group("g"));
    assert_eq!(loaded.fetch_offsets("g", None), c.fetch_offsets("g", None));

    // The member carries on against the new coordinator without rejoining,
    // and its session restarts from the load.
    let hb = HeartbeatRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: id_a.clone(),
        group_instance_id: None,
    };
    assert_eq!(loaded.heartbeat(10_001, &hb), Ok(()));
    let out = loaded.sync_group(10_001, 3, sync_req("g", &id_a, 1, &[]));
    assert_eq!(sync_answer(&out, 3).assignment, Bytes::from_static(b"A"));
    assert_eq!(loaded.next_deadline(), Some(10_001 + i64::from(SESSION_MS)));
}

#[test]
fn offsets_without_group_metadata_load_as_a_simple_group() {
    let mut c = coordinator();
    let out = c.commit_offsets(
        0,
        CommitRequest {
            group_id: "s".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 9,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 0,
                    offset: 7,
                    leader_epoch: -1,
                    metadata: None,
                }],
            )],
        },
    );
    let mut loaded = coordinator();
    for r in through_the_log(&out.records) {
        loaded.replay(r);
    }
    assert_eq!(loaded.group_state("s"), Some(GroupState::Empty));
    assert_eq!(loaded.fetch_offsets("s", None), c.fetch_offsets("s", None));
    assert_eq!(loaded.fetch_offsets("s", None)[0].1[0].leader_epoch, -1);
}

#[test]
fn later_records_win_and_tombstones_remove() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a"]);
    let mut c2 = coordinator();
    let out = c.leave_group(
        t,
        crate::LeaveRequest {
            group_id: "g".into(),
            members: vec![crate::LeavingMember {
                member_id: ids[0].clone(),
                group_instance_id: None,
            }],
        },
    );
    // A stale Stable record followed by the Empty one: Empty wins.
    let stale = c2_stable_record(&mut c2);
    c2.replay(stale);
    for r in out.records {
        c2.replay(r);
    }
    assert_eq!(c2.group_state("g"), Some(GroupState::Empty));
    assert_eq!(c2.generation("g"), Some(2));
    c2.replay(Record::GroupMetadata {
        group: "g".into(),
        value: None,
    });
    assert_eq!(c2.group_state("g"), None);
}

fn c2_stable_record(c: &mut GroupCoordinator) -> Record {
    let (id, _) = join_with_id(c, 0, 1, "g", "a");
    let _ = c.tick(DELAY_MS);
    let out = c.sync_group(DELAY_MS, 2, sync_req("g", &id, 1, &[(&id, b"x")]));
    out.records.into_iter().next().unwrap()
}
