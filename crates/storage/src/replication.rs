//! What partition replication needs from a log: the leader-epoch history
//! (KIP-101/KIP-279 truncation), kept in step with the data, and appending
//! batches fetched from the leader as they are.

use std::path::Path;

use odradek_protocol::batch::{
    self, field, BatchError, BatchHeader, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH,
};

use crate::error::{Result, StorageError};
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::log::{AppendInfo, Log};
use crate::segment::Segment;

/// The offsets of one append must fit one segment's relative offsets
/// (the append rolls to a segment based at its first offset if needed).
const MAX_SPAN: i64 = i32::MAX as i64;

impl Log {
    /// The newest leader epoch in the cache, if any batch carried one.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The answer to OffsetsForLeaderEpoch for `epoch`: the largest epoch
    /// `<= epoch` in the log and the offset where it ends, with Kafka's
    /// `LeaderEpochFileCache.endOffsetFor` semantics (see
    /// `leader_epoch.rs`); `(-1, -1)` when unknown. A follower truncates to
    /// the smaller of this and its own end offset for the returned epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs
            .end_offset_for_epoch(epoch, self.log_end_offset())
    }

    /// `(epoch, start offset)` of every epoch in the log, oldest first.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// Records that `epoch` starts at the log end offset, for a replica
    /// becoming leader before it accepts writes (Kafka's
    /// `Partition.makeLeader`). Until the first write in the new epoch, a
    /// follower whose last epoch lies between this leader's last written
    /// epoch and `epoch` would otherwise be answered `(-1, -1)` instead of
    /// the point where the logs diverge. As in Kafka, the entry is dropped
    /// on reopen if nothing was written in the epoch.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<()> {
        let start = self.log_end_offset();
        // The checkpoint must never lack an epoch the data has.
        self.fence_on_error(|log| log.epochs.assign(epoch, start))
    }

    /// Appends v2 batches fetched from the leader, keeping their offsets,
    /// timestamps and epochs (Kafka's `appendAsFollower`). Every batch is
    /// checked as recovery checks it (length, CRC32C, codec, counts); the
    /// first must start at the log end offset and each later one after the
    /// previous one's last offset. A trailing partial batch, which a fetch
    /// response may end with, is left out: `AppendInfo::bytes` says how
    /// much was written, and `None` means nothing was (empty input, or
    /// only a partial batch). Rolling, indexing, epochs and flush
    /// bookkeeping are those of [`Log::append`]. Nothing is written if any
    /// batch is rejected.
    pub fn append_as_follower(
        &mut self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<Option<AppendInfo>> {
        if self.fenced {
            return Err(StorageError::PreviousIoError);
        }
        let (len, headers) = follower_batches(batches, self.log_end_offset())?;
        if headers.is_empty() {
            return Ok(None);
        }
        self.write_batches(&batches[..len], &headers, now_ms)
            .map(Some)
    }

    /// Records the epochs of batches about to be written.
    pub(crate) fn assign_epochs(&mut self, headers: &[BatchHeader]) -> Result<()> {
        let mut changed = false;
        for h in headers {
            changed |= self
                .epochs
                .assign_unsaved(h.partition_leader_epoch, h.base_offset);
        }
        if changed {
            self.epochs.save()?;
        }
        Ok(())
    }
}

/// The leader-epoch cache of a recovered log. Without a checkpoint (a
/// directory from before the cache existed, or an interrupted
/// `truncate_fully_and_start_at`) it is rebuilt from the epochs the
/// batches carry. The checkpoint may be ahead of the data, never behind
/// it: epochs are recorded before appends, truncation and retention change
/// the data first, and recovery may have cut the tail; so it is cut to the
/// log here.
pub(crate) fn load_epoch_cache(dir: &Path, segments: &[Segment]) -> Result<LeaderEpochCache> {
    let mut cache = match LeaderEpochCache::load(dir)? {
        Some(cache) => cache,
        None => {
            let mut cache = LeaderEpochCache::empty(dir);
            for segment in segments {
                segment.for_each_header(|h| {
                    cache.assign_unsaved(h.partition_leader_epoch, h.base_offset);
                })?;
            }
            cache.save()?;
            // A new partition has nothing to rebuild; only an upgraded one
            // is worth a line in the log.
            if !cache.entries().is_empty() {
                tracing::info!(
                    dir = %dir.display(),
                    entries = cache.entries().len(),
                    "rebuilt the leader-epoch checkpoint from the log"
                );
            }
            cache
        }
    };
    let log_start = segments.first().expect("at least one segment").base_offset;
    let log_end = segments.last().expect("at least one segment").next_offset;
    cache.truncate_from_end(log_end)?;
    cache.truncate_from_start(log_start)?;
    Ok(cache)
}

/// The length and headers of the whole batches at the front of `buf`,
/// which must continue a log ending at `log_end`. Checked with
/// `check_batch`, not the produce rules: the leader's log may hold batches
/// no producer could send (control batches, compacted batches).
fn follower_batches(buf: &[u8], log_end: i64) -> Result<(usize, Vec<BatchHeader>)> {
    let mut headers: Vec<BatchHeader> = Vec::new();
    let mut pos = 0;
    while pos < buf.len() && !is_partial_tail(&buf[pos..])? {
        let h = batch::check_batch(&buf[pos..])?;
        if headers.is_empty() && h.base_offset != log_end {
            return Err(StorageError::OffsetMismatch {
                expected: log_end,
                got: h.base_offset,
            });
        }
        let previous_last = headers.last().map_or(log_end - 1, BatchHeader::last_offset);
        let fits = h
            .base_offset
            .checked_add(i64::from(h.last_offset_delta))
            .is_some_and(|last| last - log_end <= MAX_SPAN);
        if h.base_offset <= previous_last || !fits {
            return Err(StorageError::OffsetsOutOfOrder {
                previous_last,
                base_offset: h.base_offset,
            });
        }
        pos += h.total_len();
        headers.push(h);
    }
    Ok((pos, headers))
}

/// Whether `rest` is the start of a batch cut off by the end of the
/// buffer (Kafka's `ByteBufferLogInputStream` draws the same line): it
/// claims more bytes than there are. A cut-off header that is already
/// implausible (length, magic) is an error, not a partial batch.
fn is_partial_tail(rest: &[u8]) -> Result<bool, BatchError> {
    let Some(len) = rest.get(field::BATCH_LENGTH..LOG_OVERHEAD) else {
        return Ok(true);
    };
    let len = i32::from_be_bytes(len.try_into().expect("four bytes"));
    if len < MIN_BATCH_LENGTH {
        return Err(BatchError::InvalidLength(len));
    }
    match rest.get(field::MAGIC) {
        Some(&magic) if magic as i8 != MAGIC_V2 => Err(BatchError::UnsupportedMagic(magic as i8)),
        _ => Ok(len as usize + LOG_OVERHEAD > rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use odradek_protocol::batch::iter_batches;

    use super::*;
    use crate::config::LogConfig;
    use crate::leader_epoch::LEADER_EPOCH_CHECKPOINT;
    use crate::test_batches::{batch, batch_at};

    const NOW: i64 = 1_000;

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    fn open(dir: &Path, config: LogConfig) -> Log {
        Log::open(dir, config, 0).unwrap()
    }

    fn reopen(log: Log) -> Log {
        let (dir, config) = (log.dir().to_path_buf(), log.config().clone());
        let recovery_point = log.close().unwrap();
        Log::open(&dir, config, recovery_point).unwrap()
    }

    fn pairs(log: &Log) -> Vec<(i32, i64)> {
        log.epoch_entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    fn checkpoint_text(log: &Log) -> String {
        fs::read_to_string(log.dir().join(LEADER_EPOCH_CHECKPOINT)).unwrap()
    }

    /// A leader append of one batch of `records` records stamped `epoch`.
    fn produce(log: &mut Log, records: usize, epoch: i32, tag: &str) -> AppendInfo {
        let mut b = batch(records, epoch, NOW, tag);
        log.append(&mut b, NOW).unwrap()
    }

    /// Leader appends of `count` batches of varying sizes.
    fn produce_many(log: &mut Log, count: usize, epoch: i32, tag: &str) {
        for i in 0..count {
            produce(log, i % 5 + 1, epoch, tag);
        }
    }

    /// Every batch of the log, concatenated, read as a consumer would.
    fn log_bytes(log: &Log) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = log.log_start_offset();
        let end = log.log_end_offset();
        while next < end {
            let bytes = log.read(next, 1 << 20, end, true).unwrap().read().unwrap();
            let (_, last) = iter_batches(&bytes).last().unwrap().unwrap();
            next = last.next_offset();
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Every file of a partition directory.
    fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                (name, fs::read(e.path()).unwrap())
            })
            .collect()
    }

    /// A replica fetcher: fetches `max_bytes` at a time from the
    /// follower's log end until it has caught up. Like a real fetch
    /// response, each one ends with the first half of the next batch.
    fn replicate(leader: &Log, follower: &mut Log, max_bytes: usize) -> Vec<AppendInfo> {
        let mut infos = Vec::new();
        while follower.log_end_offset() < leader.log_end_offset() {
            let from = follower.log_end_offset();
            let end = leader.log_end_offset();
            let mut response = leader
                .read(from, max_bytes, end, true)
                .unwrap()
                .read()
                .unwrap()
                .to_vec();
            let whole = response.len();
            let (_, last) = iter_batches(&response).last().unwrap().unwrap();
            if last.next_offset() < end {
                let next = leader.read(last.next_offset(), 1, end, true).unwrap();
                let next = next.read().unwrap();
                response.extend_from_slice(&next[..next.len() / 2]);
            }
            let info = follower
                .append_as_follower(&response, NOW)
                .unwrap()
                .unwrap();
            assert_eq!((info.first_offset, info.bytes), (from, whole));
            infos.push(info);
        }
        infos
    }

    /// The follower side of KIP-279: ask the leader where the follower's
    /// latest epoch ends; if the leader answers with an epoch the follower
    /// does not have, cut back to the follower's previous epoch and ask
    /// again; otherwise truncate to the smaller of both ends of that epoch.
    fn truncate_like_a_follower(leader: &Log, follower: &mut Log) {
        while let Some(epoch) = follower.latest_epoch() {
            let (leader_epoch, leader_end) = leader.end_offset_for_epoch(epoch);
            assert_ne!(leader_end, -1, "leader does not know epoch {epoch}");
            let (follower_epoch, follower_end) = follower.end_offset_for_epoch(leader_epoch);
            let follower_leo = follower.log_end_offset();
            if follower_end == -1 {
                follower.truncate_to(leader_end.min(follower_leo)).unwrap();
                return;
            }
            if follower_epoch != leader_epoch {
                follower
                    .truncate_to(follower_end.min(follower_leo))
                    .unwrap();
                continue;
            }
            follower
                .truncate_to(follower_end.min(leader_end).min(follower_leo))
                .unwrap();
            return;
        }
    }

    #[test]
    fn follower_append_keeps_offsets_timestamps_and_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        let bytes = [
            batch_at(0, 3, 0, 500),
            batch_at(3, 2, 0, 700),
            batch_at(5, 4, 2, 600),
        ]
        .concat();
        let info = log.append_as_follower(&bytes, NOW).unwrap().unwrap();
        assert_eq!(
            (info.first_offset, info.last_offset, info.bytes),
            (0, 8, bytes.len())
        );
        assert_eq!((info.max_timestamp, info.offset_of_max_timestamp), (700, 4));
        assert!(!info.rolled);
        assert_eq!(log.log_end_offset(), 9);
        assert_eq!(log_bytes(&log), bytes);
        assert_eq!(pairs(&log), [(0, 0), (2, 5)]);
        assert_eq!(log.end_offset_for_epoch(0), (0, 5));
        assert_eq!(log.end_offset_for_epoch(2), (2, 9));

        // Gaps between batches (a compacted leader log) are kept.
        let after_gap = batch_at(15, 2, 3, 800);
        let gapped = [batch_at(9, 1, 2, 800), after_gap.clone()].concat();
        let info = log.append_as_follower(&gapped, NOW).unwrap().unwrap();
        assert_eq!((info.first_offset, info.last_offset), (9, 16));
        assert_eq!(log.log_end_offset(), 17);
        let read = log.read(10, 1 << 20, 17, false).unwrap().read().unwrap();
        assert_eq!(&read[..], &after_gap[..]);
        assert_eq!(pairs(&log), [(0, 0), (2, 5), (3, 15)]);

        let log = reopen(log);
        assert_eq!(log.log_end_offset(), 17);
        assert_eq!(log_bytes(&log), [bytes, gapped].concat());
        assert_eq!(pairs(&log), [(0, 0), (2, 5), (3, 15)]);
    }

    #[test]
    fn follower_append_rejects_gaps_overlaps_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        log.append_as_follower(&batch_at(0, 3, 0, NOW), NOW)
            .unwrap()
            .unwrap();
        let before = (
            log.log_end_offset(),
            log.size_bytes(),
            dir_files(dir.path()),
        );

        let corrupt = |mut b: Vec<u8>| {
            *b.last_mut().unwrap() ^= 1;
            b
        };
        let crc_error = || -> StorageError {
            BatchError::CrcMismatch {
                expected: 0,
                actual: 0,
            }
            .into()
        };
        let mut bad_length_tail = batch_at(3, 1, 0, NOW);
        bad_length_tail.extend([0; 8]);
        bad_length_tail.extend(10i32.to_be_bytes());
        let mut bad_magic_tail = batch_at(5, 1, 0, NOW);
        bad_magic_tail[field::MAGIC] = 1;
        bad_magic_tail.truncate(40);
        // Further from the log end than a segment's relative offsets reach.
        let far = 4 + i64::from(i32::MAX);
        let cases: Vec<(Vec<u8>, StorageError)> = vec![
            (
                batch_at(4, 1, 0, NOW),
                StorageError::OffsetMismatch {
                    expected: 3,
                    got: 4,
                },
            ),
            (
                batch_at(2, 2, 0, NOW),
                StorageError::OffsetMismatch {
                    expected: 3,
                    got: 2,
                },
            ),
            (
                [batch_at(3, 3, 0, NOW), batch_at(5, 1, 0, NOW)].concat(),
                StorageError::OffsetsOutOfOrder {
                    previous_last: 5,
                    base_offset: 5,
                },
            ),
            (
                [batch_at(3, 1, 0, NOW), batch_at(far, 1, 0, NOW)].concat(),
                StorageError::OffsetsOutOfOrder {
                    previous_last: 3,
                    base_offset: far,
                },
            ),
            (corrupt(batch_at(3, 2, 5, NOW)), crc_error()),
            // Good batches in a new epoch before a bad one: none written,
            // and the epoch not recorded.
            (
                [
                    batch_at(3, 2, 5, NOW),
                    batch_at(5, 1, 5, NOW),
                    corrupt(batch_at(6, 1, 5, NOW)),
                ]
                .concat(),
                crc_error(),
            ),
            (bad_length_tail, BatchError::InvalidLength(10).into()),
            (
                [batch_at(3, 2, 0, NOW), bad_magic_tail].concat(),
                BatchError::UnsupportedMagic(1).into(),
            ),
        ];
        for (i, (bytes, expected)) in cases.into_iter().enumerate() {
            let err = log.append_as_follower(&bytes, NOW).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&expected),
                "case {i}: {err}"
            );
            match (&err, &expected) {
                (StorageError::InvalidBatches(a), StorageError::InvalidBatches(b)) => {
                    assert_eq!(
                        std::mem::discriminant(a),
                        std::mem::discriminant(b),
                        "case {i}"
                    )
                }
                _ => assert_eq!(err.to_string(), expected.to_string(), "case {i}"),
            }
            let after = (
                log.log_end_offset(),
                log.size_bytes(),
                dir_files(dir.path()),
            );
            assert!(after == before, "case {i} changed the log");
        }
        // The log still takes the right batch.
        log.append_as_follower(&batch_at(3, 1, 0, NOW), NOW)
            .unwrap()
            .unwrap();
        assert_eq!(log.log_end_offset(), 4);
    }

    #[test]
    fn a_trailing_partial_batch_is_left_out() {
        let whole = [batch_at(0, 2, 0, NOW), batch_at(2, 3, 0, NOW)].concat();
        let next = batch_at(5, 4, 1, NOW);
        // Cut inside the base offset, the length, before and after the
        // magic byte, inside the header and inside the records.
        for cut in [1, 11, 12, 16, 17, 60, 61, next.len() - 1] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path(), LogConfig::default());
            let input = [&whole[..], &next[..cut]].concat();
            let info = log.append_as_follower(&input, NOW).unwrap().unwrap();
            assert_eq!(
                (info.bytes, info.last_offset),
                (whole.len(), 4),
                "cut {cut}"
            );
            assert_eq!(log.log_end_offset(), 5);
            // The cut batch's epoch was not recorded either.
            assert_eq!(pairs(&log), [(0, 0)]);
            assert_eq!(log.append_as_follower(&next[..cut], NOW).unwrap(), None);
            assert_eq!(log.append_as_follower(&[], NOW).unwrap(), None);
            assert_eq!(log.size_bytes(), whole.len() as u64);
            log.append_as_follower(&next, NOW).unwrap().unwrap();
            assert_eq!(log_bytes(&log), [&whole[..], &next[..]].concat());
            assert_eq!(pairs(&log), [(0, 0), (1, 5)]);
        }
    }

    #[test]
    fn follower_appends_build_the_same_files_as_leader_appends() {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path(), small());
        produce_many(&mut leader, 30, 0, "a");
        produce_many(&mut leader, 30, 3, "b");
        assert!(leader.segment_count() > 3);

        // One batch per fetch: the same appends the leader made.
        let mut follower = open(follower_dir.path(), small());
        let infos = replicate(&leader, &mut follower, 1);
        assert_eq!(infos.len(), 60);
        assert_eq!(
            infos.iter().filter(|i| i.rolled).count(),
            leader.segment_count() - 1
        );
        assert_eq!(
            follower.segment_base_offsets(),
            leader.segment_base_offsets()
        );
        assert_eq!(pairs(&follower), pairs(&leader));
        let follower = reopen(follower);
        let leader = reopen(leader);
        assert_eq!(dir_files(follower_dir.path()), dir_files(leader_dir.path()));
        assert_eq!(follower.recovery_point(), leader.recovery_point());
    }

    #[test]
    fn multi_batch_follower_appends_roll_and_index() {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path(), small());
        produce_many(&mut leader, 40, 0, "a");
        produce_many(&mut leader, 40, 2, "b");

        let mut follower = open(follower_dir.path(), small());
        let infos = replicate(&leader, &mut follower, 900);
        assert!(infos.iter().any(|i| i.rolled));
        assert!(follower.segment_count() > 3);
        assert_eq!(log_bytes(&follower), log_bytes(&leader));
        assert_eq!(pairs(&follower), pairs(&leader));
        // Every offset is found through the follower's indexes.
        let end = follower.log_end_offset();
        for offset in 0..end {
            let bytes = follower.read(offset, 1, end, true).unwrap().read().unwrap();
            let (_, h) = iter_batches(&bytes).next().unwrap().unwrap();
            assert!(h.base_offset <= offset && offset <= h.last_offset());
        }
        let follower = reopen(follower);
        assert_eq!(log_bytes(&follower), log_bytes(&leader));
        assert_eq!(pairs(&follower), pairs(&leader));
    }

    #[test]
    fn epochs_follow_appends_and_truncation_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        assert_eq!(checkpoint_text(&log), "0\n0\n");
        produce(&mut log, 2, 0, "a"); // 0-1
        produce(&mut log, 3, 0, "a"); // 2-4
        produce(&mut log, 1, 1, "a"); // 5
        produce(&mut log, 2, 3, "a"); // 6-7
        produce(&mut log, 2, -1, "a"); // 8-9: unstamped, no entry
        assert_eq!(pairs(&log), [(0, 0), (1, 5), (3, 6)]);
        assert_eq!(checkpoint_text(&log), "0\n3\n0 0\n1 5\n3 6\n");
        assert_eq!(log.latest_epoch(), Some(3));
        assert_eq!(log.end_offset_for_epoch(1), (1, 6));
        assert_eq!(log.end_offset_for_epoch(2), (1, 6));
        assert_eq!(log.end_offset_for_epoch(3), (3, 10));
        assert_eq!(log.end_offset_for_epoch(4), (-1, -1));

        // The batch holding offset 7 goes whole, and epoch 3 with it.
        log.truncate_to(7).unwrap();
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(pairs(&log), [(0, 0), (1, 5)]);
        log.truncate_to(3).unwrap();
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(pairs(&log), [(0, 0)]);
        produce(&mut log, 1, 4, "b");
        assert_eq!(pairs(&log), [(0, 0), (4, 2)]);

        let log = reopen(log);
        assert_eq!(pairs(&log), [(0, 0), (4, 2)]);
        assert_eq!(checkpoint_text(&log), "0\n2\n0 0\n4 2\n");
        assert_eq!(log.end_offset_for_epoch(4), (4, 3));
    }

    #[test]
    fn a_directory_without_checkpoint_gets_one_from_its_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small());
        produce_many(&mut log, 20, 0, "a");
        produce_many(&mut log, 1, -1, "a");
        produce_many(&mut log, 20, 2, "a");
        produce_many(&mut log, 20, 5, "a");
        assert!(log.segment_count() > 2);
        let expected = pairs(&log);
        assert_eq!(expected.len(), 3);
        let text = checkpoint_text(&log);
        let end = log.log_end_offset();
        log.close().unwrap();

        // Both with everything trusted and with everything rescanned.
        for recovery_point in [end, 0] {
            fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
            let log = Log::open(dir.path(), small(), recovery_point).unwrap();
            assert_eq!(pairs(&log), expected);
            assert_eq!(checkpoint_text(&log), text);
        }
    }

    #[test]
    fn truncating_at_the_end_drops_an_epoch_that_never_got_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 2, 0, "a");
        // Led epoch 3 briefly and was deposed before writing in it.
        log.begin_leader_epoch(3).unwrap();
        assert_eq!(log.latest_epoch(), Some(3));
        log.truncate_to(log.log_end_offset()).unwrap();
        assert_eq!(pairs(&log), [(0, 0)]);
        assert_eq!(log.latest_epoch(), Some(0));
    }

    #[test]
    fn a_checkpoint_ahead_of_the_data_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), LogConfig::default());
        produce(&mut log, 2, 0, "a");
        produce(&mut log, 2, 2, "a");
        // A new leader's epoch starts at its log end before any write.
        log.begin_leader_epoch(5).unwrap();
        assert_eq!(pairs(&log), [(0, 0), (2, 2), (5, 4)]);
        assert_eq!(log.end_offset_for_epoch(2), (2, 4));
        assert_eq!(log.end_offset_for_epoch(3), (2, 4));
        let log = reopen(log);
        assert_eq!(pairs(&log), [(0, 0), (2, 2)]);

        // As after a crash between recording an epoch and writing its data.
        let dir_path = log.dir().to_path_buf();
        log.close().unwrap();
        fs::write(
            dir_path.join(LEADER_EPOCH_CHECKPOINT),
            "0\n4\n0 0\n2 2\n6 4\n7 90\n",
        )
        .unwrap();
        let log = Log::open(&dir_path, LogConfig::default(), 4).unwrap();
        assert_eq!(pairs(&log), [(0, 0), (2, 2)]);
        assert_eq!(checkpoint_text(&log), "0\n2\n0 0\n2 2\n");

        // A corrupt checkpoint refuses the open and says which file.
        log.close().unwrap();
        fs::write(dir_path.join(LEADER_EPOCH_CHECKPOINT), "0\n1\nzero 0\n").unwrap();
        let err = Log::open(&dir_path, LogConfig::default(), 4).err().unwrap();
        assert!(matches!(err, StorageError::Corrupt { .. }));
        assert!(err.to_string().contains(LEADER_EPOCH_CHECKPOINT), "{err}");
    }

    #[test]
    fn retention_and_full_truncation_move_the_first_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small());
        produce_many(&mut log, 25, 0, "a");
        let epoch_2_start = log.log_end_offset();
        produce_many(&mut log, 25, 2, "a");
        let end = log.log_end_offset();
        log.set_high_watermark(end);
        let segment_starts = log.segment_base_offsets();
        // The newest segment starting in epoch 0 becomes the log start.
        let keep = segment_starts
            .iter()
            .rposition(|&base| base < epoch_2_start)
            .unwrap();
        let bytes_to_keep: u64 = log.segments[keep..].iter().map(|s| s.size).sum();
        log.delete_expired_segments(NOW, -1, bytes_to_keep as i64)
            .unwrap();
        let start = log.log_start_offset();
        assert_eq!(start, segment_starts[keep]);
        assert!(start > 0);
        assert_eq!(pairs(&log), [(0, start), (2, epoch_2_start)]);
        let mut log = reopen(log);
        assert_eq!(pairs(&log), [(0, start), (2, epoch_2_start)]);

        log.truncate_fully_and_start_at(end + 100).unwrap();
        assert_eq!(pairs(&log), []);
        assert_eq!(checkpoint_text(&log), "0\n0\n");
        produce(&mut log, 1, 7, "b");
        assert_eq!(pairs(&log), [(7, end + 100)]);
        let log = reopen(log);
        assert_eq!(pairs(&log), [(7, end + 100)]);
    }

    /// Leader and follower share epoch 0 up to `shared` batches; the
    /// leader wrote more in epoch 0, then each wrote alone in the given
    /// epochs. The follower then truncates like a Kafka follower and
    /// catches up.
    fn diverge_and_converge(follower_epochs: &[i32], leader_epochs: &[i32]) {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(leader_dir.path(), small());
        let mut follower = open(follower_dir.path(), small());
        produce_many(&mut leader, 12, 0, "shared");
        replicate(&leader, &mut follower, 700);
        let diverged_at = follower.log_end_offset();
        produce_many(&mut leader, 3, 0, "leader-only");
        for &epoch in follower_epochs {
            follower.begin_leader_epoch(epoch).unwrap();
            produce_many(&mut follower, 7, epoch, "follower");
        }
        for &epoch in leader_epochs {
            leader.begin_leader_epoch(epoch).unwrap();
            produce_many(&mut leader, 9, epoch, "leader");
        }
        assert_ne!(log_bytes(&follower), log_bytes(&leader));

        truncate_like_a_follower(&leader, &mut follower);
        assert_eq!(follower.log_end_offset(), diverged_at);
        assert_eq!(follower.latest_epoch(), Some(0));
        replicate(&leader, &mut follower, 700);

        assert_eq!(log_bytes(&follower), log_bytes(&leader));
        assert_eq!(pairs(&follower), pairs(&leader));
        let follower = reopen(follower);
        assert_eq!(log_bytes(&follower), log_bytes(&leader));
        assert_eq!(pairs(&follower), pairs(&leader));
    }

    #[test]
    fn a_diverged_follower_truncates_and_ends_identical_to_the_leader() {
        // The follower led epoch 1 alone; the leader then led epoch 2.
        diverge_and_converge(&[1], &[2]);
        // Epochs interleaved, so the follower needs several round trips:
        // its epoch 3 ends, on the leader, at epoch 4's start; the follower
        // does not know epoch 2 and cuts back to epoch 1 to ask again.
        diverge_and_converge(&[1, 3], &[2, 4]);
    }
}
