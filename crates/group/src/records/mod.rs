//! The records of `__consumer_offsets`, byte for byte as Kafka writes them.
//!
//! A coordinator record is an ordinary Kafka record whose key and value are
//! each an `int16` version followed by a generated message encoded at a
//! version:
//!
//! ```text
//! key   = version:int16 ++ KeyMessage@v0
//!           version 0 or 1 → OffsetCommitKey   { group:string, topic:string, partition:int32 }
//!           version 2      → GroupMetadataKey  { group:string }
//!           version 3–8    → KIP-848 consumer-group records (see `consumer`)
//!           version 9+     → share/streams-group records, regex cache (not handled)
//! value = version:int16 ++ ValueMessage@version, or null (a tombstone)
//! ```
//!
//! Value versions (Kafka's `OffsetCommitValue.json`, `GroupMetadataValue.json`):
//!
//! | message            | version | fields                                                       |
//! |--------------------|---------|--------------------------------------------------------------|
//! | OffsetCommitValue  | 0       | offset:int64, metadata:string, commitTimestamp:int64         |
//! |                    | 1       | + expireTimestamp:int64 (only v1)                            |
//! |                    | 2       | as v0                                                        |
//! |                    | 3       | + leaderEpoch:int32 after offset                             |
//! |                    | 4       | as v3, flexible (compact strings, tagged fields)             |
//! | GroupMetadataValue | 0       | protocolType, generation, protocol?, leader?, members[]      |
//! |                    | 1       | member + rebalanceTimeout                                    |
//! |                    | 2       | + currentStateTimestamp:int64 after leader                   |
//! |                    | 3       | member + groupInstanceId? after memberId                     |
//! |                    | 4       | as v3, flexible                                              |
//!
//! What we write matches Kafka 3.x/4.x (`GroupCoordinatorRecordHelpers`):
//! offset-commit keys with version 1, group-metadata keys with version 2,
//! offset-commit values with version 3 (version 1 when the commit carries
//! an explicit expire timestamp, i.e. OffsetCommit v2–v4 with a retention
//! time), group-metadata values with version 3. We read every version, so
//! a log written by Kafka can be loaded.
//!
//! Deletions are tombstones: the key with a null value. The topic is
//! compacted, so the latest value per key is the state.

mod codec;
mod consumer;

use bytes::Bytes;
use codec::{Reader, Writer};

pub use consumer::{
    ClassicMemberMetadataValue, ConsumerMemberMetadataValue, CurrentMemberAssignmentValue,
    TopicMetadataValue, TopicPartitions, CONSUMER_VALUE_VERSION,
};

/// Key version Kafka uses when writing offset commits (0 is also read).
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata records.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version written for offset commits without an expire timestamp.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version written for offset commits with an expire timestamp.
pub const OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// Value version written for group metadata.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// Key versions of the KIP-848 consumer-group records.
pub const CONSUMER_GROUP_METADATA_KEY_VERSION: i16 = 3;
pub const CONSUMER_GROUP_PARTITION_METADATA_KEY_VERSION: i16 = 4;
pub const CONSUMER_GROUP_MEMBER_METADATA_KEY_VERSION: i16 = 5;
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY_VERSION: i16 = 6;
pub const CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY_VERSION: i16 = 7;
pub const CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY_VERSION: i16 = 8;

/// A record that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends before its last field")]
    Truncated,
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("record key has no version")]
    MissingKey,
    /// A key version this crate does not handle: share/streams-group records
    /// and Kafka's regex cache (9 and above). The shell decides whether to
    /// skip them.
    #[error("unsupported record type (key version {0})")]
    UnsupportedRecordType(i16),
    #[error("unsupported value version {version} for key version {key_version}")]
    UnsupportedValueVersion { key_version: i16, version: i16 },
}

/// `OffsetCommitKey`: which committed offset a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// `OffsetCommitValue`: one committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (also what versions 0–2 decode to).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// -1 when absent. Only value version 1 stores it.
    pub expire_timestamp: i64,
}

/// One member of a classic group as stored in `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Version 0 has no rebalance timeout; it decodes as the session timeout
    /// (what Kafka's old loader did).
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// `GroupMetadataValue`: a classic group after a completed rebalance (or
/// an empty group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (versions 0–1).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

/// A decoded `__consumer_offsets` record. `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    OffsetCommit {
        key: OffsetCommitKey,
        value: Option<OffsetCommitValue>,
    },
    GroupMetadata {
        group: String,
        value: Option<GroupMetadataValue>,
    },
    /// Key 3: the consumer group's epoch.
    ConsumerGroupMetadata { group: String, epoch: Option<i32> },
    /// Key 4: the metadata of the topics the group subscribes to.
    ConsumerGroupPartitionMetadata {
        group: String,
        topics: Option<Vec<TopicMetadataValue>>,
    },
    /// Key 5: a member's subscription.
    ConsumerGroupMemberMetadata {
        group: String,
        member: String,
        value: Option<ConsumerMemberMetadataValue>,
    },
    /// Key 6: the epoch of the target assignment.
    ConsumerGroupTargetAssignmentMetadata {
        group: String,
        assignment_epoch: Option<i32>,
    },
    /// Key 7: one member's target assignment.
    ConsumerGroupTargetAssignmentMember {
        group: String,
        member: String,
        partitions: Option<Vec<TopicPartitions>>,
    },
    /// Key 8: one member's current assignment and epochs.
    ConsumerGroupCurrentMemberAssignment {
        group: String,
        member: String,
        value: Option<CurrentMemberAssignmentValue>,
    },
}

impl Record {
    /// The group this record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            Record::OffsetCommit { key, .. } => &key.group,
            Record::GroupMetadata { group, .. }
            | Record::ConsumerGroupMetadata { group, .. }
            | Record::ConsumerGroupPartitionMetadata { group, .. }
            | Record::ConsumerGroupMemberMetadata { group, .. }
            | Record::ConsumerGroupTargetAssignmentMetadata { group, .. }
            | Record::ConsumerGroupTargetAssignmentMember { group, .. }
            | Record::ConsumerGroupCurrentMemberAssignment { group, .. } => group,
        }
    }

    /// True for a tombstone (null value).
    pub fn is_tombstone(&self) -> bool {
        match self {
            Record::OffsetCommit { value, .. } => value.is_none(),
            Record::GroupMetadata { value, .. } => value.is_none(),
            Record::ConsumerGroupMetadata { epoch, .. } => epoch.is_none(),
            Record::ConsumerGroupPartitionMetadata { topics, .. } => topics.is_none(),
            Record::ConsumerGroupMemberMetadata { value, .. } => value.is_none(),
            Record::ConsumerGroupTargetAssignmentMetadata {
                assignment_epoch, ..
            } => assignment_epoch.is_none(),
            Record::ConsumerGroupTargetAssignmentMember { partitions, .. } => partitions.is_none(),
            Record::ConsumerGroupCurrentMemberAssignment { value, .. } => value.is_none(),
        }
    }

    /// Encodes the record key exactly as Kafka does.
    pub fn encode_key(&self) -> Bytes {
        let mut w = Writer::new(false);
        match self {
            Record::OffsetCommit { key, .. } => {
                w.i16(OFFSET_COMMIT_KEY_VERSION);
                w.string(&key.group);
                w.string(&key.topic);
                w.i32(key.partition);
            }
            Record::GroupMetadata { group, .. } => {
                w.i16(GROUP_METADATA_KEY_VERSION);
                w.string(group);
            }
            Record::ConsumerGroupMetadata { group, .. } => {
                w.i16(CONSUMER_GROUP_METADATA_KEY_VERSION);
                w.string(group);
            }
            Record::ConsumerGroupPartitionMetadata { group, .. } => {
                w.i16(CONSUMER_GROUP_PARTITION_METADATA_KEY_VERSION);
                w.string(group);
            }
            Record::ConsumerGroupMemberMetadata { group, member, .. } => {
                w.i16(CONSUMER_GROUP_MEMBER_METADATA_KEY_VERSION);
                w.string(group);
                w.string(member);
            }
            Record::ConsumerGroupTargetAssignmentMetadata { group, .. } => {
                w.i16(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY_VERSION);
                w.string(group);
            }
            Record::ConsumerGroupTargetAssignmentMember { group, member, .. } => {
                w.i16(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY_VERSION);
                w.string(group);
                w.string(member);
            }
            Record::ConsumerGroupCurrentMemberAssignment { group, member, .. } => {
                w.i16(CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY_VERSION);
                w.string(group);
                w.string(member);
            }
        }
        w.finish()
    }

    /// Encodes the record value at the version Kafka would choose, or `None`
    /// for a tombstone.
    pub fn encode_value(&self) -> Option<Bytes> {
        match self {
            Record::OffsetCommit { value, .. } => value.as_ref().map(|v| {
                let version = if v.expire_timestamp >= 0 {
                    OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY
                } else {
                    OFFSET_COMMIT_VALUE_VERSION
                };
                v.encode(version)
            }),
            Record::GroupMetadata { value, .. } => value
                .as_ref()
                .map(|v| v.encode(GROUP_METADATA_VALUE_VERSION)),
            Record::ConsumerGroupMetadata { epoch, .. } => epoch.map(consumer::encode_epoch),
            Record::ConsumerGroupPartitionMetadata { topics, .. } => {
                topics.as_deref().map(consumer::encode_partition_metadata)
            }
            Record::ConsumerGroupMemberMetadata { value, .. } => {
                value.as_ref().map(ConsumerMemberMetadataValue::encode)
            }
            Record::ConsumerGroupTargetAssignmentMetadata {
                assignment_epoch, ..
            } => assignment_epoch.map(consumer::encode_epoch),
            Record::ConsumerGroupTargetAssignmentMember { partitions, .. } => {
                partitions.as_deref().map(consumer::encode_target_member)
            }
            Record::ConsumerGroupCurrentMemberAssignment { value, .. } => {
                value.as_ref().map(CurrentMemberAssignmentValue::encode)
            }
        }
    }

    /// Decodes a record from its key and (possibly null) value.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Record, RecordError> {
        if key.len() < 2 {
            return Err(RecordError::MissingKey);
        }
        let mut r = Reader::new(key, false);
        let key_version = r.i16()?;
        match key_version {
            0 | 1 => {
                let key = OffsetCommitKey {
                    group: r.string()?,
                    topic: r.string()?,
                    partition: r.i32()?,
                };
                let value = value.map(OffsetCommitValue::decode).transpose()?;
                Ok(Record::OffsetCommit { key, value })
            }
            2 => {
                let group = r.string()?;
                let value = value.map(GroupMetadataValue::decode).transpose()?;
                Ok(Record::GroupMetadata { group, value })
            }
            3 => Ok(Record::ConsumerGroupMetadata {
                group: r.string()?,
                epoch: value.map(|v| consumer::decode_epoch(v, 3)).transpose()?,
            }),
            4 => Ok(Record::ConsumerGroupPartitionMetadata {
                group: r.string()?,
                topics: value.map(consumer::decode_partition_metadata).transpose()?,
            }),
            5 => Ok(Record::ConsumerGroupMemberMetadata {
                group: r.string()?,
                member: r.string()?,
                value: value.map(ConsumerMemberMetadataValue::decode).transpose()?,
            }),
            6 => Ok(Record::ConsumerGroupTargetAssignmentMetadata {
                group: r.string()?,
                assignment_epoch: value.map(|v| consumer::decode_epoch(v, 6)).transpose()?,
            }),
            7 => Ok(Record::ConsumerGroupTargetAssignmentMember {
                group: r.string()?,
                member: r.string()?,
                partitions: value.map(consumer::decode_target_member).transpose()?,
            }),
            8 => Ok(Record::ConsumerGroupCurrentMemberAssignment {
                group: r.string()?,
                member: r.string()?,
                value: value
                    .map(CurrentMemberAssignmentValue::decode)
                    .transpose()?,
            }),
            other => Err(RecordError::UnsupportedRecordType(other)),
        }
    }
}

/// Reads the value's version prefix and checks it against the valid range.
fn value_version(buf: &[u8], key_version: i16, max: i16) -> Result<(i16, &[u8]), RecordError> {
    let mut r = Reader::new(buf, false);
    let version = r.i16()?;
    if !(0..=max).contains(&version) {
        return Err(RecordError::UnsupportedValueVersion {
            key_version,
            version,
        });
    }
    Ok((version, &buf[2..]))
}

impl OffsetCommitValue {
    /// Encodes `version:int16` followed by the message at that version.
    pub fn encode(&self, version: i16) -> Bytes {
        assert!(
            (0..=4).contains(&version),
            "OffsetCommitValue has versions 0-4"
        );
        let mut w = Writer::new(version >= 4);
        w.i16(version);
        w.i64(self.offset);
        if version >= 3 {
            w.i32(self.leader_epoch);
        }
        w.string(&self.metadata);
        w.i64(self.commit_timestamp);
        if version == 1 {
            w.i64(self.expire_timestamp);
        }
        w.tagged_fields();
        w.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, RecordError> {
        let (version, body) = value_version(buf, OFFSET_COMMIT_KEY_VERSION, 4)?;
        let mut r = Reader::new(body, version >= 4);
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string()?;
        let commit_timestamp = r.i64()?;
        let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
        r.tagged_fields()?;
        Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

impl GroupMetadataValue {
    /// Encodes `version:int16` followed by the message at that version.
    pub fn encode(&self, version: i16) -> Bytes {
        assert!(
            (0..=4).contains(&version),
            "GroupMetadataValue has versions 0-4"
        );
        let mut w = Writer::new(version >= 4);
        w.i16(version);
        w.string(&self.protocol_type);
        w.i32(self.generation);
        w.nullable_string(self.protocol.as_deref());
        w.nullable_string(self.leader.as_deref());
        if version >= 2 {
            w.i64(self.current_state_timestamp);
        }
        w.array_len(self.members.len());
        for m in &self.members {
            w.string(&m.member_id);
            if version >= 3 {
                w.nullable_string(m.group_instance_id.as_deref());
            }
            w.string(&m.client_id);
            w.string(&m.client_host);
            if version >= 1 {
                w.i32(m.rebalance_timeout);
            }
            w.i32(m.session_timeout);
            w.bytes(&m.subscription);
            w.bytes(&m.assignment);
            w.tagged_fields();
        }
        w.tagged_fields();
        w.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, RecordError> {
        let (version, body) = value_version(buf, GROUP_METADATA_KEY_VERSION, 4)?;
        let mut r = Reader::new(body, version >= 4);
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
        let n = r.array_len()?;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            let member_id = r.string()?;
            let group_instance_id = if version >= 3 {
                r.nullable_string()?
            } else {
                None
            };
            let client_id = r.string()?;
            let client_host = r.string()?;
            let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
            let session_timeout = r.i32()?;
            let subscription = r.bytes()?;
            let assignment = r.bytes()?;
            r.tagged_fields()?;
            members.push(MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
                session_timeout,
                subscription,
                assignment,
            });
        }
        r.tagged_fields()?;
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

#[cfg(test)]
mod tests;
