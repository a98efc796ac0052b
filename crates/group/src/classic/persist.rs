//! Conversions between a classic group and its `GroupMetadata` record:
//! what is written after each join/sync phase and what replay rebuilds.

use super::state::{ClassicGroup, GroupState, Member, Protocol};
use crate::records::{GroupMetadataValue, MemberMetadata, Record};

impl ClassicGroup {
    /// The GroupMetadata record Kafka writes after a join or sync phase.
    pub fn metadata_record(&self) -> Record {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        let members = self
            .members
            .values()
            .map(|m| MemberMetadata {
                member_id: m.id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout: m.rebalance_timeout_ms,
                session_timeout: m.session_timeout_ms,
                subscription: m.metadata(protocol).cloned().unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        Record::GroupMetadata {
            group: self.id.clone(),
            value: Some(GroupMetadataValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation: self.generation_id,
                protocol: self.protocol_name.clone(),
                leader: self.leader_id.clone(),
                current_state_timestamp: self.state_timestamp_ms.unwrap_or(-1),
                members,
            }),
        }
    }

    /// The record Kafka writes when a join creates a group.
    pub fn empty_metadata_record(&self) -> Record {
        Record::GroupMetadata {
            group: self.id.clone(),
            value: Some(GroupMetadataValue {
                protocol_type: String::new(),
                generation: 0,
                protocol: None,
                leader: None,
                current_state_timestamp: self.state_timestamp_ms.unwrap_or(-1),
                members: vec![],
            }),
        }
    }

    /// Rebuilds a group from its GroupMetadata record (Kafka's replay):
    /// Stable if it has members, Empty otherwise.
    pub fn from_record(group: String, value: GroupMetadataValue) -> Self {
        let state = if value.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        let mut g = ClassicGroup::new(group, 0);
        g.state = state;
        g.previous_state = state;
        g.state_timestamp_ms =
            (value.current_state_timestamp >= 0).then_some(value.current_state_timestamp);
        g.generation_id = value.generation;
        g.protocol_type = (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
        g.protocol_name = value.protocol.clone();
        g.leader_id = value.leader.clone();
        let protocol = value.protocol.unwrap_or_default();
        for m in value.members {
            g.add(Member {
                id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocol_type: value.protocol_type.clone(),
                protocols: vec![Protocol {
                    name: protocol.clone(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline_ms: None,
            });
        }
        g.subscribed_topics = g.compute_subscribed_topics();
        g
    }
}
