//! Batches for unit tests, built with kafka-protocol's encoder as a client
//! would send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use odradek_protocol::batch;

/// One uncompressed batch of `records` records stamped `ts`, with base
/// offset 0 and partition leader epoch `epoch`. `tag` goes into the
/// values, so batches from different "producers" differ.
pub(crate) fn batch(records: usize, epoch: i32, ts: i64, tag: &str) -> Vec<u8> {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Constant offset - sequence keeps the encoder to one batch.
            sequence: i as i32 - 1,
            timestamp: ts,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}-{}", "v".repeat(i % 40)))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    let mut buf = buf.to_vec();
    batch::set_partition_leader_epoch(&mut buf, epoch);
    buf
}

/// Like `batch`, with its offsets starting at `base_offset`, as a leader's
/// log holds it.
pub(crate) fn batch_at(base_offset: i64, records: usize, epoch: i32, ts: i64) -> Vec<u8> {
    let mut b = batch(records, epoch, ts, "leader");
    batch::assign_offsets(&mut b, base_offset);
    b
}
