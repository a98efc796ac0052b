//! Random sequences of controller requests against a 3–5 broker cluster.
//! Every plan's records are applied one at a time and the crate invariants
//! (see the crate docs) are checked after every record, and after every
//! whole plan. Deterministic: a seeded xorshift generator, no new
//! dependencies. A failure prints the seed, step, request and records.

use std::collections::{BTreeMap, BTreeSet};

use odradek_controller::{
    new_partition, place_replicas, plan_alter_partition, plan_controlled_shutdown,
    plan_elect_leader, plan_fence_broker, plan_reassignment, plan_register_broker,
    plan_unfence_broker, plan_unregister_broker, reassignment_in_progress, PlanError,
};
use odradek_metadata::{MetadataImage, MetadataRecord, PartitionImage, NO_LEADER};
use uuid::Uuid;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i + 1));
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Register {
        broker: i32,
        incarnation: Uuid,
        previous_alive: bool,
    },
    Fence(i32),
    Unfence(i32),
    Shutdown(i32),
    Unregister(i32),
    Alter {
        requester: i32,
        topic: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    Elect {
        topic: Uuid,
        partition: i32,
        preferred: bool,
    },
    Reassign {
        topic: Uuid,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    CreateTopic {
        partitions: i32,
        rf: usize,
    },
}

#[derive(Debug, Default)]
struct Stats {
    ok: BTreeMap<&'static str, usize>,
    /// By request kind and error code.
    refused: BTreeMap<(&'static str, String), usize>,
    records: usize,
    completions: usize,
    unclean: usize,
    leaderless_seen: usize,
    leader_moves: usize,
}

struct World {
    rng: Rng,
    image: MetadataImage,
    broker_ids: Vec<i32>,
    incarnations: BTreeMap<i32, Uuid>,
    next_id: u128,
    topics: usize,
    stats: Stats,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let n = 3 + rng.below(3) as i32;
        let racks = rng.chance(50);
        let mut w = World {
            rng,
            image: MetadataImage::default(),
            broker_ids: (1..=n).collect(),
            incarnations: BTreeMap::new(),
            next_id: 1,
            topics: 0,
            stats: Stats::default(),
        };
        for b in 1..=n {
            let inc = w.uuid();
            w.incarnations.insert(b, inc);
            let rack = racks.then(|| format!("rack{}", b % 2));
            let records =
                plan_register_broker(&w.image, b, inc, "localhost", 9090 + b, rack, false).unwrap();
            w.apply_all(&records);
            let records = plan_unfence_broker(&w.image, b);
            w.apply_all(&records);
        }
        for _ in 0..3 {
            let partitions = 1 + w.rng.below(4) as i32;
            let rf = 1 + w.rng.below(3);
            let _ = w.create_topic(partitions, rf);
        }
        w
    }

    fn uuid(&mut self) -> Uuid {
        self.next_id += 1;
        Uuid::from_u128(self.next_id)
    }

    fn apply_all(&mut self, records: &[MetadataRecord]) {
        records.iter().for_each(|r| self.image.apply(r));
    }

    fn create_topic(
        &mut self,
        partitions: i32,
        rf: usize,
    ) -> Result<Vec<MetadataRecord>, PlanError> {
        let placed = place_replicas(&self.image, partitions, rf)?;
        self.topics += 1;
        let topic_id = self.uuid();
        let mut records = vec![MetadataRecord::Topic {
            name: format!("topic-{}", self.topics),
            topic_id,
        }];
        for (p, replicas) in placed {
            assert_eq!(replicas.len(), rf);
            let unique: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(unique.len(), rf, "placement repeats a broker: {replicas:?}");
            assert!(replicas.iter().all(|&b| self.image.is_usable(b)));
            records.push(MetadataRecord::Partition {
                topic_id,
                partition: p,
                state: new_partition(&self.image, replicas)?,
            });
        }
        Ok(records)
    }

    fn partitions(&self) -> Vec<(Uuid, i32, PartitionImage)> {
        let mut all: Vec<_> = self
            .image
            .topics()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |(&p, s)| (t.topic_id, p, s.clone()))
            })
            .collect();
        all.sort_by_key(|(t, p, _)| (*t, *p));
        all
    }

    fn random_op(&mut self) -> Op {
        let parts = self.partitions();
        let mut ids = self.broker_ids.clone();
        ids.push(99); // never registered
        let broker = self.rng.pick(&self.broker_ids);
        let kind = self.rng.below(100);
        if parts.is_empty() || kind < 12 {
            if self.rng.chance(15) {
                return Op::CreateTopic {
                    partitions: self.rng.below(4) as i32,
                    rf: self.rng.below(4),
                };
            }
            // Mostly the next step of a broker's life, so that most brokers
            // are usable most of the time; sometimes anything at all.
            #[derive(Clone, Copy)]
            enum B {
                Register,
                Fence,
                Unfence,
                Shutdown,
                Unregister,
            }
            let state = self
                .image
                .broker(broker)
                .map(|b| (b.fenced, b.in_controlled_shutdown));
            let weights: &[(B, u64)] = match state {
                _ if self.rng.chance(10) => &[
                    (B::Register, 1),
                    (B::Fence, 1),
                    (B::Unfence, 1),
                    (B::Shutdown, 1),
                    (B::Unregister, 1),
                ],
                None => &[(B::Register, 1)],
                Some((true, _)) => &[(B::Unfence, 7), (B::Register, 2), (B::Unregister, 1)],
                Some((false, true)) => &[(B::Fence, 7), (B::Register, 3)],
                Some((false, false)) => &[(B::Fence, 3), (B::Shutdown, 3), (B::Register, 3)],
            };
            let mut roll = self
                .rng
                .below(weights.iter().map(|w| w.1).sum::<u64>() as usize)
                as u64;
            let what = weights
                .iter()
                .find(|(_, w)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or(B::Register, |w| w.0);
            return match what {
                B::Register => {
                    let incarnation = match self.incarnations.get(&broker) {
                        Some(&inc) if self.rng.chance(30) => inc,
                        _ => self.uuid(),
                    };
                    Op::Register {
                        broker,
                        incarnation,
                        previous_alive: self.rng.chance(30),
                    }
                }
                B::Fence => Op::Fence(broker),
                B::Unfence => Op::Unfence(broker),
                B::Shutdown => Op::Shutdown(broker),
                B::Unregister => Op::Unregister(broker),
            };
        }
        let (topic, partition, s) = self.rng.pick_clone(&parts);
        if kind < 75 {
            // AlterPartition: mostly well-formed, sometimes stale or odd.
            let requester = if s.leader != NO_LEADER && self.rng.chance(90) {
                s.leader
            } else {
                self.rng.pick(&ids)
            };
            let skew = |rng: &mut Rng, v: i32| {
                if rng.chance(90) {
                    v
                } else {
                    v + rng.pick(&[-1, 1])
                }
            };
            let leader_epoch = skew(&mut self.rng, s.leader_epoch);
            let partition_epoch = skew(&mut self.rng, s.partition_epoch);
            let mut isr: Vec<i32> = Vec::new();
            for &r in &s.replicas {
                let p = if r == s.leader {
                    97
                } else if self.image.is_usable(r) {
                    80
                } else {
                    5
                };
                if self.rng.chance(p) {
                    isr.push(r);
                }
            }
            if self.rng.chance(3) {
                isr.push(self.rng.pick(&ids));
            }
            self.rng.shuffle(&mut isr);
            return Op::Alter {
                requester,
                topic,
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            };
        }
        if kind < 85 {
            return Op::Elect {
                topic,
                partition,
                preferred: self.rng.chance(50),
            };
        }
        let target = if reassignment_in_progress(&s) && self.rng.chance(35) {
            None
        } else {
            let mut pool = if self.rng.chance(5) {
                ids
            } else {
                self.broker_ids.clone()
            };
            self.rng.shuffle(&mut pool);
            let n = if self.rng.chance(5) {
                0
            } else {
                1 + self.rng.below(3)
            };
            pool.truncate(n);
            if self.rng.chance(3) && !pool.is_empty() {
                pool.push(pool[0]);
            }
            Some(pool)
        };
        Op::Reassign {
            topic,
            partition,
            target,
        }
    }

    fn plan(&mut self, op: &Op) -> (&'static str, Result<Vec<MetadataRecord>, PlanError>) {
        let image = &self.image;
        match op.clone() {
            Op::Register {
                broker,
                incarnation,
                previous_alive,
            } => {
                let r = plan_register_broker(
                    image,
                    broker,
                    incarnation,
                    "localhost",
                    9090 + broker,
                    None,
                    previous_alive,
                );
                if r.is_ok() {
                    self.incarnations.insert(broker, incarnation);
                }
                ("register", r)
            }
            Op::Fence(b) => ("fence", Ok(plan_fence_broker(image, b))),
            Op::Unfence(b) => ("unfence", Ok(plan_unfence_broker(image, b))),
            Op::Shutdown(b) => ("shutdown", Ok(plan_controlled_shutdown(image, b))),
            Op::Unregister(b) => ("unregister", plan_unregister_broker(image, b)),
            Op::Alter {
                requester,
                topic,
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let r = plan_alter_partition(
                    image,
                    requester,
                    topic,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    &isr,
                );
                let r = r.map(|(records, state)| {
                    let mut after = image.clone();
                    records.iter().for_each(|r| after.apply(r));
                    assert_eq!(
                        after.partition(&topic, partition),
                        Some(&state),
                        "AlterPartition's returned state is the state after its records"
                    );
                    let old = image.partition(&topic, partition).unwrap();
                    let want: Vec<i32> =
                        if reassignment_in_progress(old) && !reassignment_in_progress(&state) {
                            let kept = |b: &&i32| !old.removing_replicas.contains(b);
                            isr.iter().filter(kept).copied().collect()
                        } else {
                            isr.clone()
                        };
                    assert_eq!(state.isr, want, "AlterPartition sets the requested ISR");
                    records
                });
                ("alter", r)
            }
            Op::Elect {
                topic,
                partition,
                preferred,
            } => (
                if preferred {
                    "elect-preferred"
                } else {
                    "elect-unclean"
                },
                plan_elect_leader(image, topic, partition, preferred),
            ),
            Op::Reassign {
                topic,
                partition,
                target,
            } => (
                if target.is_some() {
                    "reassign"
                } else {
                    "cancel"
                },
                plan_reassignment(image, topic, partition, target),
            ),
            Op::CreateTopic { partitions, rf } => ("create", self.create_topic(partitions, rf)),
        }
    }

    /// Applies a plan record by record, checking invariants at each prefix.
    fn apply_checked(&mut self, records: &[MetadataRecord]) -> Result<(), String> {
        let mut touched = BTreeSet::new();
        for (i, r) in records.iter().enumerate() {
            let before = self.image.clone();
            self.image.apply(r);
            if let MetadataRecord::Partition {
                topic_id,
                partition,
                state,
            } = r
            {
                if !touched.insert((*topic_id, *partition)) {
                    return Err(format!("record {i}: second record for the same partition"));
                }
                match before.partition(topic_id, *partition) {
                    Some(old) => {
                        if state.partition_epoch != old.partition_epoch + 1 {
                            return Err(format!(
                                "record {i}: partition epoch {} -> {}",
                                old.partition_epoch, state.partition_epoch
                            ));
                        }
                        let bump = i32::from(state.leader != old.leader);
                        if state.leader_epoch != old.leader_epoch + bump {
                            return Err(format!(
                                "record {i}: leader {} -> {} but leader epoch {} -> {}",
                                old.leader, state.leader, old.leader_epoch, state.leader_epoch
                            ));
                        }
                        if state == old {
                            return Err(format!("record {i}: writes an unchanged partition"));
                        }
                        self.stats.leader_moves += bump as usize;
                        if reassignment_in_progress(old) && !reassignment_in_progress(state) {
                            self.stats.completions += 1;
                        }
                        if state.leader != NO_LEADER && !old.isr.contains(&state.leader) {
                            self.stats.unclean += 1;
                        }
                    }
                    None => {
                        if (state.leader_epoch, state.partition_epoch) != (0, 0) {
                            return Err(format!("record {i}: new partition with epochs"));
                        }
                    }
                }
            }
            check_prefix(&self.image).map_err(|e| format!("after record {i}: {e}"))?;
        }
        check_whole(&self.image)
    }
}

trait PickClone {
    fn pick_clone<T: Clone>(&mut self, xs: &[T]) -> T;
}

impl PickClone for Rng {
    fn pick_clone<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

/// Invariants 1–3 of the crate docs, which hold after every record.
fn check_prefix(image: &MetadataImage) -> Result<(), String> {
    for topic in image.topics() {
        for (p, s) in &topic.partitions {
            let at = format!("{}-{p} {s:?}", topic.name);
            let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
            let (replicas, isr) = (set(&s.replicas), set(&s.isr));
            let (adding, removing) = (set(&s.adding_replicas), set(&s.removing_replicas));
            if replicas.len() != s.replicas.len() || isr.len() != s.isr.len() {
                return Err(format!("{at}: duplicate broker"));
            }
            if s.isr.is_empty() {
                return Err(format!("{at}: empty ISR"));
            }
            if !isr.is_subset(&replicas) {
                return Err(format!("{at}: ISR not within replicas"));
            }
            if !adding.is_subset(&replicas)
                || !removing.is_subset(&replicas)
                || !adding.is_disjoint(&removing)
            {
                return Err(format!("{at}: bad reassignment state"));
            }
            if s.leader != NO_LEADER {
                if !isr.contains(&s.leader) {
                    return Err(format!("{at}: leader outside the ISR"));
                }
                if !image.is_usable(s.leader) {
                    return Err(format!("{at}: leader is fenced, shutting down or gone"));
                }
            }
            if s.isr.len() > 1 {
                if let Some(b) = s.isr.iter().find(|&&b| !image.is_usable(b)) {
                    return Err(format!("{at}: unusable broker {b} in a multi-member ISR"));
                }
            }
        }
    }
    Ok(())
}

/// Invariant 5, which holds after every whole plan.
fn check_whole(image: &MetadataImage) -> Result<(), String> {
    check_prefix(image)?;
    for topic in image.topics() {
        for (p, s) in &topic.partitions {
            if s.leader == NO_LEADER && s.isr.iter().any(|&b| image.is_usable(b)) {
                return Err(format!(
                    "{}-{p} {s:?}: leaderless with a usable ISR member",
                    topic.name
                ));
            }
        }
    }
    Ok(())
}

fn run(seed: u64, steps: usize) -> Stats {
    let mut w = World::new(seed);
    check_whole(&w.image).unwrap_or_else(|e| panic!("seed {seed}: initial image: {e}"));
    for step in 0..steps {
        let op = w.random_op();
        let before = w.image.clone();
        let (kind, planned) = w.plan(&op);
        match planned {
            Ok(records) => {
                *w.stats.ok.entry(kind).or_default() += 1;
                w.stats.records += records.len();
                if let Err(e) = w.apply_checked(&records) {
                    panic!(
                        "seed {seed} step {step}: {op:?}\n{e}\nrecords: {records:#?}\nbefore: {:#?}",
                        before.to_records()
                    );
                }
                check_op_effects(&op, &w.image)
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: {op:?}: {e}"));
            }
            Err(e) => {
                *w.stats
                    .refused
                    .entry((kind, format!("{:?}", e.code)))
                    .or_default() += 1
            }
        }
        w.stats.leaderless_seen += w
            .partitions()
            .iter()
            .filter(|(_, _, s)| s.leader == NO_LEADER)
            .count();
    }
    w.stats
}

/// What each successful request must have achieved.
fn check_op_effects(op: &Op, image: &MetadataImage) -> Result<(), String> {
    let leads = |b: i32| {
        image
            .topics()
            .any(|t| t.partitions.values().any(|p| p.leader == b))
    };
    let failure = match op {
        Op::Register { broker, .. } | Op::Fence(broker) => {
            // Fencing an unregistered broker is a no-op.
            let fenced = !matches!(image.broker(*broker), Some(b) if !b.fenced);
            (!fenced || leads(*broker)).then_some("broker not fenced or still leads")
        }
        Op::Shutdown(broker) => {
            leads(*broker).then_some("broker in controlled shutdown still leads")
        }
        Op::Unregister(broker) => (image.broker(*broker).is_some() || leads(*broker))
            .then_some("unregistered broker still there"),
        Op::Unfence(broker) => image
            .broker(*broker)
            .is_some_and(|b| b.fenced)
            .then_some("broker still fenced"),
        Op::Elect {
            topic,
            partition,
            preferred,
        } => {
            let s = image.partition(topic, *partition).ok_or("partition gone")?;
            match preferred {
                true => (s.leader != s.replicas[0])
                    .then_some("preferred election did not elect the preferred replica"),
                false => (s.leader == NO_LEADER).then_some("unclean election left no leader"),
            }
        }
        _ => None,
    };
    failure.map_or(Ok(()), |f| Err(f.to_owned()))
}

#[test]
fn random_request_sequences_keep_the_invariants() {
    let mut total = Stats::default();
    for seed in 0..300 {
        let s = run(seed, 300);
        for (k, v) in s.ok {
            *total.ok.entry(k).or_default() += v;
        }
        for (k, v) in s.refused {
            *total.refused.entry(k).or_default() += v;
        }
        total.records += s.records;
        total.completions += s.completions;
        total.unclean += s.unclean;
        total.leaderless_seen += s.leaderless_seen;
        total.leader_moves += s.leader_moves;
    }
    eprintln!("{total:#?}");
    // The sequences must actually exercise the interesting paths.
    for kind in [
        "register",
        "fence",
        "unfence",
        "shutdown",
        "unregister",
        "alter",
        "elect-preferred",
        "elect-unclean",
        "reassign",
        "cancel",
        "create",
    ] {
        assert!(
            total.ok.get(kind).copied().unwrap_or(0) > 20,
            "too few successful {kind}: {total:#?}"
        );
    }
    for kind in [
        "register",
        "alter",
        "elect-preferred",
        "elect-unclean",
        "reassign",
        "create",
    ] {
        assert!(
            total
                .refused
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|(_, n)| n)
                .sum::<usize>()
                > 20,
            "too few refused {kind}: {total:#?}"
        );
    }
    assert!(total.completions > 100, "{total:#?}");
    assert!(total.unclean > 20, "{total:#?}");
    assert!(total.leaderless_seen > 100, "{total:#?}");
    assert!(total.leader_moves > 1000, "{total:#?}");
}

#[test]
fn same_seed_same_records() {
    let records = |seed| {
        let mut w = World::new(seed);
        let mut all = Vec::new();
        for _ in 0..200 {
            let op = w.random_op();
            if let (_, Ok(records)) = w.plan(&op) {
                w.apply_all(&records);
                all.extend(records);
            }
        }
        all
    };
    assert_eq!(records(7), records(7), "plans are deterministic");
}
