//! Building the next state of one partition (Kafka's
//! `PartitionChangeBuilder`): the new ISR and replicas, the leader elected
//! for them, reassignment completion, and the epochs.

use odradek_metadata::{MetadataImage, MetadataRecord, PartitionImage, NO_LEADER};
use uuid::Uuid;

/// Build a new PartitionImage from the current one: sets the new
/// ISR/leader/replicas, bumps `partition_epoch` by one on any change, bumps
/// `leader_epoch` by one iff the leader changes (Kafka KRaft semantics).
/// Returns `None` if nothing changes.
pub fn change_partition(
    current: &PartitionImage,
    leader: i32,
    isr: Vec<i32>,
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
) -> Option<PartitionImage> {
    if leader == current.leader
        && isr == current.isr
        && replicas == current.replicas
        && adding == current.adding_replicas
        && removing == current.removing_replicas
    {
        return None;
    }
    let leader_epoch = if leader == current.leader {
        current.leader_epoch
    } else {
        current.leader_epoch + 1
    };
    Some(PartitionImage {
        replicas,
        isr,
        leader,
        leader_epoch,
        partition_epoch: current.partition_epoch + 1,
        adding_replicas: adding,
        removing_replicas: removing,
    })
}

/// Which brokers may become (or stay) leader in a change: the usable
/// brokers of the image, minus one being fenced or shut down, plus one
/// being unfenced (whose state change precedes the partition records).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leaders<'a> {
    image: &'a MetadataImage,
    without: Option<i32>,
    with: Option<i32>,
}

impl<'a> Leaders<'a> {
    pub(crate) fn usable(image: &'a MetadataImage) -> Leaders<'a> {
        Leaders {
            image,
            without: None,
            with: None,
        }
    }

    pub(crate) fn without(image: &'a MetadataImage, broker_id: i32) -> Leaders<'a> {
        Leaders {
            without: Some(broker_id),
            ..Leaders::usable(image)
        }
    }

    pub(crate) fn with(image: &'a MetadataImage, broker_id: i32) -> Leaders<'a> {
        Leaders {
            with: Some(broker_id),
            ..Leaders::usable(image)
        }
    }

    pub(crate) fn accepts(&self, broker_id: i32) -> bool {
        broker_id != NO_LEADER
            && self.without != Some(broker_id)
            && (self.with == Some(broker_id) || self.image.is_usable(broker_id))
    }
}

/// The replica sets a change aims at, before reassignment completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Target {
    pub(crate) fn of(current: &PartitionImage) -> Target {
        Target {
            isr: current.isr.clone(),
            replicas: current.replicas.clone(),
            adding: current.adding_replicas.clone(),
            removing: current.removing_replicas.clone(),
        }
    }
}

/// A clean election: the current leader stays if it is still in the ISR
/// and acceptable; otherwise the first replica (in replica order, so the
/// preferred one first) that is in the ISR and acceptable; otherwise none.
pub(crate) fn elect(current_leader: i32, replicas: &[i32], isr: &[i32], leaders: Leaders) -> i32 {
    if isr.contains(&current_leader) && leaders.accepts(current_leader) {
        return current_leader;
    }
    replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && leaders.accepts(*r))
        .unwrap_or(NO_LEADER)
}

/// The next state for `target` with a clean election. An empty target ISR
/// keeps the current ISR: the last member of an ISR is never removed.
pub(crate) fn rebuild(
    current: &PartitionImage,
    leaders: Leaders,
    mut target: Target,
) -> Option<PartitionImage> {
    if target.isr.is_empty() {
        target.isr = current.isr.clone();
    }
    let leader = elect(current.leader, &target.replicas, &target.isr, leaders);
    finish(current, leaders, leader, target)
}

/// The next state with `leader` chosen by the caller: completes a
/// reassignment if it can, then builds the new image.
pub(crate) fn finish(
    current: &PartitionImage,
    leaders: Leaders,
    leader: i32,
    target: Target,
) -> Option<PartitionImage> {
    let (leader, t) = complete_reassignment(leader, target, leaders);
    change_partition(current, leader, t.isr, t.replicas, t.adding, t.removing)
}

/// KIP-455 completion: once every adding replica is in the ISR, the
/// removing replicas leave the replicas and the ISR. The completion waits
/// if it would empty the ISR, or would leave a partition that has a leader
/// without one (the leader is being removed and no other ISR member of the
/// target can lead).
fn complete_reassignment(leader: i32, target: Target, leaders: Leaders) -> (i32, Target) {
    if target.adding.is_empty() && target.removing.is_empty() {
        return (leader, target);
    }
    if !target.adding.iter().all(|r| target.isr.contains(r)) {
        return (leader, target);
    }
    let keep = |r: &i32| !target.removing.contains(r);
    let isr: Vec<i32> = target.isr.iter().copied().filter(keep).collect();
    if isr.is_empty() {
        return (leader, target);
    }
    let replicas: Vec<i32> = target.replicas.iter().copied().filter(keep).collect();
    let new_leader = elect(leader, &replicas, &isr, leaders);
    if leader != NO_LEADER && new_leader == NO_LEADER {
        return (leader, target);
    }
    (
        new_leader,
        Target {
            isr,
            replicas,
            adding: Vec::new(),
            removing: Vec::new(),
        },
    )
}

/// Every partition of the image with its topic id, in a fixed order (topic
/// id, then partition) so that plans are deterministic.
pub(crate) fn all_partitions(image: &MetadataImage) -> Vec<(Uuid, i32, &PartitionImage)> {
    let mut topics: Vec<_> = image.topics().collect();
    topics.sort_by_key(|t| t.topic_id);
    topics
        .into_iter()
        .flat_map(|t| t.partitions.iter().map(move |(&p, s)| (t.topic_id, p, s)))
        .collect()
}

pub(crate) fn record(topic_id: Uuid, partition: i32, state: PartitionImage) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    fn part(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionImage {
        PartitionImage {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 9,
            adding_replicas: vec![],
            removing_replicas: vec![],
        }
    }

    #[test]
    fn change_partition_epochs() {
        let cur = part(&[1, 2, 3], &[1, 2, 3], 1);
        // (leader, isr, replicas) -> Some((leader_epoch, partition_epoch)) or None
        type Case = (i32, &'static [i32], &'static [i32], Option<(i32, i32)>);
        let cases: &[Case] = &[
            (1, &[1, 2, 3], &[1, 2, 3], None),
            (1, &[1, 2], &[1, 2, 3], Some((5, 10))),
            (2, &[1, 2, 3], &[1, 2, 3], Some((6, 10))),
            (NO_LEADER, &[1], &[1, 2, 3], Some((6, 10))),
            (1, &[1, 2, 3], &[1, 2, 3, 4], Some((5, 10))),
        ];
        for (leader, isr, replicas, want) in cases {
            let got = change_partition(
                &cur,
                *leader,
                isr.to_vec(),
                replicas.to_vec(),
                vec![],
                vec![],
            );
            assert_eq!(
                got.as_ref().map(|p| (p.leader_epoch, p.partition_epoch)),
                *want,
                "{leader} {isr:?} {replicas:?}"
            );
            if let Some(p) = got {
                assert_eq!(
                    (p.leader, &p.isr[..], &p.replicas[..]),
                    (*leader, *isr, *replicas)
                );
            }
        }
        let changed =
            change_partition(&cur, 1, vec![1, 2, 3], vec![1, 2, 3], vec![], vec![3]).unwrap();
        assert_eq!(changed.removing_replicas, vec![3]);
        assert_eq!(changed.partition_epoch, 10);
    }

    #[test]
    fn election_prefers_current_leader_then_replica_order() {
        let image = cluster(&[(1, Up), (2, Up), (3, Fenced), (4, ShuttingDown)]);
        let u = Leaders::usable(&image);
        // (current, replicas, isr) -> leader
        let cases: &[(i32, &[i32], &[i32], i32)] = &[
            (2, &[1, 2], &[1, 2], 2),
            (NO_LEADER, &[1, 2], &[1, 2], 1),
            (NO_LEADER, &[2, 1], &[1, 2], 2),
            (3, &[3, 2, 1], &[3, 1], 1),
            (4, &[4, 3], &[4, 3], NO_LEADER),
            (1, &[1, 2], &[2], 2),
        ];
        for (cur, replicas, isr, want) in cases {
            assert_eq!(
                elect(*cur, replicas, isr, u),
                *want,
                "{cur} {replicas:?} {isr:?}"
            );
        }
        assert_eq!(elect(1, &[1, 2], &[1, 2], Leaders::without(&image, 1)), 2);
        assert_eq!(elect(NO_LEADER, &[3], &[3], Leaders::with(&image, 3)), 3);
    }

    #[test]
    fn rebuild_keeps_last_isr_member() {
        let image = cluster(&[(1, Up), (2, Up)]);
        let cur = part(&[1, 2], &[1], 1);
        let mut t = Target::of(&cur);
        t.isr.retain(|&r| r != 1);
        let next = rebuild(&cur, Leaders::without(&image, 1), t).unwrap();
        assert_eq!((next.leader, next.isr.clone()), (NO_LEADER, vec![1]));
        assert_eq!((next.leader_epoch, next.partition_epoch), (6, 10));
    }

    #[test]
    fn completion_rules() {
        let image = cluster(&[(1, Up), (2, Up), (3, Up), (4, Fenced)]);
        let u = Leaders::usable(&image);
        let t = |replicas: &[i32], isr: &[i32], adding: &[i32], removing: &[i32]| Target {
            isr: isr.to_vec(),
            replicas: replicas.to_vec(),
            adding: adding.to_vec(),
            removing: removing.to_vec(),
        };
        // (leader, target) -> (leader, replicas, isr, still in progress)
        type Case<'a> = (i32, Target, (i32, &'a [i32], &'a [i32], bool));
        let cases: Vec<Case> = vec![
            // adding 3 not yet in ISR: waits
            (
                1,
                t(&[3, 2, 1], &[1, 2], &[3], &[1]),
                (1, &[3, 2, 1], &[1, 2], true),
            ),
            // caught up: 1 removed, leadership moves to first ISR member of target
            (
                1,
                t(&[3, 2, 1], &[1, 2, 3], &[3], &[1]),
                (3, &[3, 2], &[2, 3], false),
            ),
            // pure shrink whose ISR would become empty: waits
            (1, t(&[2, 1], &[1], &[], &[1]), (1, &[2, 1], &[1], true)),
            // removing the leader and no usable successor: waits
            (
                1,
                t(&[4, 1], &[1, 4], &[4], &[1]),
                (1, &[4, 1], &[1, 4], true),
            ),
            // already leaderless: completing cannot make it worse
            (
                NO_LEADER,
                t(&[4, 1], &[4, 1], &[4], &[1]),
                (NO_LEADER, &[4], &[4], false),
            ),
        ];
        for (leader, target, (l, replicas, isr, in_progress)) in cases {
            let (got_leader, got) = complete_reassignment(leader, target.clone(), u);
            assert_eq!(got_leader, l, "{target:?}");
            assert_eq!(got.replicas, replicas, "{target:?}");
            assert_eq!(got.isr, isr, "{target:?}");
            assert_eq!(
                !got.adding.is_empty() || !got.removing.is_empty(),
                in_progress,
                "{target:?}"
            );
        }
    }
}
