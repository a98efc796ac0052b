//! Metadata records and their binary encoding.
//!
//! Encoding (all big endian): `type: u8`, then the fields of the variant in
//! declaration order. Strings are `len: u16` + UTF-8, optional strings use
//! `len: i16` with -1 for null, lists are `count: u32` + items, UUIDs are 16
//! bytes. The framing (offset, epoch, length, CRC) is the log's business.

use bytes::{Buf, BufMut};
use uuid::Uuid;

/// One change to cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A topic exists with this name and id.
    Topic { name: String, topic_id: Uuid },
    /// A partition of a topic and where it lives.
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
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
                replicas,
                isr,
                leader,
                leader_epoch,
            } => {
                buf.put_u8(PARTITION);
                buf.put_slice(topic_id.as_bytes());
                buf.put_i32(*partition);
                put_i32s(buf, replicas);
                put_i32s(buf, isr);
                buf.put_i32(*leader);
                buf.put_i32(*leader_epoch);
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => {
                buf.put_u8(TOPIC_CONFIG);
                buf.put_slice(topic_id.as_bytes());
                put_str(buf, key);
                match value {
                    Some(v) => {
                        buf.put_i16(1);
                        put_str(buf, v);
                    }
                    None => buf.put_i16(-1),
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                buf.put_u8(REMOVE_TOPIC);
                buf.put_slice(topic_id.as_bytes());
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                buf.put_u8(PRODUCER_IDS);
                buf.put_i64(*next_producer_id);
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
            PARTITION => MetadataRecord::Partition {
                topic_id: get_uuid(buf)?,
                partition: get_i32(buf)?,
                replicas: get_i32s(buf)?,
                isr: get_i32s(buf)?,
                leader: get_i32(buf)?,
                leader_epoch: get_i32(buf)?,
            },
            TOPIC_CONFIG => MetadataRecord::TopicConfig {
                topic_id: get_uuid(buf)?,
                key: get_str(buf)?,
                value: match get_i16(buf)? {
                    -1 => None,
                    _ => Some(get_str(buf)?),
                },
            },
            REMOVE_TOPIC => MetadataRecord::RemoveTopic {
                topic_id: get_uuid(buf)?,
            },
            PRODUCER_IDS => MetadataRecord::ProducerIds {
                next_producer_id: get_i64(buf)?,
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
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 4,
            },
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
