//! Server-side assignors: pure functions from member subscriptions, topic
//! partition counts and the current target assignment to a new target
//! assignment.
//!
//! - `uniform` (Kafka's `UniformAssignor`): balanced and sticky. When every
//!   member subscribes to the same topics it follows Kafka's
//!   `UniformHomogeneousAssignmentBuilder` exactly (members in id order
//!   where Kafka iterates a hash map): each member keeps up to its quota
//!   (⌊P/M⌋, one more for the first P mod M members) of its previous
//!   partitions, then the unassigned partitions fill the members below
//!   quota in order. With different subscriptions it keeps previous
//!   partitions, gives each unassigned partition to the least-loaded
//!   subscribed member, then moves partitions from the most to the least
//!   loaded eligible members until no move narrows the gap. That is
//!   balanced and sticky like Kafka's heterogeneous builder, but not
//!   byte-for-byte its output.
//! - `range` (Kafka's server-side `RangeAssignor`): per topic, contiguous
//!   ranges over the subscribed members sorted by instance id (static
//!   members first) then member id; the first `P mod M` get one extra.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{Assignment, RANGE_ASSIGNOR};

/// One member as an assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub member_id: String,
    pub instance_id: Option<String>,
    /// Ids of the subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
}

/// Computes the target assignment with the named assignor (`range`, or
/// `uniform` for anything else). `partitions` holds each topic's partition
/// count; `current` the previous target (for stickiness).
pub fn assign(
    assignor: &str,
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
    current: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    if assignor == RANGE_ASSIGNOR {
        range(members, partitions)
    } else {
        uniform(members, partitions, current)
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Kafka's `RangeAssignor` (server side).
pub fn range(
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut sorted: Vec<&MemberSpec> = members.iter().collect();
    sorted.sort_by(|a, b| match (&a.instance_id, &b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    });
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    for (topic, &n) in partitions {
        let subscribers: Vec<&&MemberSpec> =
            sorted.iter().filter(|m| m.topics.contains(topic)).collect();
        if subscribers.is_empty() || n <= 0 {
            continue;
        }
        let m = subscribers.len() as i32;
        let (quota, mut extra) = (n / m, n % m);
        let mut next = 0;
        for member in subscribers {
            let mut q = quota;
            if extra > 0 {
                q += 1;
                extra -= 1;
            }
            let end = (next + q).min(n);
            if next < end {
                out.get_mut(&member.member_id)
                    .expect("every member has an entry")
                    .entry(*topic)
                    .or_default()
                    .extend(next..end);
            }
            next = end;
        }
    }
    out
}

/// Kafka's `UniformAssignor`.
pub fn uniform(
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
    current: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut sorted: Vec<&MemberSpec> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let homogeneous = sorted.windows(2).all(|w| w[0].topics == w[1].topics);
    if homogeneous {
        uniform_homogeneous(&sorted, partitions, current)
    } else {
        uniform_heterogeneous(&sorted, partitions, current)
    }
}

fn uniform_homogeneous(
    members: &[&MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
    current: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    let Some(first) = members.first() else {
        return out;
    };
    let topics: Vec<(Uuid, i32)> = first
        .topics
        .iter()
        .filter_map(|t| partitions.get(t).map(|n| (*t, *n)))
        .collect();
    let total: i32 = topics.iter().map(|(_, n)| *n).sum();
    let exists = |t: &Uuid, p: i32| topics.iter().any(|(id, n)| id == t && p < *n && p >= 0);
    // Partitions some member keeps from its previous target.
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let min_quota = total as usize / members.len();
    let mut extra = total as usize % members.len();
    let mut unfilled: Vec<(String, usize)> = vec![];
    let mut revoked: Vec<(Uuid, i32)> = vec![];
    for m in members {
        let mut quota = min_quota;
        if extra > 0 {
            quota += 1;
            extra -= 1;
        }
        let mut kept = Assignment::new();
        if let Some(old) = current.get(&m.member_id) {
            for (t, ps) in old {
                for &p in ps {
                    if !exists(t, p) || taken.contains(&(*t, p)) {
                        continue;
                    }
                    if quota > 0 {
                        quota -= 1;
                        kept.entry(*t).or_default().insert(p);
                        taken.insert((*t, p));
                    } else {
                        revoked.push((*t, p));
                    }
                }
            }
        }
        if quota > 0 {
            unfilled.push((m.member_id.clone(), quota));
        }
        out.insert(m.member_id.clone(), kept);
    }
    // Unassigned partitions in topic-id and partition order, then the ones
    // taken away from members over quota (Kafka appends those last too).
    let mut unassigned: Vec<(Uuid, i32)> = topics
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
        .filter(|tp| !taken.contains(tp) && !revoked.contains(tp))
        .collect();
    for tp in revoked {
        if !taken.contains(&tp) && !unassigned.contains(&tp) {
            unassigned.push(tp);
        }
    }
    let mut next = unassigned.into_iter();
    for (member, quota) in unfilled {
        let a = out.get_mut(&member).expect("inserted above");
        for (t, p) in next.by_ref().take(quota) {
            a.entry(t).or_default().insert(p);
        }
    }
    out
}

fn uniform_heterogeneous(
    members: &[&MemberSpec],
    partitions: &BTreeMap<Uuid, i32>,
    current: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let valid = |m: &MemberSpec, t: &Uuid, p: i32| {
        m.topics.contains(t) && partitions.get(t).is_some_and(|n| p >= 0 && p < *n)
    };
    // 1. Stickiness: keep every still-valid previous partition.
    for m in members {
        let mut kept = Assignment::new();
        if let Some(old) = current.get(&m.member_id) {
            for (t, ps) in old {
                for &p in ps {
                    if valid(m, t, p) && taken.insert((*t, p)) {
                        kept.entry(*t).or_default().insert(p);
                    }
                }
            }
        }
        out.insert(m.member_id.clone(), kept);
    }
    // 2. Each unassigned partition to the least-loaded subscriber.
    for (t, &n) in partitions {
        for p in 0..n {
            if taken.contains(&(*t, p)) {
                continue;
            }
            let target = members
                .iter()
                .filter(|m| m.topics.contains(t))
                .min_by_key(|m| (count(&out[&m.member_id]), m.member_id.clone()));
            if let Some(m) = target {
                out.get_mut(&m.member_id)
                    .expect("inserted above")
                    .entry(*t)
                    .or_default()
                    .insert(p);
                taken.insert((*t, p));
            }
        }
    }
    // 3. Balance: move a partition from a member to an eligible member
    //    with at least two fewer, until no such move exists. Every move
    //    lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        let mut by_load: Vec<&&MemberSpec> = members.iter().collect();
        by_load
            .sort_by_key(|m| std::cmp::Reverse((count(&out[&m.member_id]), m.member_id.clone())));
        'search: for from in &by_load {
            let from_load = count(&out[&from.member_id]);
            let candidates: Vec<(Uuid, i32)> = out[&from.member_id]
                .iter()
                .rev()
                .flat_map(|(t, ps)| ps.iter().rev().map(move |p| (*t, *p)))
                .collect();
            for (t, p) in candidates {
                let to = members
                    .iter()
                    .filter(|m| m.member_id != from.member_id && m.topics.contains(&t))
                    .filter(|m| count(&out[&m.member_id]) + 2 <= from_load)
                    .min_by_key(|m| (count(&out[&m.member_id]), m.member_id.clone()));
                if let Some(to) = to {
                    let src = out.get_mut(&from.member_id).expect("member");
                    let set = src.get_mut(&t).expect("owned topic");
                    set.remove(&p);
                    if set.is_empty() {
                        src.remove(&t);
                    }
                    out.get_mut(&to.member_id)
                        .expect("member")
                        .entry(t)
                        .or_default()
                        .insert(p);
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out
}
