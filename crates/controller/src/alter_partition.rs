//! AlterPartition: a partition leader asks the controller to change its
//! ISR (followers caught up or fell behind).

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, MetadataRecord, PartitionImage};
use uuid::Uuid;

use crate::partition_change::{finish, record, Leaders, Target};
use crate::PlanError;

/// AlterPartition from the partition leader (Kafka's AlterPartition v0-3
/// semantics, see `ReplicationControlManager.alterPartition`). Checks, in
/// this order:
///
/// 1. unknown topic or partition -> UNKNOWN_TOPIC_OR_PARTITION;
/// 2. `requester` is not the leader -> NOT_LEADER_OR_FOLLOWER;
/// 3. `leader_epoch` differs (older or newer) -> FENCED_LEADER_EPOCH;
/// 4. `partition_epoch` differs -> INVALID_UPDATE_VERSION;
/// 5. `new_isr` names a broker twice -> INVALID_REQUEST;
/// 6. `new_isr` holds a broker that is not a replica, not registered,
///    fenced or in controlled shutdown -> INELIGIBLE_REPLICA;
/// 7. `new_isr` does not contain the leader -> INVALID_REQUEST.
///
/// On success: the records (empty if the ISR is unchanged) and the
/// partition's state after them, for the response. If a reassignment is in
/// progress and every adding replica is now in the ISR, it completes in
/// the same change (replicas = target order, removing replicas dropped from
/// replicas and ISR, leadership moved to the first usable ISR member of the
/// target if the current leader is being removed); the caller can tell
/// from `state.leader != requester` that it should answer
/// NEW_LEADER_ELECTED where the request version allows.
pub fn plan_alter_partition(
    image: &MetadataImage,
    requester: i32,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[i32],
) -> Result<(Vec<MetadataRecord>, PartitionImage), PlanError> {
    let current = image
        .partition(&topic_id, partition)
        .ok_or_else(|| PlanError::unknown_partition(&topic_id, partition))?;
    let at = || format!("partition {partition} of topic {topic_id}");
    if requester != current.leader {
        return Err(PlanError::new(
            ResponseError::NotLeaderOrFollower,
            format!(
                "broker {requester} is not the leader of {}; the leader is {}",
                at(),
                current.leader
            ),
        ));
    }
    if leader_epoch != current.leader_epoch {
        return Err(PlanError::new(
            ResponseError::FencedLeaderEpoch,
            format!(
                "leader epoch {leader_epoch} of {} is not the current {}",
                at(),
                current.leader_epoch
            ),
        ));
    }
    if partition_epoch != current.partition_epoch {
        return Err(PlanError::new(
            ResponseError::InvalidUpdateVersion,
            format!(
                "partition epoch {partition_epoch} of {} is not the current {}",
                at(),
                current.partition_epoch
            ),
        ));
    }
    if new_isr.iter().collect::<BTreeSet<_>>().len() != new_isr.len() {
        return Err(PlanError::new(
            ResponseError::InvalidRequest,
            format!("the new ISR {new_isr:?} of {} lists a broker twice", at()),
        ));
    }
    if let Some(&b) = new_isr
        .iter()
        .find(|&&b| !current.replicas.contains(&b) || !image.is_usable(b))
    {
        let why = if !current.replicas.contains(&b) {
            "is not a replica"
        } else if image.broker(b).is_none() {
            "is not registered"
        } else if image.broker(b).is_some_and(|b| b.fenced) {
            "is fenced"
        } else {
            "is in controlled shutdown"
        };
        return Err(PlanError::new(
            ResponseError::IneligibleReplica,
            format!("broker {b} in the new ISR of {} {why}", at()),
        ));
    }
    if !new_isr.contains(&current.leader) {
        return Err(PlanError::new(
            ResponseError::InvalidRequest,
            format!(
                "the new ISR {new_isr:?} of {} does not contain the leader {}",
                at(),
                current.leader
            ),
        ));
    }
    let target = Target {
        isr: new_isr.to_vec(),
        ..Target::of(current)
    };
    match finish(current, Leaders::usable(image), current.leader, target) {
        Some(next) => Ok((vec![record(topic_id, partition, next.clone())], next)),
        None => Ok((Vec::new(), current.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use odradek_metadata::NO_LEADER;

    fn image() -> MetadataImage {
        let mut image = cluster(&[(1, Up), (2, Up), (3, Up), (4, Fenced), (5, ShuttingDown)]);
        put_partition(&mut image, 1, 0, state(&[1, 2, 3, 4, 5], &[1, 2], 1));
        put_partition(&mut image, 1, 1, state(&[1, 2], &[2], 2));
        image
    }

    #[test]
    fn checks_in_order() {
        let image = image();
        let t = topic_id(1);
        // (requester, topic, partition, leader_epoch, partition_epoch, isr) -> error
        type Case = (i32, Uuid, i32, i32, i32, &'static [i32], ResponseError);
        let cases: &[Case] = &[
            (
                1,
                topic_id(9),
                0,
                5,
                9,
                &[1],
                ResponseError::UnknownTopicOrPartition,
            ),
            (1, t, 7, 5, 9, &[1], ResponseError::UnknownTopicOrPartition),
            (2, t, 0, 5, 9, &[1], ResponseError::NotLeaderOrFollower),
            (2, t, 0, 4, 8, &[1], ResponseError::NotLeaderOrFollower),
            (1, t, 0, 4, 9, &[1], ResponseError::FencedLeaderEpoch),
            (1, t, 0, 6, 9, &[1], ResponseError::FencedLeaderEpoch),
            (1, t, 0, 4, 8, &[1], ResponseError::FencedLeaderEpoch),
            (1, t, 0, 5, 8, &[1], ResponseError::InvalidUpdateVersion),
            (1, t, 0, 5, 10, &[1], ResponseError::InvalidUpdateVersion),
            (1, t, 0, 5, 9, &[1, 1], ResponseError::InvalidRequest),
            (1, t, 0, 5, 9, &[1, 6], ResponseError::IneligibleReplica),
            (1, t, 0, 5, 9, &[1, 4], ResponseError::IneligibleReplica),
            (1, t, 0, 5, 9, &[1, 5], ResponseError::IneligibleReplica),
            (1, t, 0, 5, 9, &[2, 4], ResponseError::IneligibleReplica),
            (1, t, 0, 5, 9, &[2, 3], ResponseError::InvalidRequest),
            (1, t, 0, 5, 9, &[], ResponseError::InvalidRequest),
        ];
        for &(req, topic, p, le, pe, isr, code) in cases {
            let got = plan_alter_partition(&image, req, topic, p, le, pe, isr);
            assert_eq!(
                got.err().map(|e| e.code),
                Some(code),
                "{req} {p} {le} {pe} {isr:?}"
            );
        }
    }

    #[test]
    fn expand_and_shrink() {
        let image = image();
        let t = topic_id(1);
        // isr -> (records, new isr, partition epoch)
        let cases: &[(&[i32], usize, &[i32], i32)] = &[
            (&[1, 2, 3], 1, &[1, 2, 3], 10),
            (&[1], 1, &[1], 10),
            (&[2, 1], 1, &[2, 1], 10),
            (&[1, 2], 0, &[1, 2], 9),
        ];
        for &(isr, n, want_isr, pe) in cases {
            let (records, state) = plan_alter_partition(&image, 1, t, 0, 5, 9, isr).unwrap();
            assert_eq!(records.len(), n, "{isr:?}");
            assert_eq!((&state.isr[..], state.partition_epoch), (want_isr, pe));
            assert_eq!(
                (state.leader, state.leader_epoch),
                (1, 5),
                "no leader change"
            );
            let after = applied(&image, &records);
            assert_eq!(after.partition(&t, 0), Some(&state));
        }
    }

    #[test]
    fn completes_reassignment() {
        let mut image = cluster(&[(1, Up), (2, Up), (3, Up), (4, Up)]);
        // Moving [1, 2] to [3, 4]; leader 1.
        put_partition(
            &mut image,
            1,
            0,
            reassigning(&[3, 4, 1, 2], &[1, 2], 1, &[3, 4], &[1, 2]),
        );
        let t = topic_id(1);
        // Only 3 caught up: no completion.
        let (_, s) = plan_alter_partition(&image, 1, t, 0, 5, 9, &[1, 2, 3]).unwrap();
        assert_eq!(s.adding_replicas, vec![3, 4]);
        assert_eq!((s.leader, s.leader_epoch), (1, 5));
        // Both caught up: completes, the leader (being removed) hands over to 3.
        let (records, s) = plan_alter_partition(&image, 1, t, 0, 5, 9, &[1, 2, 4, 3]).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (s.replicas.clone(), s.isr.clone(), s.leader),
            (vec![3, 4], vec![4, 3], 3)
        );
        assert!(s.adding_replicas.is_empty() && s.removing_replicas.is_empty());
        assert_eq!((s.leader_epoch, s.partition_epoch), (6, 10));
        assert_ne!(s.leader, NO_LEADER);
    }
}
