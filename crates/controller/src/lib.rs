//! The decisions of the active controller, as pure functions.
//!
//! Odradek follows Kafka's KRaft design: one active controller is the only
//! writer of the replicated metadata log, and every broker builds its
//! [`MetadataImage`] by applying the committed [`MetadataRecord`]s. This
//! crate is the part of the active controller that *decides*: given the
//! current image and a request (a broker registering or heartbeating, a
//! leader asking to change its ISR, an admin electing leaders or moving
//! replicas), it returns the records that carry the change out, or the
//! Kafka error that refuses it. There is no I/O, no clock (time is passed
//! in as milliseconds) and no async runtime here; the caller appends the
//! records to the metadata log and applies them to its image once they are
//! committed. Tests are therefore state in, records out.
//!
//! | module | request | Kafka counterpart |
//! |---|---|---|
//! | [`placement`] | CreateTopics, CreatePartitions | `StripedReplicaPlacer`, manual assignment validation |
//! | [`partition_change`] | every partition change | `PartitionChangeBuilder` |
//! | [`brokers`] | BrokerRegistration, BrokerHeartbeat, session expiry | `ClusterControlManager`, `ReplicationControlManager.handleBroker*` |
//! | [`alter_partition`] | AlterPartition (ISR changes from leaders) | `ReplicationControlManager.alterPartition` |
//! | [`election`] | ElectLeaders | `ReplicationControlManager.electLeader` |
//! | [`reassignment`] | AlterPartitionReassignments (KIP-455) | `PartitionReassignmentReplicas`/`Revert` |
//! | [`liveness`] | heartbeat bookkeeping | `BrokerHeartbeatManager` |
//!
//! # Invariants
//!
//! Every record list returned here applies cleanly to the image it was
//! planned against and keeps these invariants, after the whole list and
//! also after every prefix of it (records are ordered so that, e.g., a
//! broker's leaderships move away *before* the record fencing it, and it is
//! unfenced *before* it is elected):
//!
//! 1. A partition's ISR is never empty and is a subset of its replicas;
//!    replicas and ISR hold no duplicates; adding and removing replicas
//!    are disjoint subsets of the replicas.
//! 2. The leader is [`NO_LEADER`] or a member of the ISR that is usable:
//!    registered, unfenced and not in controlled shutdown. No fenced
//!    broker leads.
//! 3. A broker that is not usable is in no ISR, except as its only member:
//!    like Kafka with unclean leader election disabled, the last member of
//!    an ISR stays in it when it is fenced (it holds the only data known to
//!    be complete), and the partition is left without a leader.
//! 4. Leader epochs never decrease and increase by exactly one when the
//!    leader changes (to or from [`NO_LEADER`] too); partition epochs
//!    increase by exactly one on every change of a partition's state.
//!    Each plan writes at most one record per partition.
//! 5. After a whole list: a partition has no leader only if none of its
//!    ISR members is usable.
//!
//! The randomized test in `tests/random_sequences.rs` checks all of them
//! over long random sequences of requests.
//!
//! # Deliberate differences from Kafka
//!
//! - A `Partition` record carries the whole partition state (there is no
//!   separate PartitionChangeRecord), so the planners return full
//!   [`PartitionImage`]s built by [`change_partition`].
//! - The leader epoch is bumped only when the leader changes, never for an
//!   ISR shrink or a replica removal alone.
//! - A reassignment completes once every *adding* replica is in the ISR
//!   (Kafka waits for every target replica). A replica that stays in the
//!   target may therefore still be catching up after completion, exactly as
//!   it could before the reassignment started.
//! - Unclean leader election happens only through an explicit UNCLEAN
//!   ElectLeaders request (there is no `unclean.leader.election.enable`).

pub mod alter_partition;
pub mod brokers;
pub mod election;
mod error;
pub mod liveness;
pub mod partition_change;
pub mod placement;
pub mod reassignment;

#[cfg(test)]
mod test_support;

pub use alter_partition::plan_alter_partition;
pub use brokers::{
    leads_any_partition, plan_controlled_shutdown, plan_fence_broker, plan_register_broker,
    plan_unfence_broker, plan_unregister_broker,
};
pub use election::plan_elect_leader;
pub use error::PlanError;
pub use liveness::BrokerLiveness;
pub use partition_change::change_partition;
pub use placement::{new_partition, place_replicas, place_replicas_from, validate_assignments};
pub use reassignment::{plan_reassignment, reassignment_in_progress};

#[doc(no_inline)]
pub use odradek_metadata::{MetadataImage, MetadataRecord, PartitionImage, NO_LEADER};
