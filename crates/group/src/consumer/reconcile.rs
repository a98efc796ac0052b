//! Kafka's `CurrentAssignmentBuilder`: moves one member from its current
//! assignment towards its target, revoking before assigning, and never
//! assigning a partition another member still owns.

use std::collections::{BTreeSet, HashSet};

use uuid::Uuid;

use super::{Assignment, ConsumerMember, MemberState};

/// The partitions a member reported owning in its heartbeat (`None` when
/// the request did not carry the field).
pub(crate) type Owned<'a> = Option<&'a [(Uuid, Vec<i32>)]>;

fn owns_any(owned: Owned<'_>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else {
        // Unknown: assume the member still owns them.
        return true;
    };
    owned.iter().any(|(t, ps)| {
        partitions
            .get(t)
            .is_some_and(|set| ps.iter().any(|p| set.contains(p)))
    })
}

/// Whether the reported partitions are all within `assignment` (Kafka's
/// `isSubset`; `None` is not a subset).
pub(crate) fn is_subset(owned: Owned<'_>, assignment: &Assignment) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(t, ps)| {
        ps.is_empty()
            || assignment
                .get(t)
                .is_some_and(|set| ps.iter().all(|p| set.contains(p)))
    })
}

/// The member's next state. `owned_by_any` holds every partition some
/// member (this one included) currently owns. A member in the Unknown
/// state must have been fenced by the caller unless it reported owning
/// nothing.
pub(crate) fn reconcile(
    member: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned_by_any: &HashSet<(Uuid, i32)>,
    owned: Owned<'_>,
) -> ConsumerMember {
    let next_with = |epoch| next(member, epoch, target_epoch, target, owned_by_any, owned);
    match member.state {
        MemberState::Stable if member.member_epoch == target_epoch => member.clone(),
        MemberState::Stable | MemberState::UnreleasedPartitions => next_with(member.member_epoch),
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.pending_revocation) {
                member.clone()
            } else {
                next_with(member.member_epoch + 1)
            }
        }
        MemberState::Unknown => next_with(target_epoch),
    }
}

/// Kafka's `updateMemberEpoch`: the previous epoch always becomes the
/// current one, even when the epoch does not change.
fn with_epoch(member: &ConsumerMember, epoch: i32) -> ConsumerMember {
    let mut m = member.clone();
    m.previous_member_epoch = m.member_epoch;
    m.member_epoch = epoch;
    m
}

/// Kafka's `computeNextAssignment`.
fn next(
    member: &ConsumerMember,
    member_epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    owned_by_any: &HashSet<(Uuid, i32)>,
    owned: Owned<'_>,
) -> ConsumerMember {
    let mut has_unreleased = false;
    let mut new_assigned = Assignment::new();
    let mut pending_revocation = Assignment::new();
    let mut pending_assignment = Assignment::new();
    let topics: BTreeSet<Uuid> = target
        .keys()
        .chain(member.assigned.keys())
        .copied()
        .collect();
    let empty = BTreeSet::new();
    for topic in topics {
        let target_ps = target.get(&topic).unwrap_or(&empty);
        let current = member.assigned.get(&topic).unwrap_or(&empty);
        let assigned: BTreeSet<i32> = current.intersection(target_ps).copied().collect();
        let revoke: BTreeSet<i32> = current.difference(&assigned).copied().collect();
        let mut to_assign: BTreeSet<i32> = target_ps.difference(&assigned).copied().collect();
        let before = to_assign.len();
        to_assign.retain(|p| !owned_by_any.contains(&(topic, *p)));
        has_unreleased |= to_assign.len() != before;
        if !assigned.is_empty() {
            new_assigned.insert(topic, assigned);
        }
        if !revoke.is_empty() {
            pending_revocation.insert(topic, revoke);
        }
        if !to_assign.is_empty() {
            pending_assignment.insert(topic, to_assign);
        }
    }
    if !pending_revocation.is_empty() && owns_any(owned, &pending_revocation) {
        // Revoke first: stay at the current epoch until the member reports
        // it no longer owns these.
        let mut m = with_epoch(member, member_epoch);
        m.state = MemberState::UnrevokedPartitions;
        m.assigned = new_assigned;
        m.pending_revocation = pending_revocation;
        return m;
    }
    let mut m = with_epoch(member, target_epoch);
    for (t, ps) in pending_assignment {
        new_assigned.entry(t).or_default().extend(ps);
    }
    m.state = if has_unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    m.assigned = new_assigned;
    m.pending_revocation = Assignment::new();
    m
}
