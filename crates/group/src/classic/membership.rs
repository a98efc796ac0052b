//! Heartbeat and LeaveGroup for classic groups.

use super::state::{ClassicGroup, GroupState};
use crate::config::GroupConfig;
use crate::error::GroupError;
use crate::output::{JoinResponse, Sink};

/// A Heartbeat request in domain form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member leaving (LeaveGroup v3+ batches them; v0–v2 send one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// Empty when an admin removes a static member by instance id.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// A LeaveGroup request in domain form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveRequest {
    pub group_id: String,
    pub members: Vec<LeavingMember>,
}

/// The LeaveGroup answer: a group-level error, or one result per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResponse {
    pub error: Option<GroupError>,
    pub members: Vec<(LeavingMember, Option<GroupError>)>,
}

impl ClassicGroup {
    /// Handles a Heartbeat: it keeps the session alive, and tells members
    /// to rejoin while a rebalance is under way.
    pub(crate) fn heartbeat(
        &mut self,
        now_ms: i64,
        req: &HeartbeatRequest,
    ) -> Result<(), GroupError> {
        if self.is(GroupState::Dead) {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(&req.member_id, now_ms, None);
                Err(GroupError::RebalanceInProgress)
            }
            // Clients may heartbeat between their JoinGroup and SyncGroup
            // responses; those count as ordinary heartbeats.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_heartbeat(&req.member_id, now_ms, None);
                Ok(())
            }
        }
    }

    /// Handles a LeaveGroup for the listed members, then rebalances or
    /// completes the join phase if anyone left.
    pub(crate) fn leave(
        &mut self,
        cfg: &GroupConfig,
        now_ms: i64,
        req: LeaveRequest,
        out: &mut Sink,
    ) -> LeaveResponse {
        if self.is(GroupState::Dead) {
            return LeaveResponse {
                error: Some(GroupError::CoordinatorNotAvailable),
                members: vec![],
            };
        }
        let mut results = Vec::with_capacity(req.members.len());
        let mut anyone_left = false;
        for leaving in req.members {
            let result = self.leave_one(&leaving, out);
            anyone_left |= result.is_ok();
            results.push((leaving, result.err()));
        }
        if anyone_left {
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(cfg, now_ms, out)
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, out),
                GroupState::Empty
                | GroupState::Dead
                | GroupState::Assigning
                | GroupState::Reconciling => {}
            }
        }
        LeaveResponse {
            error: None,
            members: results,
        }
    }

    fn leave_one(&mut self, leaving: &LeavingMember, out: &mut Sink) -> Result<(), GroupError> {
        let member_id = if leaving.member_id.is_empty() {
            // Admin removal of a static member by instance id (KIP-345).
            let instance = leaving
                .group_instance_id
                .as_ref()
                .ok_or(GroupError::UnknownMemberId)?;
            self.static_members
                .get(instance)
                .cloned()
                .ok_or(GroupError::UnknownMemberId)?
        } else if self.pending_join.remove(&leaving.member_id).is_some() {
            return Ok(());
        } else {
            self.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref())?;
            leaving.member_id.clone()
        };
        tracing::info!(group = %self.id, member = %member_id, "member left");
        // A member parked in JoinGroup (e.g. a new one that gave up) is told
        // to rejoin if it is still around.
        if let Some(m) = self.members.get_mut(&member_id) {
            if let Some(token) = m.awaiting_join.take() {
                out.join(
                    token,
                    JoinResponse::error(String::new(), GroupError::UnknownMemberId),
                );
            }
        }
        self.remove_and_notify(&member_id, out);
        Ok(())
    }
}
