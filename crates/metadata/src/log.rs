//! The metadata log on disk: `<dir>/__cluster_metadata-0/metadata.log`.
//!
//! Each entry is framed as
//! `offset: i64 | epoch: i32 | length: u32 | crc32c: u32 | record[length]`,
//! the CRC covering offset, epoch, length and record. Offsets are dense from
//! 0; the epoch is the controller epoch that wrote the entry (always 1 for a
//! quorum of one; Raft terms later).
//!
//! Every append is fsynced before it returns: metadata changes are rare and
//! a created topic must not vanish on power loss. On open, entries are read
//! until the first torn or corrupt one; the file is truncated there, which
//! only ever drops an append that never returned.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::record::{MetadataRecord, RecordError};

const ENTRY_HEADER_LEN: usize = 20;
/// No metadata record is anywhere near this; a larger length is corruption.
const MAX_RECORD_LEN: u32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error("metadata log I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata log entry {offset} has a valid CRC but cannot be decoded: {source}; the log was written by a newer or broken version")]
    Undecodable { offset: i64, source: RecordError },
}

pub struct MetadataLog {
    path: PathBuf,
    file: File,
    next_offset: i64,
    epoch: i32,
}

impl MetadataLog {
    /// Opens (creating if needed) the log under `dir` and returns it with
    /// every durable record in order.
    pub fn open(dir: &Path) -> Result<(MetadataLog, Vec<MetadataRecord>), MetadataLogError> {
        let log_dir = dir.join("__cluster_metadata-0");
        let path = log_dir.join("metadata.log");
        let io = |source| MetadataLogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&log_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, valid_len) = parse_entries(&bytes)?;
        if valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = valid_len,
                dropped_bytes = bytes.len() - valid_len,
                "truncating torn tail of the metadata log"
            );
            file.set_len(valid_len as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let log = MetadataLog {
            path,
            file,
            next_offset: records.len() as i64,
            epoch: 1,
        };
        Ok((log, records))
    }

    /// Appends records atomically with respect to recovery (all entries are
    /// written in one write and one fsync; a crash can tear only the tail,
    /// which recovery drops entry by entry).
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataLogError> {
        let mut buf = Vec::new();
        let mut payload = Vec::new();
        for (i, record) in records.iter().enumerate() {
            payload.clear();
            record.encode(&mut payload);
            encode_entry(&mut buf, self.next_offset + i as i64, self.epoch, &payload);
        }
        let io = |source| MetadataLogError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.next_offset += records.len() as i64;
        Ok(self.next_offset)
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
}

fn encode_entry(buf: &mut Vec<u8>, offset: i64, epoch: i32, payload: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(&offset.to_be_bytes());
    buf.extend_from_slice(&epoch.to_be_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(payload);
    let crc = entry_crc(&buf[start..]);
    buf[start + 16..start + 20].copy_from_slice(&crc.to_be_bytes());
}

fn entry_crc(entry: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&entry[..16]);
    crc32c::crc32c_append(crc, &entry[ENTRY_HEADER_LEN..])
}

/// Parses entries until the first torn or corrupt one; returns the records
/// and the length of the valid prefix.
fn parse_entries(bytes: &[u8]) -> Result<(Vec<MetadataRecord>, usize), MetadataLogError> {
    let mut records = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= ENTRY_HEADER_LEN {
        let header = &bytes[pos..pos + ENTRY_HEADER_LEN];
        let offset = i64::from_be_bytes(header[0..8].try_into().unwrap());
        let len = u32::from_be_bytes(header[12..16].try_into().unwrap());
        let crc = u32::from_be_bytes(header[16..20].try_into().unwrap());
        if offset != records.len() as i64 || len > MAX_RECORD_LEN {
            break;
        }
        let end = pos + ENTRY_HEADER_LEN + len as usize;
        if end > bytes.len() || entry_crc(&bytes[pos..end]) != crc {
            break;
        }
        let record = MetadataRecord::decode(&bytes[pos + ENTRY_HEADER_LEN..end])
            .map_err(|source| MetadataLogError::Undecodable { offset, source })?;
        records.push(record);
        pos = end;
    }
    Ok((records, pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            topic_id: Uuid::new_v4(),
        }
    }

    #[test]
    fn replays_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let written = vec![topic("a"), topic("b"), topic("c")];
        {
            let (mut log, replayed) = MetadataLog::open(dir.path()).unwrap();
            assert!(replayed.is_empty());
            log.append(&written[..2]).unwrap();
            log.append(&written[2..]).unwrap();
        }
        let (log, replayed) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(replayed, written);
        assert_eq!(log.next_offset(), 3);
    }

    #[test]
    fn torn_tail_at_every_byte_keeps_earlier_entries() {
        let dir = tempfile::tempdir().unwrap();
        let written = vec![topic("a"), topic("b")];
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&written).unwrap();
        }
        let path = dir.path().join("__cluster_metadata-0/metadata.log");
        let full = std::fs::read(&path).unwrap();
        let first_len = ENTRY_HEADER_LEN + {
            let mut p = Vec::new();
            written[0].encode(&mut p);
            p.len()
        };
        for cut in first_len..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (mut log, replayed) = MetadataLog::open(dir.path()).unwrap();
            assert_eq!(replayed, written[..1], "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, first_len);
            // Appends continue at the next offset after recovery.
            log.append(&written[1..]).unwrap();
            let (_, replayed) = MetadataLog::open(dir.path()).unwrap();
            assert_eq!(replayed, written);
        }
    }

    #[test]
    fn flipped_byte_stops_replay_there() {
        let dir = tempfile::tempdir().unwrap();
        let written = vec![topic("a"), topic("b")];
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&written).unwrap();
        }
        let path = dir.path().join("__cluster_metadata-0/metadata.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replayed) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(replayed, written[..1]);
    }
}
