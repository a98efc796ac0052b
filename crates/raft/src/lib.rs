//! The controller quorum: the metadata log replicated with Raft
//! (`openraft`) among the controller voters — the KRaft design.
//!
//! A command is one batch of [`odradek_metadata::MetadataRecord`]s. The
//! active controller proposes it ([`MetadataQuorum::propose`]); once a
//! majority of voters has it durably in their Raft log it is committed
//! and every voter applies it to its [`odradek_metadata::MetadataImage`],
//! published through a `watch` channel. A single voter is a quorum of one
//! and needs no network: that is how a single node keeps working; it leads
//! within milliseconds of starting.
//!
//! Observers ([`MetadataQuorum::start_observer`]) are nodes that are not
//! voters: once the leader adds them ([`MetadataQuorum::add_learner`])
//! they receive the committed log as openraft learners and publish the
//! same image.
//!
//! Requests for the active controller travel as opaque bytes: any node
//! forwards them ([`MetadataQuorum::forward`], or [`ControllerClient`] on a
//! node with no Raft state) to the leader's [`ForwardHandler`], over the
//! same controller listener as the Raft RPCs.
//!
//! Code map:
//! - `command`: the replicated command and its encoding.
//! - `codec`: the binary encoding of openraft's types (no serde).
//! - `log_file` / `log_store`: the durable Raft log and vote
//!   (`<dir>/__cluster_metadata-0/`).
//! - `snapshot` / `state_machine`: the image, its snapshots as records.
//! - `network`: the transport seam, an in-process router and TCP; `wire`
//!   is the message encoding, `Endpoint` answers incoming requests.
//! - `forward`: forwarding to the active controller (`ForwardHandler`,
//!   `ControllerClient`, `ForwardError`).
//! - `quorum`: the facade the broker uses (voters and observers).
//!
//! **Architecture invariant:** the image changes only by applying
//! committed entries, in log order, identically on every voter.
//!
//! **API boundary:** this crate knows metadata records and images, not
//! Kafka requests or error codes: forwarded requests are bytes to it, and
//! the broker maps [`ProposeError`] and [`ForwardError`] to Kafka errors
//! (NOT_CONTROLLER and friends).

use std::io::Cursor;
use std::sync::Arc;

use odradek_metadata::MetadataImage;
use openraft::{BasicNode, TokioRuntime};

pub mod codec;
pub mod command;
mod files;
pub mod forward;
mod log_file;
pub mod log_store;
pub mod network;
mod quorum;
pub mod snapshot;
pub mod state_machine;

pub use command::MetadataCommand;
pub use forward::{ControllerClient, ForwardError, ForwardHandler};
pub use log_store::LogStore;
pub use network::router::{Router, RouterTransport};
pub use network::tcp::TcpTransport;
pub use network::{Connection, Endpoint, Transport};
pub use quorum::{Committed, MetadataQuorum, ProposeError, QuorumConfig, StartError};
pub use state_machine::StateMachine;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft's type parameters for the metadata quorum. The response to
    /// a command is the image right after it was applied.
    pub TypeConfig:
        D = MetadataCommand,
        R = Arc<MetadataImage>,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type Raft = openraft::Raft<TypeConfig>;

/// The directory under the data dir that holds the metadata log, as in
/// Kafka's KRaft layout.
pub const METADATA_DIR: &str = "__cluster_metadata-0";
