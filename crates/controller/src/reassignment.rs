//! AlterPartitionReassignments (KIP-455): moving a partition's replicas.
//!
//! While a reassignment is in progress the partition's `replicas` is the
//! target followed by the replicas being removed, `adding_replicas` the
//! target replicas that were not replicas before, `removing_replicas` the
//! current replicas not in the target. The new replicas fetch from the
//! leader; once every adding replica is in the ISR (reported by the leader
//! through AlterPartition) the reassignment completes: the removing
//! replicas leave the replicas and the ISR, and leadership moves into the
//! target if the leader was being removed.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, MetadataRecord, PartitionImage};
use uuid::Uuid;

use crate::partition_change::{rebuild, record, Leaders, Target};
use crate::PlanError;

/// Whether the partition is being reassigned.
pub fn reassignment_in_progress(partition: &PartitionImage) -> bool {
    !partition.adding_replicas.is_empty() || !partition.removing_replicas.is_empty()
}

/// AlterPartitionReassignments (KIP-455) for one partition.
///
/// `target: Some(replicas)`: validate (non-empty, no duplicates, every
/// broker registered, else INVALID_REPLICA_ASSIGNMENT). If equal to the
/// current replicas and no reassignment is ongoing -> no records. Else
/// replicas = target ++ (current \ target), adding = target \ original,
/// removing = current \ target (original = current replicas minus the
/// adding ones: a new target replaces an ongoing reassignment); ISR
/// unchanged. If every adding replica is already in the ISR (always so
/// when nothing is added) the reassignment completes at once (see
/// [`crate::plan_alter_partition`]) unless that would empty the ISR or
/// leave the partition without a leader, in which case it waits for the
/// ISR to grow.
///
/// `target: None`: cancel. None ongoing -> NO_REASSIGNMENT_IN_PROGRESS;
/// else revert to the original replicas, ISR minus adding, the leader
/// kept if still in the ISR else re-elected. If only adding replicas are
/// in the ISR the revert would need an unclean election, which Kafka
/// refuses with INVALID_REPLICA_ASSIGNMENT; so does this.
///
/// Unknown partition -> UNKNOWN_TOPIC_OR_PARTITION.
pub fn plan_reassignment(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    target: Option<Vec<i32>>,
) -> Result<Vec<MetadataRecord>, PlanError> {
    let current = image
        .partition(&topic_id, partition)
        .ok_or_else(|| PlanError::unknown_partition(&topic_id, partition))?;
    let at = || format!("partition {partition} of topic {topic_id}");
    let invalid = |why: String| Err(PlanError::new(ResponseError::InvalidReplicaAssignment, why));
    let original: Vec<i32> = current
        .replicas
        .iter()
        .copied()
        .filter(|r| !current.adding_replicas.contains(r))
        .collect();
    let leaders = Leaders::usable(image);
    let next = match target {
        Some(target) => {
            if target.is_empty() {
                return invalid(format!("the target replicas of {} are empty", at()));
            }
            if target.iter().collect::<BTreeSet<_>>().len() != target.len() {
                return invalid(format!(
                    "the target replicas {target:?} of {} repeat a broker",
                    at()
                ));
            }
            if let Some(b) = target.iter().find(|&&b| image.broker(b).is_none()) {
                return invalid(format!(
                    "the target replicas of {} include broker {b}, which is not registered",
                    at()
                ));
            }
            if !reassignment_in_progress(current) && target == current.replicas {
                return Ok(Vec::new());
            }
            let removing: Vec<i32> = current
                .replicas
                .iter()
                .copied()
                .filter(|r| !target.contains(r))
                .collect();
            let adding: Vec<i32> = target
                .iter()
                .copied()
                .filter(|r| !original.contains(r))
                .collect();
            let replicas = target.iter().chain(&removing).copied().collect();
            rebuild(
                current,
                leaders,
                Target {
                    isr: current.isr.clone(),
                    replicas,
                    adding,
                    removing,
                },
            )
        }
        None => {
            if !reassignment_in_progress(current) {
                return Err(PlanError::new(
                    ResponseError::NoReassignmentInProgress,
                    format!("no reassignment of {} is in progress", at()),
                ));
            }
            let isr: Vec<i32> = current
                .isr
                .iter()
                .copied()
                .filter(|r| !current.adding_replicas.contains(r))
                .collect();
            if isr.is_empty() {
                return invalid(format!(
                    "cancelling the reassignment of {} would need an unclean leader election: only adding replicas are in sync",
                    at()
                ));
            }
            rebuild(
                current,
                leaders,
                Target {
                    isr,
                    replicas: original,
                    adding: Vec::new(),
                    removing: Vec::new(),
                },
            )
        }
    };
    Ok(next
        .map(|next| record(topic_id, partition, next))
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    fn image(p: PartitionImage) -> MetadataImage {
        let mut image = cluster(&[(1, Up), (2, Up), (3, Up), (4, Up), (5, Fenced)]);
        put_partition(&mut image, 1, 0, p);
        image
    }

    /// (replicas, isr, leader, adding, removing, leader epoch) after the plan.
    type Outcome = (Vec<i32>, Vec<i32>, i32, Vec<i32>, Vec<i32>, i32);

    fn outcome(s: &PartitionImage) -> Outcome {
        (
            s.replicas.clone(),
            s.isr.clone(),
            s.leader,
            s.adding_replicas.clone(),
            s.removing_replicas.clone(),
            s.leader_epoch,
        )
    }

    fn o(r: &[i32], isr: &[i32], l: i32, a: &[i32], rm: &[i32], le: i32) -> Outcome {
        (r.to_vec(), isr.to_vec(), l, a.to_vec(), rm.to_vec(), le)
    }

    #[test]
    fn reassignments() {
        let steady = state(&[1, 2, 3], &[1, 2, 3], 1);
        let moving = reassigning(&[4, 2, 3, 1], &[1, 2, 3], 1, &[4], &[1]);
        let caught_up = reassigning(&[4, 2, 3, 1], &[1, 2, 3, 4], 1, &[4], &[1]);
        type Case = (
            PartitionImage,
            Option<Vec<i32>>,
            Result<Option<Outcome>, ResponseError>,
        );
        let cases: Vec<Case> = vec![
            // same replicas, nothing ongoing: no records
            (steady.clone(), Some(vec![1, 2, 3]), Ok(None)),
            // replace 1 by 4: starts
            (
                steady.clone(),
                Some(vec![4, 2, 3]),
                Ok(Some(o(&[4, 2, 3, 1], &[1, 2, 3], 1, &[4], &[1], 5))),
            ),
            // reorder only: nothing added, completes at once, leader stays
            (
                steady.clone(),
                Some(vec![3, 2, 1]),
                Ok(Some(o(&[3, 2, 1], &[1, 2, 3], 1, &[], &[], 5))),
            ),
            // pure shrink removing the leader: completes, leader moves
            (
                steady.clone(),
                Some(vec![2, 3]),
                Ok(Some(o(&[2, 3], &[2, 3], 2, &[], &[], 6))),
            ),
            // grow to a fenced broker: allowed, waits
            (
                steady.clone(),
                Some(vec![1, 2, 3, 5]),
                Ok(Some(o(&[1, 2, 3, 5], &[1, 2, 3], 1, &[5], &[], 5))),
            ),
            // pure shrink onto replicas out of the ISR: waits for them
            (
                state(&[1, 2, 3], &[1], 1),
                Some(vec![2, 3]),
                Ok(Some(o(&[2, 3, 1], &[1], 1, &[], &[1], 5))),
            ),
            // invalid targets
            (
                steady.clone(),
                Some(vec![]),
                Err(ResponseError::InvalidReplicaAssignment),
            ),
            (
                steady.clone(),
                Some(vec![1, 1]),
                Err(ResponseError::InvalidReplicaAssignment),
            ),
            (
                steady.clone(),
                Some(vec![1, 9]),
                Err(ResponseError::InvalidReplicaAssignment),
            ),
            // new target replacing an ongoing one: 4 no longer wanted, 3 dropped too
            (
                moving.clone(),
                Some(vec![2, 1]),
                Ok(Some(o(&[2, 1], &[1, 2], 1, &[], &[], 5))),
            ),
            // ongoing, same target again: unchanged
            (moving.clone(), Some(vec![4, 2, 3]), Ok(None)),
            // retarget keeping 4, which has caught up: completes
            (
                caught_up.clone(),
                Some(vec![4, 3]),
                Ok(Some(o(&[4, 3], &[3, 4], 4, &[], &[], 6))),
            ),
            // cancel
            (
                moving.clone(),
                None,
                Ok(Some(o(&[2, 3, 1], &[1, 2, 3], 1, &[], &[], 5))),
            ),
            (
                caught_up.clone(),
                None,
                Ok(Some(o(&[2, 3, 1], &[1, 2, 3], 1, &[], &[], 5))),
            ),
            (
                steady.clone(),
                None,
                Err(ResponseError::NoReassignmentInProgress),
            ),
            // cancel with only the adding replica in sync: would be unclean
            (
                reassigning(&[4, 1], &[4], 4, &[4], &[1]),
                None,
                Err(ResponseError::InvalidReplicaAssignment),
            ),
            // cancel where the leader is an adding replica: re-elected
            (
                reassigning(&[4, 1], &[4, 1], 4, &[4], &[1]),
                None,
                Ok(Some(o(&[1], &[1], 1, &[], &[], 6))),
            ),
        ];
        for (i, (p, target, want)) in cases.into_iter().enumerate() {
            let image = image(p);
            let got = plan_reassignment(&image, topic_id(1), 0, target.clone()).map(|records| {
                partition_states(&records)
                    .pop()
                    .map(|(_, _, s)| outcome(&s))
            });
            assert_eq!(got.map_err(|e| e.code), want, "case {i}: {target:?}");
        }
        let image = image(state(&[1], &[1], 1));
        assert_eq!(
            plan_reassignment(&image, topic_id(1), 3, None)
                .unwrap_err()
                .code,
            ResponseError::UnknownTopicOrPartition
        );
    }
}
