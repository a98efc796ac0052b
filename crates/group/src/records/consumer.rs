//! The KIP-848 consumer-group records (key versions 3–8), as Kafka 4.0's
//! `group-coordinator/src/main/resources/common/message/ConsumerGroup*.json`
//! define them. Keys are non-flexible (`int16` version, then `int16`-length
//! strings); every value is version 0 and flexible (compact lengths,
//! tagged fields).
//!
//! | key | key fields          | value (version 0)                                             |
//! |-----|---------------------|---------------------------------------------------------------|
//! | 3   | group               | ConsumerGroupMetadataValue { epoch:int32 }                    |
//! | 4   | group               | ConsumerGroupPartitionMetadataValue { topics[] }              |
//! | 5   | group, member       | ConsumerGroupMemberMetadataValue (subscription, client info)  |
//! | 6   | group               | ConsumerGroupTargetAssignmentMetadataValue { assignmentEpoch }|
//! | 7   | group, member       | ConsumerGroupTargetAssignmentMemberValue { topicPartitions[] }|
//! | 8   | group, member       | ConsumerGroupCurrentMemberAssignmentValue (epochs, state, …)  |
//!
//! Not handled: `ConsumerGroupRegularExpression` (key 16, Kafka's cache of
//! resolved regexes; this core resolves regexes against the topic image it
//! is given) and the share/streams group records.

use bytes::Bytes;
use uuid::Uuid;

use super::codec::{Reader, Writer};
use super::RecordError;

/// The only value version of the consumer-group records.
pub const CONSUMER_VALUE_VERSION: i16 = 0;

/// Partitions of one topic, addressed by topic id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic_id: Uuid,
    pub partitions: Vec<i32>,
}

/// One entry of `ConsumerGroupPartitionMetadataValue`. The per-partition
/// rack list (deprecated after 4.0) is written empty and skipped on read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadataValue {
    pub topic_id: Uuid,
    pub topic_name: String,
    pub num_partitions: i32,
}

/// The tag of `ClassicMemberMetadata` in `ConsumerGroupMemberMetadataValue`.
const CLASSIC_MEMBER_METADATA_TAG: u32 = 0;

/// `ClassicMemberMetadata`: what a member that joined a consumer group
/// through JoinGroup (the classic protocol) needs to be served that way,
/// and to become a classic member again if the group is downgraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberMetadataValue {
    pub session_timeout_ms: i32,
    /// (protocol name, embedded consumer-protocol subscription), in the
    /// member's order of preference.
    pub supported_protocols: Vec<(String, Bytes)>,
}

impl ClassicMemberMetadataValue {
    /// A nullable struct in a tagged field: a presence byte, then the
    /// struct (Kafka's generated `write` for nullable tagged structs).
    fn encode_tagged(&self) -> Bytes {
        let mut w = Writer::new(true);
        w.i8(1);
        w.i32(self.session_timeout_ms);
        w.array_len(self.supported_protocols.len());
        for (name, metadata) in &self.supported_protocols {
            w.string(name);
            w.bytes(metadata);
            w.tagged_fields();
        }
        w.tagged_fields();
        w.finish()
    }

    fn decode_tagged(buf: &[u8]) -> Result<Option<Self>, RecordError> {
        let mut r = Reader::new(buf, true);
        if r.i8()? < 0 {
            return Ok(None);
        }
        let session_timeout_ms = r.i32()?;
        let n = r.array_len()?;
        let mut supported_protocols = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string()?;
            let metadata = r.bytes()?;
            r.tagged_fields()?;
            supported_protocols.push((name, metadata));
        }
        r.tagged_fields()?;
        if !r.is_empty() {
            return Err(RecordError::Malformed(
                "trailing bytes in ClassicMemberMetadata",
            ));
        }
        Ok(Some(ClassicMemberMetadataValue {
            session_timeout_ms,
            supported_protocols,
        }))
    }
}

/// `ConsumerGroupMemberMetadataValue`: a member's subscription and client
/// information, and for members using the classic protocol inside a
/// consumer group their `ClassicMemberMetadata` (tagged field 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// `None` for members using the consumer protocol.
    pub classic_member_metadata: Option<ClassicMemberMetadataValue>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue`: where a member stands in
/// its reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentMemberAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState`: 0 STABLE, 1 UNREVOKED_PARTITIONS,
    /// 2 UNRELEASED_PARTITIONS, 127 UNKNOWN.
    pub state: i8,
    pub assigned_partitions: Vec<TopicPartitions>,
    pub partitions_pending_revocation: Vec<TopicPartitions>,
}

fn start_value() -> Writer {
    let mut w = Writer::new(true);
    w.i16(CONSUMER_VALUE_VERSION);
    w
}

/// Checks the version prefix (only 0 exists) and returns a reader of the body.
fn value_reader(buf: &[u8], key_version: i16) -> Result<Reader<'_>, RecordError> {
    let (_, body) = super::value_version(buf, key_version, CONSUMER_VALUE_VERSION)?;
    Ok(Reader::new(body, true))
}

fn finish(mut w: Writer) -> Bytes {
    w.tagged_fields();
    w.finish()
}

fn write_topic_partitions(w: &mut Writer, tps: &[TopicPartitions]) {
    w.array_len(tps.len());
    for tp in tps {
        w.uuid(&tp.topic_id);
        w.array_len(tp.partitions.len());
        for p in &tp.partitions {
            w.i32(*p);
        }
        w.tagged_fields();
    }
}

fn read_topic_partitions(r: &mut Reader<'_>) -> Result<Vec<TopicPartitions>, RecordError> {
    let n = r.array_len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic_id = r.uuid()?;
        let np = r.array_len()?;
        let mut partitions = Vec::with_capacity(np);
        for _ in 0..np {
            partitions.push(r.i32()?);
        }
        r.tagged_fields()?;
        out.push(TopicPartitions {
            topic_id,
            partitions,
        });
    }
    Ok(out)
}

/// `ConsumerGroupMetadataValue { Epoch }` and
/// `ConsumerGroupTargetAssignmentMetadataValue { AssignmentEpoch }` share
/// this shape: one `int32`.
pub(crate) fn encode_epoch(epoch: i32) -> Bytes {
    let mut w = start_value();
    w.i32(epoch);
    finish(w)
}

pub(crate) fn decode_epoch(buf: &[u8], key_version: i16) -> Result<i32, RecordError> {
    let mut r = value_reader(buf, key_version)?;
    let epoch = r.i32()?;
    r.tagged_fields()?;
    Ok(epoch)
}

pub(crate) fn encode_partition_metadata(topics: &[TopicMetadataValue]) -> Bytes {
    let mut w = start_value();
    w.array_len(topics.len());
    for t in topics {
        w.uuid(&t.topic_id);
        w.string(&t.topic_name);
        w.i32(t.num_partitions);
        w.array_len(0); // PartitionMetadata (racks): unused
        w.tagged_fields();
    }
    finish(w)
}

pub(crate) fn decode_partition_metadata(
    buf: &[u8],
) -> Result<Vec<TopicMetadataValue>, RecordError> {
    let mut r = value_reader(buf, 4)?;
    let n = r.array_len()?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let topic_id = r.uuid()?;
        let topic_name = r.string()?;
        let num_partitions = r.i32()?;
        let np = r.array_len()?;
        for _ in 0..np {
            let _partition = r.i32()?;
            let nr = r.array_len()?;
            for _ in 0..nr {
                let _rack = r.string()?;
            }
            r.tagged_fields()?;
        }
        r.tagged_fields()?;
        topics.push(TopicMetadataValue {
            topic_id,
            topic_name,
            num_partitions,
        });
    }
    r.tagged_fields()?;
    Ok(topics)
}

impl ConsumerMemberMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut w = start_value();
        w.nullable_string(self.instance_id.as_deref());
        w.nullable_string(self.rack_id.as_deref());
        w.string(&self.client_id);
        w.string(&self.client_host);
        w.array_len(self.subscribed_topic_names.len());
        for t in &self.subscribed_topic_names {
            w.string(t);
        }
        w.nullable_string(self.subscribed_topic_regex.as_deref());
        w.i32(self.rebalance_timeout_ms);
        w.nullable_string(self.server_assignor.as_deref());
        match &self.classic_member_metadata {
            None => w.tagged_fields(),
            Some(classic) => {
                w.tagged_fields_with(&[(CLASSIC_MEMBER_METADATA_TAG, classic.encode_tagged())])
            }
        }
        w.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, RecordError> {
        let mut r = value_reader(buf, 5)?;
        let instance_id = r.nullable_string()?;
        let rack_id = r.nullable_string()?;
        let client_id = r.string()?;
        let client_host = r.string()?;
        let n = r.array_len()?;
        let mut subscribed_topic_names = Vec::with_capacity(n);
        for _ in 0..n {
            subscribed_topic_names.push(r.string()?);
        }
        let subscribed_topic_regex = r.nullable_string()?;
        let rebalance_timeout_ms = r.i32()?;
        let server_assignor = r.nullable_string()?;
        let mut classic_member_metadata = None;
        for (tag, value) in r.tagged_field_values()? {
            if tag == u64::from(CLASSIC_MEMBER_METADATA_TAG) {
                classic_member_metadata = ClassicMemberMetadataValue::decode_tagged(value)?;
            }
        }
        Ok(ConsumerMemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
            classic_member_metadata,
        })
    }
}

pub(crate) fn encode_target_member(tps: &[TopicPartitions]) -> Bytes {
    let mut w = start_value();
    write_topic_partitions(&mut w, tps);
    finish(w)
}

pub(crate) fn decode_target_member(buf: &[u8]) -> Result<Vec<TopicPartitions>, RecordError> {
    let mut r = value_reader(buf, 7)?;
    let tps = read_topic_partitions(&mut r)?;
    r.tagged_fields()?;
    Ok(tps)
}

impl CurrentMemberAssignmentValue {
    pub fn encode(&self) -> Bytes {
        let mut w = start_value();
        w.i32(self.member_epoch);
        w.i32(self.previous_member_epoch);
        w.i8(self.state);
        write_topic_partitions(&mut w, &self.assigned_partitions);
        write_topic_partitions(&mut w, &self.partitions_pending_revocation);
        finish(w)
    }

    pub fn decode(buf: &[u8]) -> Result<Self, RecordError> {
        let mut r = value_reader(buf, 8)?;
        let member_epoch = r.i32()?;
        let previous_member_epoch = r.i32()?;
        let state = r.i8()?;
        let assigned_partitions = read_topic_partitions(&mut r)?;
        let partitions_pending_revocation = read_topic_partitions(&mut r)?;
        r.tagged_fields()?;
        Ok(CurrentMemberAssignmentValue {
            member_epoch,
            previous_member_epoch,
            state,
            assigned_partitions,
            partitions_pending_revocation,
        })
    }
}
