//! A partition leader's replication state: the ISR, what it knows of each
//! follower, and where its leader epoch began. Pure: the partition holds
//! it under the same lock as its log and passes offsets and time in.

use super::isr::{self, IsrState};
use super::replica::FollowerReplica;

#[derive(Debug, Clone)]
pub struct LeaderState {
    pub isr: IsrState,
    /// Every replica but this broker, in assignment order.
    pub followers: Vec<FollowerReplica>,
    /// The log end offset when this leader epoch began: a follower must
    /// have everything before it to join the ISR.
    pub epoch_start_offset: i64,
    /// `replica.lag.time.max.ms`.
    pub max_lag_ms: i64,
}

/// A fetch from a broker the leader does not count as a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAReplica;

/// One partition's view in the metadata image, as the leader needs it.
pub struct Assignment<'a> {
    pub local_id: i32,
    pub replicas: &'a [i32],
    pub isr: &'a [i32],
    pub partition_epoch: i32,
}

impl LeaderState {
    /// State of a broker that becomes leader (Kafka's `makeLeader`).
    /// `previous` is its state when it already led in an older epoch:
    /// what it knew of its followers is kept.
    pub fn new(
        a: &Assignment<'_>,
        eligible: &dyn Fn(i32) -> bool,
        leader_log_end_offset: i64,
        now_ms: i64,
        max_lag_ms: i64,
        previous: Option<LeaderState>,
    ) -> LeaderState {
        let mut known = previous.map(|p| p.followers).unwrap_or_default();
        let followers = a
            .replicas
            .iter()
            .filter(|&&id| id != a.local_id)
            .map(|&id| {
                let in_isr = a.isr.contains(&id);
                match known.iter().position(|f| f.broker_id == id) {
                    Some(i) => {
                        let mut f = known.swap_remove(i);
                        f.reset_for_new_epoch(leader_log_end_offset, in_isr, now_ms);
                        f.isr_eligible = eligible(id);
                        f
                    }
                    None => FollowerReplica::new(id, in_isr, now_ms, eligible(id)),
                }
            })
            .collect();
        LeaderState {
            isr: IsrState::new(a.isr.to_vec(), a.partition_epoch),
            followers,
            epoch_start_offset: leader_log_end_offset,
            max_lag_ms,
        }
    }

    /// A newer image for the same leader epoch: replicas added or removed
    /// (reassignment), brokers fenced or unfenced, the ISR changed by the
    /// controller. Returns whether the committed ISR changed.
    pub fn on_image(
        &mut self,
        a: &Assignment<'_>,
        eligible: &dyn Fn(i32) -> bool,
        now_ms: i64,
    ) -> bool {
        self.followers
            .retain(|f| a.replicas.contains(&f.broker_id) && f.broker_id != a.local_id);
        for &id in a.replicas.iter().filter(|&&id| id != a.local_id) {
            match self.followers.iter_mut().find(|f| f.broker_id == id) {
                Some(f) => f.isr_eligible = eligible(id),
                None => self.followers.push(FollowerReplica::new(
                    id,
                    a.isr.contains(&id),
                    now_ms,
                    eligible(id),
                )),
            }
        }
        self.isr.on_image(a.isr, a.partition_epoch)
    }

    /// Records a follower's fetch. Returns the new ISR to propose when the
    /// follower should join it (the caller sends it to the controller).
    pub fn on_follower_fetch(
        &mut self,
        broker_id: i32,
        fetch_offset: i64,
        log_start_offset: i64,
        now_ms: i64,
        leader_log_end_offset: i64,
        high_watermark: i64,
    ) -> Result<Option<Vec<i32>>, NotAReplica> {
        let follower = self
            .followers
            .iter_mut()
            .find(|f| f.broker_id == broker_id)
            .ok_or(NotAReplica)?;
        follower.update_fetch_state(
            fetch_offset,
            log_start_offset,
            now_ms,
            leader_log_end_offset,
        );
        if isr::should_expand(follower, &self.isr, high_watermark, self.epoch_start_offset) {
            let mut new_isr = self.isr.isr().to_vec();
            new_isr.push(broker_id);
            return Ok(Some(new_isr));
        }
        Ok(None)
    }

    /// The high watermark this state allows for a leader log ending at
    /// `leader_log_end_offset`.
    pub fn high_watermark(&self, leader_log_end_offset: i64, now_ms: i64) -> i64 {
        isr::high_watermark(
            leader_log_end_offset,
            &self.followers,
            &self.isr,
            now_ms,
            self.max_lag_ms,
        )
    }

    /// The ISR without its out-of-sync members, if any are.
    pub fn shrink_proposal(&self, now_ms: i64) -> Option<Vec<i32>> {
        let out = isr::out_of_sync(&self.followers, &self.isr, now_ms, self.max_lag_ms);
        if out.is_empty() {
            return None;
        }
        Some(
            self.isr
                .isr()
                .iter()
                .copied()
                .filter(|id| !out.contains(id))
                .collect(),
        )
    }

    pub fn has_followers(&self) -> bool {
        !self.followers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_000_000;
    const LAG: i64 = 30_000;

    fn assignment<'a>(replicas: &'a [i32], isr: &'a [i32]) -> Assignment<'a> {
        Assignment {
            local_id: 1,
            replicas,
            isr,
            partition_epoch: 0,
        }
    }

    #[test]
    fn a_new_leader_waits_for_isr_members_to_fetch() {
        let all = |_| true;
        let mut s = LeaderState::new(&assignment(&[1, 2, 3], &[1, 2, 3]), &all, 10, T0, LAG, None);
        assert_eq!(s.epoch_start_offset, 10);
        assert_eq!(s.high_watermark(10, T0), -1, "followers' ends unknown");
        assert_eq!(s.on_follower_fetch(2, 10, 0, T0, 10, 0), Ok(None));
        assert_eq!(s.on_follower_fetch(3, 8, 0, T0, 10, 0), Ok(None));
        assert_eq!(s.high_watermark(10, T0), 8);
        assert_eq!(s.on_follower_fetch(4, 8, 0, T0, 10, 0), Err(NotAReplica));
    }

    #[test]
    fn a_follower_level_with_the_high_watermark_is_proposed_for_the_isr() {
        let all = |_| true;
        let mut s = LeaderState::new(&assignment(&[1, 2], &[1]), &all, 5, T0, LAG, None);
        // Behind the epoch start: not yet.
        assert_eq!(s.on_follower_fetch(2, 4, 0, T0, 10, 4), Ok(None));
        assert_eq!(
            s.on_follower_fetch(2, 10, 0, T0, 10, 10),
            Ok(Some(vec![1, 2]))
        );
        s.isr.propose(vec![1, 2]);
        assert_eq!(
            s.on_follower_fetch(2, 10, 0, T0, 10, 10),
            Ok(None),
            "in flight"
        );
    }

    #[test]
    fn lagging_members_are_proposed_for_removal() {
        let all = |_| true;
        let mut s = LeaderState::new(&assignment(&[1, 2, 3], &[1, 2, 3]), &all, 0, T0, LAG, None);
        s.on_follower_fetch(2, 0, 0, T0, 0, 0).unwrap();
        // Nobody lags within the first max lag.
        assert_eq!(s.shrink_proposal(T0 + LAG), None);
        // 2 keeps fetching at the leader's end; 3 never fetches.
        s.on_follower_fetch(2, 100, 0, T0 + LAG, 100, 0).unwrap();
        assert_eq!(s.shrink_proposal(T0 + LAG + 1), Some(vec![1, 2]));
    }

    #[test]
    fn images_add_and_remove_followers_and_staying_leader_keeps_them() {
        let all = |_| true;
        let mut s = LeaderState::new(&assignment(&[1, 2], &[1, 2]), &all, 0, T0, LAG, None);
        s.on_follower_fetch(2, 7, 0, T0, 7, 0).unwrap();
        let fenced3 = |id| id != 3;
        let moved = Assignment {
            partition_epoch: 1,
            ..assignment(&[1, 3], &[1])
        };
        assert!(s.on_image(&moved, &fenced3, T0));
        assert_eq!(s.followers.len(), 1);
        assert_eq!(s.followers[0].broker_id, 3);
        assert!(!s.followers[0].isr_eligible);
        // A new epoch with the same leader keeps what it knew.
        let s2 = LeaderState::new(
            &assignment(&[1, 2], &[1, 2]),
            &all,
            9,
            T0,
            LAG,
            Some(s.clone()),
        );
        assert_eq!(
            s2.followers[0].log_end_offset, -1,
            "2 was dropped meanwhile"
        );
        let again = LeaderState::new(&assignment(&[1, 3], &[1]), &all, 9, T0, LAG, Some(s));
        assert_eq!(again.followers[0].broker_id, 3);
        assert!(again.followers[0].isr_eligible);
    }
}
