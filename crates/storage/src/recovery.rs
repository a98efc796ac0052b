//! Bringing a partition directory back to a consistent state on open.
//!
//! What is trusted and what is verified:
//! - Segments wholly below the recovery point hold data that was fsynced
//!   before the recovery point was advanced. Their batches are trusted;
//!   their indexes get Kafka's cheap sanity check and are rebuilt (with a
//!   CRC-verifying scan) if it fails. Damage found while rebuilding them is
//!   reported as `Corrupt`, never truncated: it is not a torn write.
//! - The segment containing the recovery point and all later segments (so
//!   always the last one) are scanned batch by batch: header, CRC32C and
//!   offset order. At the first invalid batch the file is truncated and all
//!   later segments are deleted; that data was never promised durable. Both
//!   indexes of every scanned segment are rebuilt from the scan.

use std::fs;
use std::path::Path;

use crate::config::LogConfig;
use crate::error::{IoContext, Result, StorageError};
use crate::segment::{
    self, remove_if_exists, Repair, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Files a crashed Kafka-style operation can leave behind; never live data
/// for us (we never create them, Kafka's cleaner and deleter do).
const LEFTOVER_SUFFIXES: [&str; 4] = ["deleted", "cleaned", "swap", "tmp"];

/// Opens and recovers the segments in `dir`, oldest first. The last one is
/// active. Creates a first segment at the recovery point if there is none.
pub(crate) fn load_segments(
    dir: &Path,
    config: &LogConfig,
    recovery_point: i64,
) -> Result<Vec<Segment>> {
    let bases = list_segments(dir)?;
    if bases.is_empty() {
        // A new partition, or one whose segments were all deleted by a
        // truncation interrupted before it created the new segment: start
        // where the data was known to end rather than reusing offsets.
        return Ok(vec![Segment::create(dir, recovery_point.max(0))?]);
    }
    let mut segments = bases
        .iter()
        .map(|&base| Segment::open(dir, base))
        .collect::<Result<Vec<_>>>()?;

    // The segment holding the recovery point, and everything after it, is
    // scanned.
    let first_scanned = segments
        .partition_point(|s| s.base_offset <= recovery_point)
        .saturating_sub(1);

    for i in 0..first_scanned {
        let next_base = segments[i + 1].base_offset;
        if !segments[i].trust(next_base)? {
            tracing::warn!(
                segment = %segments[i].log_path().display(),
                "index failed sanity check; rebuilding"
            );
            let base = segments[i].base_offset;
            let found = segments[i].recover(base, config.index_interval_bytes, Repair::Refuse)?;
            if let Some((pos, reason)) = found.invalid {
                return Err(StorageError::Corrupt {
                    path: segments[i].log_path().to_path_buf(),
                    reason: format!(
                        "invalid batch at position {pos} below the recovery point \
                         {recovery_point}: {reason}"
                    ),
                });
            }
            segments[i].next_offset = next_base;
        }
    }

    let mut min_offset = match first_scanned {
        0 => segments[0].base_offset,
        i => segments[i - 1].next_offset,
    };
    let count = segments.len();
    let mut keep = count;
    for (i, seg) in segments.iter_mut().enumerate().skip(first_scanned) {
        if seg.base_offset < min_offset {
            return Err(StorageError::Corrupt {
                path: seg.log_path().to_path_buf(),
                reason: format!(
                    "segment base offset {} overlaps the previous segment, which ends at {min_offset}",
                    seg.base_offset
                ),
            });
        }
        let found = seg.recover(min_offset, config.index_interval_bytes, Repair::Truncate)?;
        min_offset = seg.next_offset;
        if let Some((pos, reason)) = found.invalid {
            keep = i + 1;
            tracing::warn!(
                segment = %seg.log_path().display(),
                position = pos,
                valid_batches = found.batches,
                truncated_bytes = found.truncated_bytes,
                later_segments_deleted = count - keep,
                %reason,
                "torn or invalid batch after the recovery point; truncated the log there"
            );
            break;
        }
    }
    for dropped in segments.drain(keep..) {
        dropped.delete_files()?;
    }
    // Inactive segments end their time index with their maximum timestamp
    // (a no-op unless recovery just rebuilt the index).
    let (active, inactive) = segments.split_last_mut().expect("at least one segment");
    for segment in inactive {
        segment.seal()?;
    }
    active.activate()?;
    Ok(segments)
}

/// Base offsets of the `.log` files in `dir`, sorted. Removes leftovers of
/// interrupted operations and index files without a `.log`; leaves any
/// other file (checkpoints, producer snapshots) alone.
fn list_segments(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut others = Vec::new();
    let entries = fs::read_dir(dir).context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if LEFTOVER_SUFFIXES
            .iter()
            .any(|s| name.ends_with(&format!(".{s}")))
        {
            remove_if_exists(&entry.path())?;
            continue;
        }
        match segment::parse_file_name(name) {
            Some((base, LOG_SUFFIX)) => bases.push(base),
            Some((base, INDEX_SUFFIX | TIME_INDEX_SUFFIX)) => others.push((base, entry.path())),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in others {
        if bases.binary_search(&base).is_err() {
            remove_if_exists(&path)?;
        }
    }
    Ok(bases)
}
