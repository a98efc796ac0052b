//! Committed offsets: commit validation, fetch, delete, DeleteGroups and
//! retention.

use super::*;
use crate::{CommitPartition, CommitRequest, GroupState, Record, TopicResults};

fn commit(group: &str, member: &str, generation: i32, parts: &[(&str, i32, i64)]) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        api_version: 9,
        topics: parts
            .iter()
            .map(|(t, p, o)| {
                (
                    (*t).to_owned(),
                    vec![CommitPartition {
                        partition: *p,
                        offset: *o,
                        leader_epoch: 4,
                        metadata: Some("meta".into()),
                    }],
                )
            })
            .collect(),
    }
}

fn errors(results: &TopicResults) -> Vec<Option<GroupError>> {
    results
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| p.error))
        .collect()
}

fn fetch_one(c: &GroupCoordinator, group: &str, topic: &str, partition: i32) -> (i64, i32, String) {
    let res = c.fetch_offsets(group, Some(&[(topic.to_owned(), vec![partition])]));
    let f = &res[0].1[0];
    (f.offset, f.leader_epoch, f.metadata.clone())
}

#[test]
fn standalone_commit_creates_a_simple_group_and_is_fetched() {
    let mut c = coordinator();
    let out = c.commit_offsets(1_000, commit("simple", "", -1, &[("t", 0, 42)]));
    assert_eq!(errors(&out.response), vec![None]);
    match &out.records[..] {
        [Record::OffsetCommit {
            key,
            value: Some(v),
        }] => {
            assert_eq!(
                (key.group.as_str(), key.topic.as_str(), key.partition),
                ("simple", "t", 0)
            );
            assert_eq!(
                (
                    v.offset,
                    v.leader_epoch,
                    v.commit_timestamp,
                    v.expire_timestamp
                ),
                (42, 4, 1_000, -1)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fetch_one(&c, "simple", "t", 0), (42, 4, "meta".into()));
    assert_eq!(c.group_state("simple"), Some(GroupState::Empty));
    assert_eq!(
        c.list_groups(&[])[0].protocol_type,
        "",
        "simple groups have no protocol type"
    );
}

#[test]
fn fetch_of_unknown_group_or_partition_is_minus_one() {
    let mut c = coordinator();
    assert_eq!(fetch_one(&c, "nope", "t", 0), (-1, -1, String::new()));
    let _ = c.commit_offsets(0, commit("g", "", -1, &[("t", 0, 1)]));
    assert_eq!(fetch_one(&c, "g", "t", 1), (-1, -1, String::new()));
    let all = c.fetch_offsets("g", None);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1[0].offset, 1);
    assert!(c.fetch_offsets("nope", None).is_empty());
}

#[test]
fn member_commits_are_checked_against_generation_and_member() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a", "b"]);
    let ok = c.commit_offsets(t, commit("g", &ids[0], 1, &[("t", 0, 5)]));
    assert_eq!(errors(&ok.response), vec![None]);
    let bad_gen = c.commit_offsets(t, commit("g", &ids[0], 0, &[("t", 0, 6)]));
    assert_eq!(
        errors(&bad_gen.response),
        vec![Some(GroupError::IllegalGeneration)]
    );
    assert!(bad_gen.records.is_empty());
    let stranger = c.commit_offsets(t, commit("g", "stranger", 1, &[("t", 0, 6)]));
    assert_eq!(
        errors(&stranger.response),
        vec![Some(GroupError::UnknownMemberId)]
    );
    // Generation -1 without a member id only works for Empty groups.
    let standalone = c.commit_offsets(t, commit("g", "", -1, &[("t", 0, 6)]));
    assert_eq!(
        errors(&standalone.response),
        vec![Some(GroupError::UnknownMemberId)]
    );
    assert_eq!(fetch_one(&c, "g", "t", 0).0, 5);
}

#[test]
fn commit_while_completing_rebalance_is_rebalance_in_progress() {
    let mut c = coordinator();
    let (id, _) = join_with_id(&mut c, 0, 1, "g", "a");
    let _ = c.tick(DELAY_MS);
    let out = c.commit_offsets(DELAY_MS, commit("g", &id, 1, &[("t", 0, 5)]));
    assert_eq!(
        errors(&out.response),
        vec![Some(GroupError::RebalanceInProgress)]
    );
}

#[test]
fn commit_to_unknown_group_with_a_generation_depends_on_version() {
    let mut c = coordinator();
    let out = c.commit_offsets(0, commit("nope", "m", 1, &[("t", 0, 5)]));
    assert_eq!(
        errors(&out.response),
        vec![Some(GroupError::GroupIdNotFound)]
    );
    let mut old = commit("nope", "m", 1, &[("t", 0, 5)]);
    old.api_version = 8;
    let out = c.commit_offsets(0, old);
    assert_eq!(
        errors(&out.response),
        vec![Some(GroupError::IllegalGeneration)]
    );
    assert_eq!(c.group_state("nope"), None);
}

#[test]
fn oversized_metadata_fails_only_its_partition() {
    let mut c = coordinator_with(GroupConfig {
        offset_metadata_max_bytes: 4,
        ..GroupConfig::default()
    });
    let mut req = commit("g", "", -1, &[("t", 0, 1), ("t", 1, 2)]);
    req.topics[0].1[0].metadata = Some("12345".into());
    // Four UTF-16 units although eight UTF-8 bytes: within the limit.
    req.topics[1].1[0].metadata = Some("éééé".into());
    let out = c.commit_offsets(0, req);
    assert_eq!(
        errors(&out.response),
        vec![Some(GroupError::OffsetMetadataTooLarge), None]
    );
    assert_eq!(out.records.len(), 1);
    assert_eq!(fetch_one(&c, "g", "t", 0).0, -1);
    assert_eq!(fetch_one(&c, "g", "t", 1).0, 2);
}

#[test]
fn commit_keeps_the_member_session_alive() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a"]);
    let later = t + i64::from(SESSION_MS) - 1;
    let _ = c.commit_offsets(later, commit("g", &ids[0], 1, &[("t", 0, 5)]));
    let _ = c.tick(t + i64::from(SESSION_MS));
    assert_eq!(c.member_ids("g"), ids, "the commit counted as a heartbeat");
}

#[test]
fn offset_delete_refuses_subscribed_topics_and_deletes_others() {
    let mut c = coordinator();
    let (ids, t) = stable_group(&mut c, "g", &["a"]);
    let _ = c.commit_offsets(t, commit("g", &ids[0], 1, &[("t", 0, 5), ("old", 0, 7)]));
    let out = c.delete_offsets("g", &[("t".into(), vec![0]), ("old".into(), vec![0, 1])]);
    let results = out.response.as_ref().unwrap();
    assert_eq!(
        errors(results),
        vec![Some(GroupError::GroupSubscribedToTopic), None, None]
    );
    assert_eq!(
        out.records.len(),
        1,
        "one tombstone, for the partition that had an offset"
    );
    assert!(
        matches!(&out.records[0], Record::OffsetCommit { value: None, key } if key.topic == "old")
    );
    assert_eq!(fetch_one(&c, "g", "old", 0).0, -1);
    assert_eq!(fetch_one(&c, "g", "t", 0).0, 5);
    assert_eq!(
        c.delete_offsets("nope", &[]).response,
        Err(GroupError::GroupIdNotFound)
    );
}

#[test]
fn offset_delete_on_a_non_consumer_group_needs_it_empty() {
    let mut c = coordinator();
    let mut req = join_req("g", "", "a");
    req.protocol_type = "connect".into();
    req.api_version = 3;
    let _ = c.join_group(0, 1, req);
    assert_eq!(
        c.delete_offsets("g", &[]).response,
        Err(GroupError::NonEmptyGroup)
    );
}

#[test]
fn delete_groups_needs_empty_groups_and_writes_tombstones() {
    let mut c = coordinator();
    stable_group(&mut c, "busy", &["a"]);
    let _ = c.commit_offsets(0, commit("idle", "", -1, &[("t", 0, 1), ("u", 3, 2)]));
    let out = c.delete_groups(&["busy".into(), "idle".into(), "nope".into()]);
    let errs: Vec<_> = out.response.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        errs,
        vec![
            Some(GroupError::NonEmptyGroup),
            None,
            Some(GroupError::GroupIdNotFound)
        ]
    );
    assert_eq!(
        out.records.len(),
        3,
        "two offset tombstones and a group tombstone"
    );
    assert!(
        matches!(out.records.last(), Some(Record::GroupMetadata { value: None, group }) if group == "idle")
    );
    assert_eq!(c.group_state("idle"), None);
    assert_eq!(fetch_one(&c, "idle", "t", 0).0, -1);
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention_from_when_it_emptied() {
    let retention = 60_000;
    let mut c = coordinator_with(GroupConfig {
        offsets_retention_ms: retention,
        ..GroupConfig::default()
    });
    let (ids, t) = stable_group(&mut c, "g", &["a"]);
    let _ = c.commit_offsets(t, commit("g", &ids[0], 1, &[("t", 0, 5)]));
    // While Stable and subscribed to "t", nothing expires.
    assert!(c.expire_offsets(t + 10 * retention).is_noop());
    let emptied = t + 10 * retention;
    let _ = c.leave_group(
        emptied,
        crate::LeaveRequest {
            group_id: "g".into(),
            members: vec![crate::LeavingMember {
                member_id: ids[0].clone(),
                group_instance_id: None,
            }],
        },
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert!(c.expire_offsets(emptied + retention - 1).is_noop());
    let out = c.expire_offsets(emptied + retention);
    // The offset goes, and with it the empty group.
    assert_eq!(out.records.len(), 2);
    assert!(matches!(
        &out.records[0],
        Record::OffsetCommit { value: None, .. }
    ));
    assert!(matches!(
        &out.records[1],
        Record::GroupMetadata { value: None, .. }
    ));
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn simple_group_offsets_expire_by_commit_time_and_tick_runs_the_check() {
    let retention = 60_000;
    let interval = 1_000;
    let mut c = coordinator_with(GroupConfig {
        offsets_retention_ms: retention,
        offsets_retention_check_interval_ms: interval,
        ..GroupConfig::default()
    });
    assert!(c.on_loaded(0).is_noop());
    let _ = c.commit_offsets(0, commit("s", "", -1, &[("t", 0, 1)]));
    let _ = c.commit_offsets(30_000, commit("s", "", -1, &[("t", 1, 1)]));
    let out = c.tick(retention);
    assert_eq!(out.records.len(), 1, "only the older commit expired");
    assert_eq!(fetch_one(&c, "s", "t", 1).0, 1);
    let out = c.tick(30_000 + retention);
    assert_eq!(out.records.len(), 2, "last offset, then the group");
    assert_eq!(c.group_state("s"), None);
}

#[test]
fn explicit_retention_time_sets_an_expire_timestamp() {
    let mut c = coordinator();
    let mut req = commit("s", "", -1, &[("t", 0, 1)]);
    req.retention_time_ms = 5_000;
    req.api_version = 2;
    let out = c.commit_offsets(100, req);
    match &out.records[..] {
        [Record::OffsetCommit { value: Some(v), .. }] => assert_eq!(v.expire_timestamp, 5_100),
        other => panic!("{other:?}"),
    }
    assert!(c.expire_offsets(5_099).is_noop());
    assert_eq!(c.expire_offsets(5_100).records.len(), 2);
}
