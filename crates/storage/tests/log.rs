//! Append, read and lookup behaviour of a partition log.

mod common;

use common::*;
use kafka_protocol::records::Compression;
use odradek_storage::{Log, LogConfig, StorageError};

#[test]
fn append_and_read_round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    let stored = fill(&mut log, 300, 40);
    assert!(log.segment_count() > 5, "segments: {}", log.segment_count());
    assert_eq!(
        common::files_with_suffix(dir.path(), "log").len(),
        log.segment_count()
    );
    let expected: Vec<u8> = stored.concat();
    let total_records: i64 = (0..300).map(|i| (i % 4 + 1) as i64).sum();
    assert_eq!(log.log_end_offset(), total_records);
    // Any fetch size, including ones smaller than a batch (KIP-74).
    for max_bytes in [1, 100, 1000, 1 << 20] {
        assert_eq!(
            read_all(&log, 0, max_bytes),
            expected,
            "max_bytes {max_bytes}"
        );
    }
    // Offsets are dense and assigned in append order.
    let offsets: Vec<i64> = decode(&expected).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..total_records).collect::<Vec<_>>());
}

#[test]
fn append_info_reports_offsets_and_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let mut two = batch(3, 10, 500);
    two.extend(batch_with(&[700, 900], 10, Compression::None));
    two.extend(batch(1, 10, 800));
    let info = log.append(&mut two, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 5));
    assert_eq!((info.max_timestamp, info.offset_of_max_timestamp), (900, 4));
    assert!(!info.rolled && !info.flush_needed);
    let mut next = batch(2, 10, 1);
    let info = log.append(&mut next, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (6, 7));
}

#[test]
fn every_offset_reads_the_batch_that_contains_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    fill(&mut log, 200, 20);
    for offset in 0..log.log_end_offset() {
        let bytes = log.read(offset, 1, i64::MAX, true).unwrap().read().unwrap();
        let records = decode(&bytes);
        let (first, last) = (records[0].0, records.last().unwrap().0);
        assert!(
            first <= offset && offset <= last,
            "offset {offset} got {first}..={last}"
        );
    }
}

#[test]
fn read_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let stored = fill(&mut log, 10, 100);
    let sizes: Vec<usize> = stored.iter().map(Vec::len).collect();
    let leo = log.log_end_offset();

    // Whole batches only: a budget one byte short of two batches gives one.
    let slice = log.read(0, sizes[0] + sizes[1] - 1, leo, false).unwrap();
    assert_eq!(slice.len(), sizes[0]);
    // KIP-74: the first batch comes back whole even if over budget, unless
    // the caller already has data for the response.
    assert_eq!(log.read(0, 1, leo, true).unwrap().len(), sizes[0]);
    assert!(log.read(0, 1, leo, false).unwrap().is_empty());

    // The high watermark hides batches at and after it.
    let slice = log.read(0, 1 << 20, 3, true).unwrap();
    let records = decode(&slice.read().unwrap());
    assert_eq!(records.last().unwrap().0, 2);
    assert!(log.read(3, 1 << 20, 3, true).unwrap().is_empty());

    // Log end: empty; past it or below start: out of range.
    assert!(log.read(leo, 1 << 20, leo, true).unwrap().is_empty());
    assert!(matches!(
        log.read(leo + 1, 100, leo, true),
        Err(StorageError::OffsetOutOfRange { requested, log_start: 0, log_end }) if requested == leo + 1 && log_end == leo
    ));
    assert!(matches!(
        log.read(-1, 100, leo, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn high_watermark_is_clamped_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    fill(&mut log, 3, 10);
    log.set_high_watermark(1_000);
    assert_eq!(log.high_watermark(), log.log_end_offset());
    log.set_high_watermark(-5);
    assert_eq!(log.high_watermark(), 0);
}

#[test]
fn offset_for_timestamp_is_exact_within_compressed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    // Batch k holds timestamps 1000k + {30, 10, 20, 40}: out of order
    // inside a batch, as CreateTime allows.
    let mut all = Vec::new();
    for k in 0..40i64 {
        let ts: Vec<i64> = [30, 10, 20, 40].iter().map(|d| 1000 * k + d).collect();
        let mut b = batch_with(&ts, 50, codecs[k as usize % codecs.len()]);
        let info = log.append(&mut b, 0).unwrap();
        for (i, t) in ts.iter().enumerate() {
            all.push((info.first_offset + i as i64, *t));
        }
    }
    assert!(log.segment_count() > 3);
    let expect = |target: i64| all.iter().find(|(_, t)| *t >= target).copied();
    for target in (0..40 * 1000 + 100)
        .step_by(7)
        .chain([i64::MIN, 25, 39_040, 39_041])
    {
        assert_eq!(
            log.offset_for_timestamp(target).unwrap(),
            expect(target),
            "target {target}"
        );
    }
    // KIP-734: the record with the largest timestamp.
    assert_eq!(log.max_timestamp().unwrap(), Some((39_040, 159)));
}

#[test]
fn max_timestamp_of_an_empty_log_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
}

#[test]
fn segment_ms_rolls_by_the_first_batch_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let mut b = batch(1, 10, 10_000);
    assert!(!log.append(&mut b, 10_000).unwrap().rolled);
    let mut b = batch(1, 10, 10_500);
    assert!(!log.append(&mut b, 11_000).unwrap().rolled);
    let mut b = batch(1, 10, 10_900);
    assert!(log.append(&mut b, 11_001).unwrap().rolled);
    assert_eq!(log.segment_base_offsets(), [0, 2]);
}

#[test]
fn old_producer_timestamps_do_not_roll_every_append() {
    // Kafka counts segment.ms from the first batch's timestamp, so a
    // producer replaying year-old data would get a segment per append.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    for i in 0..10 {
        let mut b = batch(1, 10, 5);
        assert!(!log.append(&mut b, 1_000_000 + i).unwrap().rolled);
    }
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn flush_policy_and_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 5,
        flush_ms: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let mut b = batch(3, 10, 0);
    assert!(!log.append(&mut b, 0).unwrap().flush_needed);
    assert!(log.flush_due(100), "flush.ms");
    let mut b = batch(2, 10, 0);
    assert!(
        log.append(&mut b, 1).unwrap().flush_needed,
        "flush.messages"
    );

    // The group-commit shape: target under the lock, sync outside, mark.
    let target = log.flush_target();
    assert_eq!(target.up_to(), 5);
    let mut b = batch(1, 10, 0);
    log.append(&mut b, 2).unwrap();
    target.sync().unwrap();
    log.mark_flushed(target.up_to());
    assert_eq!(log.recovery_point(), 5);
    assert!(log.flush_due(1_000), "the later append is still unflushed");
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 6);
    assert!(!log.flush_due(10_000));
    assert!(log.flush_target().is_empty());
    log.mark_flushed(2);
    assert_eq!(log.recovery_point(), 6, "never moves backwards");
}

#[test]
fn truncate_to_removes_whole_batches_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    let stored = fill(&mut log, 200, 30);
    let segments_before = log.segment_count();
    log.set_high_watermark(i64::MAX);
    // Find a batch boundary in the middle and one offset inside a batch.
    let all = decode(&stored.concat());
    let mid_batch = decode(&stored[100]);
    let (boundary, inside) = (mid_batch[0].0, mid_batch[0].0 + 1);
    if mid_batch.len() > 1 {
        log.truncate_to(inside).unwrap();
        assert_eq!(log.log_end_offset(), boundary, "the batch goes whole");
    }
    log.truncate_to(boundary).unwrap();
    assert_eq!(log.log_end_offset(), boundary);
    assert!(log.segment_count() < segments_before);
    assert_eq!(log.high_watermark(), boundary);
    assert_eq!(read_all(&log, 0, 1 << 20), stored[..100].concat());
    // Appends continue at the new end, also after reopening.
    let mut b = batch(2, 10, 5);
    assert_eq!(log.append(&mut b, 0).unwrap().first_offset, boundary);
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), boundary + 2);
    assert!(all.len() as i64 > boundary);
}

#[test]
fn truncate_below_log_start_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    fill(&mut log, 50, 30);
    log.truncate_fully_and_start_at(1_000).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (1_000, 1_000)
    );
    assert_eq!(common::files_with_suffix(dir.path(), "log").len(), 1);
    let mut b = batch(1, 1, 1);
    assert_eq!(log.append(&mut b, 0).unwrap().first_offset, 1_000);
    assert!(matches!(
        log.read(0, 10, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn malformed_input_is_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let mut b = batch(2, 10, 1);
    b.truncate(b.len() - 1);
    assert!(matches!(
        log.append(&mut b, 0),
        Err(StorageError::InvalidBatches(_))
    ));
    assert!(matches!(
        log.append(&mut [], 0),
        Err(StorageError::InvalidBatches(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    // Still usable.
    let mut b = batch(2, 10, 1);
    log.append(&mut b, 0).unwrap();
}

#[test]
fn close_flushes_and_delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders-3");
    let mut log = Log::open(&path, LogConfig::default(), 0).unwrap();
    fill(&mut log, 5, 10);
    assert_eq!(log.close().unwrap(), 11);
    let mut log = Log::open(&path, LogConfig::default(), 11).unwrap();
    assert_eq!(log.log_end_offset(), 11);
    log.delete().unwrap();
    let mut b = batch(1, 1, 1);
    assert!(matches!(
        log.append(&mut b, 0),
        Err(StorageError::PreviousIoError)
    ));
    assert!(!path.exists());
}

#[test]
fn retention_by_size_deletes_oldest_segments_below_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    fill(&mut log, 200, 30);
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 4);
    // Nothing is below the high watermark yet.
    assert_eq!(log.delete_expired_segments(0, -1, 0).unwrap(), 0);
    log.set_high_watermark(bases[3]);
    // retention.bytes = 0 would delete everything, but only segments wholly
    // below the high watermark may go.
    assert_eq!(log.delete_expired_segments(0, -1, 0).unwrap(), 3);
    assert_eq!(log.log_start_offset(), bases[3]);
    assert_eq!(log.segment_base_offsets(), bases[3..]);
    assert_eq!(files_with_suffix(dir.path(), "log").len(), bases.len() - 3);
    assert!(matches!(
        log.read(bases[3] - 1, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // A generous limit deletes nothing.
    log.set_high_watermark(i64::MAX);
    assert_eq!(log.delete_expired_segments(0, -1, 1 << 40).unwrap(), 0);
    // Reopening finds the new log start.
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_start_offset(), bases[3]);
}

#[test]
fn retention_by_time_uses_the_newest_timestamp_and_keeps_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    // Timestamps 1_000 + i (see `fill`).
    fill(&mut log, 200, 30);
    let leo = log.log_end_offset();
    log.set_high_watermark(leo);
    let bases = log.segment_base_offsets();
    // Nothing older than 1 000 ms at t = 1 500.
    assert_eq!(log.delete_expired_segments(1_500, 1_000, -1).unwrap(), 0);
    // Everything expired: all segments go, an empty one continues at LEO.
    let deleted = log.delete_expired_segments(1_000_000, 1_000, -1).unwrap();
    assert_eq!(deleted, bases.len());
    assert_eq!(log.segment_base_offsets(), [leo]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (leo, leo));
    let mut b = batch(1, 1, 1);
    assert_eq!(log.append(&mut b, 0).unwrap().first_offset, leo);
}
