//! SyncGroup for classic groups (Kafka's `classicGroupSyncToClassicGroup`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::state::{ClassicGroup, GroupState};
use crate::error::GroupError;
use crate::output::{ResponseToken, Sink, SyncResponse};

/// A SyncGroup request in domain form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+; `None` skips the check.
    pub protocol_type: Option<String>,
    /// v5+; `None` skips the check.
    pub protocol_name: Option<String>,
    /// The leader's assignment (member id → assignment); empty for followers.
    pub assignments: Vec<(String, Bytes)>,
}

impl ClassicGroup {
    fn validate_sync(&self, req: &SyncRequest) -> Result<(), GroupError> {
        if self.is(GroupState::Dead) {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let inconsistent = |asked: &Option<String>, ours: &Option<String>| matches!((asked, ours), (Some(a), Some(o)) if a != o);
        if inconsistent(&req.protocol_type, &self.protocol_type)
            || inconsistent(&req.protocol_name, &self.protocol_name)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    /// Handles a SyncGroup. The answer is an effect: immediate for errors
    /// and for Stable groups, deferred until the leader's assignment for
    /// CompletingRebalance.
    pub(crate) fn sync(
        &mut self,
        now_ms: i64,
        token: ResponseToken,
        req: SyncRequest,
        out: &mut Sink,
    ) {
        if self.is(GroupState::Empty) {
            return out.sync(token, SyncResponse::error(GroupError::UnknownMemberId));
        }
        if let Err(e) = self.validate_sync(&req) {
            return out.sync(token, SyncResponse::error(e));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                out.sync(token, SyncResponse::error(GroupError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let m = self
                    .members
                    .get_mut(&req.member_id)
                    .expect("validated member");
                if let Some(previous) = m.awaiting_sync.replace(token) {
                    out.sync(
                        previous,
                        SyncResponse::error(GroupError::RebalanceInProgress),
                    );
                }
                self.pending_sync.remove(&req.member_id);
                if self.is_leader(&req.member_id) {
                    self.install_assignment(req.assignments, now_ms, out);
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(&req.member_id);
                let m = &self.members[&req.member_id];
                out.sync(
                    token,
                    SyncResponse {
                        error: None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                );
            }
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => unreachable!("checked above"),
        }
    }

    /// The leader's assignment arrived: members it does not mention get an
    /// empty assignment, the group metadata is persisted, parked SyncGroups
    /// are answered and the group becomes Stable.
    fn install_assignment(
        &mut self,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
        out: &mut Sink,
    ) {
        let mut by_member: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
        }
        if !by_member.is_empty() {
            tracing::warn!(group = %self.id, unknown = ?by_member.keys().collect::<Vec<_>>(), "leader assigned to non-members");
        }
        out.record(self.metadata_record());
        self.propagate_assignment(None, now_ms, out);
        self.transition(GroupState::Stable, now_ms);
    }
}
