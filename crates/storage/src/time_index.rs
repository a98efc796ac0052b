//! `.timeindex`: 12-byte entries `timestamp: i64, relative_offset: u32`.
//!
//! An entry `(t, o)` says: every record up to and including the batch whose
//! last offset is `base + o` has a timestamp `<= t`, and `t` was first
//! reached in that batch. Entries are appended only when the segment's
//! maximum timestamp grows, so both fields increase strictly. A final entry
//! for the segment's maximum is written when the segment is rolled, so the
//! last entry of an inactive segment is its largest timestamp.

use std::io;

use crate::index::{Entry, IndexFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const LEN: usize = 12;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

pub(crate) type TimeIndex = IndexFile<TimeEntry>;

impl TimeIndex {
    /// The relative offset from which to search for the first record with
    /// timestamp `>= ts`: the offset of the last entry with timestamp
    /// `<= ts`, or 0. Every batch before the one holding that offset has
    /// only older records (the entry's timestamp was first reached in its
    /// batch), so scanning from that batch is correct and short.
    pub(crate) fn lookup(&self, ts: i64) -> io::Result<u32> {
        let entry = self.floor(|e| e.timestamp <= ts)?;
        Ok(entry.map_or(0, |e| e.relative_offset))
    }

    /// Whether an entry for `(ts, relative_offset)` would extend the index.
    pub(crate) fn accepts(last: Option<TimeEntry>, ts: i64, relative_offset: u32) -> bool {
        last.is_none_or(|l| ts > l.timestamp && relative_offset > l.relative_offset)
    }

    /// See `OffsetIndex::is_sane`.
    pub(crate) fn is_sane(&self, max_relative_offset: u32) -> io::Result<bool> {
        let (Some(first), Some(last)) = (self.first()?, self.last()?) else {
            return Ok(true);
        };
        if last.relative_offset > max_relative_offset
            || first.timestamp > last.timestamp
            || first.relative_offset > last.relative_offset
        {
            return Ok(false);
        }
        if self.len() > 1024 {
            return Ok(true);
        }
        let all = self.all()?;
        Ok(all.windows(2).all(|w| {
            w[0].timestamp < w[1].timestamp && w[0].relative_offset < w[1].relative_offset
        }))
    }

    fn first(&self) -> io::Result<Option<TimeEntry>> {
        match self.len() {
            0 => Ok(None),
            _ => self.entry(0).map(Some),
        }
    }
}
