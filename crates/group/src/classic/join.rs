//! JoinGroup for classic groups (Kafka's `classicGroupJoinToClassicGroup`
//! and the paths it dispatches to).

use super::state::{ClassicGroup, GroupState, Member, Protocol};
use crate::config::GroupConfig;
use crate::error::GroupError;
use crate::output::{JoinResponse, ResponseToken, Sink};

/// A JoinGroup request in domain form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member that has no id yet.
    pub member_id: String,
    /// KIP-345 static membership.
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none; the mapping uses the session timeout, as Kafka does.
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// The request's API version: v4+ gets MEMBER_ID_REQUIRED (KIP-394),
    /// v9+ understands `skip_assignment` (KIP-814).
    pub api_version: i16,
}

/// JoinGroup v4 introduced MEMBER_ID_REQUIRED (KIP-394).
const MIN_VERSION_REQUIRING_MEMBER_ID: i16 = 4;
/// JoinGroup v9 introduced `skip_assignment` (KIP-814).
const MIN_VERSION_SKIP_ASSIGNMENT: i16 = 9;

/// Context for one join: the request and where its answer goes.
pub(crate) struct Join<'a> {
    pub cfg: &'a GroupConfig,
    pub now_ms: i64,
    pub token: ResponseToken,
    pub req: JoinRequest,
}

impl Join<'_> {
    fn reply_error(&self, out: &mut Sink, member_id: &str, error: GroupError) {
        out.join(self.token, JoinResponse::error(member_id.to_owned(), error));
    }
}

impl ClassicGroup {
    /// Handles a JoinGroup for this (existing or just created) group.
    /// `new_uuid` supplies the random part of generated member ids.
    pub(crate) fn join(
        &mut self,
        j: Join<'_>,
        new_uuid: &mut dyn FnMut() -> String,
        out: &mut Sink,
    ) {
        let member_id = j.req.member_id.clone();
        if !self.accept_joining_member(&member_id, j.cfg.group_max_size) {
            // Kafka drops the member: a group over capacity (e.g. after
            // group.max.size was lowered) sheds the late rejoiners.
            self.remove_and_notify(&member_id, out);
            j.reply_error(out, "", GroupError::GroupMaxSizeReached);
        } else if member_id.is_empty() {
            self.join_new_member(j, new_uuid, out);
        } else {
            self.join_existing_member(j, out);
        }
    }

    fn accept_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => true,
            // Counting members awaiting join (not the group size) lets a
            // shrunk max size kick out the last rejoiners.
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    fn join_new_member(
        &mut self,
        j: Join<'_>,
        new_uuid: &mut dyn FnMut() -> String,
        out: &mut Sink,
    ) {
        if self.is(GroupState::Dead) {
            return j.reply_error(out, "", GroupError::CoordinatorNotAvailable);
        }
        if !self.supports_protocols(&j.req.protocol_type, &j.req.protocols) {
            return j.reply_error(out, "", GroupError::InconsistentGroupProtocol);
        }
        // Kafka's member ids: "<group.instance.id or client.id>-<uuid>".
        let prefix = j
            .req
            .group_instance_id
            .as_deref()
            .unwrap_or(&j.req.client_id);
        let new_member_id = format!("{prefix}-{}", new_uuid());
        match j.req.group_instance_id.clone() {
            Some(instance) => match self.static_members.get(&instance).cloned() {
                Some(old_member_id) => self.replace_static_member_then_rebalance_or_complete_join(
                    j,
                    &old_member_id,
                    new_member_id,
                    out,
                ),
                None => self.add_member_then_rebalance_or_complete_join(j, new_member_id, out),
            },
            None if j.req.api_version >= MIN_VERSION_REQUIRING_MEMBER_ID => {
                // KIP-394: hand out an id and have the client come back with
                // it, so a client that times out and retries does not leave
                // a defunct member behind each time.
                let deadline = j.now_ms + i64::from(j.req.session_timeout_ms);
                self.pending_join.insert(new_member_id.clone(), deadline);
                j.reply_error(out, &new_member_id, GroupError::MemberIdRequired);
            }
            None => self.add_member_then_rebalance_or_complete_join(j, new_member_id, out),
        }
    }

    fn join_existing_member(&mut self, j: Join<'_>, out: &mut Sink) {
        let member_id = j.req.member_id.clone();
        if self.is(GroupState::Dead) {
            return j.reply_error(out, &member_id, GroupError::CoordinatorNotAvailable);
        }
        if !self.supports_protocols(&j.req.protocol_type, &j.req.protocols) {
            return j.reply_error(out, &member_id, GroupError::InconsistentGroupProtocol);
        }
        if self.pending_join.contains_key(&member_id) {
            if j.req.group_instance_id.is_some() {
                // Static members never get a pending id; a request claiming
                // one is not from a member we know.
                return j.reply_error(out, &member_id, GroupError::UnknownMemberId);
            }
            return self.add_member_then_rebalance_or_complete_join(j, member_id, out);
        }
        if let Err(e) = self.validate_member(&member_id, j.req.group_instance_id.as_deref()) {
            return j.reply_error(out, &member_id, e);
        }
        let member = &self.members[&member_id];
        let unchanged = member.matches(&j.req.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_then_rebalance_or_complete_join(j, out)
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retry of a JoinGroup whose response was lost: answer with
                // the current generation.
                let members = if self.is_leader(&member_id) {
                    self.members_for_leader()
                } else {
                    vec![]
                };
                out.join(j.token, self.join_response(&member_id, members));
            }
            GroupState::Stable if unchanged && !self.is_leader(&member_id) => {
                out.join(j.token, self.join_response(&member_id, vec![]));
            }
            // The leader rejoining forces a rebalance: that is how it reacts
            // to changes the member metadata does not show (new partitions).
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_then_rebalance_or_complete_join(j, out)
            }
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => {
                j.reply_error(out, &member_id, GroupError::UnknownMemberId)
            }
        }
    }

    fn add_member_then_rebalance_or_complete_join(
        &mut self,
        j: Join<'_>,
        member_id: String,
        out: &mut Sink,
    ) {
        let req = j.req;
        let member = Member {
            id: member_id.clone(),
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Default::default(),
            awaiting_join: Some(j.token),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline_ms: None,
        };
        if self.is(GroupState::PreparingRebalance) && self.previous_state == GroupState::Empty {
            self.new_member_added = true;
        }
        self.add(member);
        // A new member cannot heartbeat while its JoinGroup is parked, so
        // its session is the (long) new-member join timeout instead.
        self.reschedule_heartbeat(
            &member_id,
            j.now_ms,
            Some(j.cfg.group_new_member_join_timeout_ms),
        );
        self.maybe_prepare_rebalance_or_complete_join(j.cfg, j.now_ms, out);
    }

    /// Updates a member's protocols and timeouts and parks its JoinGroup.
    fn update_member(
        &mut self,
        member_id: &str,
        req: JoinRequest,
        token: ResponseToken,
        out: &mut Sink,
    ) {
        let m = self.members.get_mut(member_id).expect("validated member");
        m.protocols = req.protocols;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        if let Some(previous) = m.awaiting_join.replace(token) {
            // Kafka silently replaces the parked request; we answer it so
            // the shell never holds a request that no effect will complete.
            out.join(
                previous,
                JoinResponse::error(member_id.to_owned(), GroupError::RebalanceInProgress),
            );
        }
    }

    fn update_member_then_rebalance_or_complete_join(&mut self, j: Join<'_>, out: &mut Sink) {
        let member_id = j.req.member_id.clone();
        self.update_member(&member_id, j.req, j.token, out);
        self.maybe_prepare_rebalance_or_complete_join(j.cfg, j.now_ms, out);
    }

    /// KIP-345: a known `group.instance.id` joins with no member id (e.g. a
    /// restarted static consumer). The new member id takes over the old
    /// member's place; the old id is fenced. In a Stable group whose
    /// protocol does not change this happens without a rebalance.
    fn replace_static_member_then_rebalance_or_complete_join(
        &mut self,
        j: Join<'_>,
        old_member_id: &str,
        new_member_id: String,
        out: &mut Sink,
    ) {
        let leader_before = self.leader_id.clone().unwrap_or_default();
        self.replace_static_member(old_member_id, &new_member_id, out);
        self.reschedule_heartbeat(&new_member_id, j.now_ms, None);
        let version = j.req.api_version;
        let (cfg, now_ms, token) = (j.cfg, j.now_ms, j.token);
        self.update_member(&new_member_id, j.req, token, out);

        match self.state {
            GroupState::Stable => {
                if self.protocol_name == self.select_protocol() {
                    // Persist the new member id, then answer from the current
                    // generation: the member keeps its assignment.
                    out.record(self.metadata_record());
                    let response =
                        self.static_rejoin_response(&new_member_id, version, &leader_before);
                    let m = self.members.get_mut(&new_member_id).expect("just added");
                    if let Some(token) = m.awaiting_join.take() {
                        out.join(token, response);
                    }
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(cfg, now_ms, out);
                }
            }
            // The leader may already be computing an assignment that names
            // the old member id, so a new rebalance is needed.
            GroupState::CompletingRebalance => self.prepare_rebalance(cfg, now_ms, out),
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, out),
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => {
                unreachable!("a group with a static member is neither Empty nor Dead")
            }
        }
    }

    /// The answer to a static member that rejoined a Stable group and keeps
    /// its assignment (KIP-345, KIP-814). If it leads, a v9+ client gets
    /// the members with `skip_assignment`; older clients would compute a new
    /// assignment if told they lead, so they are told `leader_before`.
    pub(crate) fn static_rejoin_response(
        &self,
        member_id: &str,
        version: i16,
        leader_before: &str,
    ) -> JoinResponse {
        let is_leader = self.is_leader(member_id);
        if version >= MIN_VERSION_SKIP_ASSIGNMENT {
            let members = if is_leader {
                self.members_for_leader()
            } else {
                vec![]
            };
            let mut r = self.join_response(member_id, members);
            r.skip_assignment = is_leader;
            r
        } else {
            let mut r = self.join_response(member_id, vec![]);
            r.leader = leader_before.to_owned();
            r
        }
    }

    /// Moves a static member to a new member id and fences the old one:
    /// its parked requests get FENCED_INSTANCE_ID.
    fn replace_static_member(&mut self, old_member_id: &str, new_member_id: &str, out: &mut Sink) {
        let mut member = self
            .members
            .remove(old_member_id)
            .expect("static member exists");
        if let Some(token) = member.awaiting_join.take() {
            out.join(
                token,
                JoinResponse::error(old_member_id.to_owned(), GroupError::FencedInstanceId),
            );
        }
        if let Some(token) = member.awaiting_sync.take() {
            out.sync(
                token,
                crate::output::SyncResponse::error(GroupError::FencedInstanceId),
            );
        }
        let was_pending_sync = self.pending_sync.remove(old_member_id);
        member.id = new_member_id.to_owned();
        member.heartbeat_deadline_ms = None;
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_owned());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.to_owned());
        }
        if was_pending_sync {
            self.pending_sync.insert(new_member_id.to_owned());
        }
        self.members.insert(new_member_id.to_owned(), member);
    }
}
