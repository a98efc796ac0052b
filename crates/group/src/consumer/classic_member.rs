//! Members speaking the classic protocol inside a consumer group (Kafka's
//! `classicGroup{Join,Sync,Heartbeat,Leave}ToConsumerGroup`). This is what
//! lets a fleet move between protocols one consumer at a time: the
//! coordinator, not a group leader, computes their assignments, and tells
//! them about a new one the only way the classic protocol can:
//!
//! ```text
//!  Heartbeat ─► REBALANCE_IN_PROGRESS (group epoch moved, or partitions to give up or to take)
//!  JoinGroup ─► reconcile like a ConsumerGroupHeartbeat; generation = member epoch; never the leader
//!  SyncGroup ─► the member's current assignment, in the embedded consumer protocol
//! ```
//!
//! A member told to rejoin must do so within its rebalance timeout (join
//! timer), and send SyncGroup within it after joining (sync timer), or it
//! is fenced like a consumer member whose session expired.

use super::embedded::{self, decode_subscription, encode_assignment};
use super::heartbeat::{MemberChanges, MemberUpdate};
use super::{ClassicMembership, ConsumerGroup, ConsumerMember, MemberState};
use crate::classic::CONSUMER_PROTOCOL_TYPE;
use crate::classic::{HeartbeatRequest, JoinRequest, LeaveRequest, LeaveResponse, SyncRequest};
use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::output::{JoinResponse, ResponseToken, Sink, SyncResponse};

/// JoinGroup v4 introduced MEMBER_ID_REQUIRED (KIP-394).
const MIN_VERSION_REQUIRING_MEMBER_ID: i16 = 4;

/// Kafka's `validateConsumerGroupMember` plus the classic-protocol check:
/// the member (by instance id for static members) must exist and have
/// joined through JoinGroup.
fn classic_member<'g>(
    group: &'g ConsumerGroup,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<&'g ConsumerMember, GroupError> {
    let member = match instance_id {
        None => group.members.get(member_id),
        Some(instance) => {
            let m = group
                .static_member(instance)
                .ok_or(GroupError::UnknownMemberId)?;
            if m.id != member_id {
                return Err(GroupError::FencedInstanceId);
            }
            Some(m)
        }
    };
    member
        .filter(|m| m.uses_classic_protocol())
        .ok_or(GroupError::UnknownMemberId)
}

/// [`classic_member`], whose generation (its member epoch) must be the
/// request's.
fn classic_member_at<'g>(
    group: &'g ConsumerGroup,
    member_id: &str,
    instance_id: Option<&str>,
    generation_id: i32,
) -> Result<&'g ConsumerMember, GroupError> {
    let member = classic_member(group, member_id, instance_id)?;
    if generation_id != member.member_epoch {
        return Err(GroupError::IllegalGeneration);
    }
    Ok(member)
}

fn session_timeout_ms(member: &ConsumerMember) -> i64 {
    i64::from(member.classic.as_ref().map_or(0, |c| c.session_timeout_ms))
}

fn arm_join_timer_if_absent(member: &mut ConsumerMember, now_ms: i64) {
    if member.join_deadline_ms.is_none() {
        member.join_deadline_ms = Some(now_ms + i64::from(member.rebalance_timeout_ms.max(0)));
    }
}

impl GroupCoordinator {
    /// JoinGroup from a classic consumer to a non-empty consumer group.
    pub(crate) fn classic_join_to_consumer_group(
        &mut self,
        now_ms: i64,
        token: ResponseToken,
        req: JoinRequest,
        out: &mut Sink,
    ) {
        let result = self.try_classic_join(now_ms, &req, out);
        let response = result.unwrap_or_else(|(member_id, e)| JoinResponse::error(member_id, e));
        out.join(token, response);
    }

    fn try_classic_join(
        &mut self,
        now_ms: i64,
        req: &JoinRequest,
        out: &mut Sink,
    ) -> Result<JoinResponse, (String, GroupError)> {
        let group = &self.consumer_groups[&req.group_id];
        let unknown = req.member_id.is_empty();
        let member_id = if unknown {
            (self.uuids)()
        } else {
            req.member_id.clone()
        };
        let fail = |e| Err((req.member_id.clone(), e));
        if group.members.len() >= self.config.group_consumer_max_size
            && !group.members.contains_key(&member_id)
        {
            return fail(GroupError::GroupMaxSizeReached);
        }
        if !group.supports_classic_protocols(&req.protocol_type, &req.protocols) {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if unknown
            && req.group_instance_id.is_none()
            && req.api_version >= MIN_VERSION_REQUIRING_MEMBER_ID
        {
            // KIP-394: come back with this id.
            return Err((member_id, GroupError::MemberIdRequired));
        }
        // Every protocol carries the same subscription.
        let Ok(subscription) = decode_subscription(&req.protocols[0].metadata) else {
            return fail(GroupError::InconsistentGroupProtocol);
        };

        let had_static_member = req
            .group_instance_id
            .as_ref()
            .is_some_and(|i| group.static_members.contains_key(i));
        let (member, replaced) = match &req.group_instance_id {
            None => (group.member_or_new(&member_id), None),
            Some(instance) => {
                let existing = group.static_member(instance);
                match existing {
                    None if unknown => (ConsumerMember::new(member_id.clone()), None),
                    None => return fail(GroupError::UnknownMemberId),
                    // A restarted static member takes its old place.
                    Some(old) if unknown => (old.reincarnated(&member_id), Some(old.id.clone())),
                    Some(old) if old.id != member_id => return fail(GroupError::FencedInstanceId),
                    Some(old) => (old.clone(), None),
                }
            }
        };

        let image = &self.topics;
        let cfg = &self.config;
        let group = self
            .consumer_groups
            .get_mut(&req.group_id)
            .expect("checked above");
        let owned: Vec<(uuid::Uuid, Vec<i32>)> =
            embedded::to_assignment(&subscription.owned, image)
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().collect()))
                .collect();
        let update = MemberUpdate {
            before: &member,
            replaces: replaced.as_deref(),
            changes: MemberChanges {
                instance_id: req.group_instance_id.clone(),
                rack_id: subscription.rack_id,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                // Classic members name no server-side assignor.
                server_assignor: None,
                subscribed_topic_names: Some(subscription.topics),
                subscribed_topic_regex: None,
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                classic: Some(ClassicMembership {
                    session_timeout_ms: req.session_timeout_ms,
                    protocols: req.protocols.clone(),
                }),
            },
            owned: Some(&owned),
            now_ms,
        };
        let mut next = update.apply(group, image, cfg, out);
        next.join_deadline_ms = None;
        next.session_deadline_ms = Some(now_ms + i64::from(req.session_timeout_ms));
        next.sync_deadline_ms = Some(now_ms + i64::from(req.rebalance_timeout_ms.max(0)));
        let response = JoinResponse {
            error: None,
            generation_id: next.member_epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_owned()),
            protocol_name: Some(req.protocols[0].name.clone()),
            // Nobody leads: the coordinator assigns.
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.clone(),
            members: vec![],
        };
        tracing::debug!(group = %req.group_id, member = %member_id, epoch = next.member_epoch, state = ?next.state, "classic member joined a consumer group");
        group.members.insert(member_id.clone(), next);
        if had_static_member && self.may_downgrade(&self.consumer_groups[&req.group_id], None) {
            // A classic static member replaced the last member that used
            // the consumer protocol (a rolling downgrade): the group is
            // classic again, without a rebalance.
            self.downgrade(now_ms, &req.group_id, None, out);
            let classic = &self.groups[&req.group_id];
            let leader_before = replaced.as_deref().unwrap_or(&member_id);
            return Ok(classic.static_rejoin_response(&member_id, req.api_version, leader_before));
        }
        Ok(response)
    }

    /// SyncGroup from a classic member of a consumer group: its current
    /// assignment, unless it must rejoin first.
    pub(crate) fn classic_sync_to_consumer_group(
        &mut self,
        now_ms: i64,
        token: ResponseToken,
        req: SyncRequest,
        out: &mut Sink,
    ) {
        let response = match self.try_classic_sync(now_ms, &req) {
            Ok(r) => r,
            Err(e) => SyncResponse::error(e),
        };
        out.sync(token, response);
    }

    fn try_classic_sync(
        &mut self,
        now_ms: i64,
        req: &SyncRequest,
    ) -> Result<SyncResponse, GroupError> {
        let group = self
            .consumer_groups
            .get_mut(&req.group_id)
            .expect("the caller checked");
        let instance_id = req.group_instance_id.as_deref();
        let member = classic_member_at(group, &req.member_id, instance_id, req.generation_id)?;
        let classic = member.classic.as_ref().expect("a classic member");
        if req
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE)
            || req
                .protocol_name
                .as_deref()
                .is_some_and(|n| n != classic.protocol_name())
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let version = classic
            .protocols
            .first()
            .map_or(0, |p| embedded::subscription_version(&p.metadata));
        // A member still revoking has rejoined already; it learns of the
        // next epoch once it has given its partitions up.
        let must_rejoin = group.group_epoch > member.member_epoch
            && member.state != MemberState::UnrevokedPartitions;
        let assignment = encode_assignment(&member.assigned, &self.topics, version);
        let m = group.members.get_mut(&req.member_id).expect("validated");
        if must_rejoin {
            arm_join_timer_if_absent(m, now_ms);
            return Err(GroupError::RebalanceInProgress);
        }
        m.sync_deadline_ms = None;
        m.session_deadline_ms = Some(now_ms + session_timeout_ms(m));
        Ok(SyncResponse {
            error: None,
            protocol_type: req.protocol_type.clone(),
            protocol_name: req.protocol_name.clone(),
            assignment,
        })
    }

    /// Heartbeat from a classic member of a consumer group: keeps its
    /// session, and asks it to rejoin when there is something to reconcile.
    pub(crate) fn classic_heartbeat_to_consumer_group(
        &mut self,
        now_ms: i64,
        req: &HeartbeatRequest,
    ) -> Result<(), GroupError> {
        let group = self
            .consumer_groups
            .get_mut(&req.group_id)
            .expect("the caller checked");
        let instance_id = req.group_instance_id.as_deref();
        let member = classic_member_at(group, &req.member_id, instance_id, req.generation_id)?;
        let must_rejoin = member.member_epoch < group.group_epoch
            || member.state == MemberState::UnrevokedPartitions
            || (member.state == MemberState::UnreleasedPartitions
                && !group.waiting_on_unreleased_partition(member));
        let m = group.members.get_mut(&req.member_id).expect("validated");
        m.session_deadline_ms = Some(now_ms + session_timeout_ms(m));
        if must_rejoin {
            arm_join_timer_if_absent(m, now_ms);
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for classic members of a consumer group: each leaves as
    /// if fenced, then the group epoch moves once.
    pub(crate) fn classic_leave_to_consumer_group(
        &mut self,
        req: LeaveRequest,
        out: &mut Sink,
    ) -> LeaveResponse {
        let group = self
            .consumer_groups
            .get_mut(&req.group_id)
            .expect("the caller checked");
        let mut results = Vec::with_capacity(req.members.len());
        let mut anyone_left = false;
        for leaving in req.members {
            let resolved = if leaving.member_id.is_empty() {
                // Admin removal of a static member by instance id.
                leaving
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| group.static_member(i))
                    .filter(|m| m.uses_classic_protocol())
                    .map(|m| m.id.clone())
                    .ok_or(GroupError::UnknownMemberId)
            } else {
                classic_member(
                    group,
                    &leaving.member_id,
                    leaving.group_instance_id.as_deref(),
                )
                .map(|m| m.id.clone())
            };
            match resolved {
                Ok(id) => {
                    tracing::info!(group = %group.id, member = %id, "classic member left the consumer group");
                    super::heartbeat::remove_member(group, &id, out);
                    anyone_left = true;
                    results.push((leaving, None));
                }
                Err(e) => results.push((leaving, Some(e))),
            }
        }
        if anyone_left {
            super::heartbeat::membership_changed(group, &self.topics, out);
        }
        LeaveResponse {
            error: None,
            members: results,
        }
    }
}
