//! Group records → one record batch appended to the offsets partition.

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record as WireRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use odradek_group::records::Record;

use crate::errors::ApiError;
use crate::partition::Partition;

/// Appends `records` as one batch. Returns the last offset when the flush
/// policy requires waiting for an fsync before acknowledging.
pub fn append(
    partition: &Partition,
    records: &[Record],
    now_ms: i64,
) -> Result<Option<i64>, ApiError> {
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
    let appended = partition.append(&buf.freeze(), -1, now_ms)?;
    Ok(appended.must_flush.then_some(appended.last_offset))
}
