//! Metadata records and their binary encoding.
//!
//! Encoding (all big endian): `type: u8`, then the fields of the variant in
//! declaration order. Strings are `len: u16` + UTF-8, optional strings use
//! `len: i16` with -1 for null, lists are `count: u32` + items, UUIDs are 16
//! bytes. The framing (offset, epoch, length, CRC) is the log's business.

use bytes::{Buf, BufMut};
use uuid::Uuid;

use crate::image::PartitionImage;

/// One change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A topic exists with this name and id.
    Topic { name: String, topic_id: Uuid },
    /// A partition of a topic and its whole replication state (Kafka's
    /// PartitionRecord and PartitionChangeRecord in one: every change
    /// writes the full state, which keeps replay trivial).
    Partition {
        topic_id: Uuid,
        partition: i32,
        state: PartitionImage,
    },
    /// A topic config override is set (`value: Some`) or removed (`None`).
    TopicConfig {
        topic_id: Uuid,
        key: String,
        value: Option<String>,
    },
    /// A topic and all its partitions are deleted.
    RemoveTopic { topic_id: Uuid },
    /// Producer ids below `next_producer_id` have been handed out (in
    /// blocks, as Kafka's AllocateProducerIds does), so none is reused
    /// after a restart.
    ProducerIds { next_producer_id: i64 },
    /// A broker registered (or re-registered after a restart) with the
    /// controller. A registered broker starts fenced.
    RegisterBroker {
        broker_id: i32,
        /// Changes on every process start, so the controller can tell a
        /// restart from a duplicate registration.
        incarnation_id: Uuid,
        host: String,
        port: i32,
        rack: Option<String>,
    },
    /// A broker's liveness as the controller sees it. Fenced brokers lead
    /// nothing and are outside every ISR.
    BrokerState {
        broker_id: i32,
        fenced: bool,
        in_controlled_shutdown: bool,
    },
    /// A broker was removed from the cluster (UnregisterBroker).
    UnregisterBroker { broker_id: i32 },
    /// The cluster's id, written once by the first active controller so
    /// every node reports the same one.
    ClusterId { cluster_id: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("metadata record truncated")]
    Truncated,
    #[error("unknown metadata record type {0}")]
    UnknownType(u8),
    #[error("metadata record string is not UTF-8")]
    BadUtf8,
}

const TOPIC: u8 = 1;
const PARTITION: u8 = 2;
const TOPIC_CONFIG: u8 = 3;
const REMOVE_TOPIC: u8 = 4;
const PRODUCER_IDS: u8 = 5;
/// Partition with partition epoch and reassignment state; tag 2 is the
/// single-node format from before replication, still readable.
const PARTITION_V2: u8 = 6;
const REGISTER_BROKER: u8 = 7;
const BROKER_STATE: u8 = 8;
const UNREGISTER_BROKER: u8 = 9;
const CLUSTER_ID: u8 = 10;

impl MetadataRecord {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            MetadataRecord::Topic { name, topic_id } => {
                buf.put_u8(TOPIC);
                put_str(buf, name);
                buf.put_slice(topic_id.as_bytes());
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                state,
            } => {
                buf.put_u8(PARTITION_V2);
                buf.put_slice(topic_id.as_bytes());
                buf.put_i32(*partition);
                put_i32s(buf, &state.replicas);
                put_i32s(buf, &state.isr);
                buf.put_i32(state.leader);
                buf.put_i32(state.leader_epoch);
                buf.put_i32(state.partition_epoch);
                put_i32s(buf, &state.adding_replicas);
                put_i32s(buf, &state.removing_replicas);
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => {
                buf.put_u8(TOPIC_CONFIG);
                buf.put_slice(topic_id.as_bytes());
                put_str(buf, key);
                put_opt_str(buf, value.as_deref());
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                buf.put_u8(REMOVE_TOPIC);
                buf.put_slice(topic_id.as_bytes());
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                buf.put_u8(PRODUCER_IDS);
                buf.put_i64(*next_producer_id);
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                host,
                port,
                rack,
            } => {
                buf.put_u8(REGISTER_BROKER);
                buf.put_i32(*broker_id);
                buf.put_slice(incarnation_id.as_bytes());
                put_str(buf, host);
                buf.put_i32(*port);
                put_opt_str(buf, rack.as_deref());
            }
            MetadataRecord::BrokerState {
                broker_id,
                fenced,
                in_controlled_shutdown,
            } => {
                buf.put_u8(BROKER_STATE);
                buf.put_i32(*broker_id);
                buf.put_u8(*fenced as u8);
                buf.put_u8(*in_controlled_shutdown as u8);
            }
            MetadataRecord::UnregisterBroker { broker_id } => {
                buf.put_u8(UNREGISTER_BROKER);
                buf.put_i32(*broker_id);
            }
            MetadataRecord::ClusterId { cluster_id } => {
                buf.put_u8(CLUSTER_ID);
                put_str(buf, cluster_id);
            }
        }
    }

    pub fn decode(mut buf: &[u8]) -> Result<MetadataRecord, RecordError> {
        let buf = &mut buf;
        let record = match get_u8(buf)? {
            TOPIC => MetadataRecord::Topic {
                name: get_str(buf)?,
                topic_id: get_uuid(buf)?,
            },
            // Tag 2, from before replication, has no epoch or reassignment.
            tag @ (PARTITION | PARTITION_V2) => {
                let v2 = tag == PARTITION_V2;
                MetadataRecord::Partition {
                    topic_id: get_uuid(buf)?,
                    partition: get_i32(buf)?,
                    state: PartitionImage {
                        replicas: get_i32s(buf)?,
                        isr: get_i32s(buf)?,
                        leader: get_i32(buf)?,
                        leader_epoch: get_i32(buf)?,
                        partition_epoch: if v2 { get_i32(buf)? } else { 0 },
                        adding_replicas: if v2 { get_i32s(buf)? } else { Vec::new() },
                        removing_replicas: if v2 { get_i32s(buf)? } else { Vec::new() },
                    },
                }
            }
            TOPIC_CONFIG => MetadataRecord::TopicConfig {
                topic_id: get_uuid(buf)?,
                key: get_str(buf)?,
                value: get_opt_str(buf)?,
            },
            REMOVE_TOPIC => MetadataRecord::RemoveTopic {
                topic_id: get_uuid(buf)?,
            },
            PRODUCER_IDS => MetadataRecord::ProducerIds {
                next_producer_id: get_i64(buf)?,
            },
            REGISTER_BROKER => MetadataRecord::RegisterBroker {
                broker_id: get_i32(buf)?,
                incarnation_id: get_uuid(buf)?,
                host: get_str(buf)?,
                port: get_i32(buf)?,
                rack: get_opt_str(buf)?,
            },
            BROKER_STATE => MetadataRecord::BrokerState {
                broker_id: get_i32(buf)?,
                fenced: get_u8(buf)? != 0,
                in_controlled_shutdown: get_u8(buf)? != 0,
            },
            UNREGISTER_BROKER => MetadataRecord::UnregisterBroker {
                broker_id: get_i32(buf)?,
            },
            CLUSTER_ID => MetadataRecord::ClusterId {
                cluster_id: get_str(buf)?,
            },
            other => return Err(RecordError::UnknownType(other)),
        };
        Ok(record)
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    // Topic names are ≤ 249 bytes and config values are short; a longer
    // string is a bug in the caller's validation.
    assert!(s.len() <= u16::MAX as usize, "metadata string too long");
    buf.put_u16(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

fn put_i32s(buf: &mut Vec<u8>, v: &[i32]) {
    buf.put_u32(v.len() as u32);
    for x in v {
        buf.put_i32(*x);
    }
}

/// `1i16` then the string, or `-1i16` for none.
fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(v) => {
            buf.put_i16(1);
            put_str(buf, v);
        }
        None => buf.put_i16(-1),
    }
}

fn get_opt_str(buf: &mut &[u8]) -> Result<Option<String>, RecordError> {
    match get_i16(buf)? {
        -1 => Ok(None),
        _ => Ok(Some(get_str(buf)?)),
    }
}

fn need(buf: &[u8], n: usize) -> Result<(), RecordError> {
    if buf.remaining() < n {
        Err(RecordError::Truncated)
    } else {
        Ok(())
    }
}

fn get_u8(buf: &mut &[u8]) -> Result<u8, RecordError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, RecordError> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, RecordError> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, RecordError> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn get_uuid(buf: &mut &[u8]) -> Result<Uuid, RecordError> {
    need(buf, 16)?;
    let mut b = [0u8; 16];
    buf.copy_to_slice(&mut b);
    Ok(Uuid::from_bytes(b))
}

fn get_str(buf: &mut &[u8]) -> Result<String, RecordError> {
    need(buf, 2)?;
    let len = buf.get_u16() as usize;
    need(buf, len)?;
    let s = std::str::from_utf8(&buf[..len]).map_err(|_| RecordError::BadUtf8)?;
    let s = s.to_owned();
    buf.advance(len);
    Ok(s)
}

fn get_i32s(buf: &mut &[u8]) -> Result<Vec<i32>, RecordError> {
    need(buf, 4)?;
    let n = buf.get_u32() as usize;
    need(buf, n.saturating_mul(4))?;
    Ok((0..n).map(|_| buf.get_i32()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<MetadataRecord> {
        let id = Uuid::new_v4();
        vec![
            MetadataRecord::Topic {
                name: "orders-eu".into(),
                topic_id: id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 3,
                state: PartitionImage {
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2],
                    leader: 1,
                    leader_epoch: 4,
                    partition_epoch: 7,
                    adding_replicas: vec![3],
                    removing_replicas: vec![],
                },
            },
            MetadataRecord::RegisterBroker {
                broker_id: 2,
                incarnation_id: Uuid::new_v4(),
                host: "127.0.0.1".into(),
                port: 9092,
                rack: Some("r1".into()),
            },
            MetadataRecord::BrokerState {
                broker_id: 2,
                fenced: false,
                in_controlled_shutdown: true,
            },
            MetadataRecord::UnregisterBroker { broker_id: 2 },
            MetadataRecord::TopicConfig {
                topic_id: id,
                key: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::TopicConfig {
                topic_id: id,
                key: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::RemoveTopic { topic_id: id },
            MetadataRecord::ProducerIds {
                next_producer_id: 4000,
            },
        ]
    }

    #[test]
    fn round_trip() {
        for r in samples() {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            assert_eq!(MetadataRecord::decode(&buf).unwrap(), r);
        }
    }

    #[test]
    fn single_node_partition_records_still_decode() {
        let id = Uuid::new_v4();
        let mut buf = vec![PARTITION];
        buf.extend_from_slice(id.as_bytes());
        buf.put_i32(0);
        put_i32s(&mut buf, &[1]);
        put_i32s(&mut buf, &[1]);
        buf.put_i32(1);
        buf.put_i32(0);
        assert_eq!(
            MetadataRecord::decode(&buf).unwrap(),
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                state: PartitionImage::new(vec![1], 1, 0),
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for r in samples() {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            for cut in 0..buf.len() {
                assert!(
                    MetadataRecord::decode(&buf[..cut]).is_err(),
                    "{r:?} cut at {cut}"
                );
            }
        }
    }
}
