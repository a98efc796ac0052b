//! The I/O-free core of Odradek's group coordinator.
//!
//! This crate decides; the broker acts. It holds the classic consumer-group
//! state machine (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, static
//! membership), the committed offsets, and the `__consumer_offsets` record
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
//! # Not here yet: KIP-848
//!
//! ConsumerGroupHeartbeat groups would be a second group kind beside
//! `classic::ClassicGroup` (an enum `Group { Classic, Consumer }` in the
//! coordinator's map), with their own records (key versions 3–8:
//! ConsumerGroupMetadata, PartitionMetadata, MemberMetadata,
//! TargetAssignment*, CurrentMemberAssignment) added to [`records`] and
//! [`GroupCoordinator::replay`], a server-side assignor module (pure
//! functions over member subscriptions and topic metadata, so the shell
//! must pass topic metadata in), and per-member session/rebalance timers in
//! the same `next_timer`/`tick` scheme. Offsets, the partitioner and the
//! output contract stay as they are; OffsetCommit validation gains the
//! member-epoch check. Conversion between classic and consumer groups
//! (Kafka 4) hooks into JoinGroup for non-empty consumer groups.

pub mod classic;
mod config;
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
