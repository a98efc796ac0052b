//! Kafka's leader-epoch cache (`LeaderEpochFileCache`): for every leader
//! epoch that wrote to the log, the offset of its first record.
//!
//! Replication needs it to find where a follower's log diverged from the
//! leader's (KIP-101, KIP-279): the follower asks the leader where its
//! latest epoch ends and truncates there. Truncating to the high watermark
//! instead, as before KIP-101, can lose acknowledged records or leave two
//! replicas with different records at the same offset.
//!
//! Persisted in the partition directory as `leader-epoch-checkpoint`, in
//! Kafka's format, rewritten atomically on every change:
//!
//! ```text
//! 0          version
//! 2          number of entries
//! 0 0        epoch start_offset
//! 3 150
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::{checkpoint_text, entry_lines, write_atomically};
use crate::error::{IoContext, Result, StorageError};
use crate::log::sync_dir;
use crate::segment::remove_if_exists;

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's `UNDEFINED_EPOCH`: no epoch (OffsetsForLeaderEpoch answers it
/// when the requested epoch is unknown).
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`, the end offset paired with
/// [`UNDEFINED_EPOCH`].
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// A leader epoch and the offset of its first record in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache and its checkpoint file. Entries increase strictly in both
/// epoch and start offset. Mutators update memory first and then rewrite
/// the file; after a failed write the file may be stale (see
/// `Log::open`, which repairs a file that is ahead of the data).
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache for the partition directory `dir`; nothing is
    /// written until `save`.
    pub(crate) fn empty(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries: Vec::new(),
        }
    }

    /// Reads the checkpoint in `dir`; `None` if there is no file.
    pub(crate) fn load(dir: &Path) -> Result<Option<LeaderEpochCache>> {
        let mut cache = LeaderEpochCache::empty(dir);
        let text = match fs::read_to_string(&cache.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).context(|| format!("reading {}", cache.path.display())),
        };
        cache.entries = parse(&text).map_err(|reason| StorageError::Corrupt {
            path: cache.path.clone(),
            reason,
        })?;
        Ok(Some(cache))
    }

    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`, the answer to
    /// OffsetsForLeaderEpoch: the largest known epoch `<= requested` and
    /// where it ends (the start of the next known epoch). The latest epoch
    /// ends at the log end offset. An epoch below every known one is
    /// answered with itself and the first known start offset (KIP-279: the
    /// data before it is gone, and the follower must start there anyway;
    /// Kafka's javadoc still describes the pre-KIP-279 `(-1, -1)`, its code
    /// does this). Undefined or newer than every known epoch: `(-1, -1)`.
    pub(crate) fn end_offset_for_epoch(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1) {
            None => (requested, next.start_offset),
            Some(floor) => (self.entries[floor].epoch, next.start_offset),
        }
    }

    /// `assign_unsaved`, then writes the file if the cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        if self.assign_unsaved(epoch, start_offset) {
            self.save()?;
        }
        Ok(())
    }

    /// Records that `epoch` starts at `start_offset`, with Kafka's rule: a
    /// change only if the epoch differs from the latest one or starts
    /// earlier than it; entries at or after the new one (in epoch or in
    /// offset) are dropped first, so the cache always describes the newest
    /// data even if it arrives with an older epoch. Negative epochs (batches
    /// never stamped by a leader) are ignored. Returns whether it changed.
    pub(crate) fn assign_unsaved(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|last| epoch != last.epoch || start_offset < last.start_offset);
        if !needed {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|e| e.epoch < epoch && e.start_offset < start_offset);
        let removed = self.entries.split_off(keep);
        // A removed entry starting exactly here had no data (a leader that
        // was elected and deposed before writing); anything else means the
        // log was not truncated where the epochs said it should be.
        if removed.len() > 1
            || removed
                .first()
                .is_some_and(|e| e.start_offset != start_offset)
        {
            tracing::warn!(
                file = %self.path.display(),
                epoch,
                start_offset,
                ?removed,
                "new leader epoch entry replaced conflicting entries"
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops the entries starting at or after `offset`, the new log end
    /// offset after a truncation.
    pub(crate) fn truncate_from_end(&mut self, offset: i64) -> Result<()> {
        let keep = self.entries.partition_point(|e| e.start_offset < offset);
        if offset < 0 || keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.save()
    }

    /// The log now starts at `offset`: drops entries wholly below it and
    /// moves the start of the epoch containing `offset` up to it, so the
    /// first entry never names offsets the log no longer has.
    pub(crate) fn truncate_from_start(&mut self, offset: i64) -> Result<()> {
        let at_or_below = self.entries.partition_point(|e| e.start_offset <= offset);
        let unchanged =
            at_or_below == 0 || (at_or_below == 1 && self.entries[0].start_offset == offset);
        if unchanged {
            return Ok(());
        }
        self.entries.drain(..at_or_below - 1);
        self.entries[0].start_offset = offset;
        self.save()
    }

    /// Empties the cache and writes the (empty) file.
    pub(crate) fn clear(&mut self) -> Result<()> {
        self.entries.clear();
        self.save()
    }

    /// Removes the file (memory is unchanged). Until the next `save`, a
    /// reopened log rebuilds the cache from its batches.
    pub(crate) fn remove_file(&self) -> Result<()> {
        remove_if_exists(&self.path)?;
        match self.path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    pub(crate) fn save(&self) -> Result<()> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        write_atomically(&self.path, checkpoint_text(&lines).as_bytes())
    }
}

fn parse(text: &str) -> std::result::Result<Vec<EpochEntry>, String> {
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in entry_lines(text)? {
        let mut fields = line.split(' ');
        let (Some(epoch), Some(start_offset), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("malformed entry {line:?}"));
        };
        let epoch: i32 = epoch
            .parse()
            .map_err(|_| format!("bad epoch in {line:?}"))?;
        let start_offset: i64 = start_offset
            .parse()
            .map_err(|_| format!("bad start offset in {line:?}"))?;
        if epoch < 0 || start_offset < 0 {
            return Err(format!("negative epoch or offset in {line:?}"));
        }
        if entries
            .last()
            .is_some_and(|prev| epoch <= prev.epoch || start_offset <= prev.start_offset)
        {
            return Err(format!("entry {line:?} does not follow the previous one"));
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(dir: &Path, entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::empty(dir);
        for &(epoch, offset) in entries {
            cache.assign(epoch, offset).unwrap();
        }
        cache
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    fn file_text(dir: &Path) -> String {
        fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap()
    }

    #[test]
    fn checkpoint_is_kafkas_text_format_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_with(dir.path(), &[(0, 0), (3, 150)]);
        assert_eq!(file_text(dir.path()), "0\n2\n0 0\n3 150\n");
        let loaded = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.entries(), cache.entries());
        loaded.save().unwrap();
        assert_eq!(file_text(dir.path()), "0\n2\n0 0\n3 150\n");

        LeaderEpochCache::empty(dir.path()).save().unwrap();
        assert_eq!(file_text(dir.path()), "0\n0\n");
        let empty = LeaderEpochCache::load(dir.path()).unwrap().unwrap();
        assert!(empty.entries().is_empty());
    }

    #[test]
    fn missing_file_is_none_and_corrupt_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LeaderEpochCache::load(dir.path()).unwrap().is_none());
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0\n",
            "0\n1\n0 0 0\n",
            "0\n1\nx 0\n",
            "0\n1\n0 -5\n",
            "0\n2\n3 0\n2 10\n",
            "0\n2\n1 10\n2 10\n",
            "0\n1\n0 0\n7 7\n",
        ] {
            fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), bad).unwrap();
            let err = LeaderEpochCache::load(dir.path()).unwrap_err();
            assert!(matches!(err, StorageError::Corrupt { .. }), "{bad:?}");
            assert!(err.to_string().contains(LEADER_EPOCH_CHECKPOINT), "{err}");
        }
    }

    #[test]
    fn end_offset_for_epoch_follows_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_with(dir.path(), &[(1, 10), (3, 150), (6, 400)]);
        let leo = 500;
        for (requested, expected) in [
            // Undefined epoch.
            (-1, (-1, -1)),
            // Older than every known epoch: itself, ending at the first start.
            (0, (0, 10)),
            // Known epochs end where the next one starts.
            (1, (1, 150)),
            (3, (3, 400)),
            // Unknown epochs between known ones: the floor epoch.
            (2, (1, 150)),
            (4, (3, 400)),
            (5, (3, 400)),
            // The latest epoch ends at the log end.
            (6, (6, leo)),
            // Newer than every known epoch.
            (7, (-1, -1)),
        ] {
            assert_eq!(
                cache.end_offset_for_epoch(requested, leo),
                expected,
                "requested {requested}"
            );
        }
        let empty = LeaderEpochCache::empty(dir.path());
        for requested in [-1, 0, 5] {
            assert_eq!(empty.end_offset_for_epoch(requested, leo), (-1, -1));
        }
    }

    #[test]
    fn assign_keeps_both_columns_increasing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache_with(dir.path(), &[(0, 0), (2, 100)]);
        // The same epoch at a later offset, and unstamped batches, are no-ops.
        cache.assign(2, 180).unwrap();
        cache.assign(-1, 200).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100)]);
        cache.assign(5, 200).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100), (5, 200)]);
        assert_eq!(cache.latest_epoch(), Some(5));
        // A newer epoch starting below existing entries replaces them.
        cache.assign(6, 150).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100), (6, 150)]);
        // The latest epoch starting earlier moves back.
        cache.assign(6, 120).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100), (6, 120)]);
        // Data of an older epoch after newer entries wins, as in Kafka.
        cache.assign(1, 300).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (1, 300)]);
        assert_eq!(file_text(dir.path()), "0\n2\n0 0\n1 300\n");
    }

    #[test]
    fn truncation_from_either_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = cache_with(dir.path(), &[(0, 0), (2, 100), (5, 200)]);
        cache.truncate_from_end(300).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100), (5, 200)]);
        cache.truncate_from_end(200).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100)]);
        cache.truncate_from_end(-1).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100)]);
        assert_eq!(file_text(dir.path()), "0\n2\n0 0\n2 100\n");

        let mut cache = cache_with(dir.path(), &[(0, 0), (2, 100), (5, 200)]);
        cache.truncate_from_start(0).unwrap();
        assert_eq!(pairs(&cache), [(0, 0), (2, 100), (5, 200)]);
        // The epoch holding the new start is kept, re-based to it.
        cache.truncate_from_start(150).unwrap();
        assert_eq!(pairs(&cache), [(2, 150), (5, 200)]);
        cache.truncate_from_start(200).unwrap();
        assert_eq!(pairs(&cache), [(5, 200)]);
        cache.truncate_from_start(900).unwrap();
        assert_eq!(pairs(&cache), [(5, 900)]);
        assert_eq!(file_text(dir.path()), "0\n1\n5 900\n");

        cache.clear().unwrap();
        assert_eq!(cache.latest_epoch(), None);
        assert_eq!(file_text(dir.path()), "0\n0\n");
    }
}
