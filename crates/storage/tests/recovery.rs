//! Crash recovery: what reopening a damaged partition directory keeps.
//!
//! Invariant under test (design doc, invariant 3): recovery truncates only
//! a torn or corrupt tail after the recovery point, detected by CRC32C,
//! never valid data.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use common::*;
use odradek_storage::{Log, LogConfig, StorageError};

fn last_log_file(dir: &Path) -> PathBuf {
    files_with_suffix(dir, "log").pop().unwrap()
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Appends `n` batches and returns (stored batches, bytes of the final
/// batch's segment file before it, so the final batch starts there).
fn log_with_batches(dir: &Path, config: &LogConfig, n: usize) -> Vec<Vec<u8>> {
    let mut log = Log::open(dir, config.clone(), 0).unwrap();
    let stored = fill(&mut log, n, 25);
    drop(log);
    stored
}

/// Reopens and checks the log holds exactly `expected` and accepts appends
/// at the right offset.
fn assert_log_is(dir: &Path, config: &LogConfig, recovery_point: i64, expected: &[Vec<u8>]) {
    let mut log = Log::open(dir, config.clone(), recovery_point).unwrap();
    let bytes = expected.concat();
    let records = decode(&bytes);
    let leo = records.last().map_or(0, |r| r.0 + 1);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(read_all(&log, 0, 1 << 20), bytes);
    for offset in 0..leo {
        let got = decode(&log.read(offset, 1, leo, true).unwrap().read().unwrap());
        assert!(got[0].0 <= offset && offset <= got.last().unwrap().0);
    }
    let mut b = batch(2, 5, 7);
    assert_eq!(log.append(&mut b, 0).unwrap().first_offset, leo);
    assert_eq!(
        decode(
            &log.read(leo, 1 << 20, leo + 2, true)
                .unwrap()
                .read()
                .unwrap()
        )[0]
        .0,
        leo
    );
}

#[test]
fn torn_tail_at_every_byte_of_the_final_batch_loses_only_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let stored = log_with_batches(dir.path(), &config, 40);
    let last = last_log_file(dir.path());
    let full_len = fs::metadata(&last).unwrap().len();
    let final_len = stored.last().unwrap().len() as u64;
    let pristine = fs::read(&last).unwrap();
    let indexes: Vec<(PathBuf, Vec<u8>)> = ["index", "timeindex"]
        .iter()
        .map(|s| {
            let p = last.with_extension(s);
            let c = fs::read(&p).unwrap();
            (p, c)
        })
        .collect();
    for cut in (full_len - final_len)..full_len {
        fs::write(&last, &pristine).unwrap();
        for (p, c) in &indexes {
            fs::write(p, c).unwrap();
        }
        set_len(&last, cut);
        assert_log_is(dir.path(), &config, 0, &stored[..stored.len() - 1]);
        // Recovery truncated the file back to the last whole batch, and the
        // append above went after it.
        let log = Log::open(dir.path(), config.clone(), 0).unwrap();
        let expected_records = decode(&stored[..stored.len() - 1].concat()).len() as i64 + 2;
        assert_eq!(log.log_end_offset(), expected_records, "cut {cut}");
    }
}

#[test]
fn torn_tail_with_recovery_point_in_an_earlier_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let stored = log_with_batches(dir.path(), &config, 60);
    let segments = files_with_suffix(dir.path(), "log");
    assert!(segments.len() >= 3);
    let last = segments.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    set_len(last, len - 3);
    // The recovery point lies in the first segment: it and all later
    // segments are scanned.
    assert_log_is(dir.path(), &config, 5, &stored[..stored.len() - 1]);
}

#[test]
fn a_corrupt_byte_truncates_from_that_batch_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let stored = log_with_batches(dir.path(), &config, 40);
    let last = last_log_file(dir.path());
    let mut bytes = fs::read(&last).unwrap();
    let final_start = bytes.len() - stored.last().unwrap().len();
    bytes[final_start + 40] ^= 0x20; // inside the CRC-covered header
    fs::write(&last, &bytes).unwrap();
    assert_log_is(dir.path(), &config, 0, &stored[..stored.len() - 1]);
}

#[test]
fn corruption_in_a_middle_segment_after_the_recovery_point_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let stored = log_with_batches(dir.path(), &config, 80);
    let segments = files_with_suffix(dir.path(), "log");
    assert!(segments.len() >= 4);
    // Damage the first batch of the second segment.
    let victim = &segments[1];
    let mut bytes = fs::read(victim).unwrap();
    bytes[70] ^= 0xff;
    fs::write(victim, &bytes).unwrap();
    let first_segment_batches = {
        let first = fs::read(&segments[0]).unwrap();
        let mut n = 0;
        let mut len = 0;
        while len < first.len() {
            len += stored[n].len();
            n += 1;
        }
        n
    };
    assert_log_is(dir.path(), &config, 0, &stored[..first_segment_batches]);
    let remaining = files_with_suffix(dir.path(), "log");
    assert_eq!(remaining.len(), 2, "{remaining:?}");
}

#[test]
fn zero_filled_tail_is_torn_not_data() {
    // What a crash can leave when the file size reached disk but the data
    // did not.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let stored = log_with_batches(dir.path(), &config, 10);
    let last = last_log_file(dir.path());
    let len = fs::metadata(&last).unwrap().len();
    set_len(&last, len + 5000);
    assert_log_is(dir.path(), &config, 0, &stored);
}

#[test]
fn missing_or_garbled_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        // Wider than most batches, so some segments end with batches that
        // have no offset-index entry and the final time-index entry that a
        // roll writes matters.
        index_interval_bytes: 300,
        ..LogConfig::default()
    };
    let stored = log_with_batches(dir.path(), &config, 120);
    let leo = decode(&stored.concat()).len() as i64;
    let indexes = files_with_suffix(dir.path(), "index");
    let time_indexes = files_with_suffix(dir.path(), "timeindex");
    assert!(indexes.len() >= 4);
    assert!(fs::metadata(&indexes[0]).unwrap().len() > 0);
    let originals: Vec<Vec<u8>> = indexes
        .iter()
        .chain(&time_indexes)
        .map(|p| fs::read(p).unwrap())
        .collect();

    // Segment 0: index deleted. Segment 1: ragged length. Segment 2:
    // entries out of order / pointing past the file. Time index of
    // segment 0: garbage.
    fs::remove_file(&indexes[0]).unwrap();
    let mut ragged = fs::read(&indexes[1]).unwrap();
    ragged.push(7);
    fs::write(&indexes[1], ragged).unwrap();
    fs::write(&indexes[2], [0xffu8; 16]).unwrap();
    fs::write(&time_indexes[0], [0x11u8; 24]).unwrap();

    // Recovery point at the log end: these segments are trusted, so only
    // the sanity check can catch the damage.
    assert_log_is(dir.path(), &config, leo, &stored);
    let log = Log::open(dir.path(), config.clone(), leo).unwrap();
    drop(log);
    // The rebuilt files equal what appends wrote (the extra batch appended
    // by assert_log_is only touched the last segment).
    let n = indexes.len();
    for (i, p) in indexes.iter().chain(&time_indexes).enumerate() {
        if i == n - 1 || i == 2 * n - 1 {
            continue;
        }
        assert_eq!(&fs::read(p).unwrap(), &originals[i], "{}", p.display());
    }
}

#[test]
fn corruption_below_the_recovery_point_is_reported_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let stored = log_with_batches(dir.path(), &config, 60);
    let leo = decode(&stored.concat()).len() as i64;
    let segments = files_with_suffix(dir.path(), "log");
    let mut bytes = fs::read(&segments[0]).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&segments[0], &bytes).unwrap();
    // Trusted and its index is sane: opens (the damage is found by readers
    // decoding, not here), and nothing is truncated.
    let log = Log::open(dir.path(), config.clone(), leo).unwrap();
    assert_eq!(log.log_end_offset(), leo);
    drop(log);
    // Force an index rebuild: now the scan meets the damage and refuses.
    fs::remove_file(segments[0].with_extension("index")).unwrap();
    fs::write(segments[0].with_extension("index"), [0xffu8; 8]).unwrap();
    match Log::open(dir.path(), config.clone(), leo) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, segments[0]),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened a log with corrupt flushed data"),
    }
    assert_eq!(fs::read(&segments[0]).unwrap(), bytes, "never truncated");
}

#[test]
fn leftovers_are_cleaned_and_other_files_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let stored = log_with_batches(dir.path(), &config, 5);
    let stray_index = dir.path().join("00000000000000099999.index");
    let deleted = dir.path().join("00000000000000000000.log.deleted");
    let snapshot = dir.path().join("00000000000000000003.snapshot");
    let metadata = dir.path().join("partition.metadata");
    for p in [&stray_index, &deleted, &snapshot, &metadata] {
        fs::write(p, b"x").unwrap();
    }
    assert_log_is(dir.path(), &config, 0, &stored);
    assert!(!stray_index.exists() && !deleted.exists());
    assert!(snapshot.exists() && metadata.exists());
}

#[test]
fn reopen_with_recovery_point_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
    let mut stored = fill(&mut log, 100, 30);
    let rp = log.close().unwrap();
    assert_eq!(rp, decode(&stored.concat()).len() as i64);
    for _ in 0..3 {
        let mut log = Log::open(dir.path(), config.clone(), rp).unwrap();
        assert_eq!(log.recovery_point(), rp.min(log.log_end_offset()));
        assert_eq!(read_all(&log, 0, 1 << 16), stored.concat());
        // Timestamps are still found after reopening (time indexes and
        // per-segment maxima come back from disk).
        assert_eq!(
            log.offset_for_timestamp(1_050).unwrap().map(|x| x.1),
            Some(1_050)
        );
        let mut b = batch(1, 10, 5_000);
        log.append(&mut b, 0).unwrap();
        stored.push(b);
        drop(log);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A crash can cut the last segment anywhere: recovery keeps exactly
        /// the batches that end at or before the cut, whatever the batch
        /// sizes and segment boundaries.
        #[test]
        fn any_cut_of_the_last_segment_keeps_exactly_the_whole_batches(
            sizes in prop::collection::vec((1usize..5, 0usize..300), 1..40),
            cut_fraction in 0.0f64..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let config = small_config();
            let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
            let stored: Vec<Vec<u8>> = sizes
                .iter()
                .map(|&(records, value_len)| {
                    let mut b = batch(records, value_len, 7);
                    log.append(&mut b, 0).unwrap();
                    b
                })
                .collect();
            drop(log);
            let last = last_log_file(dir.path());
            let len = fs::metadata(&last).unwrap().len();
            let cut = (len as f64 * cut_fraction) as u64;
            set_len(&last, cut);
            // Batches in earlier segments, plus those of the last segment
            // that end at or before the cut.
            let earlier = stored.concat().len() as u64 - len;
            let mut end = 0u64;
            let kept: Vec<Vec<u8>> = stored
                .iter()
                .take_while(|b| {
                    end += b.len() as u64;
                    end <= earlier + cut
                })
                .cloned()
                .collect();
            assert_log_is(dir.path(), &config, 0, &kept);
        }
    }
}

#[test]
fn an_empty_directory_reopens_at_the_recovery_point() {
    // What a crash between "delete every segment" and "create the new one"
    // of truncate_fully_and_start_at leaves: offsets must not restart at 0.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    fill(&mut log, 10, 10);
    let rp = log.close().unwrap();
    for p in fs::read_dir(dir.path()).unwrap() {
        fs::remove_file(p.unwrap().path()).unwrap();
    }
    let log = Log::open(dir.path(), small_config(), rp).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (rp, rp));
}
