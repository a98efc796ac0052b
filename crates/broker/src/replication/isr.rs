//! The in-sync replica set as a leader sees it, and the pure rules around
//! it: when a follower joins or leaves the ISR, where the high watermark
//! is, and when an acks=all produce is done (Kafka's `Partition`:
//! `maybeExpandIsr`, `getOutOfSyncReplicas`, `maybeIncrementLeaderHW`,
//! `checkEnoughReplicasReachOffset`).
//!
//! ISR changes go through the controller (AlterPartition), one at a time
//! per partition. While one is in flight the leader acts on the *maximal*
//! ISR, the committed ISR plus a member being added: a member being
//! removed still holds the high watermark back, and one being added
//! already does, so the high watermark never passes a replica that may be
//! in the ISR the controller ends up with.

use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::error::ResponseError;

use super::replica::FollowerReplica;

/// An ISR change sent to the controller and not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    /// Tells this request's answer from a later one's.
    pub seq: u64,
    pub proposed: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrState {
    /// The ISR the controller last confirmed (image or AlterPartition
    /// answer).
    committed: Vec<i32>,
    partition_epoch: i32,
    pending: Option<PendingIsr>,
}

/// How the controller answered an AlterPartition for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOutcome {
    Committed {
        leader_epoch: i32,
        isr: Vec<i32>,
        partition_epoch: i32,
    },
    Refused(ResponseError),
}

static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

impl IsrState {
    pub fn new(isr: Vec<i32>, partition_epoch: i32) -> IsrState {
        IsrState {
            committed: isr,
            partition_epoch,
            pending: None,
        }
    }

    /// The committed ISR: what `min.insync.replicas` is checked against
    /// before an append (Kafka's `partitionState.isr`).
    pub fn isr(&self) -> &[i32] {
        &self.committed
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn pending(&self) -> Option<&PendingIsr> {
        self.pending.as_ref()
    }

    pub fn is_inflight(&self) -> bool {
        self.pending.is_some()
    }

    /// Member of the committed ISR or of the one being proposed.
    pub fn in_maximal(&self, broker_id: i32) -> bool {
        self.committed.contains(&broker_id)
            || self
                .pending
                .as_ref()
                .is_some_and(|p| p.proposed.contains(&broker_id))
    }

    /// Size of the committed ISR united with the proposed one, without
    /// allocating (ISRs have a handful of members).
    pub fn maximal_size(&self) -> usize {
        let extra = self.pending.as_ref().map_or(0, |p| {
            p.proposed
                .iter()
                .filter(|b| !self.committed.contains(b))
                .count()
        });
        self.committed.len() + extra
    }

    /// Records that `new_isr` was sent to the controller; returns the
    /// sequence number its answer must carry.
    pub fn propose(&mut self, new_isr: Vec<i32>) -> u64 {
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        self.pending = Some(PendingIsr {
            seq,
            proposed: new_isr,
        });
        seq
    }

    /// Applies the controller's answer to proposal `seq` for a leader at
    /// `leader_epoch` (Kafka's `handleAlterPartitionUpdate` and
    /// `handleAlterPartitionError`). Returns whether the committed ISR
    /// changed.
    ///
    /// An answer to an older proposal, or one for another leader epoch or
    /// an older partition epoch, is ignored. INELIGIBLE_REPLICA and
    /// OPERATION_NOT_ATTEMPTED mean the controller did not apply it: the
    /// proposal is dropped and may be retried. FENCED_LEADER_EPOCH,
    /// INVALID_UPDATE_VERSION, NOT_LEADER_OR_FOLLOWER and
    /// UNKNOWN_TOPIC_OR_PARTITION mean this leader's view is stale: the
    /// proposal stays pending (nothing else is proposed) until the
    /// metadata image catches up and resets the state. Any other error
    /// drops the proposal so a later check retries.
    pub fn complete(&mut self, seq: u64, leader_epoch: i32, outcome: AlterOutcome) -> bool {
        if self.pending.as_ref().is_none_or(|p| p.seq != seq) {
            return false;
        }
        match outcome {
            AlterOutcome::Committed {
                leader_epoch: answered_epoch,
                isr,
                partition_epoch,
            } => {
                if answered_epoch != leader_epoch || partition_epoch < self.partition_epoch {
                    return false;
                }
                self.pending = None;
                let changed = self.committed != isr;
                self.committed = isr;
                self.partition_epoch = partition_epoch;
                changed
            }
            Refused(
                ResponseError::FencedLeaderEpoch
                | ResponseError::InvalidUpdateVersion
                | ResponseError::NotLeaderOrFollower
                | ResponseError::UnknownTopicOrPartition,
            ) => false,
            Refused(_) => {
                self.pending = None;
                false
            }
        }
    }

    /// The metadata image says the ISR is `isr` at `partition_epoch`. A
    /// newer partition epoch replaces what this leader believed and ends
    /// any pending proposal (its answer, if it comes, is then ignored).
    /// Returns whether the committed ISR changed.
    pub fn on_image(&mut self, isr: &[i32], partition_epoch: i32) -> bool {
        if partition_epoch <= self.partition_epoch {
            return false;
        }
        self.pending = None;
        self.partition_epoch = partition_epoch;
        let changed = self.committed != isr;
        self.committed = isr.to_vec();
        changed
    }
}

use AlterOutcome::Refused;

/// The high watermark the leader's state allows (Kafka's
/// `maybeIncrementLeaderHW`): the smallest log end offset among the
/// leader and every follower that is in the maximal ISR or is caught up
/// and eligible (about to join it). The caller only ever moves the high
/// watermark forward.
pub fn high_watermark(
    leader_log_end_offset: i64,
    followers: &[FollowerReplica],
    isr: &IsrState,
    now_ms: i64,
    max_lag_ms: i64,
) -> i64 {
    let mut hw = leader_log_end_offset;
    for f in followers {
        let waits_to_join = f.isr_eligible && f.is_caught_up(now_ms, max_lag_ms);
        if f.log_end_offset < hw && (isr.in_maximal(f.broker_id) || waits_to_join) {
            hw = f.log_end_offset;
        }
    }
    hw
}

/// Whether `follower` should be added to the ISR (Kafka's
/// `canAddReplicaToIsr` and `isFollowerInSync`): no change in flight, not
/// a member yet, eligible, and it has everything committed so far and
/// everything since this leader's epoch began.
pub fn should_expand(
    follower: &FollowerReplica,
    isr: &IsrState,
    high_watermark: i64,
    leader_epoch_start_offset: i64,
) -> bool {
    !isr.is_inflight()
        && !isr.isr().contains(&follower.broker_id)
        && follower.isr_eligible
        && follower.log_end_offset >= high_watermark
        && follower.log_end_offset >= leader_epoch_start_offset
}

/// ISR members (other than the leader) that have not been caught up for
/// `max_lag_ms` (Kafka's `getOutOfSyncReplicas`). Empty while a change is
/// in flight.
pub fn out_of_sync(
    followers: &[FollowerReplica],
    isr: &IsrState,
    now_ms: i64,
    max_lag_ms: i64,
) -> Vec<i32> {
    if isr.is_inflight() {
        return Vec::new();
    }
    followers
        .iter()
        .filter(|f| isr.isr().contains(&f.broker_id))
        .filter(|f| !f.is_caught_up(now_ms, max_lag_ms))
        .map(|f| f.broker_id)
        .collect()
}

/// Where an acks=all produce stands (Kafka's
/// `checkEnoughReplicasReachOffset`). `None`: keep waiting.
///
/// - the partition is no longer led at the epoch of the append ->
///   NOT_LEADER_OR_FOLLOWER (the record may be truncated away);
/// - the high watermark passed the batch: done, unless the (maximal) ISR
///   is now below `min.insync.replicas` -> NOT_ENOUGH_REPLICAS_AFTER_APPEND
///   (the record is in the log but fewer copies exist than asked for).
pub fn acks_all_outcome(
    still_leader_at_epoch: bool,
    high_watermark: i64,
    last_offset: i64,
    maximal_isr_size: usize,
    min_insync_replicas: usize,
) -> Option<Result<(), ResponseError>> {
    if !still_leader_at_epoch {
        return Some(Err(ResponseError::NotLeaderOrFollower));
    }
    if high_watermark > last_offset {
        return Some(if maximal_isr_size >= min_insync_replicas {
            Ok(())
        } else {
            Err(ResponseError::NotEnoughReplicasAfterAppend)
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;
    const T0: i64 = 1_000_000;

    fn follower(id: i32, leo: i64, caught_up_at: i64) -> FollowerReplica {
        FollowerReplica {
            log_end_offset: leo,
            last_caught_up_time_ms: caught_up_at,
            ..FollowerReplica::new(id, false, T0, true)
        }
    }

    #[test]
    fn high_watermark_is_the_minimum_over_the_isr() {
        let isr = IsrState::new(vec![1, 2, 3], 0);
        let fs = [follower(2, 7, T0), follower(3, 9, T0)];
        assert_eq!(high_watermark(10, &fs, &isr, T0, LAG), 7);
        // The leader alone.
        let isr = IsrState::new(vec![1], 0);
        let far_behind = [follower(2, 3, 0), follower(3, 4, 0)];
        assert_eq!(high_watermark(10, &far_behind, &isr, T0, LAG), 10);
        // An ISR member that has not fetched yet holds it at "unknown";
        // the caller never moves the high watermark backwards.
        let isr = IsrState::new(vec![1, 2], 0);
        let unknown = [FollowerReplica::new(2, true, T0, true)];
        assert_eq!(high_watermark(10, &unknown, &isr, T0, LAG), -1);
    }

    #[test]
    fn high_watermark_counts_the_maximal_isr() {
        // Expansion of 3 in flight: 3 already holds the high watermark.
        let mut isr = IsrState::new(vec![1, 2], 0);
        let fs = [follower(2, 10, T0), follower(3, 6, 0)];
        assert_eq!(high_watermark(10, &fs, &isr, T0 + 2 * LAG, LAG), 10);
        isr.propose(vec![1, 2, 3]);
        assert_eq!(high_watermark(10, &fs, &isr, T0 + 2 * LAG, LAG), 6);
        // Shrink of 2 in flight: 2 still holds it until committed.
        let mut isr = IsrState::new(vec![1, 2], 0);
        let seq = isr.propose(vec![1]);
        let fs = [follower(2, 4, 0)];
        assert_eq!(high_watermark(10, &fs, &isr, T0 + 2 * LAG, LAG), 4);
        let committed = AlterOutcome::Committed {
            leader_epoch: 5,
            isr: vec![1],
            partition_epoch: 1,
        };
        assert!(isr.complete(seq, 5, committed));
        assert_eq!(high_watermark(10, &fs, &isr, T0 + 2 * LAG, LAG), 10);
    }

    #[test]
    fn caught_up_eligible_non_members_hold_the_high_watermark() {
        let isr = IsrState::new(vec![1], 0);
        let mut f = follower(2, 8, T0);
        assert_eq!(high_watermark(10, &[f.clone()], &isr, T0 + 10, LAG), 8);
        f.isr_eligible = false;
        assert_eq!(high_watermark(10, &[f], &isr, T0 + 10, LAG), 10);
    }

    #[test]
    fn expansion_needs_the_high_watermark_and_the_epoch_start() {
        let isr = IsrState::new(vec![1], 0);
        let f = follower(2, 10, T0);
        assert!(should_expand(&f, &isr, 10, 10));
        assert!(!should_expand(&f, &isr, 11, 0), "behind the high watermark");
        assert!(!should_expand(&f, &isr, 5, 11), "behind the epoch start");
        let ineligible = FollowerReplica {
            isr_eligible: false,
            ..f.clone()
        };
        assert!(!should_expand(&ineligible, &isr, 10, 10));
        let member = IsrState::new(vec![1, 2], 0);
        assert!(!should_expand(&f, &member, 10, 10), "already in");
        let mut busy = IsrState::new(vec![1], 0);
        busy.propose(vec![1, 3]);
        assert!(!should_expand(&f, &busy, 10, 10), "one change at a time");
    }

    #[test]
    fn shrink_drops_members_not_caught_up_within_the_lag() {
        let isr = IsrState::new(vec![1, 2, 3], 0);
        let fs = [
            follower(2, 10, T0),          // level with the leader
            follower(3, 8, T0 - LAG - 1), // behind, last caught up too long ago
            follower(4, 0, 0),            // not in the ISR
        ];
        assert_eq!(out_of_sync(&fs, &isr, T0, LAG), vec![3]);
        let recent = [follower(3, 8, T0 - LAG)];
        assert!(out_of_sync(&recent, &isr, T0, LAG).is_empty());
        let mut busy = isr.clone();
        busy.propose(vec![1, 2, 3, 4]);
        assert!(out_of_sync(&fs, &busy, T0, LAG).is_empty());
    }

    #[test]
    fn answers_and_images_settle_proposals() {
        let mut isr = IsrState::new(vec![1], 3);
        let seq = isr.propose(vec![1, 2]);
        assert_eq!(isr.maximal_size(), 2);
        // Stale answers are ignored.
        assert!(!isr.complete(
            seq + 1000,
            5,
            AlterOutcome::Refused(ResponseError::InvalidRequest)
        ));
        let other_epoch = AlterOutcome::Committed {
            leader_epoch: 6,
            isr: vec![1, 2],
            partition_epoch: 4,
        };
        assert!(!isr.complete(seq, 5, other_epoch));
        assert!(isr.is_inflight());
        // Stale view: stays pending until the image resets it.
        assert!(!isr.complete(
            seq,
            5,
            AlterOutcome::Refused(ResponseError::InvalidUpdateVersion)
        ));
        assert!(isr.is_inflight());
        assert!(!isr.on_image(&[1], 3), "same partition epoch: nothing new");
        assert!(isr.is_inflight());
        assert!(isr.on_image(&[1, 3], 4));
        assert!(!isr.is_inflight());
        assert_eq!(isr.isr(), &[1, 3]);
        // Not applied by the controller: dropped, may be retried.
        let seq = isr.propose(vec![1, 3, 2]);
        assert!(!isr.complete(
            seq,
            5,
            AlterOutcome::Refused(ResponseError::IneligibleReplica)
        ));
        assert!(!isr.is_inflight());
        assert_eq!(isr.isr(), &[1, 3]);
    }

    /// (leader, hw, last offset, maximal isr, min isr, outcome).
    type AcksCase = (
        bool,
        i64,
        i64,
        usize,
        usize,
        Option<Result<(), ResponseError>>,
    );

    #[test]
    fn acks_all_completes_on_the_high_watermark() {
        use ResponseError::*;
        let cases: &[AcksCase] = &[
            (true, 5, 5, 3, 2, None),
            (true, 6, 5, 3, 2, Some(Ok(()))),
            (true, 6, 5, 1, 2, Some(Err(NotEnoughReplicasAfterAppend))),
            (true, 5, 5, 1, 2, None),
            (false, 6, 5, 3, 2, Some(Err(NotLeaderOrFollower))),
        ];
        for &(leader, hw, last, max_isr, min_isr, want) in cases {
            assert_eq!(acks_all_outcome(leader, hw, last, max_isr, min_isr), want);
        }
    }
}
