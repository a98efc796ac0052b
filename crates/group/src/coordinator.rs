//! [`GroupCoordinator`]: the state of one `__consumer_offsets` partition's
//! groups, and the entry points for requests, time and loading.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::classic::{
    ClassicGroup, GroupState, HeartbeatRequest, Join, JoinRequest, LeaveRequest, LeaveResponse,
    SyncRequest, Timer,
};
use crate::config::GroupConfig;
use crate::consumer::{ConsumerGroup, ConsumerTimer, TopicImage, CONSUMER_GROUP_TYPE};
use crate::error::GroupError;
use crate::offsets::OffsetStore;
use crate::output::{JoinResponse, Output, ResponseToken, Sink, SyncResponse};
use crate::records::Record;

/// Supplies the random part of generated member ids. Tests inject a
/// counter so ids are predictable; production uses UUIDv4.
pub type UuidSource = Box<dyn FnMut() -> String + Send>;

/// A due timer of a classic or a consumer group.
enum Due {
    Classic(Timer),
    Consumer(ConsumerTimer),
}

/// Upper bound on timer firings per `tick`, a guard against a timer that
/// re-arms itself at the same instant (a bug, not a workload).
const MAX_FIRINGS_PER_TICK: usize = 1_000_000;

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    /// Classic groups: Empty, PreparingRebalance, CompletingRebalance,
    /// Stable, Dead. Consumer groups: Empty, Assigning, Reconciling, Stable.
    pub state: GroupState,
    /// "classic", or "consumer" for KIP-848 groups.
    pub group_type: &'static str,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The metadata for the selected protocol; empty unless Stable.
    pub metadata: Bytes,
    /// Empty unless Stable.
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol when Stable, otherwise empty.
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

/// The group coordinator for one `__consumer_offsets` partition.
///
/// All inputs carry `now_ms` (milliseconds since the Unix epoch, the clock
/// Kafka stamps records with); the core never reads a clock.
pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    /// Classic groups (and "simple" groups that only commit offsets).
    pub(crate) groups: BTreeMap<String, ClassicGroup>,
    /// KIP-848 consumer groups. A group id is in at most one of the maps.
    pub(crate) consumer_groups: BTreeMap<String, ConsumerGroup>,
    /// The cluster's topics, from the shell.
    pub(crate) topics: TopicImage,
    pub(crate) topic_image_set: bool,
    pub(crate) offsets: OffsetStore,
    pub(crate) uuids: UuidSource,
    next_retention_check_ms: Option<i64>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("groups", &self.groups.len())
            .field("consumer_groups", &self.consumer_groups.len())
            .field("next_retention_check_ms", &self.next_retention_check_ms)
            .finish_non_exhaustive()
    }
}

impl GroupCoordinator {
    /// A coordinator with random (UUIDv4) member ids.
    pub fn new(config: GroupConfig) -> Self {
        Self::with_uuid_source(config, Box::new(|| uuid::Uuid::new_v4().to_string()))
    }

    /// A coordinator whose member ids use `uuids` (for deterministic tests
    /// and simulation).
    pub fn with_uuid_source(config: GroupConfig, uuids: UuidSource) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            consumer_groups: BTreeMap::new(),
            topics: TopicImage::new(),
            topic_image_set: false,
            offsets: OffsetStore::default(),
            uuids,
            next_retention_check_ms: None,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// JoinGroup. The answer always comes as an [`Effect::CompleteJoin`]
    /// for `token`, in this output or a later one (after a rebalance).
    ///
    /// [`Effect::CompleteJoin`]: crate::Effect::CompleteJoin
    pub fn join_group(&mut self, now_ms: i64, token: ResponseToken, req: JoinRequest) -> Output {
        let mut out = Sink::default();
        let session = req.session_timeout_ms;
        if req.group_id.is_empty() {
            out.join(
                token,
                JoinResponse::error(req.member_id, GroupError::InvalidGroupId),
            );
            return Output::new((), out);
        }
        if session < self.config.group_min_session_timeout_ms
            || session > self.config.group_max_session_timeout_ms
        {
            out.join(
                token,
                JoinResponse::error(req.member_id, GroupError::InvalidSessionTimeout),
            );
            return Output::new((), out);
        }
        if let Some(consumer) = self.consumer_groups.get(&req.group_id) {
            if !consumer.members.is_empty() {
                // A classic consumer joins a consumer group (online
                // migration): the coordinator assigns its partitions.
                self.classic_join_to_consumer_group(now_ms, token, req, &mut out);
                return Output::new((), out);
            }
            // An empty consumer group becomes a classic group (Kafka's
            // `maybeDeleteEmptyConsumerGroup`); its offsets stay.
            tracing::info!(group = %req.group_id, "converting empty consumer group to a classic group");
            consumer.tombstones(&mut out);
            self.consumer_groups.remove(&req.group_id);
        }
        let is_new_group = !self.groups.contains_key(&req.group_id);
        if is_new_group && !req.member_id.is_empty() {
            out.join(
                token,
                JoinResponse::error(req.member_id, GroupError::UnknownMemberId),
            );
            return Output::new((), out);
        }
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| ClassicGroup::new(req.group_id.clone(), now_ms));
        let join = Join {
            cfg: &self.config,
            now_ms,
            token,
            req,
        };
        group.join(join, &mut self.uuids, &mut out);
        if is_new_group && out.records.is_empty() {
            // Commit the new group to the log, as Kafka does, so a failover
            // right after the first join still knows the group.
            out.record(group.empty_metadata_record());
        }
        Output::new((), out)
    }

    /// SyncGroup. The answer comes as an [`Effect::CompleteSync`] for
    /// `token`, now or when the leader's assignment arrives.
    ///
    /// [`Effect::CompleteSync`]: crate::Effect::CompleteSync
    pub fn sync_group(&mut self, now_ms: i64, token: ResponseToken, req: SyncRequest) -> Output {
        let mut out = Sink::default();
        if self.consumer_groups.contains_key(&req.group_id) {
            self.classic_sync_to_consumer_group(now_ms, token, req, &mut out);
            return Output::new((), out);
        }
        match self.groups.get_mut(&req.group_id) {
            None => out.sync(token, SyncResponse::error(GroupError::UnknownMemberId)),
            Some(group) => group.sync(now_ms, token, req, &mut out),
        }
        Output::new((), out)
    }

    /// Heartbeat. Never writes records and never completes parked requests.
    pub fn heartbeat(&mut self, now_ms: i64, req: &HeartbeatRequest) -> Result<(), GroupError> {
        if self.consumer_groups.contains_key(&req.group_id) {
            return self.classic_heartbeat_to_consumer_group(now_ms, req);
        }
        match self.groups.get_mut(&req.group_id) {
            None => Err(GroupError::UnknownMemberId),
            Some(group) => group.heartbeat(now_ms, req),
        }
    }

    /// LeaveGroup (batched, v3+; v0–v2 map to a batch of one).
    pub fn leave_group(&mut self, now_ms: i64, req: LeaveRequest) -> Output<LeaveResponse> {
        let mut out = Sink::default();
        if self.consumer_groups.contains_key(&req.group_id) {
            let response = self.classic_leave_to_consumer_group(req, &mut out);
            return Output::new(response, out);
        }
        let response = match self.groups.get_mut(&req.group_id) {
            None => LeaveResponse {
                error: Some(GroupError::UnknownMemberId),
                members: vec![],
            },
            Some(group) => group.leave(&self.config, now_ms, req, &mut out),
        };
        Output::new(response, out)
    }

    /// The earliest time at which [`tick`](Self::tick) has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let timers = self
            .groups
            .values()
            .filter_map(|g| g.next_timer().map(|(t, _)| t));
        let consumer = self
            .consumer_groups
            .values()
            .filter_map(|g| g.next_timer().map(|(t, _)| t));
        timers
            .chain(consumer)
            .chain(self.next_retention_check_ms)
            .min()
    }

    /// The earliest due timer of any group.
    fn next_due(&self) -> Option<(i64, String, Due)> {
        let classic = self.groups.iter().filter_map(|(id, g)| {
            g.next_timer()
                .map(|(t, timer)| (t, id, Due::Classic(timer)))
        });
        let consumer = self.consumer_groups.iter().filter_map(|(id, g)| {
            g.next_timer()
                .map(|(t, timer)| (t, id, Due::Consumer(timer)))
        });
        classic
            .chain(consumer)
            .min_by_key(|(t, _, _)| *t)
            .map(|(t, id, due)| (t, id.clone(), due))
    }

    /// Advances time: fires every timer due at or before `now_ms` in
    /// deadline order (session expiry, pending-member expiry, rebalance and
    /// initial-delay timeouts, sync timeouts), then the periodic offset
    /// retention check. Each timer acts as of its own deadline, so the
    /// outcome does not depend on how often the shell ticks.
    pub fn tick(&mut self, now_ms: i64) -> Output {
        let mut out = Sink::default();
        for _ in 0..MAX_FIRINGS_PER_TICK {
            let Some((at, group_id, due)) = self.next_due().filter(|(t, _, _)| *t <= now_ms) else {
                break;
            };
            match due {
                Due::Classic(timer) => self.fire(&group_id, timer, at, &mut out),
                Due::Consumer(timer) => self.fire_consumer_timer(&group_id, timer, at, &mut out),
            }
        }
        match self.next_retention_check_ms {
            None => {
                self.next_retention_check_ms =
                    Some(now_ms + self.config.offsets_retention_check_interval_ms);
            }
            Some(at) if at <= now_ms => {
                self.expire_offsets_into(now_ms, &mut out);
                self.next_retention_check_ms =
                    Some(now_ms + self.config.offsets_retention_check_interval_ms);
            }
            Some(_) => {}
        }
        Output::new((), out)
    }

    fn fire(&mut self, group_id: &str, timer: Timer, at: i64, out: &mut Sink) {
        let group = self
            .groups
            .get_mut(group_id)
            .expect("timer of a live group");
        match timer {
            Timer::Heartbeat(member) => group.expire_heartbeat(&self.config, &member, at, out),
            Timer::PendingMember(member) => group.expire_pending_member(&member, at, out),
            Timer::Join => group.fire_join_timer(&self.config, at, out),
            Timer::Sync => group.fire_sync_timer(&self.config, at, out),
        }
    }

    /// ListGroups, optionally filtered by state (empty filter = all).
    pub fn list_groups(&self, states: &[GroupState]) -> Vec<ListedGroup> {
        let classic = self.groups.values().map(|g| ListedGroup {
            group_id: g.id.clone(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            state: g.state,
            group_type: "classic",
        });
        let consumer = self.consumer_groups.values().map(|g| ListedGroup {
            group_id: g.id.clone(),
            protocol_type: crate::classic::CONSUMER_PROTOCOL_TYPE.to_owned(),
            state: g.state(),
            group_type: CONSUMER_GROUP_TYPE,
        });
        let mut all: Vec<ListedGroup> = classic
            .chain(consumer)
            .filter(|g| states.is_empty() || states.contains(&g.state))
            .collect();
        all.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        all
    }

    /// DescribeGroups for one group; `None` if unknown (DescribeGroups v6+
    /// answers GROUP_ID_NOT_FOUND, older versions state "Dead"). A KIP-848
    /// consumer group is `None` too: Kafka 4 answers DescribeGroups for it
    /// with GROUP_ID_NOT_FOUND and state Dead (clients then use
    /// ConsumerGroupDescribe).
    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group_id)?;
        let stable = g.is(GroupState::Stable);
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            group_id: g.id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// Applies one record read from the partition, oldest first. This is
    /// how a coordinator is rebuilt when its partition is loaded (startup,
    /// failover); call [`on_loaded`](Self::on_loaded) after the last one.
    pub fn replay(&mut self, record: Record) {
        match record {
            Record::GroupMetadata { group, value: None } => {
                self.groups.remove(&group);
            }
            Record::GroupMetadata {
                group,
                value: Some(value),
            } => {
                self.consumer_groups.remove(&group);
                self.groups
                    .insert(group.clone(), ClassicGroup::from_record(group, value));
            }
            Record::OffsetCommit { key, value } => {
                if value.is_some()
                    && !self.groups.contains_key(&key.group)
                    && !self.consumer_groups.contains_key(&key.group)
                {
                    // Offsets without group metadata belong to a "simple"
                    // group (a consumer that commits without joining).
                    self.groups
                        .insert(key.group.clone(), ClassicGroup::new(key.group.clone(), -1));
                    self.groups
                        .get_mut(&key.group)
                        .expect("inserted")
                        .state_timestamp_ms = None;
                }
                self.offsets.apply(key, value);
            }
            consumer => self.replay_consumer(consumer),
        }
    }

    /// Finishes loading: every member gets a fresh session from `now_ms`
    /// (heartbeats before the failover are unknown here), groups over
    /// `group.max.size` rebalance, and retention checks start.
    pub fn on_loaded(&mut self, now_ms: i64) -> Output {
        let mut out = Sink::default();
        for group in self.groups.values_mut() {
            let ids: Vec<String> = group.members.keys().cloned().collect();
            for id in &ids {
                group.reschedule_heartbeat(id, now_ms, None);
            }
            if group.members.len() > self.config.group_max_size && group.can_rebalance() {
                group.prepare_rebalance(&self.config, now_ms, &mut out);
            }
        }
        self.consumer_groups_loaded(now_ms, &mut out);
        self.next_retention_check_ms =
            Some(now_ms + self.config.offsets_retention_check_interval_ms);
        Output::new((), out)
    }

    /// The partition moved away (or the broker stops): every group becomes
    /// Dead and parked requests are answered with NOT_COORDINATOR so the
    /// clients find the new coordinator. Drop the coordinator afterwards.
    pub fn on_unloaded(&mut self) -> Output {
        let mut out = Sink::default();
        for group in self.groups.values_mut() {
            for m in group.members.values_mut() {
                if let Some(token) = m.awaiting_join.take() {
                    out.join(
                        token,
                        JoinResponse::error(m.id.clone(), GroupError::NotCoordinator),
                    );
                }
                if let Some(token) = m.awaiting_sync.take() {
                    out.sync(token, SyncResponse::error(GroupError::NotCoordinator));
                }
            }
            group.transition(GroupState::Dead, group.state_timestamp_ms.unwrap_or(0));
        }
        Output::new((), out)
    }

    /// The state of a group (classic or consumer), if it exists.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups
            .get(group_id)
            .map(|g| g.state)
            .or_else(|| self.consumer_groups.get(group_id).map(|g| g.state()))
    }

    /// The generation of a classic group, or the group epoch of a
    /// consumer group, if it exists.
    pub fn generation(&self, group_id: &str) -> Option<i32> {
        self.groups
            .get(group_id)
            .map(|g| g.generation_id)
            .or_else(|| self.consumer_groups.get(group_id).map(|g| g.group_epoch))
    }

    /// Whether `group_id` is a KIP-848 consumer group.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_groups.contains_key(group_id)
    }

    /// The member ids of a group (sorted), empty if it does not exist.
    pub fn member_ids(&self, group_id: &str) -> Vec<String> {
        self.groups
            .get(group_id)
            .map(|g| g.members.keys().cloned().collect())
            .or_else(|| {
                self.consumer_groups
                    .get(group_id)
                    .map(|g| g.members.keys().cloned().collect())
            })
            .unwrap_or_default()
    }

    /// The current leader of a group.
    pub fn leader(&self, group_id: &str) -> Option<String> {
        self.groups.get(group_id).and_then(|g| g.leader_id.clone())
    }
}
