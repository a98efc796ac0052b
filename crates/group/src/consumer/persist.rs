//! Consumer groups ↔ their `__consumer_offsets` records: what each change
//! writes, and how replay rebuilds a group (Kafka's
//! `GroupCoordinatorRecordHelpers` and `GroupMetadataManager.replay`).

use super::{
    from_topic_partitions, Assignment, ClassicMembership, ConsumerGroup, ConsumerMember,
    MemberState, TopicImage, TopicInfo, LEAVE_GROUP_MEMBER_EPOCH,
};
use crate::classic::Protocol;
use crate::coordinator::GroupCoordinator;
use crate::output::Sink;
use crate::records::{
    ClassicMemberMetadataValue, ConsumerMemberMetadataValue, CurrentMemberAssignmentValue, Record,
    TopicMetadataValue, TopicPartitions,
};

fn topic_partitions(a: &Assignment) -> Vec<TopicPartitions> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| TopicPartitions {
            topic_id: *t,
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn assignment(tps: &[TopicPartitions]) -> Assignment {
    from_topic_partitions(
        tps.iter()
            .map(|tp| (&tp.topic_id, tp.partitions.as_slice())),
    )
}

pub(crate) fn member_metadata_record(group: &str, m: &ConsumerMember) -> Record {
    Record::ConsumerGroupMemberMetadata {
        group: group.to_owned(),
        member: m.id.clone(),
        value: Some(ConsumerMemberMetadataValue {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            subscribed_topic_names: m.subscribed_topic_names.clone(),
            subscribed_topic_regex: m.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            server_assignor: m.server_assignor.clone(),
            classic_member_metadata: m.classic.as_ref().map(|c| ClassicMemberMetadataValue {
                session_timeout_ms: c.session_timeout_ms,
                supported_protocols: c
                    .protocols
                    .iter()
                    .map(|p| (p.name.clone(), p.metadata.clone()))
                    .collect(),
            }),
        }),
    }
}

pub(crate) fn current_assignment_record(group: &str, m: &ConsumerMember) -> Record {
    Record::ConsumerGroupCurrentMemberAssignment {
        group: group.to_owned(),
        member: m.id.clone(),
        value: Some(CurrentMemberAssignmentValue {
            member_epoch: m.member_epoch,
            previous_member_epoch: m.previous_member_epoch,
            state: m.state.code(),
            assigned_partitions: topic_partitions(&m.assigned),
            partitions_pending_revocation: topic_partitions(&m.pending_revocation),
        }),
    }
}

pub(crate) fn target_member_record(group: &str, member: &str, a: &Assignment) -> Record {
    Record::ConsumerGroupTargetAssignmentMember {
        group: group.to_owned(),
        member: member.to_owned(),
        partitions: Some(topic_partitions(a)),
    }
}

pub(crate) fn partition_metadata_record(group: &str, metadata: &TopicImage) -> Record {
    Record::ConsumerGroupPartitionMetadata {
        group: group.to_owned(),
        topics: Some(
            metadata
                .iter()
                .map(|(name, info)| TopicMetadataValue {
                    topic_id: info.topic_id,
                    topic_name: name.clone(),
                    num_partitions: info.partitions,
                })
                .collect(),
        ),
    }
}

/// Kafka's `removeMember`: current assignment, target, then subscription.
pub(crate) fn member_tombstones(group: &str, member: &str, out: &mut Sink) {
    out.record(Record::ConsumerGroupCurrentMemberAssignment {
        group: group.to_owned(),
        member: member.to_owned(),
        value: None,
    });
    out.record(Record::ConsumerGroupTargetAssignmentMember {
        group: group.to_owned(),
        member: member.to_owned(),
        partitions: None,
    });
    out.record(Record::ConsumerGroupMemberMetadata {
        group: group.to_owned(),
        member: member.to_owned(),
        value: None,
    });
}

impl ConsumerGroup {
    /// Kafka's `createGroupTombstoneRecords`: everything the group wrote.
    pub(crate) fn tombstones(&self, out: &mut Sink) {
        let group = || self.id.clone();
        for id in self.members.keys() {
            out.record(Record::ConsumerGroupCurrentMemberAssignment {
                group: group(),
                member: id.clone(),
                value: None,
            });
        }
        for id in self.members.keys() {
            out.record(Record::ConsumerGroupTargetAssignmentMember {
                group: group(),
                member: id.clone(),
                partitions: None,
            });
        }
        out.record(Record::ConsumerGroupTargetAssignmentMetadata {
            group: group(),
            assignment_epoch: None,
        });
        for id in self.members.keys() {
            out.record(Record::ConsumerGroupMemberMetadata {
                group: group(),
                member: id.clone(),
                value: None,
            });
        }
        out.record(Record::ConsumerGroupPartitionMetadata {
            group: group(),
            topics: None,
        });
        out.record(Record::ConsumerGroupMetadata {
            group: group(),
            epoch: None,
        });
    }
}

impl GroupCoordinator {
    /// The consumer group a replayed record with a value belongs to,
    /// created if needed (replacing a classic group of the same id, whose
    /// tombstone precedes it in a log this core wrote).
    fn replayed_group(&mut self, group: &str) -> &mut ConsumerGroup {
        if !self.consumer_groups.contains_key(group) {
            self.groups.remove(group);
        }
        self.consumer_groups
            .entry(group.to_owned())
            .or_insert_with(|| ConsumerGroup::new(group.to_owned()))
    }

    /// Replays one KIP-848 record (key versions 3–8).
    pub(crate) fn replay_consumer(&mut self, record: Record) {
        match record {
            Record::ConsumerGroupMetadata { group, epoch } => match epoch {
                Some(e) => self.replayed_group(&group).group_epoch = e,
                None => {
                    self.consumer_groups.remove(&group);
                }
            },
            Record::ConsumerGroupPartitionMetadata { group, topics } => match topics {
                Some(topics) => {
                    self.replayed_group(&group).subscription_metadata = topics
                        .into_iter()
                        .map(|t| {
                            let info = TopicInfo {
                                topic_id: t.topic_id,
                                partitions: t.num_partitions,
                            };
                            (t.topic_name, info)
                        })
                        .collect();
                }
                None => {
                    if let Some(g) = self.consumer_groups.get_mut(&group) {
                        g.subscription_metadata.clear();
                    }
                }
            },
            Record::ConsumerGroupMemberMetadata {
                group,
                member,
                value,
            } => match value {
                Some(v) => {
                    let g = self.replayed_group(&group);
                    let mut m = g
                        .members
                        .get(&member)
                        .cloned()
                        .unwrap_or_else(|| ConsumerMember::new(member.clone()));
                    if let Some(old) = m.instance_id.take() {
                        if g.static_members.get(&old) == Some(&member) {
                            g.static_members.remove(&old);
                        }
                    }
                    m.instance_id = v.instance_id;
                    m.rack_id = v.rack_id;
                    m.client_id = v.client_id;
                    m.client_host = v.client_host;
                    m.subscribed_topic_names = v.subscribed_topic_names;
                    m.subscribed_topic_regex = v.subscribed_topic_regex;
                    m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                    m.server_assignor = v.server_assignor;
                    m.classic = v.classic_member_metadata.map(|c| ClassicMembership {
                        session_timeout_ms: c.session_timeout_ms,
                        protocols: c
                            .supported_protocols
                            .into_iter()
                            .map(|(name, metadata)| Protocol { name, metadata })
                            .collect(),
                    });
                    g.insert_member(m);
                }
                None => {
                    if let Some(g) = self.consumer_groups.get_mut(&group) {
                        g.remove_member(&member);
                    }
                }
            },
            Record::ConsumerGroupTargetAssignmentMetadata {
                group,
                assignment_epoch,
            } => match assignment_epoch {
                Some(e) => self.replayed_group(&group).assignment_epoch = e,
                None => {
                    if let Some(g) = self.consumer_groups.get_mut(&group) {
                        g.assignment_epoch = 0;
                    }
                }
            },
            Record::ConsumerGroupTargetAssignmentMember {
                group,
                member,
                partitions,
            } => match partitions {
                Some(tps) => {
                    self.replayed_group(&group)
                        .target
                        .insert(member, assignment(&tps));
                }
                None => {
                    if let Some(g) = self.consumer_groups.get_mut(&group) {
                        g.target.remove(&member);
                    }
                }
            },
            Record::ConsumerGroupCurrentMemberAssignment {
                group,
                member,
                value,
            } => match value {
                Some(v) => {
                    let g = self.replayed_group(&group);
                    let m = g
                        .members
                        .entry(member.clone())
                        .or_insert_with(|| ConsumerMember::new(member));
                    m.member_epoch = v.member_epoch;
                    m.previous_member_epoch = v.previous_member_epoch;
                    m.state = MemberState::from_code(v.state);
                    m.assigned = assignment(&v.assigned_partitions);
                    m.pending_revocation = assignment(&v.partitions_pending_revocation);
                }
                None => {
                    // Kafka resets the member; its subscription tombstone
                    // (next in the log) removes it.
                    if let Some(m) = self
                        .consumer_groups
                        .get_mut(&group)
                        .and_then(|g| g.members.get_mut(&member))
                    {
                        m.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                        m.previous_member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                        m.state = MemberState::Stable;
                        m.assigned.clear();
                        m.pending_revocation.clear();
                    }
                }
            },
            Record::OffsetCommit { .. } | Record::GroupMetadata { .. } => {
                unreachable!("classic records are replayed by the coordinator")
            }
        }
    }
}
