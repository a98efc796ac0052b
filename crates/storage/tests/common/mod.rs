//! Shared helpers: batches built with kafka-protocol's encoder, as a
//! client would send them.
#![allow(dead_code)]

use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use odradek_storage::{Log, LogConfig};

/// One batch of `timestamps.len()` records with `value_len`-byte values.
pub fn batch_with(timestamps: &[i64], value_len: usize, codec: Compression) -> Vec<u8> {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| Record {
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
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .unwrap();
    buf.to_vec()
}

/// An uncompressed batch of `records` records stamped `ts`.
pub fn batch(records: usize, value_len: usize, ts: i64) -> Vec<u8> {
    batch_with(&vec![ts; records], value_len, Compression::None)
}

/// (offset, timestamp) of every record in `bytes`.
pub fn decode(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, r.timestamp))
        .collect()
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Appends `count` batches of 1..=4 records each with growing timestamps;
/// returns the bytes of every batch as stored (offsets assigned).
pub fn fill(log: &mut Log, count: usize, value_len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut b = batch(i % 4 + 1, value_len + i % 13, 1_000 + i as i64);
            log.append(&mut b, 1_000 + i as i64).unwrap();
            b
        })
        .collect()
}

/// Reads the whole log from `from` with `max_bytes` per read, following
/// offsets like a consumer; returns the concatenated bytes.
pub fn read_all(log: &Log, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let slice = log
            .read(next, max_bytes, log.log_end_offset(), true)
            .unwrap();
        let bytes = slice.read().unwrap();
        assert!(!bytes.is_empty(), "empty read at {next}");
        let records = decode(&bytes);
        next = records.last().unwrap().0 + 1;
        out.extend_from_slice(&bytes);
    }
    out
}

pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == suffix))
        .collect();
    v.sort();
    v
}
