//! The I/O-free core of Odradek's group coordinator.
//!
//! This crate decides; the broker acts. It holds the classic consumer-group
//! state machine (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, static
//! membership), KIP-848 consumer groups (ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, server-side assignors), the committed offsets, and the `__consumer_offsets` record
//! format, in the style of openraft's engine: every entry point takes the
//! current time (`now_ms`) and an input, changes in-memory state, and
//! returns an [`Output`] — records to persist and [`Effect`]s (answers to
//! parked requests). It never reads a clock, sleeps, spawns, or touches
//! disk or network, so tests drive it with injected time and assert on
//! outputs.
//!
//! # Contract for the shell (the broker)
//!
//! 1. **One coordinator per `__consumer_offsets` partition** that this
//!    broker leads. Route every group request to
//!    [`partition_for_group`]`(group_id, offsets.topic.num.partitions)`;
//!    answer NOT_COORDINATOR if this broker does not lead that partition,
//!    and COORDINATOR_LOAD_IN_PROGRESS while it is still loading.
//! 2. **Load by replay.** When the broker becomes leader of a partition,
//!    create a [`GroupCoordinator`], decode every record of the partition
//!    from the log start with [`Record::decode`] and feed it to
//!    [`GroupCoordinator::replay`] in offset order, then call
//!    [`GroupCoordinator::on_loaded`]. On losing leadership, call
//!    [`GroupCoordinator::on_unloaded`], deliver its effects, drop it.
//! 3. **Persist before acknowledging.** For each [`Output`], append its
//!    `records` to the partition (key = [`Record::encode_key`], value =
//!    [`Record::encode_value`], null for tombstones) as one batch, and wait
//!    until the append is committed before sending `response` or carrying
//!    out `effects` — an OffsetCommit is acknowledged only once its record
//!    is durable. The core has already applied the change in memory, so if
//!    the append fails the shell answers with the mapped error
//!    (NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE) and reloads the
//!    coordinator by replay (as Kafka reverts to its last committed
//!    snapshot).
//! 4. **Park JoinGroup and SyncGroup.** Give each one a unique
//!    [`ResponseToken`]; its answer arrives as [`Effect::CompleteJoin`] /
//!    [`Effect::CompleteSync`] for that token, in the same output or a
//!    later one. Every parked request is answered exactly once, including
//!    on unload.
//! 5. **Drive time.** Call [`GroupCoordinator::tick`] at or after
//!    [`GroupCoordinator::next_deadline`] (and after each call that may have
//!    moved it); it fires session, rebalance, sync and retention timers.
//! 6. **Serialize calls.** A coordinator is a plain `&mut` state machine:
//!    one task owns it and applies calls in order.
//!
//! Request structs from `kafka-protocol` map to and from the domain types
//! in [`wire`], so the handlers stay a few lines each.
//!
//! # KIP-848 consumer groups
//!
//! [`consumer`] holds the second group kind beside `classic`: groups driven
//! by ConsumerGroupHeartbeat, with member epochs, a target assignment
//! computed here by the `uniform` (default) or `range` assignor, and
//! incremental revocation/assignment. A group id lives in exactly one of
//! the two kinds. What the shell adds to the contract above:
//!
//! 7. **Topic metadata.** Call [`GroupCoordinator::set_topic_metadata`]
//!    with every topic (name → [`TopicInfo`] { topic id, partition count })
//!    right after creating a coordinator (before `on_loaded`) and again
//!    whenever topics are created, deleted or gain partitions; persist its
//!    records like any output's. Assignments name topics by id.
//! 8. **ConsumerGroupHeartbeat** (key 68):
//!    [`wire::consumer_heartbeat_request`] →
//!    [`GroupCoordinator::consumer_group_heartbeat`] → persist `records` →
//!    [`wire::consumer_heartbeat_response`]`(&out.response)`. It never parks.
//! 9. **ConsumerGroupDescribe** (key 69):
//!    [`GroupCoordinator::consumer_group_describe`] →
//!    [`wire::consumer_describe_response`].
//! 10. **OffsetFetch v9+** with a member id/epoch: use
//!     [`GroupCoordinator::fetch_offsets_checked`] (group-level error).
//!     OffsetCommit needs no change: `generation_id_or_member_epoch` is
//!     checked against the member epoch for consumer groups.
//! 11. **ListGroups** lists consumer groups with `group_type` "consumer"
//!     and the states Empty/Assigning/Reconciling/Stable ([`GroupState`]
//!     has all of them; parse filters with [`GroupState::parse`]).
//!     **DescribeGroups** answers `None` for a consumer group, i.e.
//!     GROUP_ID_NOT_FOUND with state Dead as Kafka 4 does.
//!
//! Conversion (Kafka 4): an Empty classic group (e.g. one only holding
//! offsets) becomes a consumer group on the first ConsumerGroupHeartbeat,
//! and an empty consumer group becomes classic on JoinGroup; offsets stay.
//! Non-empty groups convert online as `group.consumer.migration.policy`
//! allows (see `consumer::migration`): the classic members of an upgraded
//! group keep using JoinGroup, SyncGroup, Heartbeat and LeaveGroup, which
//! the coordinator routes to the consumer group (`consumer::classic_member`),
//! so the shell needs nothing extra. Not done: rack-aware assignment,
//! per-group config overrides, and Kafka's regex cache records (regexes
//! are resolved against the topic image synchronously).

pub mod classic;
mod config;
pub mod consumer;
mod coordinator;
mod error;
mod offsets;
mod output;
pub mod partitioner;
pub mod records;
pub mod wire;

pub use classic::{
    GroupState, HeartbeatRequest, JoinRequest, LeaveRequest, LeaveResponse, LeavingMember,
    Protocol, SyncRequest, CONSUMER_PROTOCOL_TYPE,
};
pub use config::GroupConfig;
pub use consumer::{
    Assignment, ConsumerGroupDescription, ConsumerHeartbeatRequest, ConsumerHeartbeatResponse,
    DescribedConsumerMember, DescribedTopicPartitions, MemberState, MigrationPolicy, TopicImage,
    TopicInfo,
};
pub use coordinator::{
    DescribedMember, GroupCoordinator, GroupDescription, ListedGroup, UuidSource,
};
pub use error::{error_code, GroupError};
pub use offsets::{
    CommitPartition, CommitRequest, CommittedOffset, FetchedOffset, PartitionResult, TopicResults,
};
pub use output::{Effect, JoinResponse, JoinedMember, Output, ResponseToken, SyncResponse};
pub use partitioner::partition_for_group;
pub use records::{Record, RecordError};

#[cfg(test)]
mod tests;
