//! Online migration of non-empty groups between the classic protocol and
//! the consumer protocol (KIP-848's upgrade path, Kafka 4's
//! `group.consumer.migration.policy`).
//!
//! - **Upgrade.** The first ConsumerGroupHeartbeat to a non-empty classic
//!   group that runs the consumer protocol turns it into a consumer group.
//!   Each classic member becomes a member "using the classic protocol",
//!   keeping its last assignment as both its current and target
//!   assignment, at member epoch = the classic generation. The joining
//!   member's subscription then bumps the group epoch, the server-side
//!   assignor computes a new target, and the classic members learn of it
//!   through REBALANCE_IN_PROGRESS on their heartbeats and rejoin (see
//!   `classic_member`).
//! - **Downgrade.** When the last member using the consumer protocol
//!   leaves (or is fenced) and classic members remain, the group becomes
//!   a classic group again, Stable at generation = group epoch, each
//!   member holding its target assignment, and a rebalance starts so the
//!   classic members pick a leader and assign as usual. When instead a
//!   classic static member replaces it (same `group.instance.id`), the
//!   group turns classic the same way but without a rebalance.
//!
//! Empty groups convert both ways regardless of the policy (see
//! `GroupCoordinator::join_group` and `consumer_join_or_heartbeat`).

use super::embedded::{self, decode_assignment, decode_subscription};
use super::heartbeat::fence_member;
use super::persist;
use super::{ClassicMembership, ConsumerGroup, ConsumerMember, MemberState};
use crate::classic::{ClassicGroup, GroupState, Member, CONSUMER_PROTOCOL_TYPE};
use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::output::{JoinResponse, Sink, SyncResponse};
use crate::records::Record;

/// `group.consumer.migration.policy`: which online conversions of
/// non-empty groups are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    /// Kafka's default.
    Bidirectional,
}

impl MigrationPolicy {
    /// Parses Kafka's values, case-insensitively.
    pub fn parse(s: &str) -> Option<MigrationPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "disabled" => Some(MigrationPolicy::Disabled),
            "upgrade" => Some(MigrationPolicy::Upgrade),
            "downgrade" => Some(MigrationPolicy::Downgrade),
            "bidirectional" => Some(MigrationPolicy::Bidirectional),
            _ => None,
        }
    }

    pub fn upgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional
        )
    }

    pub fn downgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional
        )
    }
}

impl GroupCoordinator {
    /// Kafka's `validateOnlineUpgrade` and `ConsumerGroup.fromClassicGroup`:
    /// the consumer group a non-empty classic group becomes, or
    /// GROUP_ID_NOT_FOUND (as Kafka answers) if it may not be upgraded.
    pub(super) fn consumer_group_from_classic(
        &self,
        classic: &ClassicGroup,
    ) -> Result<ConsumerGroup, GroupError> {
        let refuse = |why: &str| {
            tracing::info!(group = %classic.id, "cannot upgrade the classic group to a consumer group: {why}");
            Err(GroupError::GroupIdNotFound)
        };
        if !self
            .config
            .group_consumer_migration_policy
            .upgrade_enabled()
        {
            return refuse("group.consumer.migration.policy does not allow upgrades");
        }
        if classic.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return refuse("the group does not use the consumer protocol type");
        }
        if classic.is(GroupState::Dead) {
            return refuse("the group is dead");
        }
        if classic.members.len() > self.config.group_consumer_max_size {
            return refuse("the group is larger than group.consumer.max.size");
        }
        let generation = classic.generation_id;
        let mut group = ConsumerGroup::new(classic.id.clone());
        group.group_epoch = generation;
        group.assignment_epoch = generation;
        for m in classic.members.values() {
            // Before its first generation a group has no protocol yet; any
            // of the member's protocols carries the same subscription.
            let metadata = classic
                .protocol_name
                .as_deref()
                .and_then(|p| m.metadata(p))
                .or_else(|| m.protocols.first().map(|p| &p.metadata));
            let Some(subscription) = metadata.and_then(|b| decode_subscription(b).ok()) else {
                return refuse("a member's embedded subscription is malformed");
            };
            let Ok(assigned) = decode_assignment(&m.assignment) else {
                return refuse("a member's embedded assignment is malformed");
            };
            let assigned = embedded::to_assignment(&assigned, &self.topics);
            let mut topics = subscription.topics;
            topics.sort();
            topics.dedup();
            let mut member = ConsumerMember::new(m.id.clone());
            member.instance_id = m.group_instance_id.clone();
            member.rack_id = subscription.rack_id;
            member.client_id = m.client_id.clone();
            member.client_host = m.client_host.clone();
            member.subscribed_topic_names = topics;
            member.rebalance_timeout_ms = m.rebalance_timeout_ms;
            member.member_epoch = generation;
            member.previous_member_epoch = generation;
            member.state = MemberState::Stable;
            member.classic = Some(ClassicMembership {
                session_timeout_ms: m.session_timeout_ms,
                protocols: m.protocols.clone(),
            });
            group.target.insert(m.id.clone(), assigned.clone());
            member.assigned = assigned;
            group.insert_member(member);
        }
        Ok(group)
    }

    /// Replaces the classic group `classic_id` by `group` (from
    /// [`consumer_group_from_classic`](Self::consumer_group_from_classic)):
    /// parked JoinGroup/SyncGroup requests are told to rejoin, the classic
    /// group is tombstoned and the consumer group written (Kafka's
    /// `convertToConsumerGroup`).
    pub(super) fn install_upgraded_group(
        &mut self,
        now_ms: i64,
        mut group: ConsumerGroup,
        out: &mut Sink,
    ) {
        let classic = self
            .groups
            .remove(&group.id)
            .expect("the classic group being upgraded exists");
        tracing::info!(group = %group.id, members = group.members.len(), generation = classic.generation_id, "upgrading a classic group to a consumer group");
        for m in classic.members.values() {
            if let Some(token) = m.awaiting_join {
                out.join(
                    token,
                    JoinResponse::error(m.id.clone(), GroupError::RebalanceInProgress),
                );
            }
            if let Some(token) = m.awaiting_sync {
                out.sync(token, SyncResponse::error(GroupError::RebalanceInProgress));
            }
        }
        out.record(Record::GroupMetadata {
            group: group.id.clone(),
            value: None,
        });
        // Kafka's `createConsumerGroupRecords`.
        for m in group.members.values() {
            out.record(persist::member_metadata_record(&group.id, m));
        }
        out.record(Record::ConsumerGroupMetadata {
            group: group.id.clone(),
            epoch: Some(group.group_epoch),
        });
        for (id, target) in &group.target {
            out.record(persist::target_member_record(&group.id, id, target));
        }
        out.record(Record::ConsumerGroupTargetAssignmentMetadata {
            group: group.id.clone(),
            assignment_epoch: Some(group.assignment_epoch),
        });
        for m in group.members.values_mut() {
            out.record(persist::current_assignment_record(&group.id, m));
            let session = m.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
            m.session_deadline_ms = Some(now_ms + i64::from(session));
        }
        self.consumer_groups.insert(group.id.clone(), group);
    }

    /// Removes a member of a consumer group (it left, or a session,
    /// rebalance, join or sync timer expired). If only members using the
    /// classic protocol remain, the group is downgraded to a classic group
    /// instead (Kafka's `consumerGroupFenceMember`).
    pub(crate) fn fence_consumer_member(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        out: &mut Sink,
    ) {
        let Some(group) = self.consumer_groups.get(group_id) else {
            return;
        };
        if !group.members.contains_key(member_id) {
            return;
        }
        if group.members.len() > 1 && self.may_downgrade(group, Some(member_id)) {
            self.downgrade(now_ms, group_id, Some(member_id), out);
        } else {
            let group = self.consumer_groups.get_mut(group_id).expect("just seen");
            fence_member(group, &self.topics, member_id, out);
        }
    }

    /// Kafka's `validateOnlineDowngradeWith{FencedMember,ReplacedMemberId}`:
    /// the policy allows it, every member but `leaving` uses the classic
    /// protocol, and they fit in `group.max.size`.
    pub(super) fn may_downgrade(&self, group: &ConsumerGroup, leaving: Option<&str>) -> bool {
        let remaining = group.members.len() - usize::from(leaving.is_some());
        self.config
            .group_consumer_migration_policy
            .downgrade_enabled()
            && group.all_use_classic_protocol_except(leaving.unwrap_or_default())
            && remaining <= self.config.group_max_size
    }

    /// Kafka's `convertToClassicGroup`: the members but `leaving` (all
    /// classic) form a Stable classic group at generation = group epoch,
    /// each holding its target assignment. If a member left, the group
    /// then rebalances, so a leader assigns what the leaver held.
    pub(super) fn downgrade(
        &mut self,
        now_ms: i64,
        group_id: &str,
        leaving: Option<&str>,
        out: &mut Sink,
    ) {
        let group = self
            .consumer_groups
            .remove(group_id)
            .expect("checked by the caller");
        tracing::info!(group = %group_id, ?leaving, "downgrading a consumer group to a classic group: only classic members remain");
        group.tombstones(out);
        let mut classic = ClassicGroup::new(group_id.to_owned(), now_ms);
        classic.state = GroupState::Stable;
        classic.previous_state = GroupState::Stable;
        classic.generation_id = group.group_epoch;
        classic.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_owned());
        for m in group
            .members
            .values()
            .filter(|m| Some(m.id.as_str()) != leaving)
        {
            let c = m.classic.as_ref().expect("only classic members remain");
            classic.add(Member {
                id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: c.session_timeout_ms,
                protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
                protocols: c.protocols.clone(),
                assignment: Default::default(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline_ms: None,
            });
        }
        classic.protocol_name = classic.select_protocol();
        classic.subscribed_topics = classic.compute_subscribed_topics();
        let protocol = classic.protocol_name.clone().unwrap_or_default();
        let empty = Default::default();
        let ids: Vec<String> = classic.members.keys().cloned().collect();
        for id in &ids {
            let target = group.target.get(id).unwrap_or(&empty);
            let m = classic.members.get_mut(id).expect("just added");
            let version = m
                .metadata(&protocol)
                .map_or(0, embedded::subscription_version);
            m.assignment = embedded::encode_assignment(target, &self.topics, version);
        }
        out.record(classic.metadata_record());
        for id in &ids {
            classic.reschedule_heartbeat(id, now_ms, None);
        }
        if leaving.is_some() {
            classic.prepare_rebalance(&self.config, now_ms, out);
        }
        self.groups.insert(group_id.to_owned(), classic);
    }
}
