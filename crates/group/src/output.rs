//! What the core hands back to the shell: records to persist, and answers
//! to parked requests.

use bytes::Bytes;

use crate::error::GroupError;
use crate::records::Record;

/// An opaque handle the shell gives with each JoinGroup or SyncGroup so it
/// can match the eventual [`Effect`] to the request it parked. The core
/// never interprets it; uniqueness among parked requests is the shell's job.
pub type ResponseToken = u64;

/// A member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup, in domain form (see `wire` for the mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// KIP-814: the static leader rejoined without a rebalance and must not
    /// compute a new assignment.
    pub skip_assignment: bool,
    pub member_id: String,
    /// Non-empty only for the leader.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(member_id: String, error: GroupError) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id,
            members: vec![],
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: GroupError) -> Self {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A decision the shell must carry out after persisting the records of the
/// same [`Output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer the JoinGroup parked under `token`.
    CompleteJoin {
        token: ResponseToken,
        response: JoinResponse,
    },
    /// Answer the SyncGroup parked under `token`.
    CompleteSync {
        token: ResponseToken,
        response: SyncResponse,
    },
}

/// The result of one call into the core.
///
/// Contract: the shell appends `records` (in order, as one batch) to this
/// coordinator's `__consumer_offsets` partition and waits until they are
/// committed (replicated per the topic's acks) before it sends `response`
/// or carries out any of `effects`. If the append fails, the shell answers
/// with NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE, drops this coordinator
/// and rebuilds it by [`replay`](crate::GroupCoordinator::replay)ing the
/// partition, because the core has already applied the change in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "records must be persisted and effects delivered"]
pub struct Output<T = ()> {
    pub response: T,
    pub records: Vec<Record>,
    pub effects: Vec<Effect>,
}

impl<T> Output<T> {
    pub(crate) fn new(response: T, sink: Sink) -> Self {
        Output {
            response,
            records: sink.records,
            effects: sink.effects,
        }
    }

    /// True when there is nothing to persist and nothing to answer.
    pub fn is_noop(&self) -> bool {
        self.records.is_empty() && self.effects.is_empty()
    }
}

/// Accumulates records and effects while a call runs.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub records: Vec<Record>,
    pub effects: Vec<Effect>,
}

impl Sink {
    pub fn join(&mut self, token: ResponseToken, response: JoinResponse) {
        self.effects.push(Effect::CompleteJoin { token, response });
    }

    pub fn sync(&mut self, token: ResponseToken, response: SyncResponse) {
        self.effects.push(Effect::CompleteSync { token, response });
    }

    pub fn record(&mut self, record: Record) {
        self.records.push(record);
    }
}
