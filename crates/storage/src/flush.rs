//! Making appended data durable without holding the log's lock.
//!
//! The owner takes a `FlushTarget` under the lock, releases it, runs
//! `sync` (the slow `fdatasync`s; several partitions' targets can be
//! synced together for group commit), then retakes the lock and calls
//! `Log::mark_flushed(target.up_to())`. The recovery point advances only
//! after the data below it is on disk; that ordering is what lets recovery
//! trust everything below the recovery point.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::log::Log;

/// Files to sync so that every offset below `up_to` is durable.
#[derive(Debug, Clone)]
pub struct FlushTarget {
    files: Vec<Arc<File>>,
    /// Directory to sync because it gained a segment file.
    dir: Option<PathBuf>,
    up_to: i64,
}

impl FlushTarget {
    /// Offsets below this are durable once `sync` succeeds.
    pub fn up_to(&self) -> i64 {
        self.up_to
    }

    /// Nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dir.is_none()
    }

    /// `fdatasync`s the segment files (data and indexes), then the
    /// directory if it gained segments. A failure must be treated as fatal
    /// for the log (`Log::fence`): the kernel may have dropped the dirty
    /// pages, so retrying could report success for lost data.
    pub fn sync(&self) -> io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        if let Some(dir) = &self.dir {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Log {
    /// What to sync to make the whole log durable: every segment holding
    /// offsets at or above the recovery point.
    pub fn flush_target(&self) -> FlushTarget {
        let up_to = self.log_end_offset();
        if up_to <= self.recovery_point && self.unsynced_segment_base.is_none() {
            return FlushTarget {
                files: Vec::new(),
                dir: None,
                up_to,
            };
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= self.recovery_point)
            .saturating_sub(1);
        // The active segment's indexes are left unsynced: the segment that
        // holds the recovery point is always rescanned on open and both its
        // indexes rebuilt (recovery.rs), so only its data must be durable.
        // Sealed segments fall wholly below the new recovery point and are
        // trusted, so their indexes are synced too.
        let last = self.segments.len() - 1;
        let files = self.segments[first..]
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let [log, index, time_index] = s.files();
                if first + i == last {
                    vec![log]
                } else {
                    vec![log, index, time_index]
                }
            })
            .collect();
        FlushTarget {
            files,
            dir: self.unsynced_segment_base.map(|_| self.dir.clone()),
            up_to,
        }
    }

    /// Records that a `FlushTarget` with `up_to` was synced: advances the
    /// recovery point (never backwards, never past the log end).
    pub fn mark_flushed(&mut self, up_to: i64) {
        let up_to = up_to.min(self.log_end_offset());
        if up_to > self.recovery_point {
            self.recovery_point = up_to;
        }
        if up_to >= self.log_end_offset() {
            self.first_unflushed_ms = None;
        }
        // A target taken after a segment was created (its up_to is past the
        // segment's base) synced the directory entry of that segment.
        if self.unsynced_segment_base.is_some_and(|base| base < up_to) {
            self.unsynced_segment_base = None;
        }
    }

    /// Syncs and marks in one call, under the caller's lock.
    pub fn flush(&mut self) -> Result<()> {
        let target = self.flush_target();
        if target.is_empty() {
            return Ok(());
        }
        if let Err(e) = target.sync() {
            self.fence();
            return Err(e).context(|| format!("flushing {}", self.dir.display()));
        }
        self.mark_flushed(target.up_to());
        Ok(())
    }
}
