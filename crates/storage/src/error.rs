//! The storage layer's error type. Expected failures (a reader asking for a
//! missing offset, bad input) are values; an I/O error during a write fences
//! the log until it is reopened, because after a partial write the in-memory
//! view and the file may disagree.

use std::io;
use std::path::PathBuf;

use odradek_protocol::batch::BatchError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system error, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The requested offset is below the log start or above the log end.
    /// Kafka: OFFSET_OUT_OF_RANGE (1).
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    /// On-disk data that recovery may not repair by truncation: damage below
    /// the recovery point (data that was fsynced), or a malformed
    /// checkpoint. Needs an operator; we refuse to guess.
    #[error("corrupt {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// Bytes handed to `append` are not well-formed v2 batches. The broker
    /// validates before appending, so this is a caller bug.
    #[error("invalid record batches: {0}")]
    InvalidBatches(#[from] BatchError),
    /// A follower append does not continue the log: its first batch must
    /// start at the log end offset. The fetcher fetched from the wrong
    /// offset or the log changed under it. Kafka:
    /// `UnexpectedAppendOffsetException`.
    #[error("follower append starts at offset {got} but the log ends at {expected}")]
    OffsetMismatch { expected: i64, got: i64 },
    /// A batch of a follower append does not start after the previous
    /// batch's last offset, or lies further from the first batch than one
    /// segment can index (2^31 offsets). Kafka: `OffsetsOutOfOrderException`.
    #[error("batch base offset {base_offset} does not follow offset {previous_last}")]
    OffsetsOutOfOrder {
        previous_last: i64,
        base_offset: i64,
    },
    /// An earlier write failed; the log refuses further appends until it is
    /// reopened (which runs recovery).
    #[error("log is fenced after an earlier I/O error; reopen it to recover")]
    PreviousIoError,
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Attaches a description to `io::Error`s.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StorageError::Io {
            context: what(),
            source,
        })
    }
}
