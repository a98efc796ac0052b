//! One partition this broker leads: its log plus what the request paths
//! need around it (produce validation, group commit, fetch wake-ups).
//!
//! Locking: `log` is held only for in-memory work and the append's single
//! `write()`; reading bytes for a fetch (pread) and fsync both happen
//! outside it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use odradek_protocol::batch::{self, BatchError, BatchHeader};
use odradek_storage::{Log, ReadSlice};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::errors::ApiError;
use crate::producer_state::{ProducerState, Verdict};
use crate::topic_config::{EffectiveTopicConfig, TimestampType};

pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    /// The leader epoch from the metadata image; stamped on every appended
    /// batch and checked against clients' `current_leader_epoch` (KIP-320).
    pub leader_epoch: i32,
    config: RwLock<Arc<EffectiveTopicConfig>>,
    log: Mutex<Log>,
    /// Idempotent producers' sequences. Locked only while `log` is held,
    /// so the check, the append and the update are one step.
    producers: Mutex<ProducerState>,
    /// Woken whenever the high watermark advances. Fetches waiting for
    /// `min_bytes` register here; nobody polls.
    hw_advanced: Notify,
    /// Held by the one task running an fsync; others queue behind it and
    /// usually find their offsets already covered (group commit).
    flush_lock: tokio::sync::Mutex<()>,
    /// Every offset below this is durable on disk.
    flushed_offset: AtomicI64,
}

/// What a successful append tells the produce path.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The flush policy (`flush.messages`) requires this append to be on
    /// disk before it is acknowledged.
    pub must_flush: bool,
}

/// A fetch's view of the partition at one instant.
pub struct ReadResult {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub slice: ReadSlice,
}

/// Offsets a ListOffsets request can ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    pub offset: i64,
    pub timestamp: i64,
}

impl Partition {
    pub fn new(
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        log: Log,
        config: EffectiveTopicConfig,
        leader_epoch: i32,
    ) -> Partition {
        let flushed = log.recovery_point();
        let producers = rebuild_producer_state(&log);
        Partition {
            topic,
            topic_id,
            index,
            leader_epoch,
            config: RwLock::new(Arc::new(config)),
            log: Mutex::new(log),
            producers: Mutex::new(producers),
            hw_advanced: Notify::new(),
            flush_lock: tokio::sync::Mutex::new(()),
            flushed_offset: AtomicI64::new(flushed),
        }
    }

    pub fn config(&self) -> Arc<EffectiveTopicConfig> {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: EffectiveTopicConfig) {
        self.log.lock().set_config(config.log_config());
        *self.config.write() = Arc::new(config);
    }

    pub fn hw_advanced(&self) -> &Notify {
        &self.hw_advanced
    }

    /// Validates the `records` of one Produce partition and appends them.
    /// Nothing is written unless every check passes.
    pub fn append(&self, records: &Bytes, acks: i16, now_ms: i64) -> Result<Appended, ApiError> {
        let config = self.config();
        let header = validate_produce_records(records, &config, now_ms)?;
        // With one replica the ISR is the leader alone.
        let isr_size = 1;
        if acks == -1 && isr_size < config.min_insync_replicas {
            return Err(ApiError::new(
                ResponseError::NotEnoughReplicas,
                format!(
                    "the in-sync replica set has {isr_size} member(s), below min.insync.replicas={}",
                    config.min_insync_replicas
                ),
            ));
        }
        // The request buffer is shared with the decoded request; the base
        // offset (and for LogAppendTime the timestamps and CRC) are
        // rewritten in a private copy.
        let mut owned = BytesMut::from(&records[..]);
        let log_append_time_ms = match config.timestamp_type {
            TimestampType::LogAppendTime => {
                batch::set_log_append_time(&mut owned, now_ms).map_err(batch_error)?;
                now_ms
            }
            TimestampType::CreateTime => -1,
        };
        batch::set_partition_leader_epoch(&mut owned, self.leader_epoch);
        let mut log = self.log.lock();
        let mut producers = self.producers.lock();
        if let Verdict::Duplicate {
            first_offset,
            last_offset,
        } = producers.check(&header)?
        {
            // KIP-98: a retry of a batch already in the log is acknowledged
            // again with its original offsets and not appended twice.
            return Ok(Appended {
                base_offset: first_offset,
                last_offset,
                log_append_time_ms,
                log_start_offset: log.log_start_offset(),
                must_flush: log.flush_due(now_ms),
            });
        }
        let info = log
            .append(&mut owned, now_ms)
            .map_err(|e| ApiError::from(&e))?;
        producers.record(&header, info.first_offset, info.last_offset);
        drop(producers);
        // Single replica: the high watermark follows the log end at once.
        let leo = log.log_end_offset();
        log.set_high_watermark(leo);
        let log_start_offset = log.log_start_offset();
        drop(log);
        self.hw_advanced.notify_waiters();
        debug_assert_eq!(
            info.last_offset - info.first_offset,
            header.last_offset_delta as i64
        );
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time_ms,
            log_start_offset,
            must_flush: info.flush_needed,
        })
    }

    /// Returns once every offset ≤ `offset` is on disk. Concurrent callers
    /// share fsyncs: whoever holds `flush_lock` syncs everything appended so
    /// far, and those queued behind it usually find their offset covered.
    pub async fn flush_through(&self, offset: i64) -> Result<(), ApiError> {
        if self.flushed_offset.load(Ordering::Acquire) > offset {
            return Ok(());
        }
        let _guard = self.flush_lock.lock().await;
        if self.flushed_offset.load(Ordering::Acquire) > offset {
            return Ok(());
        }
        self.flush_now().await
    }

    /// Flushes everything appended so far (the `flush.ms` scheduler and
    /// shutdown use this). Callers hold `flush_lock` or accept a redundant
    /// fsync.
    async fn flush_now(&self) -> Result<(), ApiError> {
        let target = self.log.lock().flush_target();
        let up_to = target.up_to();
        let synced = tokio::task::spawn_blocking(move || target.sync())
            .await
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        if let Err(e) = synced {
            // The kernel may have dropped the dirty pages: a retry could
            // report success for lost data, so the log is fenced.
            self.log.lock().fence();
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "fsync failed; partition fenced");
            return Err(ApiError::new(
                ResponseError::KafkaStorageError,
                e.to_string(),
            ));
        }
        self.log.lock().mark_flushed(up_to);
        self.flushed_offset.fetch_max(up_to, Ordering::AcqRel);
        Ok(())
    }

    /// Flushes if the flush policy (`flush.ms`, `flush.messages`) says so.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), ApiError> {
        if self.log.lock().flush_due(now_ms) {
            let _guard = self.flush_lock.lock().await;
            self.flush_now().await?;
        }
        Ok(())
    }

    /// Flush unconditionally (clean shutdown).
    pub async fn flush_all(&self) -> Result<(), ApiError> {
        let _guard = self.flush_lock.lock().await;
        self.flush_now().await
    }

    /// Locates up to `max_bytes` of whole batches starting at the batch that
    /// contains `offset`, never past the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, ApiError> {
        let log = self.log.lock();
        let high_watermark = log.high_watermark();
        let slice = log
            .read(offset, max_bytes, high_watermark, min_one_batch)
            .map_err(|e| ApiError::from(&e))?;
        Ok(ReadResult {
            high_watermark,
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            slice,
        })
    }

    /// KIP-320: a client that knows a newer epoch than ours talks to a
    /// stale leader (UNKNOWN_LEADER_EPOCH, retriable); one with an older
    /// epoch has stale metadata (FENCED_LEADER_EPOCH). -1 skips the check.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ApiError> {
        match current_leader_epoch {
            e if e < 0 || e == self.leader_epoch => Ok(()),
            e if e > self.leader_epoch => Err(ApiError::bare(ResponseError::UnknownLeaderEpoch)),
            _ => Err(ApiError::bare(ResponseError::FencedLeaderEpoch)),
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.lock().high_watermark()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.lock().log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.lock().log_end_offset()
    }

    pub fn recovery_point(&self) -> i64 {
        self.log.lock().recovery_point()
    }

    /// ListOffsets for a timestamp ≥ 0: the first record at or after it,
    /// below the high watermark.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<OffsetAndTimestamp>, ApiError> {
        let log = self.log.lock();
        let hw = log.high_watermark();
        let found = log
            .offset_for_timestamp(timestamp)
            .map_err(|e| ApiError::from(&e))?;
        Ok(found
            .filter(|(offset, _)| *offset < hw)
            .map(|(offset, timestamp)| OffsetAndTimestamp { offset, timestamp }))
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<OffsetAndTimestamp>, ApiError> {
        let found = self
            .log
            .lock()
            .max_timestamp()
            .map_err(|e| ApiError::from(&e))?;
        Ok(found.map(|(timestamp, offset)| OffsetAndTimestamp { offset, timestamp }))
    }

    /// Removes the partition's files. The log is unusable afterwards; the
    /// caller has already dropped the partition from the routing table.
    pub fn delete_files(&self) -> Result<(), odradek_storage::StorageError> {
        self.log.lock().delete()
    }

    /// Applies retention (`retention.ms`, `retention.bytes`).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, odradek_storage::StorageError> {
        let config = self.config();
        self.log
            .lock()
            .delete_expired_segments(now_ms, config.retention_ms, config.retention_bytes)
    }
}

/// The checks Kafka makes on a v3+ Produce partition before appending,
/// without decoding records: exactly one intact magic-v2 batch (see
/// `batch::validate_produce_records`), within `max.message.bytes`, with
/// timestamps inside the configured bounds.
pub fn validate_produce_records(
    records: &Bytes,
    config: &EffectiveTopicConfig,
    now_ms: i64,
) -> Result<BatchHeader, ApiError> {
    let header = batch::validate_produce_records(records).map_err(batch_error)?;
    if header.total_len() > config.max_message_bytes {
        return Err(ApiError::new(
            ResponseError::MessageTooLarge,
            format!(
                "record batch of {} bytes exceeds max.message.bytes={}",
                header.total_len(),
                config.max_message_bytes
            ),
        ));
    }
    if config.timestamp_type == TimestampType::CreateTime {
        let latest_allowed = now_ms.saturating_add(config.timestamp_after_max_ms);
        let earliest_allowed = now_ms.saturating_sub(config.timestamp_before_max_ms);
        if header.max_timestamp > latest_allowed || header.base_timestamp < earliest_allowed {
            return Err(ApiError::new(
                ResponseError::InvalidTimestamp,
                format!(
                    "batch timestamps [{}, {}] are outside message.timestamp.before.max.ms/after.max.ms of now ({now_ms})",
                    header.base_timestamp, header.max_timestamp
                ),
            ));
        }
    }
    Ok(header)
}

fn batch_error(e: BatchError) -> ApiError {
    let code = match e {
        BatchError::Truncated { .. }
        | BatchError::InvalidLength(_)
        | BatchError::CrcMismatch { .. }
        | BatchError::InvalidRecords(_) => ResponseError::CorruptMessage,
        BatchError::UnknownCompression(_) => ResponseError::UnsupportedCompressionType,
        BatchError::LogAppendTimeFromProducer => ResponseError::InvalidTimestamp,
        BatchError::UnsupportedMagic(_)
        | BatchError::InvalidRecordCount { .. }
        | BatchError::Empty
        | BatchError::MultipleBatches
        | BatchError::ControlBatch
        | BatchError::InvalidSequence(_) => ResponseError::InvalidRecord,
    };
    ApiError::new(code, e.to_string())
}

/// How much of the active segment one read covers while rebuilding.
const REBUILD_CHUNK_BYTES: usize = 1 << 20;

/// Rebuilds idempotent-producer state from the batch headers of the active
/// segment. Producers whose last write is older are forgotten and treated
/// as new (any sequence accepted), as Kafka does for expired producers.
fn rebuild_producer_state(log: &Log) -> ProducerState {
    let mut state = ProducerState::default();
    let mut offset = log
        .segment_base_offsets()
        .last()
        .copied()
        .unwrap_or_else(|| log.log_start_offset())
        .max(log.log_start_offset());
    let end = log.log_end_offset();
    while offset < end {
        let bytes = match log
            .read(offset, REBUILD_CHUNK_BYTES, end, true)
            .map(|s| s.read())
        {
            Ok(Ok(b)) if !b.is_empty() => b,
            _ => break,
        };
        for (_, header) in batch::iter_batches(&bytes).map_while(Result::ok) {
            state.record(&header, header.base_offset, header.last_offset());
            offset = header.last_offset() + 1;
        }
    }
    state
}
