//! One partition's log: an ordered list of segments, the last one active.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use odradek_protocol::batch::{self, BatchError, BatchHeader};

use crate::config::LogConfig;
use crate::error::{IoContext, Result, StorageError};
use crate::leader_epoch::LeaderEpochCache;
use crate::recovery;
use crate::replication;
use crate::segment::{Repair, Segment};

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Largest batch maxTimestamp among the appended batches.
    pub max_timestamp: i64,
    /// Last offset of the (first) batch carrying `max_timestamp`, as in
    /// Kafka's segment bookkeeping.
    pub offset_of_max_timestamp: i64,
    /// Bytes written: all of the input, except that a follower append
    /// leaves out a trailing partial batch.
    pub bytes: usize,
    /// The append started a new segment. Kafka flushes the previous segment
    /// in the background at this point; the broker may schedule a flush.
    pub rolled: bool,
    /// `flush.messages` or `flush.ms` says it is time to flush.
    pub flush_needed: bool,
}

/// One partition's log. Not internally synchronised: the owner wraps it in
/// a mutex, and does the slow parts (`ReadSlice::read`,
/// `FlushTarget::sync`) after releasing it.
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Oldest first; never empty; the last is the active segment.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) high_watermark: i64,
    pub(crate) recovery_point: i64,
    /// Set by a failed write; appends are refused until reopening.
    pub(crate) fenced: bool,
    /// Time of the oldest append not yet covered by `mark_flushed`.
    pub(crate) first_unflushed_ms: Option<i64>,
    /// Base offset of the newest segment whose directory entry may not be
    /// durable yet (the next flush syncs the directory).
    pub(crate) unsynced_segment_base: Option<i64>,
    /// Where each leader epoch starts (`leader_epoch.rs`).
    pub(crate) epochs: LeaderEpochCache,
}

impl Log {
    /// Opens the log in `dir`, creating the directory if missing, and runs
    /// recovery (see `recovery.rs`). `recovery_point` comes from the
    /// `recovery-point-offset-checkpoint` file (0 if unknown): everything
    /// below it is known to be on disk. Loads the leader-epoch cache, or
    /// rebuilds it from the batches if the directory has no checkpoint.
    pub fn open(dir: &Path, config: LogConfig, recovery_point: i64) -> Result<Log> {
        let created = !dir.exists();
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let segments = recovery::load_segments(dir, &config, recovery_point)?;
        let epochs = replication::load_epoch_cache(dir, &segments)?;
        if created {
            // A new partition: make its directory and first segment durable
            // now; this is rare and keeps flushes simple.
            sync_dir(dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let log_start_offset = segments[0].base_offset;
        let log_end = segments.last().expect("at least one segment").next_offset;
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            high_watermark: log_start_offset,
            recovery_point: recovery_point.clamp(log_start_offset, log_end),
            fenced: false,
            first_unflushed_ms: None,
            unsynced_segment_base: None,
            epochs,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high watermark, clamped to `[log_start, log_end]`.
    pub fn set_high_watermark(&mut self, hw: i64) {
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset());
    }

    /// Offsets below this are durable (fsynced).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments.last().expect("at least one segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("at least one segment")
    }

    /// Appends already-validated v2 batches. Assigns offsets in place from
    /// the log end offset, rolls the segment if size, age, index space or
    /// relative-offset range demand it, and writes the bytes with one
    /// positional write. Per-batch work is header-only.
    pub fn append(&mut self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo> {
        if self.fenced {
            return Err(StorageError::PreviousIoError);
        }
        let mut headers = headers_of(batches)?;
        let first_offset = self.log_end_offset();
        batch::assign_offsets(batches, first_offset);
        let mut next = first_offset;
        for h in &mut headers {
            h.base_offset = next;
            next = h.next_offset();
        }
        self.write_batches(batches, &headers, now_ms)
    }

    /// Writes batches whose offsets are final, at the log end. Leader and
    /// follower appends share it so that both roll segments, index, track
    /// epochs and count towards flushing identically.
    pub(crate) fn write_batches(
        &mut self,
        bytes: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let first_offset = headers.first().expect("non-empty").base_offset;
        let last_offset = headers.last().expect("non-empty").last_offset();
        let mut info = AppendInfo {
            first_offset,
            last_offset,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: last_offset,
            bytes: bytes.len(),
            rolled: false,
            flush_needed: false,
        };
        for h in headers {
            if h.max_timestamp > info.max_timestamp {
                info.max_timestamp = h.max_timestamp;
                info.offset_of_max_timestamp = h.last_offset();
            }
        }
        // Epochs are recorded before the data, as Kafka does: a crash in
        // between leaves an entry at the log end, which `open` drops, while
        // the other order could leave data of an epoch the checkpoint lacks.
        // A failed write fences for the same reason.
        self.fence_on_error(|log| log.assign_epochs(headers))?;
        if self
            .active()
            .should_roll(&self.config, bytes.len() as u64, last_offset, now_ms)
        {
            self.fence_on_error(|log| log.roll())?;
            info.rolled = true;
        }
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        let written = active.append(bytes, headers, interval, now_ms);
        if let Err(source) = written {
            self.fenced = true;
            return Err(StorageError::Io {
                context: format!("appending to {}", self.active().log_path().display()),
                source,
            });
        }
        self.first_unflushed_ms.get_or_insert(now_ms);
        info.flush_needed = self.flush_due(now_ms);
        Ok(info)
    }

    /// Whether the flush policy (`flush.messages`, `flush.ms`) asks for a
    /// flush now.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        let unflushed = (self.log_end_offset() - self.recovery_point).max(0) as u64;
        let aged = self.first_unflushed_ms.is_some_and(|since| {
            u64::try_from(now_ms.saturating_sub(since)).unwrap_or(0) >= self.config.flush_ms
        });
        (unflushed > 0 && unflushed >= self.config.flush_messages) || aged
    }

    pub(crate) fn fence_on_error<T>(&mut self, f: impl FnOnce(&mut Log) -> Result<T>) -> Result<T> {
        let result = f(self);
        if result.is_err() {
            self.fenced = true;
        }
        result
    }

    /// Replaces the settings; they apply from the next append (a smaller
    /// `segment.bytes` rolls the active segment then).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub(crate) fn roll_for_retention(&mut self) -> Result<()> {
        self.fence_on_error(|log| log.roll())
    }

    /// Starts a new active segment at the log end offset.
    fn roll(&mut self) -> Result<()> {
        let base = self.log_end_offset();
        self.active_mut().seal()?;
        let segment = Segment::create(&self.dir, base)?;
        self.segments.push(segment);
        self.unsynced_segment_base = Some(base);
        tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
        Ok(())
    }

    /// Removes every record at or after `offset` (for replication: a
    /// follower truncating to the leader's epoch boundary). A batch
    /// containing `offset` is removed whole, so the new log end offset may
    /// be below `offset`, as in Kafka. Truncation is made durable before
    /// returning, so removed records cannot reappear after a crash. Epochs
    /// starting at or after the new log end are forgotten.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.log_end_offset() {
            // Nothing to cut, but an epoch entry may start at the end with
            // no data in it: this replica led briefly and was deposed before
            // writing. The leader never had that epoch, so it goes (Kafka's
            // UnifiedLog.truncateTo does the same).
            let end = self.log_end_offset();
            return self.epochs.truncate_from_end(end);
        }
        if offset <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        self.fence_on_error(|log| log.truncate_segments(offset))?;
        let end = self.log_end_offset();
        self.high_watermark = self.high_watermark.min(end);
        self.recovery_point = self.recovery_point.min(end);
        // The new end, not `offset`: an epoch whose first batch was cut
        // whole would otherwise keep an entry without data.
        self.epochs.truncate_from_end(end)
    }

    fn truncate_segments(&mut self, offset: i64) -> Result<()> {
        // Segments starting at or after `offset` go entirely (but keep one).
        let keep = self
            .segments
            .partition_point(|s| s.base_offset < offset)
            .max(1);
        // Newest first: a crash part-way leaves a shorter valid log.
        for dropped in self.segments.drain(keep..).rev() {
            dropped.delete_files()?;
        }
        let interval = self.config.index_interval_bytes;
        let active = self.segments.last_mut().expect("at least one segment");
        let cut = active
            .find_batch(&mut active.reader(), offset)?
            .map_or(active.size, |(pos, _)| pos);
        active
            .log_file()
            .set_len(cut)
            .context(|| format!("truncating {}", active.log_path().display()))?;
        // Rebuild the segment's indexes and bookkeeping exactly by
        // rescanning it; truncation is rare and this keeps one code path.
        let min_offset = active.base_offset;
        active.recover(min_offset, interval, Repair::Truncate)?;
        active.activate()?;
        for file in active.files() {
            file.sync_all()
                .context(|| format!("syncing {}", active.log_path().display()))?;
        }
        sync_dir(&self.dir)
    }

    /// Deletes all segments and starts an empty log at `offset` (Kafka's
    /// `truncateFullyAndStartAt`), with an empty leader-epoch cache.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        self.fence_on_error(|log| {
            // Without a checkpoint, a crash part-way reopens with the cache
            // rebuilt from whatever segments are left.
            log.epochs.remove_file()?;
            // Newest first, so a crash part-way leaves a shorter valid log;
            // a crash after the last deletion leaves an empty directory,
            // which reopens at the recovery point.
            for dropped in log.segments.drain(..).rev() {
                dropped.delete_files()?;
            }
            log.segments.push(Segment::create(&log.dir, offset)?);
            sync_dir(&log.dir)?;
            log.epochs.clear()
        })?;
        self.log_start_offset = offset;
        self.high_watermark = offset;
        self.recovery_point = offset;
        self.first_unflushed_ms = None;
        self.unsynced_segment_base = None;
        Ok(())
    }

    /// Flushes everything and closes the log. After a clean close the
    /// recovery point equals the log end offset, which the broker should
    /// write to its checkpoint.
    pub fn close(mut self) -> Result<i64> {
        self.flush()?;
        Ok(self.recovery_point)
    }

    /// Deletes the partition's directory and everything in it. The log is
    /// fenced afterwards (appends fail); reads of already-open segment files
    /// keep working until the `Log` is dropped. Takes `&mut self` so an owner
    /// can call it through a mutex guard.
    pub fn delete(&mut self) -> Result<()> {
        self.fenced = true;
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context(|| format!("removing {}", self.dir.display()));
            }
            _ => {}
        }
        if let Some(parent) = self.dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Refuses further appends until the log is reopened. For the owner to
    /// call when a `FlushTarget::sync` fails: after a failed fsync the page
    /// cache may have dropped the data, so the only safe path is recovery.
    pub fn fence(&mut self) {
        self.fenced = true;
    }
}

/// Headers of the batches in `buf`, which must be well-formed and non-empty.
fn headers_of(buf: &[u8]) -> Result<Vec<BatchHeader>> {
    let mut headers = Vec::new();
    for item in batch::iter_batches(buf) {
        let (_, h) = item?;
        batch::check_header(&h)?;
        headers.push(h);
    }
    if headers.is_empty() {
        return Err(BatchError::Empty.into());
    }
    Ok(headers)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("syncing directory {}", dir.display()))
}
