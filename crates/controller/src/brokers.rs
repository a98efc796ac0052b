//! Broker lifecycle: registration, fencing (missed heartbeats), controlled
//! shutdown, unfencing, unregistration, and what each does to partitions.
//!
//! A broker's state record is ordered so that every prefix of a plan keeps
//! the crate invariants: leaderships and ISR memberships are given up
//! *before* the record that fences a broker (or starts its controlled
//! shutdown, or re-registers it), and a broker is unfenced *before* the
//! records that make it leader.

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, MetadataRecord, NO_LEADER};
use uuid::Uuid;

use crate::partition_change::{all_partitions, rebuild, record, Leaders, Target};
use crate::PlanError;

/// Broker registration (BrokerRegistration API). If the broker id is
/// registered with another incarnation and `previous_alive` (the active
/// controller saw a heartbeat within the session timeout) ->
/// DUPLICATE_BROKER_REGISTRATION. Otherwise RegisterBroker (which leaves
/// it fenced) plus, if it was previously registered unfenced, the same
/// effects as fencing it (a restarted broker lost its in-memory state:
/// remove from ISRs / move its leaderships); those partition records come
/// first. A negative broker id -> INVALID_REQUEST.
pub fn plan_register_broker(
    image: &MetadataImage,
    broker_id: i32,
    incarnation_id: Uuid,
    host: &str,
    port: i32,
    rack: Option<String>,
    previous_alive: bool,
) -> Result<Vec<MetadataRecord>, PlanError> {
    if broker_id < 0 {
        return Err(PlanError::new(
            ResponseError::InvalidRequest,
            format!("broker id {broker_id} is negative"),
        ));
    }
    let mut records = Vec::new();
    if let Some(existing) = image.broker(broker_id) {
        if existing.incarnation_id != incarnation_id && previous_alive {
            return Err(PlanError::new(
                ResponseError::DuplicateBrokerRegistration,
                format!(
                    "broker {broker_id} is already registered by a live process (incarnation {})",
                    existing.incarnation_id
                ),
            ));
        }
        if !existing.fenced {
            records = leave_partitions(image, broker_id);
        }
    }
    records.push(MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id,
        host: host.to_owned(),
        port,
        rack,
    });
    Ok(records)
}

/// Fence a broker (missed heartbeats): for every partition, if it leads,
/// elect a new leader from ISR \ {broker} that is usable, preferring
/// replica order; remove it from the ISR, except when it is the last ISR
/// member (Kafka keeps the last member in the ISR and sets leader =
/// NO_LEADER, unclean election disabled); then
/// `BrokerState{fenced: true, in_controlled_shutdown: false}`. Returns no
/// records if the broker is already fenced or not registered.
pub fn plan_fence_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    match image.broker(broker_id) {
        Some(b) if !b.fenced => {
            let mut records = leave_partitions(image, broker_id);
            records.push(MetadataRecord::BrokerState {
                broker_id,
                fenced: true,
                in_controlled_shutdown: false,
            });
            records
        }
        _ => Vec::new(),
    }
}

/// Controlled shutdown (heartbeat with want_shutdown_now): move leaderships
/// away and remove the broker from ISRs (keeping a last member, as
/// [`plan_fence_broker`]), then
/// `BrokerState{fenced: false, in_controlled_shutdown: true}`. No records
/// if the broker is fenced (it leads nothing and may stop at once), already
/// shutting down, or not registered. The broker may stop once
/// [`leads_any_partition`] is false.
pub fn plan_controlled_shutdown(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    match image.broker(broker_id) {
        Some(b) if !b.fenced && !b.in_controlled_shutdown => {
            let mut records = leave_partitions(image, broker_id);
            records.push(MetadataRecord::BrokerState {
                broker_id,
                fenced: false,
                in_controlled_shutdown: true,
            });
            records
        }
        _ => Vec::new(),
    }
}

/// Unfence (a heartbeat from a registered fenced broker that wants to be
/// unfenced): `BrokerState{fenced: false, in_controlled_shutdown: false}`,
/// then for every partition with leader == NO_LEADER whose ISR contains the
/// broker, make it leader (leader epoch bump). Empty if already unfenced
/// (a broker in controlled shutdown is unfenced: it must be fenced and
/// register again to come back) or not registered.
pub fn plan_unfence_broker(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    match image.broker(broker_id) {
        Some(b) if b.fenced => {}
        _ => return Vec::new(),
    }
    let mut records = vec![MetadataRecord::BrokerState {
        broker_id,
        fenced: false,
        in_controlled_shutdown: false,
    }];
    let leaders = Leaders::with(image, broker_id);
    for (topic_id, partition, current) in all_partitions(image) {
        if current.leader != NO_LEADER || !current.isr.contains(&broker_id) {
            continue;
        }
        if let Some(next) = rebuild(current, leaders, Target::of(current)) {
            records.push(record(topic_id, partition, next));
        }
    }
    records
}

/// UnregisterBroker: the effects of fencing (partition records first),
/// then `UnregisterBroker`. A broker that was the last member of an ISR
/// stays in it, as with fencing. Unknown broker -> BROKER_ID_NOT_REGISTERED.
pub fn plan_unregister_broker(
    image: &MetadataImage,
    broker_id: i32,
) -> Result<Vec<MetadataRecord>, PlanError> {
    if image.broker(broker_id).is_none() {
        return Err(PlanError::new(
            ResponseError::BrokerIdNotRegistered,
            format!("broker {broker_id} is not registered"),
        ));
    }
    let mut records = leave_partitions(image, broker_id);
    records.push(MetadataRecord::UnregisterBroker { broker_id });
    Ok(records)
}

/// Whether the broker leads any partition: a broker in controlled shutdown
/// is told to stop (heartbeat `should_shut_down`) once it leads nothing.
pub fn leads_any_partition(image: &MetadataImage, broker_id: i32) -> bool {
    image
        .topics()
        .any(|t| t.partitions.values().any(|p| p.leader == broker_id))
}

/// The partition records that take `broker_id` out of every ISR (except as
/// a last member) and move its leaderships to other usable ISR members.
fn leave_partitions(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let leaders = Leaders::without(image, broker_id);
    let mut records = Vec::new();
    for (topic_id, partition, current) in all_partitions(image) {
        if current.leader != broker_id && !current.isr.contains(&broker_id) {
            continue;
        }
        let mut target = Target::of(current);
        target.isr.retain(|&r| r != broker_id);
        if let Some(next) = rebuild(current, leaders, target) {
            records.push(record(topic_id, partition, next));
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use odradek_metadata::PartitionImage;

    /// Brokers 1-3 up, 4 fenced; topic 1 with partitions covering the cases.
    fn image() -> MetadataImage {
        let mut image = cluster(&[(1, Up), (2, Up), (3, Up), (4, Fenced)]);
        let parts = [
            state(&[1, 2, 3], &[1, 2, 3], 1), // 0: leads, others in ISR
            state(&[2, 1, 3], &[1, 3], 1),    // 1: leads, 2 (preferred) out of ISR
            state(&[1, 2], &[1], 1),          // 2: last ISR member
            state(&[2, 1], &[2, 1], 2),       // 3: follower in ISR
            state(&[2, 1], &[2], 2),          // 4: replica out of ISR: untouched
            state(&[2, 3], &[2, 3], 2),       // 5: not a replica: untouched
            state(&[1, 4], &[4], NO_LEADER),  // 6: leaderless, 4 holds the ISR
            state(&[4, 1], &[1], 1),          // 7: preferred replica fenced
        ];
        for (p, s) in parts.into_iter().enumerate() {
            put_partition(&mut image, 1, p as i32, s);
        }
        image
    }

    fn changed(records: &[MetadataRecord]) -> Vec<(i32, i32, Vec<i32>, i32, i32)> {
        partition_states(records)
            .into_iter()
            .map(|(_, p, s)| (p, s.leader, s.isr, s.leader_epoch, s.partition_epoch))
            .collect()
    }

    #[test]
    fn fencing_moves_leaders_and_shrinks_isrs() {
        let image = image();
        let records = plan_fence_broker(&image, 1);
        assert_eq!(
            records.last(),
            Some(&MetadataRecord::BrokerState {
                broker_id: 1,
                fenced: true,
                in_controlled_shutdown: false
            })
        );
        assert_eq!(
            changed(&records),
            vec![
                (0, 2, vec![2, 3], 6, 10),
                (1, 3, vec![3], 6, 10),
                (2, NO_LEADER, vec![1], 6, 10),
                (3, 2, vec![2], 5, 10),
                (7, NO_LEADER, vec![1], 6, 10),
            ]
        );
        let after = applied(&image, &records);
        assert!(after.broker(1).unwrap().fenced);
        assert!(plan_fence_broker(&after, 1).is_empty(), "already fenced");
        assert!(plan_fence_broker(&image, 4).is_empty(), "already fenced");
        assert!(plan_fence_broker(&image, 9).is_empty(), "unknown");
    }

    #[test]
    fn controlled_shutdown_is_fencing_without_the_fence() {
        let image = image();
        let records = plan_controlled_shutdown(&image, 1);
        assert_eq!(
            records.last(),
            Some(&MetadataRecord::BrokerState {
                broker_id: 1,
                fenced: false,
                in_controlled_shutdown: true
            })
        );
        let fenced = plan_fence_broker(&image, 1);
        assert_eq!(changed(&records), changed(&fenced));
        let after = applied(&image, &records);
        assert!(!leads_any_partition(&after, 1));
        assert!(leads_any_partition(&image, 1));
        assert!(
            plan_controlled_shutdown(&after, 1).is_empty(),
            "already shutting down"
        );
        assert!(plan_controlled_shutdown(&image, 4).is_empty(), "fenced");
        assert!(
            plan_unfence_broker(&after, 1).is_empty(),
            "shutting down is unfenced"
        );
    }

    #[test]
    fn unfencing_elects_for_leaderless_partitions() {
        let image = image();
        let records = plan_unfence_broker(&image, 4);
        assert_eq!(
            records.first(),
            Some(&MetadataRecord::BrokerState {
                broker_id: 4,
                fenced: false,
                in_controlled_shutdown: false
            })
        );
        assert_eq!(changed(&records), vec![(6, 4, vec![4], 6, 10)]);
        assert!(
            plan_unfence_broker(&image, 1).is_empty(),
            "already unfenced"
        );
        assert!(plan_unfence_broker(&image, 9).is_empty(), "unknown");
        // Fence then unfence: leaderless partitions come back, others stay moved.
        let fenced = applied(&image, &plan_fence_broker(&image, 1));
        let back = plan_unfence_broker(&fenced, 1);
        assert_eq!(
            changed(&back),
            vec![(2, 1, vec![1], 7, 11), (7, 1, vec![1], 7, 11)]
        );
    }

    #[test]
    fn registration() {
        let image = image();
        let new = Uuid::from_u128(77);
        // (broker, incarnation, previous_alive) -> Err(code) | Ok(partition records)
        let cases: &[(i32, Uuid, bool, Result<usize, ResponseError>)] = &[
            (9, new, true, Ok(0)),
            (
                1,
                new,
                true,
                Err(ResponseError::DuplicateBrokerRegistration),
            ),
            (1, new, false, Ok(5)),
            (1, incarnation(1), true, Ok(5)),
            (
                4,
                new,
                true,
                Err(ResponseError::DuplicateBrokerRegistration),
            ),
            (4, new, false, Ok(0)),
            (-1, new, false, Err(ResponseError::InvalidRequest)),
        ];
        for &(broker, inc, alive, ref want) in cases {
            let got = plan_register_broker(&image, broker, inc, "h", 1, Some("r".into()), alive);
            match (got, want) {
                (Ok(records), Ok(n)) => {
                    assert_eq!(partition_states(&records).len(), *n, "{broker} {alive}");
                    assert_eq!(
                        records.last(),
                        Some(&MetadataRecord::RegisterBroker {
                            broker_id: broker,
                            incarnation_id: inc,
                            host: "h".into(),
                            port: 1,
                            rack: Some("r".into())
                        })
                    );
                    let after = applied(&image, &records);
                    assert!(after.broker(broker).unwrap().fenced);
                    assert!(!leads_any_partition(&after, broker));
                }
                (Err(e), Err(code)) => assert_eq!(e.code, *code, "{broker} {alive}"),
                (got, want) => panic!("{broker} {alive}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn unregistration() {
        let image = image();
        let records = plan_unregister_broker(&image, 1).unwrap();
        assert_eq!(
            records.last(),
            Some(&MetadataRecord::UnregisterBroker { broker_id: 1 })
        );
        assert_eq!(changed(&records), changed(&plan_fence_broker(&image, 1)));
        assert_eq!(
            plan_unregister_broker(&image, 9).unwrap_err().code,
            ResponseError::BrokerIdNotRegistered
        );
    }

    #[test]
    fn fencing_a_removed_leader_during_reassignment() {
        // Moving 1 -> 3 while 3 has not caught up yet: fencing the leader 1
        // moves leadership to 2 and the reassignment keeps waiting for 3.
        let mut image = cluster(&[(1, Up), (2, Up), (3, Up)]);
        put_partition(
            &mut image,
            1,
            0,
            reassigning(&[3, 2, 1], &[1, 2], 1, &[3], &[1]),
        );
        let records = plan_fence_broker(&image, 1);
        let (_, _, s): (u128, i32, PartitionImage) = partition_states(&records).remove(0);
        assert_eq!((s.leader, s.isr.clone()), (2, vec![2]));
        assert_eq!((s.adding_replicas, s.removing_replicas), (vec![3], vec![1]));
    }
}
