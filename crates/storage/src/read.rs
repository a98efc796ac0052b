//! Reading: by offset (fetch), by timestamp (ListOffsets).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use odradek_protocol::batch;

use crate::error::{Result, StorageError};
use crate::log::Log;
use crate::segment::Segment;

/// A byte range of whole batches in one segment file, to be read after the
/// log's lock is released. Holding the `Arc<File>` keeps the file readable
/// even if retention deletes the segment meanwhile. A concurrent
/// `truncate_to` may shorten the file under a reader; `read` then fails
/// with `UnexpectedEof` rather than returning foreign bytes.
#[derive(Debug, Clone, Default)]
pub struct ReadSlice {
    file: Option<Arc<File>>,
    position: u64,
    len: usize,
}

impl ReadSlice {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Byte position of the slice in its segment file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Reads the bytes with one `pread`; no per-record work.
    pub fn read(&self) -> io::Result<Bytes> {
        let Some(file) = &self.file else {
            return Ok(Bytes::new());
        };
        let mut buf = vec![0u8; self.len];
        file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}

impl Log {
    fn out_of_range(&self, requested: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            requested,
            log_start: self.log_start_offset,
            log_end: self.log_end_offset(),
        }
    }

    /// Index of the segment that would hold `offset`.
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Whole batches starting with the one containing `start_offset`, up to
    /// `max_bytes`, from a single segment, and only batches whose last
    /// offset is below `max_offset_exclusive` (the high watermark, as in
    /// Kafka's `LogSegment.read`). With `min_one_batch` (KIP-74) the first
    /// batch is returned whole even if larger than `max_bytes`.
    /// `start_offset` outside `[log_start, log_end]` is `OffsetOutOfRange`;
    /// `log_end` (or the high watermark) gives an empty slice.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<ReadSlice> {
        if start_offset < self.log_start_offset || start_offset > self.log_end_offset() {
            return Err(self.out_of_range(start_offset));
        }
        if start_offset >= max_offset_exclusive {
            return Ok(ReadSlice::default());
        }
        for segment in &self.segments[self.segment_index_for(start_offset)..] {
            if let Some(slice) = read_segment(
                segment,
                start_offset,
                max_bytes,
                max_offset_exclusive,
                min_one_batch,
            )? {
                return Ok(slice);
            }
        }
        Ok(ReadSlice::default())
    }

    /// The first record with timestamp `>= ts` and offset at or after the
    /// log start, exactly (the located batch is decoded), as
    /// `(offset, timestamp)`. Skips segments by their maximum timestamp and
    /// seeks within a segment with the time index.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        for segment in &self.segments {
            if segment.size == 0 || segment.max_timestamp.is_some_and(|(max, _)| max < ts) {
                continue;
            }
            let rel = segment
                .time_index
                .lookup(ts)
                .map_err(|e| io_err(segment, e))?;
            let from = segment.base_offset + i64::from(rel);
            let from = from.max(self.log_start_offset);
            let mut reader = segment.reader();
            let start = segment
                .find_batch(&mut reader, from)?
                .map_or(segment.size, |(pos, _)| pos);
            let log_start = self.log_start_offset;
            let mut pos = start;
            while let Some((at, h)) = segment.find_batch_from(&mut reader, pos, |h| {
                h.max_timestamp >= ts && h.last_offset() >= log_start
            })? {
                let bytes = segment.read_batch(at, &h)?;
                let found = batch::first_record_at_or_after(&bytes, ts, log_start)
                    .map_err(|e| corrupt(segment, at, e))?;
                if found.is_some() {
                    return Ok(found);
                }
                pos = at + h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the offset of the first record
    /// carrying it (ListOffsets MAX_TIMESTAMP, KIP-734), or `None` for an
    /// empty log.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let mut best: Option<(&Segment, i64, i64)> = None;
        for segment in &self.segments {
            if let Some((ts, offset)) = segment.max_timestamp {
                if best.is_none_or(|(_, best_ts, _)| ts > best_ts) {
                    best = Some((segment, ts, offset));
                }
            }
        }
        let Some((segment, ts, batch_last_offset)) = best else {
            return Ok(None);
        };
        // The segment records the batch; find the exact record.
        let Some((pos, h)) = segment.find_batch(&mut segment.reader(), batch_last_offset)? else {
            return Ok(Some((ts, batch_last_offset)));
        };
        let bytes = segment.read_batch(pos, &h)?;
        let exact = batch::first_record_at_or_after(&bytes, ts, i64::MIN)
            .map_err(|e| corrupt(segment, pos, e))?;
        Ok(Some(match exact {
            Some((offset, _)) => (ts, offset),
            None => (ts, batch_last_offset),
        }))
    }
}

fn read_segment(
    segment: &Segment,
    start_offset: i64,
    max_bytes: usize,
    max_offset_exclusive: i64,
    min_one_batch: bool,
) -> Result<Option<ReadSlice>> {
    let mut reader = segment.reader();
    let Some((start, first)) = segment.find_batch(&mut reader, start_offset)? else {
        return Ok(None);
    };
    // Batches from the one containing the high watermark on are invisible.
    let visible_end = if max_offset_exclusive < segment.next_offset {
        segment
            .find_batch(&mut reader, max_offset_exclusive)?
            .map_or(segment.size, |(pos, _)| pos)
    } else {
        segment.size
    };
    if visible_end <= start {
        return Ok(Some(ReadSlice::default()));
    }
    let limit = start.saturating_add(max_bytes as u64).min(visible_end);
    let mut end = segment.boundary_at_or_before(&mut reader, start, limit)?;
    if end == start && min_one_batch {
        end = start + first.total_len() as u64;
    }
    Ok(Some(ReadSlice {
        file: (end > start).then(|| segment.log_file().clone()),
        position: start,
        len: (end - start) as usize,
    }))
}

fn io_err(segment: &Segment, source: io::Error) -> StorageError {
    StorageError::Io {
        context: format!("reading indexes of {}", segment.log_path().display()),
        source,
    }
}

fn corrupt(segment: &Segment, pos: u64, e: batch::BatchError) -> StorageError {
    StorageError::Corrupt {
        path: segment.log_path().to_path_buf(),
        reason: format!("undecodable batch at position {pos}: {e}"),
    }
}
