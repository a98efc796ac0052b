//! The replicated command: one batch of metadata records.
//!
//! A batch is the unit the controller makes durable today with one
//! `MetadataLog::append` (a topic and all its partitions and configs). It
//! stays one Raft entry, so a follower applies all of it or none of it and
//! readers never see half a topic.
//!
//! Encoding: `count: u32`, then per record `len: u32 | MetadataRecord`
//! (the record's own encoding from `odradek_metadata::record`).

use std::fmt;

use odradek_metadata::MetadataRecord;

use crate::codec::{DecodeError, Put, Reader};

#[derive(Clone, PartialEq, Eq, Default)]
pub struct MetadataCommand {
    pub records: Vec<MetadataRecord>,
}

impl MetadataCommand {
    pub fn new(records: Vec<MetadataRecord>) -> Self {
        MetadataCommand { records }
    }

    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.put_u32(self.records.len() as u32);
        let mut record = Vec::new();
        for r in &self.records {
            record.clear();
            r.encode(&mut record);
            buf.put_bytes(&record);
        }
    }

    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        // The smallest record is a type byte plus a length prefix.
        let n = r.count(5)?;
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            records.push(MetadataRecord::decode(r.bytes()?)?);
        }
        Ok(MetadataCommand { records })
    }
}

// Debug is shown in openraft's logs for every entry; keep it one line.
impl fmt::Debug for MetadataCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MetadataCommand({} records)", self.records.len())
    }
}

impl fmt::Display for MetadataCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
