//! The rebalance protocol shared by all request paths and timers: start a
//! rebalance, complete the join phase, propagate assignments, and expire
//! members (Kafka's `GroupMetadataManager` helpers of the same names).

use bytes::Bytes;

use super::state::{ClassicGroup, GroupState, JoinTimer};
use crate::config::GroupConfig;
use crate::error::GroupError;
use crate::output::{Sink, SyncResponse};

impl ClassicGroup {
    /// Starts a rebalance from Stable, CompletingRebalance or Empty;
    /// otherwise tries to complete the join phase already under way.
    pub(crate) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        cfg: &GroupConfig,
        now_ms: i64,
        out: &mut Sink,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(cfg, now_ms, out);
        } else {
            self.maybe_complete_join_phase(now_ms, out);
        }
    }

    pub(crate) fn prepare_rebalance(&mut self, cfg: &GroupConfig, now_ms: i64, out: &mut Sink) {
        // Members parked in SyncGroup must rejoin.
        if self.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_error(GroupError::RebalanceInProgress, now_ms, out);
        }
        self.pending_sync.clear();
        self.sync_timer = None;

        let is_initial = self.is(GroupState::Empty);
        if is_initial {
            // A new group: give more members the chance to join before the
            // first generation, so a starting fleet does not rebalance once
            // per member.
            let delay = cfg.group_initial_rebalance_delay_ms;
            let remaining = (self.rebalance_timeout_ms() - delay).max(0);
            self.join_timer = Some((
                now_ms + delay,
                JoinTimer::Initial {
                    delay_ms: delay,
                    remaining_ms: remaining,
                },
            ));
        }
        self.transition(GroupState::PreparingRebalance, now_ms);
        tracing::debug!(group = %self.id, generation = self.generation_id, "preparing rebalance");

        if !is_initial {
            if self.has_all_members_joined() {
                self.complete_join(now_ms, out);
            } else {
                self.join_timer = Some((now_ms + self.rebalance_timeout_ms(), JoinTimer::Complete));
            }
        }
    }

    /// Completes the join phase if every member has rejoined, except during
    /// the initial (delayed) rebalance, which only its timer completes.
    pub(crate) fn maybe_complete_join_phase(&mut self, now_ms: i64, out: &mut Sink) {
        if self.is(GroupState::PreparingRebalance)
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now_ms, out);
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin,
    /// starts the next generation and answers every parked JoinGroup.
    pub(crate) fn complete_join(&mut self, now_ms: i64, out: &mut Sink) {
        self.join_timer = None;
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &not_rejoined {
            self.remove_and_notify(id, out);
        }

        if self.is(GroupState::Dead) {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members remain and none rejoined: wait another
            // rebalance timeout for them (or for their sessions to expire).
            self.join_timer = Some((now_ms + self.rebalance_timeout_ms(), JoinTimer::Complete));
            return;
        }

        self.init_next_generation(now_ms);
        if self.is(GroupState::Empty) {
            out.record(self.metadata_record());
            return;
        }
        tracing::info!(group = %self.id, generation = self.generation_id, members = self.members.len(), "group stabilizing");
        let leader_members = self.members_for_leader();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let members = if self.is_leader(&id) {
                leader_members.clone()
            } else {
                vec![]
            };
            let response = self.join_response(&id, members);
            let m = self.members.get_mut(&id).expect("member listed above");
            if let Some(token) = m.awaiting_join.take() {
                out.join(token, response);
            }
            m.is_new = false;
            self.reschedule_heartbeat(&id, now_ms, None);
            self.pending_sync.insert(id);
        }
        self.sync_timer = Some((now_ms + self.rebalance_timeout_ms(), self.generation_id));
    }

    /// Clears every assignment and answers parked SyncGroups with `error`.
    pub(crate) fn reset_and_propagate_assignment_error(
        &mut self,
        error: GroupError,
        now_ms: i64,
        out: &mut Sink,
    ) {
        debug_assert!(self.is(GroupState::CompletingRebalance));
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), now_ms, out);
    }

    /// Answers every parked SyncGroup with the member's assignment (or the
    /// error), and restarts the session of each member answered.
    pub(crate) fn propagate_assignment(
        &mut self,
        error: Option<GroupError>,
        now_ms: i64,
        out: &mut Sink,
    ) {
        let (protocol_type, protocol_name) = match error {
            None => (self.protocol_type.clone(), self.protocol_name.clone()),
            Some(_) => (None, None),
        };
        let mut answered = vec![];
        for m in self.members.values_mut() {
            if let Some(token) = m.awaiting_sync.take() {
                out.sync(
                    token,
                    SyncResponse {
                        error,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                );
                answered.push(m.id.clone());
            }
        }
        for id in answered {
            self.reschedule_heartbeat(&id, now_ms, None);
        }
    }

    /// Removes a failed or departed member, then rebalances or completes
    /// the join phase (Kafka's `removeMemberAndUpdateClassicGroup`).
    pub(crate) fn remove_member_and_update(
        &mut self,
        cfg: &GroupConfig,
        member_id: &str,
        now_ms: i64,
        out: &mut Sink,
    ) {
        self.remove_and_notify(member_id, out);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(cfg, now_ms, out)
            }
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now_ms, out)
            }
            _ => {}
        }
    }

    /// The session timer of `member_id` fired at `now_ms`.
    pub(crate) fn expire_heartbeat(
        &mut self,
        cfg: &GroupConfig,
        member_id: &str,
        now_ms: i64,
        out: &mut Sink,
    ) {
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        m.heartbeat_deadline_ms = None;
        let satisfied = m.has_satisfied_heartbeat();
        if self.is(GroupState::Dead) || satisfied {
            return;
        }
        tracing::info!(group = %self.id, member = member_id, "member session expired");
        self.remove_member_and_update(cfg, member_id, now_ms, out);
    }

    /// A KIP-394 pending member never came back with its member id.
    pub(crate) fn expire_pending_member(&mut self, member_id: &str, now_ms: i64, out: &mut Sink) {
        self.pending_join.remove(member_id);
        if self.is(GroupState::PreparingRebalance) && self.has_all_members_joined() {
            self.complete_join(now_ms, out);
        }
    }

    /// The join timer fired.
    pub(crate) fn fire_join_timer(&mut self, cfg: &GroupConfig, now_ms: i64, out: &mut Sink) {
        let Some((_, kind)) = self.join_timer.take() else {
            return;
        };
        match kind {
            JoinTimer::Initial {
                delay_ms,
                remaining_ms,
            } if self.new_member_added && remaining_ms != 0 => {
                // Someone joined during the delay: wait once more, within
                // the rebalance timeout.
                self.new_member_added = false;
                let new_delay = cfg.group_initial_rebalance_delay_ms.min(remaining_ms);
                let new_remaining = (remaining_ms - delay_ms).max(0);
                self.join_timer = Some((
                    now_ms + new_delay,
                    JoinTimer::Initial {
                        delay_ms: new_delay,
                        remaining_ms: new_remaining,
                    },
                ));
            }
            _ => self.complete_join(now_ms, out),
        }
    }

    /// The sync timer fired: members that never sent SyncGroup are removed
    /// and the group rebalances.
    pub(crate) fn fire_sync_timer(&mut self, cfg: &GroupConfig, now_ms: i64, out: &mut Sink) {
        let Some((_, generation)) = self.sync_timer.take() else {
            return;
        };
        if generation != self.generation_id
            || !matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
            || self.pending_sync.is_empty()
        {
            return;
        }
        let missing: Vec<String> = self.pending_sync.iter().cloned().collect();
        tracing::info!(group = %self.id, ?missing, "members did not sync in time");
        for id in &missing {
            self.remove_and_notify(id, out);
        }
        self.prepare_rebalance(cfg, now_ms, out);
    }
}
