//! Time- and size-based retention: deleting whole segments from the front
//! of the log (Kafka's `retention.ms` / `retention.bytes`).

use std::time::UNIX_EPOCH;

use crate::error::Result;
use crate::log::{sync_dir, Log};
use crate::segment::Segment;

impl Log {
    /// Deletes the oldest segments that retention allows and returns how
    /// many went. A segment may go when all of it is below the high
    /// watermark and either its newest record is older than `retention_ms`
    /// (the newest timestamp, or the file's mtime if it has none) or the log
    /// minus it would still exceed `retention_bytes`. Negative limits mean
    /// unlimited. Deletion stops at the first segment that must stay. If
    /// every segment goes, an empty active segment is rolled first, as Kafka
    /// does, so the log end offset is kept. The leader-epoch cache forgets
    /// offsets below the new log start. Readers holding a `ReadSlice`
    /// of a deleted segment can still read it (the file stays open).
    pub fn delete_expired_segments(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Result<usize> {
        let mut excess_bytes = match u64::try_from(retention_bytes) {
            Ok(limit) => self.size_bytes().saturating_sub(limit),
            Err(_) => 0,
        };
        let mut count = 0;
        for (i, segment) in self.segments.iter().enumerate() {
            let upper = self
                .segments
                .get(i + 1)
                .map_or(self.log_end_offset(), |next| next.base_offset);
            let is_last_and_empty = i + 1 == self.segments.len() && segment.size == 0;
            if is_last_and_empty || upper > self.high_watermark {
                break;
            }
            let expired = retention_ms >= 0
                && now_ms.saturating_sub(newest_timestamp_ms(segment)) > retention_ms;
            let over_size = segment.size > 0 && excess_bytes >= segment.size;
            if !expired && !over_size {
                break;
            }
            excess_bytes = excess_bytes.saturating_sub(segment.size);
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        if count == self.segments.len() {
            self.roll_for_retention()?;
        }
        let new_start = self.segments[count].base_offset;
        for segment in self.segments.drain(..count) {
            tracing::info!(
                segment = %segment.log_path().display(),
                "deleting segment by retention"
            );
            segment.delete_files()?;
        }
        sync_dir(&self.dir)?;
        self.log_start_offset = self.log_start_offset.max(new_start);
        self.high_watermark = self.high_watermark.max(self.log_start_offset);
        self.recovery_point = self.recovery_point.max(self.log_start_offset);
        // A checkpoint left stale by a crash or failed write here is
        // repaired on open, so no fencing.
        self.epochs.truncate_from_start(self.log_start_offset)?;
        Ok(count)
    }
}

/// The newest record time in a segment: its largest timestamp, or the
/// `.log` file's modification time if no batch has a real timestamp.
fn newest_timestamp_ms(segment: &Segment) -> i64 {
    match segment.max_timestamp {
        Some((ts, _)) if ts >= 0 => ts,
        _ => segment
            .log_file()
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MAX, |d| d.as_millis() as i64),
    }
}
