//! Append and read throughput of a partition log.
//!
//! Appends are one positional write of the received bytes plus header-only
//! bookkeeping; reads are an index lookup, a short header walk and one
//! pread. No fsync is measured (flush policy defaults to never).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use odradek_storage::{Log, LogConfig};

fn encode_batch(records: usize, value_len: usize) -> Vec<u8> {
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
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(vec![b'x'; value_len])),
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
    .unwrap();
    buf.to_vec()
}

/// Appends `per_mib` copies of `batch` (about 1 MiB) per iteration. Every
/// 64 MiB the log is emptied (as retention would), so the page cache is
/// recycled: otherwise a VM spends the time faulting in fresh guest memory
/// and the benchmark measures the hypervisor, not the log.
fn bench_append(c: &mut Criterion, name: &str, batch: Vec<u8>) {
    let per_mib = ((1 << 20) / batch.len()).max(1);
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 256 << 20,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes((per_mib * batch.len()) as u64));
    let mut buf = batch.clone();
    let mut since_reset = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..per_mib {
                buf.copy_from_slice(&batch);
                black_box(log.append(&mut buf, 0).unwrap());
            }
            since_reset += per_mib * batch.len();
            if since_reset > 64 << 20 {
                let end = log.log_end_offset();
                log.truncate_fully_and_start_at(end).unwrap();
                since_reset = 0;
            }
        })
    });
    group.finish();
}

fn append_benches(c: &mut Criterion) {
    // 1 MiB batches of 1 KiB records, as a batching producer sends.
    bench_append(c, "1MiB_batches_of_1KiB_records", encode_batch(1000, 1024));
    // Small batches: one 100-byte record each (linger.ms=0 producers).
    bench_append(c, "1_record_100B_batches", encode_batch(1, 100));
}

fn read_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let batch = encode_batch(16, 1024); // ~16 KiB
    for _ in 0..4096 {
        let mut b = batch.clone();
        log.append(&mut b, 0).unwrap();
    }
    let leo = log.log_end_offset();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(1 << 20));
    let mut next = 0;
    group.bench_function("1MiB_fetches_sequential", |b| {
        b.iter(|| {
            let slice = log.read(next, 1 << 20, leo, true).unwrap();
            let bytes = slice.read().unwrap();
            next = (next + (bytes.len() / batch.len()) as i64 * 16) % leo;
            black_box(bytes)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lookup");
    let mut offset = 0;
    group.bench_function("read_one_batch_random_offset", |b| {
        b.iter(|| {
            offset = (offset + 7919) % leo;
            black_box(log.read(offset, 1, leo, true).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, append_benches, read_benches);
criterion_main!(benches);
