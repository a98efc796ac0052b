//! Classic groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup): the state
//! machine Empty → PreparingRebalance → CompletingRebalance → Stable, with
//! Dead for removed or unloaded groups.
//!
//! ```text
//!            join                all joined / timeout          leader's SyncGroup
//!  Empty ───────────► Preparing ────────────────────► Completing ─────────────► Stable
//!    ▲                Rebalance ◄──── member joins, leaves, Rebalance ◄─────────┘
//!    └── last member ─────┘            expires, or leader rejoins
//!        leaves/expires
//! ```
//!
//! Each file handles one request type; `rebalance.rs` holds the transitions
//! that several of them (and the timers) share.

mod join;
mod membership;
mod persist;
mod rebalance;
mod state;
mod sync;

pub(crate) use join::Join;
pub use join::JoinRequest;
pub use membership::{HeartbeatRequest, LeaveRequest, LeaveResponse, LeavingMember};
pub(crate) use state::{ClassicGroup, Member, Timer};
pub use state::{GroupState, Protocol, CONSUMER_PROTOCOL_TYPE};
pub use sync::SyncRequest;
