//! Where a follower's log stops agreeing with its leader's (KIP-101,
//! KIP-279, with KIP-595's truncation on fetch): the leader detects it
//! from the follower's last fetched epoch, the follower decides how far
//! to truncate. Pure functions over answers of the leader-epoch cache
//! (`Log::end_offset_for_epoch`).

/// Leader side: a follower fetching from `fetch_offset` whose last batch
/// was written in `last_fetched_epoch` diverges when the leader's history
/// for that epoch (`leader_answer` = `end_offset_for_epoch(last_fetched_epoch)`)
/// ends earlier, or belongs to an older epoch. Then the fetch is answered
/// with that `(epoch, end_offset)` and no records (Kafka's
/// `Partition.fetchRecords`). A follower that names no epoch (-1) is not
/// checked.
pub fn diverging_epoch(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    leader_answer: (i32, i64),
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) = leader_answer;
    (epoch < last_fetched_epoch || end_offset < fetch_offset).then_some(leader_answer)
}

/// Where a follower truncates after the leader answered `diverging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub offset: i64,
    /// False when the follower does not know the leader's epoch: it cut
    /// back to its own end of an older epoch and the next fetch (with
    /// that epoch) finds the exact point.
    pub complete: bool,
}

/// Follower side (Kafka's `AbstractFetcherThread.getOffsetTruncationState`).
/// `local_answer` is the follower's own `end_offset_for_epoch(diverging.0)`
/// (`None` when undefined), `log_end_offset` its log end.
///
/// - the leader knows no end (-1): nothing is cut (the caller backs off);
/// - the follower has no epoch at or below the leader's: cut to the
///   leader's end offset;
/// - the follower's largest such epoch is the leader's: cut to the
///   smaller of both ends;
/// - it is an older one: cut to the follower's end of it and ask again.
pub fn truncation_offset(
    diverging: (i32, i64),
    local_answer: Option<(i32, i64)>,
    log_end_offset: i64,
) -> Truncation {
    let (leader_epoch, leader_end) = diverging;
    let done = |offset: i64| Truncation {
        offset: offset.min(log_end_offset),
        complete: true,
    };
    if leader_end < 0 {
        return done(log_end_offset);
    }
    if leader_epoch < 0 {
        return done(leader_end);
    }
    match local_answer {
        None => done(leader_end),
        Some((epoch, end)) if epoch == leader_epoch => done(end.min(leader_end)),
        Some((_, end)) => Truncation {
            offset: end.min(log_end_offset),
            complete: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (last fetched epoch, fetch offset, leader's answer, diverging epoch).
    type DivergenceCase = (i32, i64, (i32, i64), Option<(i32, i64)>);

    #[test]
    fn leader_detects_divergence() {
        let cases: &[DivergenceCase] = &[
            (-1, 50, (-1, -1), None),        // no epoch named: unchecked
            (3, 50, (3, 80), None),          // same epoch, leader has more
            (3, 80, (3, 80), None),          // level
            (3, 90, (3, 80), Some((3, 80))), // follower wrote past the epoch's end
            (4, 50, (3, 60), Some((3, 60))), // leader never had epoch 4
            (4, 50, (-1, -1), Some((-1, -1))),
        ];
        for &(epoch, offset, answer, want) in cases {
            assert_eq!(
                diverging_epoch(epoch, offset, answer),
                want,
                "{epoch} {offset}"
            );
        }
    }

    #[test]
    fn follower_truncates_to_the_common_prefix() {
        let t = |offset, complete| Truncation { offset, complete };
        // Same epoch known on both sides: the smaller end.
        assert_eq!(truncation_offset((3, 80), Some((3, 90)), 95), t(80, true));
        assert_eq!(truncation_offset((3, 80), Some((3, 70)), 95), t(70, true));
        // Never past the local end.
        assert_eq!(truncation_offset((3, 80), Some((3, 90)), 60), t(60, true));
        // Follower lacks epoch 3; its epoch 2 ends at 50: cut there, ask again.
        assert_eq!(
            truncation_offset((3, 100), Some((2, 50)), 120),
            t(50, false)
        );
        // Follower has nothing at or below the epoch: the leader's end.
        assert_eq!(truncation_offset((3, 40), None, 120), t(40, true));
        // Leader knows no end: nothing is cut.
        assert_eq!(
            truncation_offset((-1, -1), Some((2, 50)), 120),
            t(120, true)
        );
    }
}
