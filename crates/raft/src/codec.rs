//! A small binary codec for the openraft types we store and send.
//!
//! Pure functions over bytes, no I/O. All integers are big endian and
//! fixed width (`u8`, `u32`, `u64`); strings and byte strings are
//! `len: u32` + bytes; `Option<T>` is `present: u8` (0 or 1) + `T`; lists
//! are `count: u32` + items. Layouts of the composite types:
//!
//! - `LogId`: `term: u64 | leader_node: u64 | index: u64`
//! - `Vote`: `term: u64 | node: u64 | committed: u8`
//! - `Membership`: `configs: [ [u64] ] | nodes: [ id: u64 | addr: str ]`
//! - `StoredMembership`: `Option<LogId> | Membership`
//! - `SnapshotMeta`: `Option<LogId> | StoredMembership | snapshot_id: str`
//! - `Entry`: `LogId | kind: u8 (0 blank, 1 normal, 2 membership) | payload`
//!
//! Decoding never panics and never allocates more than the input could
//! hold: every count is checked against the bytes that remain.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership,
    Vote,
};

use crate::command::MetadataCommand;
use crate::{Entry, NodeId, TypeConfig};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated input")]
    Truncated,
    #[error("unknown tag {0}")]
    UnknownTag(u8),
    #[error("string is not UTF-8")]
    BadUtf8,
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("metadata record: {0}")]
    Record(#[from] odradek_metadata::RecordError),
}

/// Appends encodings to a byte vector.
pub trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_bytes(&mut self, v: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_bytes(&mut self, v: &[u8]) {
        let len = u32::try_from(v.len()).expect("encoded value over 4 GiB");
        self.put_u32(len);
        self.extend_from_slice(v);
    }
}

/// A cursor over input bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails unless every byte was consumed: a frame with extra bytes was
    /// written by something we do not understand.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(DecodeError::UnknownTag(t)),
        }
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadUtf8)
    }

    /// Reads a count of items that take at least `min_item_len` bytes each,
    /// refusing counts the remaining input cannot hold.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_len) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
}

pub fn put_log_id(buf: &mut Vec<u8>, id: &LogId<NodeId>) {
    buf.put_u64(id.leader_id.term);
    buf.put_u64(id.leader_id.node_id);
    buf.put_u64(id.index);
}

pub fn get_log_id(r: &mut Reader) -> Result<LogId<NodeId>, DecodeError> {
    let term = r.u64()?;
    let node = r.u64()?;
    let index = r.u64()?;
    Ok(LogId::new(CommittedLeaderId::new(term, node), index))
}

pub fn put_opt_log_id(buf: &mut Vec<u8>, id: &Option<LogId<NodeId>>) {
    match id {
        None => buf.put_u8(0),
        Some(id) => {
            buf.put_u8(1);
            put_log_id(buf, id);
        }
    }
}

pub fn get_opt_log_id(r: &mut Reader) -> Result<Option<LogId<NodeId>>, DecodeError> {
    Ok(match r.bool()? {
        false => None,
        true => Some(get_log_id(r)?),
    })
}

pub fn put_vote(buf: &mut Vec<u8>, vote: &Vote<NodeId>) {
    buf.put_u64(vote.leader_id.term);
    buf.put_u64(vote.leader_id.node_id);
    buf.put_u8(vote.committed as u8);
}

pub fn get_vote(r: &mut Reader) -> Result<Vote<NodeId>, DecodeError> {
    let term = r.u64()?;
    let node = r.u64()?;
    let committed = r.bool()?;
    Ok(match committed {
        true => Vote::new_committed(term, node),
        false => Vote::new(term, node),
    })
}

pub fn put_membership(buf: &mut Vec<u8>, m: &Membership<NodeId, BasicNode>) {
    let configs = m.get_joint_config();
    buf.put_u32(configs.len() as u32);
    for config in configs {
        buf.put_u32(config.len() as u32);
        for id in config {
            buf.put_u64(*id);
        }
    }
    let nodes: Vec<_> = m.nodes().collect();
    buf.put_u32(nodes.len() as u32);
    for (id, node) in nodes {
        buf.put_u64(*id);
        buf.put_bytes(node.addr.as_bytes());
    }
}

pub fn get_membership(r: &mut Reader) -> Result<Membership<NodeId, BasicNode>, DecodeError> {
    let n = r.count(4)?;
    let mut configs = Vec::with_capacity(n);
    for _ in 0..n {
        let m = r.count(8)?;
        let mut set = BTreeSet::new();
        for _ in 0..m {
            set.insert(r.u64()?);
        }
        configs.push(set);
    }
    let n = r.count(12)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..n {
        let id = r.u64()?;
        nodes.insert(id, BasicNode::new(r.string()?));
    }
    Ok(Membership::new(configs, nodes))
}

pub fn put_stored_membership(buf: &mut Vec<u8>, m: &StoredMembership<NodeId, BasicNode>) {
    put_opt_log_id(buf, m.log_id());
    put_membership(buf, m.membership());
}

pub fn get_stored_membership(
    r: &mut Reader,
) -> Result<StoredMembership<NodeId, BasicNode>, DecodeError> {
    let log_id = get_opt_log_id(r)?;
    Ok(StoredMembership::new(log_id, get_membership(r)?))
}

pub fn put_snapshot_meta(buf: &mut Vec<u8>, meta: &SnapshotMeta<NodeId, BasicNode>) {
    put_opt_log_id(buf, &meta.last_log_id);
    put_stored_membership(buf, &meta.last_membership);
    buf.put_bytes(meta.snapshot_id.as_bytes());
}

pub fn get_snapshot_meta(r: &mut Reader) -> Result<SnapshotMeta<NodeId, BasicNode>, DecodeError> {
    Ok(SnapshotMeta {
        last_log_id: get_opt_log_id(r)?,
        last_membership: get_stored_membership(r)?,
        snapshot_id: r.string()?,
    })
}

const BLANK: u8 = 0;
const NORMAL: u8 = 1;
const MEMBERSHIP: u8 = 2;

pub fn put_entry(buf: &mut Vec<u8>, entry: &Entry) {
    put_log_id(buf, &entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => buf.put_u8(BLANK),
        EntryPayload::Normal(cmd) => {
            buf.put_u8(NORMAL);
            cmd.encode(buf);
        }
        EntryPayload::Membership(m) => {
            buf.put_u8(MEMBERSHIP);
            put_membership(buf, m);
        }
    }
}

pub fn get_entry(r: &mut Reader) -> Result<Entry, DecodeError> {
    let log_id = get_log_id(r)?;
    let payload = match r.u8()? {
        BLANK => EntryPayload::<TypeConfig>::Blank,
        NORMAL => EntryPayload::Normal(MetadataCommand::decode(r)?),
        MEMBERSHIP => EntryPayload::Membership(get_membership(r)?),
        t => return Err(DecodeError::UnknownTag(t)),
    };
    Ok(Entry { log_id, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership() -> Membership<NodeId, BasicNode> {
        let nodes: BTreeMap<_, _> = [(1, "a:1"), (2, "b:2"), (3, "c:3")]
            .into_iter()
            .map(|(id, a)| (id, BasicNode::new(a)))
            .collect();
        Membership::new(vec![BTreeSet::from([1, 2]), BTreeSet::from([2, 3])], nodes)
    }

    #[test]
    fn entries_round_trip_and_every_truncation_fails() {
        let id = LogId::new(CommittedLeaderId::new(7, 2), 41);
        let entries = [
            Entry {
                log_id: id,
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: id,
                payload: EntryPayload::Membership(membership()),
            },
            Entry {
                log_id: id,
                payload: EntryPayload::Normal(MetadataCommand::new(vec![
                    odradek_metadata::MetadataRecord::ProducerIds {
                        next_producer_id: 9,
                    },
                ])),
            },
        ];
        for e in entries {
            let mut buf = Vec::new();
            put_entry(&mut buf, &e);
            let mut r = Reader::new(&buf);
            assert_eq!(get_entry(&mut r).unwrap(), e);
            r.finish().unwrap();
            for cut in 0..buf.len() {
                assert!(
                    get_entry(&mut Reader::new(&buf[..cut])).is_err(),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn votes_and_meta_round_trip() {
        for vote in [Vote::new(3, 1), Vote::new_committed(4, 2)] {
            let mut buf = Vec::new();
            put_vote(&mut buf, &vote);
            assert_eq!(get_vote(&mut Reader::new(&buf)).unwrap(), vote);
        }
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 5)),
            last_membership: StoredMembership::new(None, membership()),
            snapshot_id: "1-1-5".into(),
        };
        let mut buf = Vec::new();
        put_snapshot_meta(&mut buf, &meta);
        assert_eq!(get_snapshot_meta(&mut Reader::new(&buf)).unwrap(), meta);
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut buf = Vec::new();
        buf.put_u32(u32::MAX);
        assert_eq!(
            get_membership(&mut Reader::new(&buf)).unwrap_err(),
            DecodeError::Truncated
        );
    }
}
