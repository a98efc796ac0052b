//! The byte layout of `__cluster_metadata-0/raft.log` and its recovery.
//!
//! Pure functions over bytes; the file handling is in `log_store`.
//!
//! The file is a sequence of frames `length: u32 | crc32c: u32 | body`,
//! the CRC covering the body. A body is `kind: u8` followed by
//! - `1` (entry): a Raft entry in the `codec` layout
//!   (`LogId | payload kind | payload`), or
//! - `2` (purged): the `LogId` of the last purged entry. It may only be
//!   the first frame: a purge rewrites the file as this marker followed by
//!   the entries that remain.
//!
//! What recovery trusts: frames are read until the first one that is
//! incomplete or fails its CRC; that frame and everything after it is a
//! torn tail (an append whose fsync never returned, so never acknowledged)
//! and is cut off. A frame whose CRC is valid but whose content is
//! undecodable, or whose index breaks the consecutive order, is not a torn
//! write: recovery refuses to start rather than guess.

use openraft::LogId;

use crate::codec::{self, DecodeError, Put, Reader};
use crate::{Entry, NodeId};

pub const FRAME_HEADER_LEN: usize = 8;
/// Far above any metadata batch; a larger length is a torn or corrupt header.
pub const MAX_FRAME_LEN: u32 = 64 << 20;

const KIND_ENTRY: u8 = 1;
const KIND_PURGED: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("frame at byte {pos} has a valid CRC but cannot be decoded: {source}")]
    Undecodable { pos: usize, source: DecodeError },
    #[error("frame at byte {pos} holds index {found}, expected {expected}")]
    OutOfOrder {
        pos: usize,
        found: u64,
        expected: u64,
    },
    #[error("purge marker at byte {pos} is not the first frame")]
    MisplacedPurge { pos: usize },
}

/// What a log file holds after recovery.
#[derive(Debug, Default)]
pub struct Recovered {
    pub purged: Option<LogId<NodeId>>,
    /// Each entry with the byte offset of its frame.
    pub entries: Vec<(u64, Entry)>,
    /// Length of the valid prefix; the file is cut here.
    pub valid_len: u64,
}

pub fn encode_entry(buf: &mut Vec<u8>, entry: &Entry) {
    encode_frame(buf, |b| {
        b.put_u8(KIND_ENTRY);
        codec::put_entry(b, entry);
    });
}

pub fn encode_purged(buf: &mut Vec<u8>, purged: &LogId<NodeId>) {
    encode_frame(buf, |b| {
        b.put_u8(KIND_PURGED);
        codec::put_log_id(b, purged);
    });
}

fn encode_frame(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    body(buf);
    let len = (buf.len() - start - FRAME_HEADER_LEN) as u32;
    assert!(len <= MAX_FRAME_LEN, "raft log entry of {len} bytes");
    let crc = crc32c::crc32c(&buf[start + FRAME_HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Parses a whole log file; see the module docs for what is trusted.
pub fn recover(bytes: &[u8]) -> Result<Recovered, RecoveryError> {
    let mut out = Recovered::default();
    let mut pos = 0;
    while let Some(body) = next_frame(bytes, pos) {
        let undecodable = |source| RecoveryError::Undecodable { pos, source };
        let mut r = Reader::new(body);
        match r.u8().map_err(undecodable)? {
            KIND_PURGED if pos == 0 => {
                out.purged = Some(codec::get_log_id(&mut r).map_err(undecodable)?);
            }
            KIND_PURGED => return Err(RecoveryError::MisplacedPurge { pos }),
            KIND_ENTRY => {
                let entry = codec::get_entry(&mut r).map_err(undecodable)?;
                // A log that was never purged may start at any index.
                let expected = match (out.entries.last(), &out.purged) {
                    (Some((_, last)), _) => last.log_id.index + 1,
                    (None, Some(p)) => p.index + 1,
                    (None, None) => entry.log_id.index,
                };
                if entry.log_id.index != expected {
                    return Err(RecoveryError::OutOfOrder {
                        pos,
                        found: entry.log_id.index,
                        expected,
                    });
                }
                out.entries.push((pos as u64, entry));
            }
            t => return Err(undecodable(DecodeError::UnknownTag(t))),
        }
        r.finish().map_err(undecodable)?;
        pos += FRAME_HEADER_LEN + body.len();
    }
    out.valid_len = pos as u64;
    Ok(out)
}

/// The body of the frame at `pos`, or `None` if it is torn or corrupt.
fn next_frame(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    let header = bytes.get(pos..pos + FRAME_HEADER_LEN)?;
    let len = u32::from_be_bytes(header[0..4].try_into().unwrap());
    let crc = u32::from_be_bytes(header[4..8].try_into().unwrap());
    if len == 0 || len > MAX_FRAME_LEN {
        return None;
    }
    let body = bytes.get(pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + len as usize)?;
    (crc32c::crc32c(body) == crc).then_some(body)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[test]
    fn every_cut_keeps_exactly_the_whole_frames() {
        let mut buf = Vec::new();
        let mut ends = vec![0];
        for i in 0..3 {
            encode_entry(&mut buf, &blank(i));
            ends.push(buf.len());
        }
        for cut in 0..=buf.len() {
            let r = recover(&buf[..cut]).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(r.entries.len(), whole, "cut {cut}");
            assert_eq!(r.valid_len as usize, ends[whole]);
        }
    }

    #[test]
    fn purge_marker_sets_the_first_index() {
        let mut buf = Vec::new();
        encode_purged(&mut buf, &blank(4).log_id);
        encode_entry(&mut buf, &blank(5));
        let r = recover(&buf).unwrap();
        assert_eq!(r.purged, Some(blank(4).log_id));
        assert_eq!(r.entries[0].1, blank(5));
    }

    #[test]
    fn a_gap_with_a_valid_crc_is_refused_not_truncated() {
        let mut buf = Vec::new();
        encode_entry(&mut buf, &blank(0));
        encode_entry(&mut buf, &blank(2));
        assert!(matches!(
            recover(&buf),
            Err(RecoveryError::OutOfOrder { expected: 1, .. })
        ));
    }
}
