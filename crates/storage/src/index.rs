//! Sparse index files: fixed-size big-endian entries appended to a file.
//!
//! `.index` maps a batch's last offset (relative to the segment's base
//! offset) to the batch's byte position in the `.log` file; `.timeindex`
//! (see `time_index.rs`) maps timestamps to offsets. Entries are strictly
//! increasing in every field, so lookups are binary searches.
//!
//! Files are not preallocated: the file length is always a whole number of
//! entries (Kafka preallocates to `segment.index.bytes` and trims on close;
//! recovery here treats a zero-filled tail like any other insane index and
//! rebuilds it). The active segment keeps a copy of its entries in memory;
//! inactive segments search the file with `pread`, so memory does not grow
//! with the amount of data retained.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An entry of a fixed-size index file.
pub(crate) trait Entry: Copy {
    const LEN: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Self;
}

/// A file of `E` entries.
pub(crate) struct IndexFile<E: Entry> {
    path: PathBuf,
    file: Arc<File>,
    len: usize,
    /// All entries, for the active segment; `None` for inactive ones.
    cache: Option<Vec<E>>,
}

impl<E: Entry> IndexFile<E> {
    /// Opens (creating if missing) the index at `path`. Returns the file and
    /// whether its length is a whole number of entries.
    pub(crate) fn open(path: &Path) -> io::Result<(Self, bool)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let bytes = file.metadata()?.len();
        let whole = bytes % E::LEN as u64 == 0;
        let index = IndexFile {
            path: path.to_path_buf(),
            file: Arc::new(file),
            len: (bytes / E::LEN as u64) as usize,
            cache: None,
        };
        Ok((index, whole))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        (self.len * E::LEN) as u64
    }

    pub(crate) fn entry(&self, i: usize) -> io::Result<E> {
        if let Some(cache) = &self.cache {
            return Ok(cache[i]);
        }
        let mut buf = [0u8; 16];
        let buf = &mut buf[..E::LEN];
        self.file.read_exact_at(buf, (i * E::LEN) as u64)?;
        Ok(E::decode(buf))
    }

    pub(crate) fn last(&self) -> io::Result<Option<E>> {
        match self.len {
            0 => Ok(None),
            n => self.entry(n - 1).map(Some),
        }
    }

    /// Number of leading entries for which `pred` holds (entries must be
    /// partitioned by `pred`, as sorted entries are by `key <= target`).
    pub(crate) fn partition_point(&self, pred: impl Fn(&E) -> bool) -> io::Result<usize> {
        if let Some(cache) = &self.cache {
            return Ok(cache.partition_point(pred));
        }
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.entry(mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The last entry for which `pred` holds, if any.
    pub(crate) fn floor(&self, pred: impl Fn(&E) -> bool) -> io::Result<Option<E>> {
        match self.partition_point(pred)? {
            0 => Ok(None),
            n => self.entry(n - 1).map(Some),
        }
    }

    /// Appends entries with one write.
    pub(crate) fn append(&mut self, entries: &[E]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * E::LEN);
        for e in entries {
            e.encode(&mut buf);
        }
        self.file.write_all_at(&buf, self.size_bytes())?;
        self.len += entries.len();
        if let Some(cache) = &mut self.cache {
            cache.extend_from_slice(entries);
        }
        Ok(())
    }

    /// Replaces the whole file with `entries`: written in place, then the
    /// file is cut to the exact length. (Truncating to zero first would make
    /// ext4's replace-via-truncate heuristic force writeback on close, which
    /// made recovery of many segments needlessly slow.)
    pub(crate) fn rewrite(&mut self, entries: &[E]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(entries.len() * E::LEN);
        for e in entries {
            e.encode(&mut buf);
        }
        self.file.write_all_at(&buf, 0)?;
        if self.file.metadata()?.len() != buf.len() as u64 {
            self.file.set_len(buf.len() as u64)?;
        }
        self.len = entries.len();
        if let Some(cache) = &mut self.cache {
            cache.clear();
            cache.extend_from_slice(entries);
        }
        Ok(())
    }

    /// Loads every entry into memory (for the active segment).
    pub(crate) fn cache_entries(&mut self) -> io::Result<()> {
        if self.cache.is_some() {
            return Ok(());
        }
        let mut raw = vec![0u8; self.len * E::LEN];
        self.file.read_exact_at(&mut raw, 0)?;
        self.cache = Some(raw.chunks_exact(E::LEN).map(E::decode).collect());
        Ok(())
    }

    /// Drops the in-memory copy (the segment became inactive).
    pub(crate) fn uncache_entries(&mut self) {
        self.cache = None;
    }

    /// Every entry, read from the file (for sanity checks and tests).
    pub(crate) fn all(&self) -> io::Result<Vec<E>> {
        (0..self.len).map(|i| self.entry(i)).collect()
    }
}

/// An `.index` entry: the batch whose last offset is `base + relative_offset`
/// starts at byte `position` of the `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const LEN: usize = 8;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

pub(crate) type OffsetIndex = IndexFile<OffsetEntry>;

impl OffsetIndex {
    /// Byte position from which a forward scan finds the batch containing
    /// `relative_offset`: the start of the last indexed batch whose last
    /// offset is `<= relative_offset`, or 0.
    pub(crate) fn lookup(&self, relative_offset: u32) -> io::Result<u64> {
        let entry = self.floor(|e| e.relative_offset <= relative_offset)?;
        Ok(entry.map_or(0, |e| u64::from(e.position)))
    }

    /// The last indexed batch start at or before byte `position`, or 0.
    pub(crate) fn lookup_position(&self, position: u64) -> io::Result<u64> {
        let entry = self.floor(|e| u64::from(e.position) <= position)?;
        Ok(entry.map_or(0, |e| u64::from(e.position)))
    }

    /// Checks what is cheap to check (Kafka's `sanityCheck` does the same):
    /// entries lie inside the segment's offset range and log file, and the
    /// first and last entries are ordered. Full order is checked when the
    /// index is small or cached.
    pub(crate) fn is_sane(&self, max_relative_offset: u32, log_size: u64) -> io::Result<bool> {
        let (Some(first), Some(last)) = (self.cache_or_first()?, self.last()?) else {
            return Ok(true);
        };
        Ok(last.relative_offset <= max_relative_offset
            && u64::from(last.position) < log_size
            && first.relative_offset <= last.relative_offset
            && first.position <= last.position
            && (self.len > 1024 || self.strictly_increasing()?))
    }

    fn cache_or_first(&self) -> io::Result<Option<OffsetEntry>> {
        match self.len {
            0 => Ok(None),
            _ => self.entry(0).map(Some),
        }
    }

    fn strictly_increasing(&self) -> io::Result<bool> {
        let all = self.all()?;
        Ok(all
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position))
    }
}
