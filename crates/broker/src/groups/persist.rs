//! Group records → one record batch appended to the offsets partition,
//! and what must hold before the coordinator acknowledges them: on disk
//! per the flush policy, and on every in-sync replica (Kafka's
//! `offsets.commit.required.acks=-1`).

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record as WireRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use odradek_group::records::Record;

use crate::errors::ApiError;
use crate::partition::Partition;

/// Kafka's `offsets.commit.timeout.ms`: how long a commit waits for the
/// in-sync replicas before it fails.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Appended records not acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    pub last_offset: i64,
    /// The flush policy asks for an fsync first.
    pub flush: bool,
}

impl Durability {
    /// Returns once the records are durable: flushed if the policy says so,
    /// and replicated to the ISR (the high watermark passed them), within
    /// `timeout`. Errors as acks=all produce: NOT_LEADER_OR_FOLLOWER,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT, or
    /// KAFKA_STORAGE_ERROR from the flush.
    pub async fn wait(&self, partition: &Partition, timeout: Duration) -> Result<(), ApiError> {
        if self.flush {
            partition.flush_through(self.last_offset).await?;
        }
        partition.wait_for_hw(self.last_offset, timeout).await
    }
}

/// Appends `records` as one batch (acks=all: refused with
/// NOT_ENOUGH_REPLICAS while the ISR is below `min.insync.replicas`) and
/// returns what to wait for before acknowledging them.
pub fn append_durable(
    partition: &Partition,
    records: &[Record],
    now_ms: i64,
) -> Result<Durability, ApiError> {
    let appended = append_batch(partition, records, now_ms)?;
    Ok(Durability {
        last_offset: appended.last_offset,
        flush: appended.must_flush,
    })
}

/// Appends `records` as one batch. Returns the last offset when the flush
/// policy requires waiting for an fsync before acknowledging. Replication
/// is not waited for: use [`append_durable`] where a client is answered.
pub fn append(
    partition: &Partition,
    records: &[Record],
    now_ms: i64,
) -> Result<Option<i64>, ApiError> {
    let appended = append_batch(partition, records, now_ms)?;
    Ok(appended.must_flush.then_some(appended.last_offset))
}

fn append_batch(
    partition: &Partition,
    records: &[Record],
    now_ms: i64,
) -> Result<crate::partition::Appended, ApiError> {
    let wire: Vec<WireRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| WireRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch when offset - sequence
            // changes; -1 base sequence marks a non-idempotent batch.
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(r.encode_key()),
            value: r.encode_value(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        wire.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| {
        ApiError::new(
            kafka_protocol::error::ResponseError::UnknownServerError,
            e.to_string(),
        )
    })?;
    partition.append(&buf.freeze(), -1, now_ms)
}
