//! KIP-848 consumer groups (`group.protocol=consumer`): the group epoch,
//! the target assignment computed here by a server-side assignor, and each
//! member's incremental reconciliation towards it through
//! ConsumerGroupHeartbeat. Semantics follow Kafka 4.0's group-coordinator
//! module (`GroupMetadataManager.consumerGroupHeartbeat`, `ConsumerGroup`,
//! `CurrentAssignmentBuilder`, `TargetAssignmentBuilder`, and the
//! `uniform` and `range` assignors).
//!
//! ```text
//!  heartbeat ─► member updated ─► subscriptions or topic metadata changed? ─► group epoch + 1
//!                                                                                 │
//!   reconcile the member ◄── target assignment (assignor) recomputed when group epoch > assignment epoch
//!   (revoke first; a partition is given only once its previous owner released it)
//! ```
//!
//! Group states (Kafka's `ConsumerGroupState`): Empty (no members),
//! Assigning (group epoch ahead of the target assignment), Reconciling (a
//! member has not reached the target), Stable. A member's state is Stable,
//! UnrevokedPartitions (must give partitions up; the rebalance timeout
//! runs), or UnreleasedPartitions (waits for partitions others still own).

pub(crate) mod assignor;
mod classic_member;
pub(crate) mod embedded;
mod heartbeat;
mod migration;
mod persist;
mod reconcile;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use uuid::Uuid;

use crate::classic::{GroupState, Protocol, CONSUMER_PROTOCOL_TYPE};

pub use heartbeat::{ConsumerHeartbeatRequest, ConsumerHeartbeatResponse};
pub use migration::MigrationPolicy;

/// Member epoch a member sends to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch a static member sends to leave temporarily (it may come
/// back under its `group.instance.id` within the session timeout).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// The server-side assignors, `uniform` first (the default, as in Kafka).
pub const UNIFORM_ASSIGNOR: &str = "uniform";
pub const RANGE_ASSIGNOR: &str = "range";
/// The group type ListGroups reports for KIP-848 groups.
pub const CONSUMER_GROUP_TYPE: &str = "consumer";

/// Topics whose names a regex subscription never matches (Kafka's
/// `Topic.isInternal`).
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// One topic as the shell describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic_id: Uuid,
    pub partitions: i32,
}

/// The cluster's topics by name, supplied by the shell through
/// [`set_topic_metadata`](crate::GroupCoordinator::set_topic_metadata).
pub type TopicImage = BTreeMap<String, TopicInfo>;

/// A member's reconciliation state (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
    Unknown,
}

impl MemberState {
    pub fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_code(code: i8) -> Self {
        match code {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// A topic's partitions as ConsumerGroupDescribe shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTopicPartitions {
    pub topic_id: Uuid,
    pub topic_name: String,
    pub partitions: Vec<i32>,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// Joined through JoinGroup (a classic consumer inside this group).
    pub uses_classic_protocol: bool,
    /// The partitions the member currently owns.
    pub assignment: Vec<DescribedTopicPartitions>,
    /// Where the member is heading.
    pub target_assignment: Vec<DescribedTopicPartitions>,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    /// Empty, Assigning, Reconciling or Stable.
    pub state: GroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedConsumerMember>,
}

/// What a member speaking the classic protocol (JoinGroup, SyncGroup,
/// Heartbeat) inside a consumer group has besides a consumer member's data
/// (Kafka's `ClassicMemberMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassicMembership {
    pub session_timeout_ms: i32,
    /// As the member's last JoinGroup listed them, preferred first.
    pub protocols: Vec<Protocol>,
}

impl ClassicMembership {
    /// The protocol a classic member is told it runs: its first choice.
    pub fn protocol_name(&self) -> &str {
        self.protocols.first().map_or("", |p| p.name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// Partitions the member owns (or may own).
    pub assigned: Assignment,
    /// Partitions the member must give up before moving on.
    pub pending_revocation: Assignment,
    /// Session expiry unless the member heartbeats (not persisted).
    pub session_deadline_ms: Option<i64>,
    /// (deadline, member epoch it was armed at) while revoking.
    pub rebalance_deadline: Option<(i64, i32)>,
    /// Set for a member that joined through JoinGroup.
    pub classic: Option<ClassicMembership>,
    /// Classic members: told to rejoin, it must do so by then (not persisted).
    pub join_deadline_ms: Option<i64>,
    /// Classic members: joined, it must send SyncGroup by then (not persisted).
    pub sync_deadline_ms: Option<i64>,
}

impl ConsumerMember {
    pub fn new(id: String) -> Self {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: vec![],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline_ms: None,
            rebalance_deadline: None,
            classic: None,
            join_deadline_ms: None,
            sync_deadline_ms: None,
        }
    }

    pub fn uses_classic_protocol(&self) -> bool {
        self.classic.is_some()
    }

    /// A static member's new incarnation (same `group.instance.id`, new
    /// member id): it keeps the assignment and subscription, starts at
    /// epoch 0, and has no timers yet.
    pub fn reincarnated(&self, new_id: &str) -> ConsumerMember {
        ConsumerMember {
            id: new_id.to_owned(),
            member_epoch: 0,
            previous_member_epoch: 0,
            session_deadline_ms: None,
            rebalance_deadline: None,
            join_deadline_ms: None,
            sync_deadline_ms: None,
            ..self.clone()
        }
    }

    pub fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == epoch
    }

    /// The fields persisted in ConsumerGroupMemberMetadata.
    pub fn same_metadata(&self, other: &ConsumerMember) -> bool {
        self.instance_id == other.instance_id
            && self.rack_id == other.rack_id
            && self.client_id == other.client_id
            && self.client_host == other.client_host
            && self.subscribed_topic_names == other.subscribed_topic_names
            && self.subscribed_topic_regex == other.subscribed_topic_regex
            && self.rebalance_timeout_ms == other.rebalance_timeout_ms
            && self.server_assignor == other.server_assignor
            && self.classic == other.classic
    }

    /// The fields persisted in ConsumerGroupCurrentMemberAssignment.
    pub fn same_assignment(&self, other: &ConsumerMember) -> bool {
        self.member_epoch == other.member_epoch
            && self.previous_member_epoch == other.previous_member_epoch
            && self.state == other.state
            && self.assigned == other.assigned
            && self.pending_revocation == other.pending_revocation
    }

    /// The topic names this member subscribes to, its regex resolved
    /// against `image`.
    pub fn subscribed_topics(&self, image: &TopicImage) -> BTreeSet<String> {
        let mut topics: BTreeSet<String> = self.subscribed_topic_names.iter().cloned().collect();
        if let Some(re) = self.subscribed_topic_regex.as_deref() {
            topics.extend(resolve_regex(re, image));
        }
        topics
    }
}

/// Compiles a subscription regex with Kafka's full-match semantics
/// (`Pattern.matcher(topic).matches()`). RE2/J and the `regex` crate share
/// the RE2 syntax.
pub(crate) fn compile_regex(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{re})$"))
}

/// The non-internal topics of `image` whose whole name matches `re`. An
/// invalid regex (rejected at heartbeat time, so only possible for one
/// read back from the log) matches nothing.
pub(crate) fn resolve_regex(re: &str, image: &TopicImage) -> Vec<String> {
    let Ok(compiled) = compile_regex(re) else {
        return vec![];
    };
    image
        .keys()
        .filter(|t| !INTERNAL_TOPICS.contains(&t.as_str()) && compiled.is_match(t))
        .cloned()
        .collect()
}

/// A timer of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsumerTimer {
    Session(String),
    /// The member did not revoke within its rebalance timeout.
    Rebalance(String, i32),
    /// A classic member did not rejoin within its rebalance timeout.
    Join(String),
    /// A classic member did not send SyncGroup within its rebalance timeout.
    Sync(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// group.instance.id → member id.
    pub static_members: BTreeMap<String, String>,
    /// member id → target assignment.
    pub target: BTreeMap<String, Assignment>,
    /// The metadata of the subscribed topics, as last persisted
    /// (ConsumerGroupPartitionMetadata). A change bumps the group epoch.
    pub subscription_metadata: TopicImage,
}

impl ConsumerGroup {
    pub fn new(id: String) -> Self {
        ConsumerGroup {
            id,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscription_metadata: TopicImage::new(),
        }
    }

    /// Kafka's `ConsumerGroup.maybeUpdateGroupState`.
    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    pub fn insert_member(&mut self, member: ConsumerMember) {
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// The member `id` as the group knows it, or a new one.
    pub fn member_or_new(&self, id: &str) -> ConsumerMember {
        self.members
            .get(id)
            .cloned()
            .unwrap_or_else(|| ConsumerMember::new(id.to_owned()))
    }

    /// The current member with this `group.instance.id`.
    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerMember> {
        self.static_members
            .get(instance_id)
            .and_then(|id| self.members.get(id))
    }

    pub fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        let removed = self.members.remove(member_id)?;
        if let Some(instance) = &removed.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        Some(removed)
    }

    /// Every topic name some member subscribes to.
    pub fn subscribed_topics(&self, image: &TopicImage) -> BTreeSet<String> {
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(m.subscribed_topics(image));
        }
        topics
    }

    /// The subscribed topics that exist in `image`, with their metadata.
    pub fn compute_subscription_metadata(&self, image: &TopicImage) -> TopicImage {
        self.subscribed_topics(image)
            .into_iter()
            .filter_map(|t| image.get(&t).map(|info| (t, *info)))
            .collect()
    }

    /// Whether a member subscribes to `topic` (OffsetDelete, retention).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscription_metadata.contains_key(topic)
            || self
                .members
                .values()
                .any(|m| m.subscribed_topic_names.iter().any(|t| t == topic))
    }

    /// Kafka's `computePreferredServerAssignor`: the assignor most members
    /// ask for (ties: the smallest name), if any asks.
    pub fn preferred_assignor(&self) -> Option<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *counts.entry(a).or_default() += 1;
            }
        }
        let max = counts.values().copied().max()?;
        counts
            .into_iter()
            .find(|(_, n)| *n == max)
            .map(|(a, _)| a.to_owned())
    }

    /// Partitions currently owned (assigned or pending revocation) by any
    /// member: Kafka's `currentPartitionEpoch != -1`.
    pub fn owned_partitions(&self) -> HashSet<(Uuid, i32)> {
        let mut owned = HashSet::new();
        for m in self.members.values() {
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                owned.extend(ps.iter().map(|p| (*t, *p)));
            }
        }
        owned
    }

    pub fn next_timer(&self) -> Option<(i64, ConsumerTimer)> {
        let sessions = self.members.values().filter_map(|m| {
            m.session_deadline_ms
                .map(|t| (t, ConsumerTimer::Session(m.id.clone())))
        });
        let rebalances = self.members.values().filter_map(|m| {
            m.rebalance_deadline
                .map(|(t, epoch)| (t, ConsumerTimer::Rebalance(m.id.clone(), epoch)))
        });
        let joins = self.members.values().filter_map(|m| {
            m.join_deadline_ms
                .map(|t| (t, ConsumerTimer::Join(m.id.clone())))
        });
        let syncs = self.members.values().filter_map(|m| {
            m.sync_deadline_ms
                .map(|t| (t, ConsumerTimer::Sync(m.id.clone())))
        });
        sessions
            .chain(rebalances)
            .chain(joins)
            .chain(syncs)
            .min_by_key(|(t, _)| *t)
    }

    /// Kafka's `ConsumerGroup.supportsClassicProtocols`: a classic member
    /// may join if it speaks the consumer protocol type and, unless the
    /// group is empty, one of its protocols is supported by every classic
    /// member already in the group.
    pub fn supports_classic_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if protocol_type != CONSUMER_PROTOCOL_TYPE {
            return false;
        }
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        protocols.iter().any(|p| {
            self.members
                .values()
                .filter_map(|m| m.classic.as_ref())
                .all(|c| c.protocols.iter().any(|q| q.name == p.name))
        })
    }

    /// Whether every member but `except` joined through JoinGroup.
    pub fn all_use_classic_protocol_except(&self, except: &str) -> bool {
        self.members
            .values()
            .all(|m| m.id == except || m.uses_classic_protocol())
    }

    /// Kafka's `waitingOnUnreleasedPartition`: some partition of the
    /// member's target is still owned by another member.
    pub fn waiting_on_unreleased_partition(&self, member: &ConsumerMember) -> bool {
        if member.state != MemberState::UnreleasedPartitions {
            return false;
        }
        let owned = self.owned_partitions();
        let Some(target) = self.target.get(&member.id) else {
            return false;
        };
        target.iter().any(|(t, ps)| {
            ps.iter().any(|p| {
                !member.assigned.get(t).is_some_and(|a| a.contains(p)) && owned.contains(&(*t, *p))
            })
        })
    }
}

/// Assignment → the wire's list of (topic id, partitions).
pub(crate) fn to_topic_partitions(a: &Assignment) -> Vec<(Uuid, Vec<i32>)> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

pub(crate) fn from_topic_partitions<'a>(
    tps: impl IntoIterator<Item = (&'a Uuid, &'a [i32])>,
) -> Assignment {
    let mut a = Assignment::new();
    for (t, ps) in tps {
        if !ps.is_empty() {
            a.entry(*t).or_default().extend(ps.iter().copied());
        }
    }
    a
}
