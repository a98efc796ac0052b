//! ElectLeaders: preferred and unclean leader election on request.

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, MetadataRecord, NO_LEADER};
use uuid::Uuid;

use crate::partition_change::{elect, finish, record, Leaders, Target};
use crate::PlanError;

/// ElectLeaders for one partition.
///
/// `preferred == true`: PREFERRED election. The leader becomes
/// `replicas[0]` if it is usable and in the ISR; if it already leads ->
/// ELECTION_NOT_NEEDED; not eligible -> PREFERRED_LEADER_NOT_AVAILABLE.
///
/// `preferred == false`: UNCLEAN election, only when the leader is
/// NO_LEADER (otherwise ELECTION_NOT_NEEDED): a usable ISR member if there
/// is one (a clean election), else the first usable replica even though it
/// is out of the ISR, which becomes the whole ISR (records it lacks are
/// lost). No usable replica -> ELIGIBLE_LEADERS_NOT_AVAILABLE.
///
/// Unknown partition -> UNKNOWN_TOPIC_OR_PARTITION.
pub fn plan_elect_leader(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    preferred: bool,
) -> Result<Vec<MetadataRecord>, PlanError> {
    let current = image
        .partition(&topic_id, partition)
        .ok_or_else(|| PlanError::unknown_partition(&topic_id, partition))?;
    let at = || format!("partition {partition} of topic {topic_id}");
    let leaders = Leaders::usable(image);
    let mut target = Target::of(current);
    let leader = if preferred {
        let first = current.replicas.first().copied().unwrap_or(NO_LEADER);
        if current.leader == first {
            return Err(PlanError::new(
                ResponseError::ElectionNotNeeded,
                format!("the preferred replica {first} already leads {}", at()),
            ));
        }
        if !current.isr.contains(&first) || !leaders.accepts(first) {
            return Err(PlanError::new(
                ResponseError::PreferredLeaderNotAvailable,
                format!(
                    "the preferred replica {first} of {} is not an available in-sync replica",
                    at()
                ),
            ));
        }
        first
    } else {
        if current.leader != NO_LEADER {
            return Err(PlanError::new(
                ResponseError::ElectionNotNeeded,
                format!("{} has leader {}", at(), current.leader),
            ));
        }
        match elect(NO_LEADER, &current.replicas, &current.isr, leaders) {
            NO_LEADER => {
                let Some(&unclean) = current.replicas.iter().find(|&&r| leaders.accepts(r)) else {
                    return Err(PlanError::new(
                        ResponseError::EligibleLeadersNotAvailable,
                        format!("no replica of {} is on an available broker", at()),
                    ));
                };
                target.isr = vec![unclean];
                unclean
            }
            clean => clean,
        }
    };
    Ok(finish(current, leaders, leader, target)
        .map(|next| record(topic_id, partition, next))
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use odradek_metadata::PartitionImage;

    #[test]
    fn elections() {
        let mut image = cluster(&[(1, Up), (2, Up), (3, Fenced), (4, ShuttingDown)]);
        let parts = [
            state(&[1, 2], &[1, 2], 2),         // 0: preferred in ISR, not leading
            state(&[1, 2], &[1, 2], 1),         // 1: preferred leads
            state(&[1, 2], &[2], 2),            // 2: preferred out of ISR
            state(&[3, 1], &[3, 1], 1),         // 3: preferred fenced
            state(&[4, 1], &[4, 1], 1),         // 4: preferred shutting down
            state(&[3, 2, 1], &[3], NO_LEADER), // 5: leaderless, others out of ISR
            state(&[3, 4], &[3], NO_LEADER),    // 6: leaderless, nobody usable
        ];
        for (p, s) in parts.into_iter().enumerate() {
            put_partition(&mut image, 1, p as i32, s);
        }
        let t = topic_id(1);
        type Want = Result<Option<(i32, &'static [i32], i32)>, ResponseError>;
        // (partition, preferred) -> Ok(Some((leader, isr, leader epoch))) | Ok(None) | Err
        let cases: &[(i32, bool, Want)] = &[
            (0, true, Ok(Some((1, &[1, 2], 6)))),
            (1, true, Err(ResponseError::ElectionNotNeeded)),
            (2, true, Err(ResponseError::PreferredLeaderNotAvailable)),
            (3, true, Err(ResponseError::PreferredLeaderNotAvailable)),
            (4, true, Err(ResponseError::PreferredLeaderNotAvailable)),
            (5, true, Err(ResponseError::PreferredLeaderNotAvailable)),
            (0, false, Err(ResponseError::ElectionNotNeeded)),
            (5, false, Ok(Some((2, &[2], 6)))),
            (6, false, Err(ResponseError::EligibleLeadersNotAvailable)),
            (9, true, Err(ResponseError::UnknownTopicOrPartition)),
            (9, false, Err(ResponseError::UnknownTopicOrPartition)),
        ];
        for &(p, preferred, ref want) in cases {
            let got = plan_elect_leader(&image, t, p, preferred);
            let got: Result<Option<(i32, Vec<i32>, i32)>, ResponseError> = match got {
                Ok(records) => Ok(partition_states(&records).pop().map(
                    |(_, _, s): (u128, i32, PartitionImage)| (s.leader, s.isr, s.leader_epoch),
                )),
                Err(e) => Err(e.code),
            };
            let want = (*want).map(|o| o.map(|(l, isr, e)| (l, isr.to_vec(), e)));
            assert_eq!(got, want, "partition {p} preferred {preferred}");
        }
    }
}
