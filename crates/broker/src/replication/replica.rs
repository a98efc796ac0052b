//! What a leader knows of one follower: Kafka's `Replica` and its
//! `ReplicaState`, with the rule for when a follower counts as caught up.
//!
//! Pure state and arithmetic; time is passed in.

/// An offset the leader has not learned yet (Kafka's `UnknownOffset`).
pub const UNKNOWN_OFFSET: i64 = -1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerReplica {
    pub broker_id: i32,
    /// The follower's log end offset: the offset of its last fetch.
    /// Unknown until it fetches in this leader's term.
    pub log_end_offset: i64,
    pub log_start_offset: i64,
    /// The leader's log end offset when this follower last fetched.
    pub last_fetch_leader_log_end_offset: i64,
    pub last_fetch_time_ms: i64,
    /// The last time the follower had everything the leader had (see
    /// [`FollowerReplica::update_fetch_state`]). ISR membership is judged
    /// by it.
    pub last_caught_up_time_ms: i64,
    /// Registered, unfenced and not shutting down, per the metadata image:
    /// only such a replica may join the ISR (Kafka's
    /// `isReplicaIsrEligible`).
    pub isr_eligible: bool,
}

impl FollowerReplica {
    /// State of a follower when this broker becomes leader (Kafka's
    /// `resetReplicaState` for a new leader): nothing is known of its log;
    /// an ISR member is presumed caught up now, so it is not dropped from
    /// the ISR before it had a chance to fetch.
    pub fn new(broker_id: i32, in_isr: bool, now_ms: i64, isr_eligible: bool) -> FollowerReplica {
        FollowerReplica {
            broker_id,
            log_end_offset: UNKNOWN_OFFSET,
            log_start_offset: UNKNOWN_OFFSET,
            last_fetch_leader_log_end_offset: UNKNOWN_OFFSET,
            last_fetch_time_ms: 0,
            last_caught_up_time_ms: if in_isr { now_ms } else { 0 },
            isr_eligible,
        }
    }

    /// The leader stays leader in a new leader epoch (Kafka's
    /// `resetReplicaState` with `isNewLeader = false`): what is known of
    /// the follower's log stays; the fetch bookkeeping restarts at the
    /// leader's current end.
    pub fn reset_for_new_epoch(&mut self, leader_log_end_offset: i64, in_isr: bool, now_ms: i64) {
        self.last_fetch_leader_log_end_offset = leader_log_end_offset;
        self.last_fetch_time_ms = if in_isr { now_ms } else { 0 };
    }

    /// Records a fetch from `fetch_offset` (the follower's log end) at
    /// `now_ms`, when the leader's log ended at `leader_log_end_offset`
    /// (Kafka's `Replica.updateFetchStateOrThrow`). The follower was caught
    /// up now if it fetched from the leader's end, and at the previous
    /// fetch if it now has everything the leader had then.
    pub fn update_fetch_state(
        &mut self,
        fetch_offset: i64,
        log_start_offset: i64,
        now_ms: i64,
        leader_log_end_offset: i64,
    ) {
        if fetch_offset >= leader_log_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(now_ms);
        } else if fetch_offset >= self.last_fetch_leader_log_end_offset {
            self.last_caught_up_time_ms = self.last_caught_up_time_ms.max(self.last_fetch_time_ms);
        }
        self.log_end_offset = fetch_offset;
        self.log_start_offset = log_start_offset;
        self.last_fetch_leader_log_end_offset = self
            .last_fetch_leader_log_end_offset
            .max(leader_log_end_offset);
        self.last_fetch_time_ms = now_ms;
    }

    /// Caught up within the last `max_lag_ms`: the documented meaning of
    /// `replica.lag.time.max.ms` (a follower that has not fetched, or not
    /// reached the leader's log end, for that long leaves the ISR). Kafka's
    /// `ReplicaState.isCaughtUp` also counts a follower level with the
    /// leader's log end as caught up however long ago it fetched, which
    /// keeps a follower that stopped fetching in the ISR of an idle
    /// partition until the next write. A fetching follower refreshes
    /// `last_caught_up_time_ms` on every fetch at the log end, so the two
    /// differ only for followers that stopped.
    pub fn is_caught_up(&self, now_ms: i64, max_lag_ms: i64) -> bool {
        now_ms - self.last_caught_up_time_ms <= max_lag_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;
    const T0: i64 = 1_000_000;

    #[test]
    fn fetching_at_the_leader_end_is_caught_up_now() {
        let mut r = FollowerReplica::new(2, false, T0, true);
        assert!(!r.is_caught_up(T0, LAG), "unknown and never caught up");
        r.update_fetch_state(10, 0, T0 + 5, 10);
        assert_eq!(r.last_caught_up_time_ms, T0 + 5);
        assert!(r.is_caught_up(T0 + 5 + LAG, LAG));
        // Silent for longer than the lag: out, even if level with the
        // leader (a follower that stopped fetching on an idle partition).
        assert!(!r.is_caught_up(T0 + 5 + LAG + 1, LAG));
    }

    #[test]
    fn having_what_the_leader_had_at_the_previous_fetch_counts_from_then() {
        let mut r = FollowerReplica::new(2, false, T0, true);
        // Fetch 1: follower at 0, leader at 10: not caught up.
        r.update_fetch_state(0, 0, T0, 10);
        assert_eq!(r.last_caught_up_time_ms, 0);
        // Fetch 2 at T0+100: follower has 10 (all the leader had at fetch
        // 1) but the leader is at 15 now: caught up as of fetch 1.
        r.update_fetch_state(10, 0, T0 + 100, 15);
        assert_eq!(r.last_caught_up_time_ms, T0);
        // Fetch 3: behind what the leader had at fetch 2: unchanged.
        r.update_fetch_state(12, 0, T0 + 200, 20);
        assert_eq!(r.last_caught_up_time_ms, T0);
        assert_eq!(r.log_end_offset, 12);
    }

    #[test]
    fn isr_members_start_caught_up_and_others_do_not() {
        let r = FollowerReplica::new(2, true, T0, true);
        assert!(r.is_caught_up(T0 + LAG, LAG));
        assert!(!r.is_caught_up(T0 + LAG + 1, LAG));
        let r = FollowerReplica::new(3, false, T0, true);
        assert!(!r.is_caught_up(T0, LAG));
    }
}
