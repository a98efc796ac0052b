//! Where the replicas of new partitions go (CreateTopics, CreatePartitions,
//! auto-creation), and the checks on assignments given explicitly.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::error::ResponseError;
use odradek_metadata::{MetadataImage, PartitionImage, NO_LEADER};

use crate::PlanError;

/// Replica placement for new partitions across usable (unfenced, not
/// shutting down) brokers: round-robin with a start offset chosen so
/// leaders (first replica) are balanced against the leaders the image
/// already has on each broker; rack-aware like Kafka when brokers have
/// racks (replicas of a partition on distinct racks where possible).
///
/// Errors: `replication_factor` > usable brokers, or no usable broker ->
/// INVALID_REPLICATION_FACTOR ("replication factor R is larger than the
/// number of available brokers (N)"); a replication factor of 0 -> the
/// same; negative `partitions` -> INVALID_PARTITIONS.
///
/// Partitions are numbered `0..partitions`; see [`place_replicas_from`]
/// for CreatePartitions.
pub fn place_replicas(
    image: &MetadataImage,
    partitions: i32,
    replication_factor: usize,
) -> Result<BTreeMap<i32, Vec<i32>>, PlanError> {
    place_replicas_from(image, 0, partitions, replication_factor)
}

/// [`place_replicas`] for partitions numbered
/// `first_index..first_index + partitions` (CreatePartitions adds
/// partitions after the existing ones).
///
/// How it places, in the manner of Kafka's rack-aware assignment:
/// the usable brokers are ordered by id, or, when any has a rack,
/// alternating between racks (first broker of each rack, then the second
/// of each, ...; a broker without a rack counts as a rack of its own).
/// Partition `i` is led by broker `(start + i) % n` of that order, where
/// `start` is the offset that leaves the per-broker leader counts (existing
/// leaders included) most even. Followers are the next brokers in the
/// order, skipping brokers on a rack the partition already uses as long as
/// unused racks remain.
pub fn place_replicas_from(
    image: &MetadataImage,
    first_index: i32,
    partitions: i32,
    replication_factor: usize,
) -> Result<BTreeMap<i32, Vec<i32>>, PlanError> {
    if partitions < 0 {
        return Err(PlanError::new(
            ResponseError::InvalidPartitions,
            format!("number of partitions must be larger than 0, got {partitions}"),
        ));
    }
    if first_index < 0 || first_index.checked_add(partitions).is_none() {
        return Err(PlanError::new(
            ResponseError::InvalidPartitions,
            format!(
                "partition indexes from {first_index} for {partitions} partitions are out of range"
            ),
        ));
    }
    if replication_factor == 0 {
        return Err(PlanError::new(
            ResponseError::InvalidReplicationFactor,
            "replication factor must be larger than 0",
        ));
    }
    let usable = image.usable_brokers();
    if replication_factor > usable.len() {
        return Err(PlanError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {replication_factor} is larger than the number of available brokers ({})",
                usable.len()
            ),
        ));
    }
    let (order, racks) = rack_alternated(image, &usable);
    let n = order.len();
    let mut leaders: HashMap<i32, i64> = HashMap::new();
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if p.leader != NO_LEADER {
                *leaders.entry(p.leader).or_default() += 1;
            }
        }
    }
    let current: Vec<i64> = order
        .iter()
        .map(|b| leaders.get(b).copied().unwrap_or(0))
        .collect();
    let start = balanced_start(&current, partitions as usize);
    Ok((0..partitions)
        .map(|p| {
            let lead = (start + p as usize) % n;
            let replicas = match &racks {
                None => (0..replication_factor)
                    .map(|r| order[(lead + r) % n])
                    .collect(),
                Some(racks) => pick_across_racks(&order, racks, lead, replication_factor),
            };
            (first_index + p, replicas)
        })
        .collect())
}

/// The usable brokers in placement order and, if any broker has a rack,
/// each one's rack (parallel to the order).
#[allow(clippy::type_complexity)]
fn rack_alternated(
    image: &MetadataImage,
    usable: &[i32],
) -> (Vec<i32>, Option<Vec<Option<String>>>) {
    let rack_of = |b: i32| image.broker(b).and_then(|b| b.rack.clone());
    if usable.iter().all(|&b| rack_of(b).is_none()) {
        return (usable.to_vec(), None);
    }
    let mut by_rack: BTreeMap<Option<String>, Vec<i32>> = BTreeMap::new();
    for &b in usable {
        by_rack.entry(rack_of(b)).or_default().push(b);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::with_capacity(usable.len());
    let mut racks = Vec::with_capacity(usable.len());
    for i in 0..longest {
        for (rack, brokers) in &by_rack {
            if let Some(&b) = brokers.get(i) {
                order.push(b);
                racks.push(rack.clone());
            }
        }
    }
    (order, Some(racks))
}

/// The start offset whose round-robin of `partitions` leaders leaves the
/// leader counts most even: lowest maximum, then lowest sum of squares,
/// then the lowest offset.
fn balanced_start(current: &[i64], partitions: usize) -> usize {
    let n = current.len();
    let rem = partitions % n;
    let score = |start: usize| {
        let counts = current
            .iter()
            .enumerate()
            .map(|(k, c)| c + i64::from((k + n - start) % n < rem));
        let max = counts.clone().max().unwrap_or(0);
        let squares: i64 = counts.map(|c| c * c).sum();
        (max, squares)
    };
    (0..n).min_by_key(|&s| (score(s), s)).unwrap_or(0)
}

fn pick_across_racks(order: &[i32], racks: &[Option<String>], lead: usize, rf: usize) -> Vec<i32> {
    let n = order.len();
    let mut chosen = vec![order[lead]];
    let mut used: BTreeSet<&Option<String>> = BTreeSet::from([&racks[lead]]);
    for j in 1..n {
        if chosen.len() == rf {
            break;
        }
        let k = (lead + j) % n;
        if used.insert(&racks[k]) {
            chosen.push(order[k]);
        }
    }
    for j in 1..n {
        if chosen.len() == rf {
            break;
        }
        let b = order[(lead + j) % n];
        if !chosen.contains(&b) {
            chosen.push(b);
        }
    }
    chosen
}

/// Explicit assignments (CreateTopics with assignments, CreatePartitions):
/// indexes must be `first_index..first_index+n` contiguous, every partition
/// the same non-zero replica count, no duplicate broker (all
/// INVALID_REPLICA_ASSIGNMENT, as Kafka 4), every broker registered
/// (unknown -> BROKER_NOT_AVAILABLE). Like Kafka, a partition also needs at
/// least one usable replica to lead it (else INVALID_REPLICA_ASSIGNMENT);
/// an empty assignment is INVALID_REPLICA_ASSIGNMENT too.
pub fn validate_assignments(
    image: &MetadataImage,
    first_index: i32,
    assignments: &BTreeMap<i32, Vec<i32>>,
) -> Result<(), PlanError> {
    let invalid = |why: String| Err(PlanError::new(ResponseError::InvalidReplicaAssignment, why));
    if assignments.is_empty() {
        return invalid("the replica assignment lists no partitions".into());
    }
    let count = assignments.len() as i64;
    let first = i64::from(first_index);
    if assignments
        .keys()
        .map(|&p| i64::from(p))
        .ne(first..first + count)
    {
        return invalid(format!(
            "partition indexes in the assignment must be {first}..{}",
            first + count - 1
        ));
    }
    let rf = assignments.values().next().map_or(0, Vec::len);
    for (p, replicas) in assignments {
        if replicas.is_empty() || replicas.len() != rf {
            return invalid(format!(
                "partition {p} has {} replicas; all partitions need the same non-zero count",
                replicas.len()
            ));
        }
        let unique: BTreeSet<_> = replicas.iter().collect();
        if unique.len() != replicas.len() {
            return invalid(format!("partition {p} lists a broker twice"));
        }
        if let Some(b) = replicas.iter().find(|&&b| image.broker(b).is_none()) {
            return Err(PlanError::new(
                ResponseError::BrokerNotAvailable,
                format!("partition {p} is assigned to unknown broker {b}"),
            ));
        }
        if !replicas.iter().any(|&b| image.is_usable(b)) {
            return invalid(format!(
                "all brokers assigned to partition {p} are fenced or in controlled shutdown"
            ));
        }
    }
    Ok(())
}

/// The state of a new partition placed on `replicas` (Kafka's
/// createTopic): the ISR is the usable replicas in replica order, the
/// first of them leads, epochs start at zero. Fenced replicas join the ISR
/// later through AlterPartition, once they have caught up. No usable
/// replica -> INVALID_REPLICA_ASSIGNMENT.
pub fn new_partition(
    image: &MetadataImage,
    replicas: Vec<i32>,
) -> Result<PartitionImage, PlanError> {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|&b| image.is_usable(b))
        .collect();
    let Some(&leader) = isr.first() else {
        return Err(PlanError::new(
            ResponseError::InvalidReplicaAssignment,
            format!("none of the replicas {replicas:?} is on an available broker"),
        ));
    };
    Ok(PartitionImage {
        replicas,
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    fn racked(brokers: &[(i32, &str)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(id, rack) in brokers {
            add_broker(&mut image, id, Up, Some(rack));
        }
        image
    }

    #[test]
    fn round_robin_without_racks() {
        let image = cluster(&[(1, Up), (2, Up), (3, Up), (4, Fenced), (5, ShuttingDown)]);
        // (partitions, rf) -> placement
        let cases: &[(i32, usize, &[&[i32]])] = &[
            (0, 1, &[]),
            (1, 1, &[&[1]]),
            (3, 2, &[&[1, 2], &[2, 3], &[3, 1]]),
            (4, 3, &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2], &[1, 2, 3]]),
        ];
        for (partitions, rf, want) in cases {
            let got = place_replicas(&image, *partitions, *rf).unwrap();
            let want: BTreeMap<i32, Vec<i32>> = want
                .iter()
                .enumerate()
                .map(|(i, r)| (i as i32, r.to_vec()))
                .collect();
            assert_eq!(got, want, "{partitions} partitions rf {rf}");
        }
        let from = place_replicas_from(&image, 5, 2, 1).unwrap();
        assert_eq!(from.keys().copied().collect::<Vec<_>>(), vec![5, 6]);
    }

    #[test]
    fn placement_errors() {
        let image = cluster(&[(1, Up), (2, Up), (3, Fenced)]);
        let cases: &[(&MetadataImage, i32, usize, ResponseError, &str)] = &[
            (
                &image,
                1,
                3,
                ResponseError::InvalidReplicationFactor,
                "replication factor 3 is larger than the number of available brokers (2)",
            ),
            (
                &MetadataImage::default(),
                1,
                1,
                ResponseError::InvalidReplicationFactor,
                "replication factor 1 is larger than the number of available brokers (0)",
            ),
            (
                &image,
                1,
                0,
                ResponseError::InvalidReplicationFactor,
                "replication factor must be larger than 0",
            ),
            (
                &image,
                -1,
                1,
                ResponseError::InvalidPartitions,
                "number of partitions must be larger than 0, got -1",
            ),
        ];
        for (image, partitions, rf, code, message) in cases {
            let err = place_replicas(image, *partitions, *rf).unwrap_err();
            assert_eq!((err.code, err.message.as_str()), (*code, *message));
        }
    }

    #[test]
    fn leaders_balance_against_existing_leaders() {
        let mut image = cluster(&[(1, Up), (2, Up), (3, Up)]);
        // Broker 1 leads two partitions, broker 2 one.
        put_partition(&mut image, 1, 0, state(&[1], &[1], 1));
        put_partition(&mut image, 1, 1, state(&[1], &[1], 1));
        put_partition(&mut image, 1, 2, state(&[2], &[2], 2));
        // (partitions, rf) -> leaders of the new partitions
        let cases: &[(i32, usize, &[i32])] = &[
            (1, 1, &[3]),
            (2, 1, &[2, 3]),
            (2, 2, &[2, 3]),
            (3, 1, &[1, 2, 3]),
            (4, 3, &[3, 1, 2, 3]),
        ];
        for (partitions, rf, want) in cases {
            let got = place_replicas(&image, *partitions, *rf).unwrap();
            let leaders: Vec<i32> = got.values().map(|r| r[0]).collect();
            assert_eq!(leaders, *want, "{partitions} partitions rf {rf}");
        }
        // Creating single-partition topics one after the other rotates the leader.
        let mut image = cluster(&[(1, Up), (2, Up), (3, Up)]);
        let mut leaders = vec![];
        for t in 1..=6u128 {
            let placed = place_replicas(&image, 1, 2).unwrap();
            leaders.push(placed[&0][0]);
            let state = new_partition(&image, placed[&0].clone()).unwrap();
            put_partition(&mut image, t, 0, state);
        }
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn rack_aware_placement() {
        // Racks a: 1, 2, 3; b: 4, 5; c: 6 -> order 1 4 6 2 5 3
        let image = racked(&[(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, "c")]);
        let rack = |b: i32| image.broker(b).unwrap().rack.clone().unwrap();
        let placed = place_replicas(&image, 6, 3).unwrap();
        let leaders: Vec<i32> = placed.values().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 4, 6, 2, 5, 3]);
        for (p, replicas) in &placed {
            let racks: BTreeSet<String> = replicas.iter().map(|&b| rack(b)).collect();
            assert_eq!(racks.len(), 3, "partition {p}: {replicas:?}");
        }
        // More replicas than racks: every rack used, then the rest.
        for (p, replicas) in place_replicas(&image, 6, 4).unwrap() {
            let racks: BTreeSet<String> = replicas.iter().map(|&b| rack(b)).collect();
            assert_eq!(racks.len(), 3, "partition {p}: {replicas:?}");
            let unique: BTreeSet<i32> = replicas.iter().copied().collect();
            assert_eq!(unique.len(), 4);
        }
        // Two racks, rf 2: always one replica in each.
        let image = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        let placed = place_replicas(&image, 8, 2).unwrap();
        for replicas in placed.values() {
            let r0 = image.broker(replicas[0]).unwrap().rack.clone();
            let r1 = image.broker(replicas[1]).unwrap().rack.clone();
            assert_ne!(r0, r1, "{replicas:?}");
        }
        let mut per_leader = BTreeMap::new();
        for replicas in placed.values() {
            *per_leader.entry(replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(
            per_leader.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2, 2]
        );
    }

    #[test]
    fn explicit_assignments() {
        let image = cluster(&[(1, Up), (2, Up), (3, Fenced)]);
        let a = |parts: &[(i32, &[i32])]| -> BTreeMap<i32, Vec<i32>> {
            parts.iter().map(|(p, r)| (*p, r.to_vec())).collect()
        };
        type Case<'a> = (i32, BTreeMap<i32, Vec<i32>>, Option<ResponseError>);
        let cases: Vec<Case> = vec![
            (0, a(&[(0, &[1, 2]), (1, &[2, 1])]), None),
            (3, a(&[(3, &[1]), (4, &[2])]), None),
            (0, a(&[(0, &[3, 1])]), None),
            (0, a(&[]), Some(ResponseError::InvalidReplicaAssignment)),
            (
                0,
                a(&[(1, &[1])]),
                Some(ResponseError::InvalidReplicaAssignment),
            ),
            (
                2,
                a(&[(2, &[1]), (4, &[1])]),
                Some(ResponseError::InvalidReplicaAssignment),
            ),
            (
                0,
                a(&[(0, &[1, 2]), (1, &[1])]),
                Some(ResponseError::InvalidReplicaAssignment),
            ),
            (
                0,
                a(&[(0, &[])]),
                Some(ResponseError::InvalidReplicaAssignment),
            ),
            (
                0,
                a(&[(0, &[1, 1])]),
                Some(ResponseError::InvalidReplicaAssignment),
            ),
            (
                0,
                a(&[(0, &[1, 7])]),
                Some(ResponseError::BrokerNotAvailable),
            ),
            (
                0,
                a(&[(0, &[3])]),
                Some(ResponseError::InvalidReplicaAssignment),
            ),
        ];
        for (first, assignments, want) in cases {
            let got = validate_assignments(&image, first, &assignments)
                .err()
                .map(|e| e.code);
            assert_eq!(got, want, "{first} {assignments:?}");
        }
    }

    #[test]
    fn new_partition_state() {
        let image = cluster(&[(1, Up), (2, Fenced), (3, Up)]);
        let p = new_partition(&image, vec![2, 3, 1]).unwrap();
        assert_eq!(
            (p.leader, p.isr, p.replicas),
            (3, vec![3, 1], vec![2, 3, 1])
        );
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        assert_eq!(
            new_partition(&image, vec![2, 9]).unwrap_err().code,
            ResponseError::InvalidReplicaAssignment
        );
    }
}
