//! A classic group's data and the small operations on it that every request
//! path shares: membership bookkeeping, protocol selection, leader
//! election, generation changes and timers.
//!
//! Semantics follow Kafka's `ClassicGroup` (group-coordinator module).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use crate::error::GroupError;
use crate::output::{JoinResponse, JoinedMember, ResponseToken, Sink, SyncResponse};

/// The protocol type of groups formed by Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The states of a classic group (Kafka's `ClassicGroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; offsets may remain.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    Stable,
    /// Removed or unloaded; requests get COORDINATOR_NOT_AVAILABLE.
    Dead,
    /// Consumer groups (KIP-848) only: the group epoch is ahead of the
    /// target assignment.
    Assigning,
    /// Consumer groups only: some member has not reached its target.
    Reconciling,
}

impl GroupState {
    /// The name Kafka uses in ListGroups and DescribeGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
        }
    }

    /// Parses a ListGroups state filter; Kafka compares case-insensitively.
    pub fn parse(s: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
            GroupState::Assigning,
            GroupState::Reconciling,
        ]
        .into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    fn valid_previous(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
            // Not classic states.
            Assigning | Reconciling => &[],
        }
    }
}

/// One protocol a member supports, in its order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// A parked JoinGroup, answered when the join phase completes.
    pub awaiting_join: Option<ResponseToken>,
    /// A parked SyncGroup, answered when the leader's assignment arrives.
    pub awaiting_sync: Option<ResponseToken>,
    /// Joined during the current rebalance and not yet given a generation.
    pub is_new: bool,
    /// When the member's session expires unless it heartbeats.
    pub heartbeat_deadline_ms: Option<i64>,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    /// Same protocols and metadata, in the same order.
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `hasSatisfiedHeartbeat`, asked when the session timer fires
    /// (the timer is re-armed by every heartbeat, so firing means none
    /// came): new members are expired; members parked in a rebalance are
    /// spared (the rebalance timeout governs them); others are expired.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

/// What the join timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinTimer {
    /// Complete the join phase (rebalance timeout).
    Complete,
    /// `group.initial.rebalance.delay.ms`: extend if members keep arriving.
    Initial { delay_ms: i64, remaining_ms: i64 },
}

/// A timer of one group, as reported by [`ClassicGroup::next_timer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    Heartbeat(String),
    PendingMember(String),
    Join,
    Sync,
}

#[derive(Debug, Clone)]
pub(crate) struct ClassicGroup {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    pub state_timestamp_ms: Option<i64>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    pub static_members: BTreeMap<String, String>,
    /// KIP-394 member ids handed out with MEMBER_ID_REQUIRED → expiry time.
    pub pending_join: BTreeMap<String, i64>,
    /// Members that got a JoinGroup response but have not sent SyncGroup.
    pub pending_sync: BTreeSet<String>,
    pub new_member_added: bool,
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub join_timer: Option<(i64, JoinTimer)>,
    /// (deadline, generation it was armed for).
    pub sync_timer: Option<(i64, i32)>,
}

impl ClassicGroup {
    pub fn new(id: String, now_ms: i64) -> Self {
        ClassicGroup {
            id,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: Some(now_ms),
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_join: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            subscribed_topics: None,
            join_timer: None,
            sync_timer: None,
        }
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        assert!(
            to.valid_previous().contains(&self.state),
            "group {}: invalid transition {:?} -> {:?}",
            self.id,
            self.state,
            to
        );
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = Some(now_ms);
    }

    /// States from which a rebalance can start (Kafka's `canRebalance`).
    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    pub fn add(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.pending_join.remove(&member.id);
        if self.leader_id.is_none() {
            self.leader_id = Some(member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member or a pending member. The caller answers its parked
    /// requests (see [`Self::remove_and_notify`]).
    pub fn remove(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(m) = &removed {
            if let Some(instance) = &m.group_instance_id {
                self.static_members.remove(instance);
            }
        }
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_join.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    /// Removes a member and answers its parked JoinGroup/SyncGroup with
    /// UNKNOWN_MEMBER_ID, so the client rejoins if it is still alive and no
    /// parked request is left without an answer.
    pub fn remove_and_notify(&mut self, member_id: &str, out: &mut Sink) {
        if let Some(m) = self.remove(member_id) {
            if let Some(token) = m.awaiting_join {
                out.join(
                    token,
                    JoinResponse::error(String::new(), GroupError::UnknownMemberId),
                );
            }
            if let Some(token) = m.awaiting_sync {
                out.sync(token, SyncResponse::error(GroupError::UnknownMemberId));
            }
        }
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_join.is_empty()
    }

    /// The largest rebalance timeout among the members.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Whether a member with these protocols may join (Kafka's
    /// `supportsProtocols`): an empty group takes any non-empty protocol
    /// type and list; otherwise the type must match and at least one of
    /// the protocols must be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.metadata(&p.name).is_some()))
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<&str> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return BTreeSet::new();
        };
        let mut candidates: BTreeSet<&str> =
            first.protocols.iter().map(|p| p.name.as_str()).collect();
        for m in members {
            candidates.retain(|c| m.metadata(c).is_some());
        }
        candidates
    }

    /// Each member votes for its most preferred candidate; the most votes
    /// win. Kafka breaks ties by hash-map order; we take the smallest name
    /// so the choice is deterministic.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(p) = m
                .protocols
                .iter()
                .find(|p| candidates.contains(p.name.as_str()))
            {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        let max = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, n)| *n == max)
            .map(|(name, _)| name.to_owned())
    }

    /// Kafka's `validateMember`: a static member must be the instance's
    /// current member id, a dynamic one must exist.
    pub fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(GroupError::UnknownMemberId),
                Some(current) if current != member_id => Err(GroupError::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    /// If the leader did not rejoin, pick a member that did. Returns false
    /// when no member rejoined (or there is no leader).
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader_id else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader_id = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// The member list the leader receives to compute an assignment.
    pub fn members_for_leader(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// A JoinGroup response describing the current generation.
    pub fn join_response(&self, member_id: &str, members: Vec<JoinedMember>) -> JoinResponse {
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members,
        }
    }

    pub fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync.clear();
    }

    /// The topics the members subscribe to, known only for the consumer
    /// protocol. Like Kafka, each member's metadata is parsed as
    /// ConsumerProtocolSubscription version 0, the prefix of all versions.
    pub fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let mut buf = m.metadata(protocol)?.clone();
            if buf.len() < 2 {
                return None;
            }
            let _version = bytes::Buf::get_i16(&mut buf);
            let sub = ConsumerProtocolSubscription::decode(&mut buf, 0).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_some_and(|t| t.contains(topic))
    }

    pub fn reschedule_heartbeat(&mut self, member_id: &str, now_ms: i64, timeout_ms: Option<i64>) {
        if let Some(m) = self.members.get_mut(member_id) {
            let timeout = timeout_ms.unwrap_or(i64::from(m.session_timeout_ms));
            m.heartbeat_deadline_ms = Some(now_ms + timeout);
        }
    }

    /// The group's next timer, earliest first.
    pub fn next_timer(&self) -> Option<(i64, Timer)> {
        let heartbeats = self.members.values().filter_map(|m| {
            m.heartbeat_deadline_ms
                .map(|t| (t, Timer::Heartbeat(m.id.clone())))
        });
        let pending = self
            .pending_join
            .iter()
            .map(|(id, t)| (*t, Timer::PendingMember(id.clone())));
        let join = self.join_timer.map(|(t, _)| (t, Timer::Join));
        let sync = self.sync_timer.map(|(t, _)| (t, Timer::Sync));
        heartbeats
            .chain(pending)
            .chain(join)
            .chain(sync)
            .min_by_key(|(t, _)| *t)
    }
}
