//! odradek-storage: Kafka's on-disk partition log.
//!
//! Synchronous (`std::fs`), no async runtime, and it knows only batches and
//! files: nothing about requests, groups or error codes (the broker maps
//! [`StorageError`] to Kafka codes). The layout is Kafka's, so a Kafka user
//! recognises it: `<log.dir>/<topic>-<partition>/<20-digit base>.log` with
//! sparse `.index` and `.timeindex` files, plus the per-log-dir checkpoint
//! files. Byte layouts, recovery and fsync ordering are documented in
//! `docs/design/log-format.md`.
//!
//! # API as built (differences from the first sketch)
//! - [`Log::max_timestamp`] returns `Result<Option<(ts, offset)>>`: finding
//!   the exact record (KIP-734) reads and decodes one batch.
//! - [`Log::close`] returns the final recovery point (everything flushed),
//!   for the broker's `recovery-point-offset-checkpoint`. Dropping a `Log`
//!   does no I/O: index entries are written when appended, nothing is
//!   buffered.
//! - [`AppendInfo`] has a `rolled` flag (Kafka flushes the old segment in
//!   the background on roll; the broker may schedule a flush).
//! - [`Log::flush_due`] tells a periodic flusher whether `flush.ms` /
//!   `flush.messages` ask for a flush; [`Log::fence`] is for the owner to
//!   call when a [`FlushTarget::sync`] fails.
//! - The high watermark starts at the log start offset on open; the broker
//!   restores it from `replication-offset-checkpoint` with
//!   [`Log::set_high_watermark`].
//! - [`Log::read`] never returns a batch whose last offset is at or above
//!   `max_offset_exclusive` (Kafka's rule; the high watermark is at a batch
//!   boundary on a single node and on followers).
//! - [`Log::truncate_fully_and_start_at`] (Kafka's name) exists besides
//!   [`Log::truncate_to`].
//! - Added for the broker: [`Log::set_config`],
//!   [`Log::delete_expired_segments`] (retention.ms / retention.bytes),
//!   [`base64_url`] (Kafka's Uuid text form). [`Log::delete`] takes
//!   `&mut self` so it can be called through a mutex guard; the log is
//!   fenced afterwards.
//! - For replication: the leader-epoch cache (`leader-epoch-checkpoint`,
//!   [`Log::end_offset_for_epoch`], [`Log::latest_epoch`],
//!   [`Log::epoch_entries`]), kept in step by appends, truncation and
//!   retention; [`Log::append_as_follower`] returns
//!   `Result<Option<AppendInfo>>` (`None`: no whole batch to append) and
//!   [`AppendInfo::bytes`] says how much of the fetched bytes it wrote;
//!   [`Log::begin_leader_epoch`] is Kafka's epoch assignment when a replica
//!   becomes leader.

mod checkpoint;
mod config;
mod dir;
mod error;
mod flush;
mod index;
mod leader_epoch;
mod log;
mod read;
mod recovery;
mod replication;
mod retention;
mod scan;
mod segment;
#[cfg(test)]
mod test_batches;
mod time_index;

pub use checkpoint::{
    read_checkpoint, write_atomically, write_checkpoint, Offsets, TopicPartition,
    LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, REPLICATION_CHECKPOINT,
};
pub use config::LogConfig;
pub use dir::{
    base64_url, parse_partition_dir, read_partition_metadata, write_partition_metadata,
    PARTITION_METADATA,
};
pub use error::{Result, StorageError};
pub use flush::FlushTarget;
pub use leader_epoch::{
    EpochEntry, LEADER_EPOCH_CHECKPOINT, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};
pub use log::{AppendInfo, Log};
pub use read::ReadSlice;
