//! Committed offsets: the in-memory store and OffsetCommit, OffsetFetch,
//! OffsetDelete, DeleteGroups and retention (Kafka's
//! `OffsetMetadataManager` for classic groups).

use std::collections::{BTreeMap, HashMap};

use crate::classic::{ClassicGroup, GroupState, CONSUMER_PROTOCOL_TYPE};
use crate::consumer::{ConsumerGroup, ConsumerMember};
use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::output::{Output, Sink};
use crate::records::{OffsetCommitKey, OffsetCommitValue, Record};

/// OffsetCommit v9 answers GROUP_ID_NOT_FOUND for unknown groups; older
/// versions get ILLEGAL_GENERATION.
const MIN_COMMIT_VERSION_GROUP_ID_NOT_FOUND: i16 = 9;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set only by OffsetCommit v2–v4 with an explicit retention time.
    pub expire_timestamp_ms: Option<i64>,
}

impl CommittedOffset {
    fn to_value(&self) -> OffsetCommitValue {
        OffsetCommitValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch.unwrap_or(-1),
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp_ms,
            expire_timestamp: self.expire_timestamp_ms.unwrap_or(-1),
        }
    }

    fn from_value(v: OffsetCommitValue) -> Self {
        CommittedOffset {
            offset: v.offset,
            leader_epoch: (v.leader_epoch >= 0).then_some(v.leader_epoch),
            metadata: v.metadata,
            commit_timestamp_ms: v.commit_timestamp,
            expire_timestamp_ms: (v.expire_timestamp >= 0).then_some(v.expire_timestamp),
        }
    }
}

type TopicOffsets = BTreeMap<String, BTreeMap<i32, CommittedOffset>>;

/// group → topic → partition → offset.
#[derive(Debug, Default)]
pub(crate) struct OffsetStore {
    groups: HashMap<String, TopicOffsets>,
}

impl OffsetStore {
    pub fn apply(&mut self, key: OffsetCommitKey, value: Option<OffsetCommitValue>) {
        match value {
            Some(v) => {
                self.groups
                    .entry(key.group)
                    .or_default()
                    .entry(key.topic)
                    .or_default()
                    .insert(key.partition, CommittedOffset::from_value(v));
            }
            None => self.remove(&key.group, &key.topic, key.partition),
        }
    }

    fn remove(&mut self, group: &str, topic: &str, partition: i32) {
        let Some(topics) = self.groups.get_mut(group) else {
            return;
        };
        if let Some(parts) = topics.get_mut(topic) {
            parts.remove(&partition);
            if parts.is_empty() {
                topics.remove(topic);
            }
        }
        if topics.is_empty() {
            self.groups.remove(group);
        }
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups.get(group)?.get(topic)?.get(&partition)
    }

    pub fn group(&self, group: &str) -> Option<&TopicOffsets> {
        self.groups.get(group)
    }
}

fn tombstone(group: &str, topic: &str, partition: i32) -> Record {
    Record::OffsetCommit {
        key: OffsetCommitKey {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
        },
        value: None,
    }
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    /// -1 when the client does not know it.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit request in domain form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 for standalone commits (no group membership).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2–v4 `retention_time_ms`; -1 means the broker default.
    pub retention_time_ms: i64,
    pub api_version: i16,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// Per-partition outcome of OffsetCommit or OffsetDelete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub partition: i32,
    pub error: Option<GroupError>,
}

/// Per-topic outcomes, in request order.
pub type TopicResults = Vec<(String, Vec<PartitionResult>)>;

/// One partition's committed offset as OffsetFetch returns it: offset -1,
/// leader epoch -1 and empty metadata when nothing is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl ClassicGroup {
    /// Kafka's `ClassicGroup.validateOffsetCommit` (non-transactional).
    fn validate_offset_commit(&self, req: &CommitRequest) -> Result<(), GroupError> {
        if self.is(GroupState::Dead) {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if req.generation_id < 0 && self.is(GroupState::Empty) {
            // A standalone consumer or the admin client.
            return Ok(());
        }
        if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
            self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
            if req.generation_id != self.generation_id {
                return Err(GroupError::IllegalGeneration);
            }
        } else if !self.is(GroupState::Empty) {
            return Err(GroupError::UnknownMemberId);
        }
        if self.is(GroupState::CompletingRebalance) {
            // The member has a valid generation but no assignment yet.
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// How long offsets live, per Kafka's `offsetExpirationCondition`:
    /// `Some(true)` = from the time the group became Empty (or the commit,
    /// if unknown), `Some(false)` = from the commit, `None` = never now.
    fn expiration_from_state_change(&self) -> Option<bool> {
        match self.protocol_type.as_deref() {
            None => Some(false),
            Some(_) if self.is(GroupState::Empty) => Some(true),
            Some(CONSUMER_PROTOCOL_TYPE)
                if self.is(GroupState::Stable) && self.subscribed_topics.is_some() =>
            {
                Some(false)
            }
            Some(_) => None,
        }
    }
}

/// OffsetCommit v9 is the first a KIP-848 member may use.
const MIN_COMMIT_VERSION_CONSUMER_MEMBER: i16 = 9;

impl ConsumerGroup {
    /// Kafka's `ConsumerGroup.validateOffsetCommit` (non-transactional):
    /// `generation_id` carries the member epoch.
    fn validate_offset_commit(&self, req: &CommitRequest) -> Result<(), GroupError> {
        if req.generation_id < 0 && self.members.is_empty() {
            // The admin client or a consumer outside the group.
            return Ok(());
        }
        let member = self
            .members
            .get(&req.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if req.api_version < MIN_COMMIT_VERSION_CONSUMER_MEMBER && !member.uses_classic_protocol() {
            return Err(GroupError::UnsupportedVersion);
        }
        check_member_epoch(member, req.generation_id)
    }

    /// Kafka's `ConsumerGroup.validateOffsetFetch`.
    fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(member_id) = member_id.filter(|_| member_epoch >= 0) else {
            return Ok(());
        };
        let member = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        check_member_epoch(member, member_epoch)
    }
}

/// Kafka's `ConsumerGroup.validateMemberEpoch`: a classic member inside a
/// consumer group sent its generation, and a mismatch is what the classic
/// protocol calls it.
fn check_member_epoch(member: &ConsumerMember, received: i32) -> Result<(), GroupError> {
    match received == member.member_epoch {
        true => Ok(()),
        false if member.uses_classic_protocol() => Err(GroupError::IllegalGeneration),
        false => Err(GroupError::StaleMemberEpoch),
    }
}

impl GroupCoordinator {
    /// OffsetCommit for a classic, standalone or consumer (KIP-848) group.
    /// For a consumer group `generation_id` is the member epoch: it must be
    /// the member's current one (STALE_MEMBER_EPOCH), the member must exist
    /// (UNKNOWN_MEMBER_ID), and the request be v9+ (UNSUPPORTED_VERSION);
    /// epoch -1 commits are accepted only while the group is empty.
    pub fn commit_offsets(&mut self, now_ms: i64, req: CommitRequest) -> Output<TopicResults> {
        let mut out = Sink::default();
        let consumer = self.consumer_groups.get(&req.group_id);
        let validated = match self.groups.get(&req.group_id) {
            _ if consumer.is_some() => consumer.expect("checked").validate_offset_commit(&req),
            Some(group) => group.validate_offset_commit(&req),
            None if req.generation_id < 0 => {
                // A standalone commit creates a "simple" group.
                let group = ClassicGroup::new(req.group_id.clone(), now_ms);
                self.groups.insert(req.group_id.clone(), group);
                Ok(())
            }
            None if req.api_version >= MIN_COMMIT_VERSION_GROUP_ID_NOT_FOUND => {
                Err(GroupError::GroupIdNotFound)
            }
            None => Err(GroupError::IllegalGeneration),
        };
        if let Err(e) = validated {
            let all = req
                .topics
                .into_iter()
                .map(|(t, ps)| {
                    let results = ps
                        .iter()
                        .map(|p| PartitionResult {
                            partition: p.partition,
                            error: Some(e),
                        })
                        .collect();
                    (t, results)
                })
                .collect();
            return Output::new(all, out);
        }
        if let Some(group) = self.groups.get_mut(&req.group_id) {
            if matches!(
                group.state,
                GroupState::Stable | GroupState::PreparingRebalance
            ) {
                // A commit proves the member is alive, like a heartbeat.
                group.reschedule_heartbeat(&req.member_id, now_ms, None);
            }
        }
        let expire = (req.retention_time_ms != -1).then(|| now_ms + req.retention_time_ms);
        let mut results = Vec::with_capacity(req.topics.len());
        for (topic, partitions) in req.topics {
            let mut topic_results = Vec::with_capacity(partitions.len());
            for p in partitions {
                let metadata = p.metadata.unwrap_or_default();
                // Kafka compares String.length(): UTF-16 code units.
                if metadata.encode_utf16().count() > self.config.offset_metadata_max_bytes {
                    topic_results.push(PartitionResult {
                        partition: p.partition,
                        error: Some(GroupError::OffsetMetadataTooLarge),
                    });
                    continue;
                }
                let committed = CommittedOffset {
                    offset: p.offset,
                    leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: expire,
                };
                let key = OffsetCommitKey {
                    group: req.group_id.clone(),
                    topic: topic.clone(),
                    partition: p.partition,
                };
                let value = committed.to_value();
                out.record(Record::OffsetCommit {
                    key: key.clone(),
                    value: Some(value.clone()),
                });
                self.offsets.apply(key, Some(value));
                topic_results.push(PartitionResult {
                    partition: p.partition,
                    error: None,
                });
            }
            results.push((topic, topic_results));
        }
        Output::new(results, out)
    }

    /// OffsetFetch (v9+) for one group with the member's id and epoch: a
    /// consumer-group member must exist (UNKNOWN_MEMBER_ID) and send its
    /// current epoch (STALE_MEMBER_EPOCH). `member_id: None` or epoch -1
    /// (the admin client, older clients) skips the check, as do classic
    /// groups. The error is group-level.
    pub fn fetch_offsets_checked(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, Vec<FetchedOffset>)>, GroupError> {
        if let Some(group) = self.consumer_groups.get(group_id) {
            group.validate_offset_fetch(member_id, member_epoch)?;
        }
        Ok(self.fetch_offsets(group_id, topics))
    }

    /// OffsetFetch for one group. `topics: None` asks for every committed
    /// offset. Unknown groups and partitions read as offset -1, no error.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        let fetched = |c: &CommittedOffset, partition: i32| FetchedOffset {
            partition,
            offset: c.offset,
            leader_epoch: c.leader_epoch.unwrap_or(-1),
            metadata: c.metadata.clone(),
        };
        match topics {
            None => self
                .offsets
                .group(group_id)
                .map(|topics| {
                    topics
                        .iter()
                        .map(|(t, ps)| {
                            (t.clone(), ps.iter().map(|(p, c)| fetched(c, *p)).collect())
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some(topics) => topics
                .iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .iter()
                        .map(|&p| match self.offsets.get(group_id, t, p) {
                            Some(c) => fetched(c, p),
                            None => FetchedOffset {
                                partition: p,
                                offset: -1,
                                leader_epoch: -1,
                                metadata: String::new(),
                            },
                        })
                        .collect();
                    (t.clone(), parts)
                })
                .collect(),
        }
    }

    /// OffsetDelete: removes committed offsets of topics the group does not
    /// consume. A group-level error comes back as `Err`.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Output<Result<TopicResults, GroupError>> {
        let mut out = Sink::default();
        if let Some(group) = self.consumer_groups.get(group_id) {
            // Kafka's ConsumerGroup.validateOffsetDelete accepts any state.
            let results = topics
                .iter()
                .map(|(topic, partitions)| {
                    let subscribed = group.is_subscribed_to(topic);
                    let results = partitions
                        .iter()
                        .map(|&p| {
                            let error = if subscribed {
                                Some(GroupError::GroupSubscribedToTopic)
                            } else {
                                if self.offsets.get(group_id, topic, p).is_some() {
                                    out.record(tombstone(group_id, topic, p));
                                }
                                None
                            };
                            PartitionResult {
                                partition: p,
                                error,
                            }
                        })
                        .collect();
                    (topic.clone(), results)
                })
                .collect::<TopicResults>();
            for (topic, parts) in &results {
                for p in parts.iter().filter(|p| p.error.is_none()) {
                    self.offsets.remove(group_id, topic, p.partition);
                }
            }
            return Output::new(Ok(results), out);
        }
        let Some(group) = self.groups.get(group_id) else {
            return Output::new(Err(GroupError::GroupIdNotFound), out);
        };
        match group.state {
            GroupState::Dead => return Output::new(Err(GroupError::GroupIdNotFound), out),
            GroupState::Empty => {}
            // Otherwise only a consumer group that knows its subscriptions.
            _ if group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
                && group.subscribed_topics.is_some() => {}
            _ => return Output::new(Err(GroupError::NonEmptyGroup), out),
        }
        let mut results = Vec::with_capacity(topics.len());
        for (topic, partitions) in topics {
            let subscribed = group.is_subscribed_to(topic);
            let mut topic_results = Vec::with_capacity(partitions.len());
            for &p in partitions {
                let error = if subscribed {
                    Some(GroupError::GroupSubscribedToTopic)
                } else {
                    if self.offsets.get(group_id, topic, p).is_some() {
                        out.record(tombstone(group_id, topic, p));
                        self.offsets.remove(group_id, topic, p);
                    }
                    None
                };
                topic_results.push(PartitionResult {
                    partition: p,
                    error,
                });
            }
            results.push((topic.clone(), topic_results));
        }
        Output::new(Ok(results), out)
    }

    /// DeleteGroups: removes Empty groups with their offsets.
    pub fn delete_groups(
        &mut self,
        group_ids: &[String],
    ) -> Output<Vec<(String, Option<GroupError>)>> {
        let mut out = Sink::default();
        let mut results = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            if let Some(group) = self.consumer_groups.get(id) {
                let error = if group.members.is_empty() {
                    self.delete_consumer_group_into(id, &mut out);
                    None
                } else {
                    Some(GroupError::NonEmptyGroup)
                };
                results.push((id.clone(), error));
                continue;
            }
            let error = match self.groups.get(id).map(|g| g.state) {
                None | Some(GroupState::Dead) => Some(GroupError::GroupIdNotFound),
                Some(GroupState::Empty) => {
                    self.delete_group_into(id, &mut out);
                    None
                }
                Some(_) => Some(GroupError::NonEmptyGroup),
            };
            results.push((id.clone(), error));
        }
        Output::new(results, out)
    }

    /// Tombstones for every offset of the group, then for the group.
    fn delete_group_into(&mut self, group_id: &str, out: &mut Sink) {
        if let Some(topics) = self.offsets.groups.remove(group_id) {
            for (topic, parts) in topics {
                for p in parts.keys() {
                    out.record(tombstone(group_id, &topic, *p));
                }
            }
        }
        out.record(Record::GroupMetadata {
            group: group_id.to_owned(),
            value: None,
        });
        self.groups.remove(group_id);
    }

    /// Tombstones for every offset of a consumer group, then for the group.
    fn delete_consumer_group_into(&mut self, group_id: &str, out: &mut Sink) {
        if let Some(topics) = self.offsets.groups.remove(group_id) {
            for (topic, parts) in topics {
                for p in parts.keys() {
                    out.record(tombstone(group_id, &topic, *p));
                }
            }
        }
        if let Some(group) = self.consumer_groups.remove(group_id) {
            group.tombstones(out);
        }
    }

    /// Runs the `offsets.retention.minutes` check now (`tick` calls this
    /// every `offsets.retention.check.interval.ms`).
    pub fn expire_offsets(&mut self, now_ms: i64) -> Output {
        let mut out = Sink::default();
        self.expire_offsets_into(now_ms, &mut out);
        Output::new((), out)
    }

    pub(crate) fn expire_offsets_into(&mut self, now_ms: i64, out: &mut Sink) {
        let retention = self.config.offsets_retention_ms;
        // Consumer groups (Kafka's ConsumerGroup.offsetExpirationCondition):
        // from the commit time, only for topics nobody subscribes to; an
        // empty group whose offsets are all gone is deleted.
        let consumer_ids: Vec<String> = self.consumer_groups.keys().cloned().collect();
        for group_id in consumer_ids {
            let group = &self.consumer_groups[&group_id];
            let mut expired = vec![];
            let mut all = true;
            if let Some(topics) = self.offsets.group(&group_id) {
                for (topic, parts) in topics {
                    if group.is_subscribed_to(topic) {
                        all = false;
                        continue;
                    }
                    for (p, c) in parts {
                        let at = c
                            .expire_timestamp_ms
                            .unwrap_or(c.commit_timestamp_ms + retention);
                        if now_ms >= at {
                            expired.push((topic.clone(), *p));
                        } else {
                            all = false;
                        }
                    }
                }
            }
            for (topic, p) in expired {
                out.record(tombstone(&group_id, &topic, p));
                self.offsets.remove(&group_id, &topic, p);
            }
            if all && self.consumer_groups[&group_id].members.is_empty() {
                tracing::info!(group = %group_id, "removing empty consumer group with no offsets left");
                self.delete_consumer_group_into(&group_id, out);
            }
        }
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in group_ids {
            let group = &self.groups[&group_id];
            let all_expired = match self.offsets.group(&group_id) {
                None => true,
                Some(topics) => match group.expiration_from_state_change() {
                    None => false,
                    Some(from_state_change) => {
                        let mut expired = vec![];
                        let mut all = true;
                        for (topic, parts) in topics {
                            if group.is_subscribed_to(topic) {
                                all = false;
                                continue;
                            }
                            for (p, c) in parts {
                                let is_expired = match c.expire_timestamp_ms {
                                    Some(at) => now_ms >= at,
                                    None => {
                                        let base = if from_state_change {
                                            group
                                                .state_timestamp_ms
                                                .unwrap_or(c.commit_timestamp_ms)
                                        } else {
                                            c.commit_timestamp_ms
                                        };
                                        now_ms - base >= retention
                                    }
                                };
                                if is_expired {
                                    expired.push((topic.clone(), *p));
                                } else {
                                    all = false;
                                }
                            }
                        }
                        for (topic, p) in expired {
                            out.record(tombstone(&group_id, &topic, p));
                            self.offsets.remove(&group_id, &topic, p);
                        }
                        all
                    }
                },
            };
            if all_expired && self.groups[&group_id].is(GroupState::Empty) {
                tracing::info!(group = %group_id, "removing empty group with no offsets left");
                self.delete_group_into(&group_id, out);
            }
        }
    }
}
