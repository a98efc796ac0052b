//! One segment: a `.log` file of whole batches plus its `.index` and
//! `.timeindex`, all named by the segment's base offset.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use odradek_protocol::batch::{BatchError, BatchHeader};

use crate::config::LogConfig;
use crate::error::{IoContext, Result, StorageError};
use crate::index::{OffsetEntry, OffsetIndex};
use crate::scan::{BatchReader, Scanned};
use crate::time_index::{TimeEntry, TimeIndex};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Read-path header walks read this much at a time: a little more than
/// the default index interval, so one `pread` usually covers the scan.
const READ_CHUNK: usize = 16 << 10;
/// Recovery reads segments sequentially in large chunks.
const RECOVERY_CHUNK: usize = 1 << 20;
/// Relative offsets and positions must fit the index entries (Kafka keeps
/// both within `i32`).
const MAX_RELATIVE: i64 = i32::MAX as i64;

/// `00000000000000012345.log` and friends.
pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Parses `<20 digits>.<suffix>` into the base offset and suffix.
pub(crate) fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// What `Segment::recover` may do about an invalid batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Cut the file there (data after the recovery point).
    Truncate,
    /// Leave the file alone (data below the recovery point).
    Refuse,
}

/// What a recovery scan found.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub batches: u64,
    /// Where the first invalid batch started and why it was invalid.
    pub invalid: Option<(u64, String)>,
    /// Bytes removed from the end of the file.
    pub truncated_bytes: u64,
}

pub(crate) struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    log: Arc<File>,
    /// Bytes of whole batches in the `.log` file.
    pub size: u64,
    /// Offset after the last batch; `base_offset` when empty.
    pub next_offset: i64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    last_time_entry: Option<TimeEntry>,
    bytes_since_last_index_entry: u64,
    /// Largest batch maxTimestamp and the last offset of the first batch
    /// that reached it (what Kafka's time index records).
    pub max_timestamp: Option<(i64, i64)>,
    /// `segment.ms` counts from here: the later of the first batch's
    /// maxTimestamp and the time of the first append (after recovery: the
    /// first batch's maxTimestamp).
    rolling_base_ms: Option<i64>,
    /// An index file was missing or ragged when the segment was opened.
    indexes_need_rebuild: bool,
}

/// Index entries produced by appending batches, written after the data.
#[derive(Default)]
struct NewEntries {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
}

impl Segment {
    /// Creates an empty segment, replacing any stale files with its name.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&dir.join(file_name(base_offset, suffix)))?;
        }
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .context(|| format!("creating {}", log_path.display()))?;
        let mut segment = Segment::with_log(dir, base_offset, log_path, log)?;
        segment.activate()?;
        Ok(segment)
    }

    /// Opens an existing segment. Its offsets and indexes are not yet
    /// trusted: the caller either recovers it or checks its indexes.
    pub(crate) fn open(dir: &Path, base_offset: i64) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .context(|| format!("opening {}", log_path.display()))?;
        Segment::with_log(dir, base_offset, log_path, log)
    }

    fn with_log(dir: &Path, base_offset: i64, log_path: PathBuf, log: File) -> Result<Segment> {
        let size = log
            .metadata()
            .context(|| format!("stat {}", log_path.display()))?
            .len();
        let index_path = dir.join(file_name(base_offset, INDEX_SUFFIX));
        let time_path = dir.join(file_name(base_offset, TIME_INDEX_SUFFIX));
        let indexes_missing = !index_path.exists() || !time_path.exists();
        let (mut index, index_whole) = OffsetIndex::open(&index_path)
            .context(|| format!("opening {}", index_path.display()))?;
        let (mut time_index, time_whole) =
            TimeIndex::open(&time_path).context(|| format!("opening {}", time_path.display()))?;
        // A ragged index is rebuilt; start it empty so nothing reads it.
        if !index_whole {
            index
                .rewrite(&[])
                .context(|| format!("resetting {}", index_path.display()))?;
        }
        if !time_whole {
            time_index
                .rewrite(&[])
                .context(|| format!("resetting {}", time_path.display()))?;
        }
        let last_time_entry = time_index
            .last()
            .context(|| format!("reading {}", time_path.display()))?;
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size,
            next_offset: base_offset,
            index,
            time_index,
            last_time_entry,
            bytes_since_last_index_entry: 0,
            max_timestamp: last_time_entry
                .map(|e| (e.timestamp, base_offset + i64::from(e.relative_offset))),
            rolling_base_ms: None,
            indexes_need_rebuild: indexes_missing || !index_whole || !time_whole,
        })
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn log_file(&self) -> &Arc<File> {
        &self.log
    }

    /// The files whose contents `fdatasync` makes durable.
    pub(crate) fn files(&self) -> [Arc<File>; 3] {
        [
            self.log.clone(),
            self.index.file().clone(),
            self.time_index.file().clone(),
        ]
    }

    fn relative(&self, offset: i64) -> u32 {
        offset
            .saturating_sub(self.base_offset)
            .clamp(0, MAX_RELATIVE) as u32
    }

    fn corrupt(&self, pos: u64, e: BatchError) -> StorageError {
        StorageError::Corrupt {
            path: self.log_path.clone(),
            reason: format!("invalid batch at position {pos}: {e}"),
        }
    }

    /// Keeps the index entries in memory (the segment became active).
    pub(crate) fn activate(&mut self) -> Result<()> {
        self.index
            .cache_entries()
            .context(|| format!("reading {}", self.index.path().display()))?;
        self.time_index
            .cache_entries()
            .context(|| format!("reading {}", self.time_index.path().display()))
    }

    /// The segment stops being active: record its maximum timestamp in the
    /// time index (so the last entry is the segment's maximum, as Kafka
    /// does on roll) and drop the in-memory index copies.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if let Some((ts, offset)) = self.max_timestamp {
            let rel = self.relative(offset);
            if TimeIndex::accepts(self.last_time_entry, ts, rel) {
                let entry = TimeEntry {
                    timestamp: ts,
                    relative_offset: rel,
                };
                self.time_index
                    .append(&[entry])
                    .context(|| format!("writing {}", self.time_index.path().display()))?;
                self.last_time_entry = Some(entry);
            }
        }
        self.index.uncache_entries();
        self.time_index.uncache_entries();
        Ok(())
    }

    /// Whether appending `incoming_bytes` ending at `last_offset` at
    /// `now_ms` must go to a new segment (Kafka's `LogSegment.shouldRoll`).
    pub(crate) fn should_roll(
        &self,
        config: &LogConfig,
        incoming_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let max_bytes = config.segment_bytes.min(MAX_RELATIVE as u64);
        let aged = self
            .rolling_base_ms
            .is_some_and(|base| now_ms.saturating_sub(base) > config.segment_ms);
        self.size + incoming_bytes > max_bytes
            || aged
            || self.index.size_bytes() + 8 > config.segment_index_bytes
            || self.time_index.size_bytes() + 12 > config.segment_index_bytes
            || last_offset - self.base_offset > MAX_RELATIVE
    }

    /// Notes one batch at `pos` for the indexes (Kafka's LogSegment.append:
    /// an entry for the batch's last offset once more than
    /// `index.interval.bytes` were written since the previous entry).
    fn index_batch(&mut self, pos: u64, h: &BatchHeader, interval: u64, new: &mut NewEntries) {
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| h.max_timestamp > ts)
        {
            self.max_timestamp = Some((h.max_timestamp, h.last_offset()));
        }
        if self.bytes_since_last_index_entry > interval {
            new.offsets.push(OffsetEntry {
                relative_offset: self.relative(h.last_offset()),
                position: pos as u32,
            });
            if let Some((ts, offset)) = self.max_timestamp {
                let rel = self.relative(offset);
                if TimeIndex::accepts(self.last_time_entry, ts, rel) {
                    let entry = TimeEntry {
                        timestamp: ts,
                        relative_offset: rel,
                    };
                    new.times.push(entry);
                    self.last_time_entry = Some(entry);
                }
            }
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += h.total_len() as u64;
    }

    /// Appends batches (offsets already assigned) with a single positional
    /// write, then the index entries they produced. On error the segment's
    /// in-memory state is unspecified; the caller fences the log.
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        headers: &[BatchHeader],
        index_interval: u64,
        now_ms: i64,
    ) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let start = self.size;
        self.log.write_all_at(bytes, start)?;
        let mut new = NewEntries::default();
        let mut pos = start;
        for h in headers {
            if self.rolling_base_ms.is_none() {
                // Kafka counts segment.ms from the first batch's timestamp;
                // a producer sending old timestamps would then roll a
                // segment per append, so never count from before now.
                self.rolling_base_ms = Some(h.max_timestamp.max(now_ms));
            }
            self.index_batch(pos, h, index_interval, &mut new);
            pos += h.total_len() as u64;
        }
        self.size = pos;
        if let Some(last) = headers.last() {
            self.next_offset = last.next_offset();
        }
        self.index.append(&new.offsets)?;
        self.time_index.append(&new.times)
    }

    /// Scans the whole `.log` file, verifying every batch (CRC32C, offsets
    /// increasing from `min_offset`, relative offsets in range), and
    /// rebuilds both indexes from the valid prefix. With `Repair::Truncate`
    /// the file is cut at the first invalid batch; with `Repair::Refuse`
    /// nothing is changed on disk if an invalid batch is found (the caller
    /// reports corruption). Valid data is never removed.
    pub(crate) fn recover(
        &mut self,
        min_offset: i64,
        index_interval: u64,
        repair: Repair,
    ) -> Result<Recovered> {
        let file_len = self
            .log
            .metadata()
            .context(|| format!("stat {}", self.log_path.display()))?
            .len();
        self.size = 0;
        self.next_offset = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp = None;
        self.last_time_entry = None;
        self.rolling_base_ms = None;
        let mut expected = min_offset.max(self.base_offset);
        let mut new = NewEntries::default();
        let mut batches = 0;
        let mut invalid = None;
        let log = self.log.clone();
        let mut reader = BatchReader::new(&log, file_len, RECOVERY_CHUNK);
        let mut pos = 0;
        loop {
            let scanned = reader
                .checked_batch_at(pos)
                .context(|| format!("reading {}", self.log_path.display()))?;
            let h = match scanned {
                Scanned::End => break,
                Scanned::Invalid(e) => {
                    invalid = Some((pos, e.to_string()));
                    break;
                }
                Scanned::Batch(h) => h,
            };
            // The base offset is outside the CRC: a torn first sector can
            // leave any value there, so check it against its neighbours.
            let last = h.base_offset.checked_add(i64::from(h.last_offset_delta));
            let in_range = last.is_some_and(|last| {
                h.base_offset >= expected && last - self.base_offset <= MAX_RELATIVE
            });
            if !in_range {
                invalid = Some((
                    pos,
                    format!(
                        "batch base offset {} (delta {}) but expected at least {expected}",
                        h.base_offset, h.last_offset_delta
                    ),
                ));
                break;
            }
            if self.rolling_base_ms.is_none() && h.max_timestamp >= 0 {
                self.rolling_base_ms = Some(h.max_timestamp);
            }
            self.index_batch(pos, &h, index_interval, &mut new);
            expected = h.next_offset();
            self.next_offset = expected;
            pos += h.total_len() as u64;
            batches += 1;
        }
        self.size = pos;
        self.indexes_need_rebuild = false;
        let truncated_bytes = file_len - pos;
        if invalid.is_some() && repair == Repair::Refuse {
            return Ok(Recovered {
                batches,
                invalid,
                truncated_bytes: 0,
            });
        }
        if pos < file_len {
            self.log
                .set_len(pos)
                .context(|| format!("truncating {}", self.log_path.display()))?;
        }
        self.index
            .rewrite(&new.offsets)
            .context(|| format!("writing {}", self.index.path().display()))?;
        self.time_index
            .rewrite(&new.times)
            .context(|| format!("writing {}", self.time_index.path().display()))?;
        Ok(Recovered {
            batches,
            invalid,
            truncated_bytes,
        })
    }

    /// Sets up a segment trusted without scanning (below the recovery
    /// point): its offsets end where the next segment begins. Returns false
    /// if its indexes fail the sanity check and must be rebuilt.
    pub(crate) fn trust(&mut self, next_offset: i64) -> Result<bool> {
        self.next_offset = next_offset;
        if self.indexes_need_rebuild {
            return Ok(false);
        }
        let max_rel = self.relative(next_offset - 1);
        let index_ok = self
            .index
            .is_sane(max_rel, self.size)
            .context(|| format!("reading {}", self.index.path().display()))?;
        let time_ok = self
            .time_index
            .is_sane(max_rel)
            .context(|| format!("reading {}", self.time_index.path().display()))?;
        Ok(index_ok && time_ok)
    }

    /// A reader for header walks; share one across the walks of a request
    /// so neighbouring walks reuse its buffer.
    pub(crate) fn reader(&self) -> BatchReader<'_> {
        BatchReader::new(&self.log, self.size, READ_CHUNK)
    }

    /// The first batch whose last offset is `>= target`, with its position.
    pub(crate) fn find_batch(
        &self,
        reader: &mut BatchReader<'_>,
        target: i64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let start = self
            .index
            .lookup(self.relative(target))
            .context(|| format!("reading {}", self.index.path().display()))?;
        self.find_batch_from(reader, start, |h| h.last_offset() >= target)
    }

    /// Walks batches from `pos` to the first one satisfying `pred`.
    pub(crate) fn find_batch_from(
        &self,
        reader: &mut BatchReader<'_>,
        mut pos: u64,
        pred: impl Fn(&BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        loop {
            match reader
                .header_at(pos)
                .context(|| format!("reading {}", self.log_path.display()))?
            {
                Scanned::End => return Ok(None),
                Scanned::Invalid(e) => return Err(self.corrupt(pos, e)),
                Scanned::Batch(h) if pred(&h) => return Ok(Some((pos, h))),
                Scanned::Batch(h) => pos += h.total_len() as u64,
            }
        }
    }

    /// The last batch boundary `b` with `from <= b <= limit`, where `from`
    /// is a boundary: the end of the longest run of whole batches starting
    /// at `from` that fits below `limit`. Starts from the index entry
    /// nearest `limit`, so the walk is short.
    pub(crate) fn boundary_at_or_before(
        &self,
        reader: &mut BatchReader<'_>,
        from: u64,
        limit: u64,
    ) -> Result<u64> {
        let limit = limit.min(self.size);
        let indexed = self
            .index
            .lookup_position(limit)
            .context(|| format!("reading {}", self.index.path().display()))?;
        let mut pos = indexed.max(from);
        loop {
            match reader
                .header_at(pos)
                .context(|| format!("reading {}", self.log_path.display()))?
            {
                Scanned::Batch(h) if pos + h.total_len() as u64 <= limit => {
                    pos += h.total_len() as u64;
                }
                Scanned::Invalid(e) => return Err(self.corrupt(pos, e)),
                _ => return Ok(pos),
            }
        }
    }

    /// Calls `f` with every batch header, in order, without CRC checks:
    /// for rebuilding bookkeeping from data that recovery already verified
    /// or trusts.
    pub(crate) fn for_each_header(&self, mut f: impl FnMut(&BatchHeader)) -> Result<()> {
        let mut reader = BatchReader::new(&self.log, self.size, RECOVERY_CHUNK);
        let mut pos = 0;
        loop {
            match reader
                .header_at(pos)
                .context(|| format!("reading {}", self.log_path.display()))?
            {
                Scanned::End => return Ok(()),
                Scanned::Invalid(e) => return Err(self.corrupt(pos, e)),
                Scanned::Batch(h) => {
                    f(&h);
                    pos += h.total_len() as u64;
                }
            }
        }
    }

    /// Reads the whole batch at `pos`.
    pub(crate) fn read_batch(&self, pos: u64, h: &BatchHeader) -> Result<Vec<u8>> {
        let mut reader = BatchReader::new(&self.log, self.size, h.total_len());
        reader
            .batch_bytes(pos, h)
            .map(<[u8]>::to_vec)
            .context(|| format!("reading {}", self.log_path.display()))
    }

    /// Removes the segment's files.
    pub(crate) fn delete_files(self) -> Result<()> {
        for path in [
            self.log_path.clone(),
            self.index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ] {
            remove_if_exists(&path)?;
        }
        Ok(())
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
