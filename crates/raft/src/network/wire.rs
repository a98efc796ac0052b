//! The binary encoding of Raft requests and responses between voters.
//!
//! Pure, no I/O; framing (a `u32` length prefix) is the TCP transport's.
//! A message is `tag: u8` then its fields in `codec` layouts:
//!
//! | tag | request          | fields                                                       |
//! |-----|------------------|--------------------------------------------------------------|
//! | 1   | AppendEntries    | `Vote, Option<LogId> prev, [Entry], Option<LogId> commit`   |
//! | 2   | Vote             | `Vote, Option<LogId> last`                                   |
//! | 3   | InstallSnapshot  | `Vote, SnapshotMeta, offset: u64, data: bytes, done: u8`     |
//! | 6   | Forward          | `payload: bytes` (opaque, for the active controller)        |
//! | 7   | WhoLeads         | (none)                                                       |
//!
//! | tag | response         | fields                                                       |
//! |-----|------------------|--------------------------------------------------------------|
//! | 1   | AppendEntries    | `kind: u8` (0 success, 1 partial + `Option<LogId>`, 2 conflict, 3 higher vote + `Vote`) |
//! | 2   | Vote             | `Vote, granted: u8, Option<LogId> last`                      |
//! | 3   | InstallSnapshot  | `Vote`                                                       |
//! | 4   | SnapshotMismatch | `expect: (id: str, offset: u64), got: (id: str, offset: u64)`|
//! | 5   | Unavailable      | `reason: str` (Raft stopped; no forward handler; it failed)  |
//! | 6   | Forwarded        | `payload: bytes` (the forward handler's answer)              |
//! | 7   | Leader           | `id: Option<u64>, addr: Option<str>` (answers WhoLeads)      |
//! | 8   | NotLeader        | `leader_id: Option<u64>, leader_addr: Option<str>` (answers a Forward to a non-leader; not handled) |
//!
//! Forward and WhoLeads are not Raft RPCs: they share the controller
//! listener so that brokers need one address per controller.

use openraft::error::SnapshotMismatch;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::SnapshotSegmentId;

use super::{RaftRequest, RaftResponse};
use crate::codec::{self as c, DecodeError, Put, Reader};

const APPEND_ENTRIES: u8 = 1;
const VOTE: u8 = 2;
const INSTALL_SNAPSHOT: u8 = 3;
const SNAPSHOT_MISMATCH: u8 = 4;
const UNAVAILABLE: u8 = 5;
const FORWARD: u8 = 6;
const WHO_LEADS: u8 = 7;
const LEADER: u8 = 7;
const NOT_LEADER: u8 = 8;

fn put_leader(buf: &mut Vec<u8>, id: &Option<u64>, addr: &Option<String>) {
    match id {
        Some(id) => {
            buf.put_u8(1);
            buf.put_u64(*id);
        }
        None => buf.put_u8(0),
    }
    match addr {
        Some(addr) => {
            buf.put_u8(1);
            buf.put_bytes(addr.as_bytes());
        }
        None => buf.put_u8(0),
    }
}

type Leader = (Option<u64>, Option<String>);

fn get_leader(r: &mut Reader) -> Result<Leader, DecodeError> {
    let id = if r.bool()? { Some(r.u64()?) } else { None };
    let addr = if r.bool()? { Some(r.string()?) } else { None };
    Ok((id, addr))
}

pub fn encode_request(buf: &mut Vec<u8>, request: &RaftRequest) {
    match request {
        RaftRequest::AppendEntries(r) => {
            buf.put_u8(APPEND_ENTRIES);
            c::put_vote(buf, &r.vote);
            c::put_opt_log_id(buf, &r.prev_log_id);
            buf.put_u32(r.entries.len() as u32);
            r.entries.iter().for_each(|e| c::put_entry(buf, e));
            c::put_opt_log_id(buf, &r.leader_commit);
        }
        RaftRequest::Vote(r) => {
            buf.put_u8(VOTE);
            c::put_vote(buf, &r.vote);
            c::put_opt_log_id(buf, &r.last_log_id);
        }
        RaftRequest::InstallSnapshot(r) => {
            buf.put_u8(INSTALL_SNAPSHOT);
            c::put_vote(buf, &r.vote);
            c::put_snapshot_meta(buf, &r.meta);
            buf.put_u64(r.offset);
            buf.put_bytes(&r.data);
            buf.put_u8(r.done as u8);
        }
        RaftRequest::Forward(payload) => {
            buf.put_u8(FORWARD);
            buf.put_bytes(payload);
        }
        RaftRequest::WhoLeads => buf.put_u8(WHO_LEADS),
    }
}

pub fn decode_request(bytes: &[u8]) -> Result<RaftRequest, DecodeError> {
    let r = &mut Reader::new(bytes);
    let request = match r.u8()? {
        APPEND_ENTRIES => {
            let vote = c::get_vote(r)?;
            let prev_log_id = c::get_opt_log_id(r)?;
            // An entry is at least a log id and a payload kind.
            let n = r.count(25)?;
            let entries = (0..n).map(|_| c::get_entry(r)).collect::<Result<_, _>>()?;
            RaftRequest::AppendEntries(AppendEntriesRequest {
                vote,
                prev_log_id,
                entries,
                leader_commit: c::get_opt_log_id(r)?,
            })
        }
        VOTE => RaftRequest::Vote(VoteRequest {
            vote: c::get_vote(r)?,
            last_log_id: c::get_opt_log_id(r)?,
        }),
        INSTALL_SNAPSHOT => RaftRequest::InstallSnapshot(InstallSnapshotRequest {
            vote: c::get_vote(r)?,
            meta: c::get_snapshot_meta(r)?,
            offset: r.u64()?,
            data: r.bytes()?.to_vec(),
            done: r.bool()?,
        }),
        FORWARD => RaftRequest::Forward(r.bytes()?.to_vec()),
        WHO_LEADS => RaftRequest::WhoLeads,
        t => return Err(DecodeError::UnknownTag(t)),
    };
    r.finish()?;
    Ok(request)
}

pub fn encode_response(buf: &mut Vec<u8>, response: &RaftResponse) {
    match response {
        RaftResponse::AppendEntries(r) => {
            buf.put_u8(APPEND_ENTRIES);
            match r {
                AppendEntriesResponse::Success => buf.put_u8(0),
                AppendEntriesResponse::PartialSuccess(id) => {
                    buf.put_u8(1);
                    c::put_opt_log_id(buf, id);
                }
                AppendEntriesResponse::Conflict => buf.put_u8(2),
                AppendEntriesResponse::HigherVote(v) => {
                    buf.put_u8(3);
                    c::put_vote(buf, v);
                }
            }
        }
        RaftResponse::Vote(r) => {
            buf.put_u8(VOTE);
            c::put_vote(buf, &r.vote);
            buf.put_u8(r.vote_granted as u8);
            c::put_opt_log_id(buf, &r.last_log_id);
        }
        RaftResponse::InstallSnapshot(r) => {
            buf.put_u8(INSTALL_SNAPSHOT);
            c::put_vote(buf, &r.vote);
        }
        RaftResponse::SnapshotMismatch(m) => {
            buf.put_u8(SNAPSHOT_MISMATCH);
            for seg in [&m.expect, &m.got] {
                buf.put_bytes(seg.id.as_bytes());
                buf.put_u64(seg.offset);
            }
        }
        RaftResponse::Unavailable(why) => {
            buf.put_u8(UNAVAILABLE);
            buf.put_bytes(why.as_bytes());
        }
        RaftResponse::Forwarded(payload) => {
            buf.put_u8(FORWARD);
            buf.put_bytes(payload);
        }
        RaftResponse::Leader { id, addr } => {
            buf.put_u8(LEADER);
            put_leader(buf, id, addr);
        }
        RaftResponse::NotLeader {
            leader_id,
            leader_addr,
        } => {
            buf.put_u8(NOT_LEADER);
            put_leader(buf, leader_id, leader_addr);
        }
    }
}

pub fn decode_response(bytes: &[u8]) -> Result<RaftResponse, DecodeError> {
    let r = &mut Reader::new(bytes);
    let response = match r.u8()? {
        APPEND_ENTRIES => RaftResponse::AppendEntries(match r.u8()? {
            0 => AppendEntriesResponse::Success,
            1 => AppendEntriesResponse::PartialSuccess(c::get_opt_log_id(r)?),
            2 => AppendEntriesResponse::Conflict,
            3 => AppendEntriesResponse::HigherVote(c::get_vote(r)?),
            t => return Err(DecodeError::UnknownTag(t)),
        }),
        VOTE => RaftResponse::Vote(VoteResponse {
            vote: c::get_vote(r)?,
            vote_granted: r.bool()?,
            last_log_id: c::get_opt_log_id(r)?,
        }),
        INSTALL_SNAPSHOT => RaftResponse::InstallSnapshot(InstallSnapshotResponse {
            vote: c::get_vote(r)?,
        }),
        SNAPSHOT_MISMATCH => {
            let mut seg = || -> Result<SnapshotSegmentId, DecodeError> {
                Ok(SnapshotSegmentId {
                    id: r.string()?,
                    offset: r.u64()?,
                })
            };
            let expect = seg()?;
            let got = seg()?;
            RaftResponse::SnapshotMismatch(SnapshotMismatch { expect, got })
        }
        UNAVAILABLE => RaftResponse::Unavailable(r.string()?),
        FORWARD => RaftResponse::Forwarded(r.bytes()?.to_vec()),
        LEADER => {
            let (id, addr) = get_leader(r)?;
            RaftResponse::Leader { id, addr }
        }
        NOT_LEADER => {
            let (leader_id, leader_addr) = get_leader(r)?;
            RaftResponse::NotLeader {
                leader_id,
                leader_addr,
            }
        }
        t => return Err(DecodeError::UnknownTag(t)),
    };
    r.finish()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, LogId, StoredMembership, Vote};

    use super::*;
    use crate::{Entry, MetadataCommand};

    fn log_id(i: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(2, 1), i)
    }

    fn requests() -> Vec<RaftRequest> {
        vec![
            RaftRequest::AppendEntries(AppendEntriesRequest {
                vote: Vote::new_committed(2, 1),
                prev_log_id: Some(log_id(3)),
                entries: vec![
                    Entry {
                        log_id: log_id(4),
                        payload: EntryPayload::Blank,
                    },
                    Entry {
                        log_id: log_id(5),
                        payload: EntryPayload::Normal(MetadataCommand::default()),
                    },
                ],
                leader_commit: None,
            }),
            RaftRequest::Vote(VoteRequest::new(Vote::new(3, 2), None)),
            RaftRequest::InstallSnapshot(InstallSnapshotRequest {
                vote: Vote::new_committed(2, 1),
                meta: openraft::SnapshotMeta {
                    last_log_id: Some(log_id(9)),
                    last_membership: StoredMembership::default(),
                    snapshot_id: "2-1-9".into(),
                },
                offset: 7,
                data: vec![1, 2, 3],
                done: true,
            }),
            RaftRequest::Forward(vec![0, 1, 2]),
            RaftRequest::Forward(Vec::new()),
            RaftRequest::WhoLeads,
        ]
    }

    fn responses() -> Vec<RaftResponse> {
        let seg = |o| SnapshotSegmentId {
            id: "s".into(),
            offset: o,
        };
        vec![
            RaftResponse::AppendEntries(AppendEntriesResponse::Success),
            RaftResponse::AppendEntries(AppendEntriesResponse::PartialSuccess(Some(log_id(1)))),
            RaftResponse::AppendEntries(AppendEntriesResponse::Conflict),
            RaftResponse::AppendEntries(AppendEntriesResponse::HigherVote(Vote::new(9, 3))),
            RaftResponse::Vote(VoteResponse::new(Vote::new(3, 2), Some(log_id(4)), true)),
            RaftResponse::InstallSnapshot(InstallSnapshotResponse {
                vote: Vote::new(1, 1),
            }),
            RaftResponse::SnapshotMismatch(SnapshotMismatch {
                expect: seg(0),
                got: seg(5),
            }),
            RaftResponse::Unavailable("stopped".into()),
            RaftResponse::Forwarded(vec![9, 8]),
            RaftResponse::Forwarded(Vec::new()),
            RaftResponse::Leader {
                id: Some(2),
                addr: Some("127.0.0.1:9093".into()),
            },
            RaftResponse::Leader {
                id: None,
                addr: None,
            },
            RaftResponse::NotLeader {
                leader_id: Some(3),
                leader_addr: None,
            },
            RaftResponse::NotLeader {
                leader_id: None,
                leader_addr: Some("x".into()),
            },
        ]
    }

    #[test]
    fn requests_round_trip_and_truncations_fail() {
        for req in requests() {
            let mut buf = Vec::new();
            encode_request(&mut buf, &req);
            let back = decode_request(&buf).unwrap();
            // The request types do not implement PartialEq; compare encodings.
            let mut again = Vec::new();
            encode_request(&mut again, &back);
            assert_eq!(buf, again);
            for cut in 0..buf.len() {
                assert!(decode_request(&buf[..cut]).is_err(), "{req:?} cut {cut}");
            }
        }
    }

    #[test]
    fn responses_round_trip_and_truncations_fail() {
        for resp in responses() {
            let mut buf = Vec::new();
            encode_response(&mut buf, &resp);
            assert_eq!(decode_response(&buf).unwrap(), resp);
            for cut in 0..buf.len() {
                assert!(decode_response(&buf[..cut]).is_err(), "{resp:?} cut {cut}");
            }
        }
    }
}
