//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `replication-offset-checkpoint`, `log-start-offset-checkpoint`), one per
//! log directory:
//!
//! ```text
//! 0                 version
//! 2                 number of entries
//! orders 0 1500     topic partition offset
//! orders 1 1498
//! ```
//!
//! Written atomically: temporary file, fsync, rename over the old file,
//! fsync the directory. A reader sees the old or the new file, never a mix.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, StorageError};
use crate::log::sync_dir;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const REPLICATION_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";

const VERSION: u32 = 0;

/// A topic-partition, the key of checkpoint entries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// `<topic>-<partition>`, the partition's directory name.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

pub type Offsets = BTreeMap<TopicPartition, i64>;

/// Reads a checkpoint file; a missing file is an empty checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<Offsets> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Offsets::new()),
        Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
    };
    parse_checkpoint(&text).map_err(|reason| StorageError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

fn parse_checkpoint(text: &str) -> std::result::Result<Offsets, String> {
    let lines = entry_lines(text)?;
    let mut offsets = Offsets::new();
    for line in &lines {
        let mut fields = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("malformed entry {line:?}"));
        };
        let partition = partition
            .parse()
            .map_err(|_| format!("bad partition in {line:?}"))?;
        let offset = offset
            .parse()
            .map_err(|_| format!("bad offset in {line:?}"))?;
        offsets.insert(TopicPartition::new(topic, partition), offset);
    }
    if offsets.len() != lines.len() {
        return Err("duplicate topic-partition entries".into());
    }
    Ok(offsets)
}

/// The entry lines of Kafka's checkpoint text format (version line, entry
/// count, entries), which the offset checkpoints and
/// `leader-epoch-checkpoint` share.
pub(crate) fn entry_lines(text: &str) -> std::result::Result<Vec<&str>, String> {
    let mut lines = text.lines();
    let version = lines.next().ok_or("missing version line")?;
    if version.trim().parse::<u32>() != Ok(VERSION) {
        return Err(format!("unsupported checkpoint version {version:?}"));
    }
    let count: usize = lines
        .next()
        .ok_or("missing entry count")?
        .trim()
        .parse()
        .map_err(|_| "malformed entry count")?;
    let entries: Vec<&str> = lines.by_ref().take(count).collect();
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("trailing data after the entries".into());
    }
    Ok(entries)
}

/// Kafka's checkpoint text: version, entry count, one line per entry.
pub(crate) fn checkpoint_text(entries: &[String]) -> String {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(entry);
        text.push('\n');
    }
    text
}

/// Writes a checkpoint file atomically (tmp + fsync + rename + dir fsync).
pub fn write_checkpoint(path: &Path, offsets: &Offsets) -> Result<()> {
    let entries: Vec<String> = offsets
        .iter()
        .map(|(tp, offset)| format!("{} {} {offset}", tp.topic, tp.partition))
        .collect();
    write_atomically(path, checkpoint_text(&entries).as_bytes())
}

/// Replaces `path` with `contents` so that a crash leaves either the old
/// or the new file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_malformed_files() {
        for bad in [
            "",
            "1\n0\n",
            "0\n",
            "0\n2\nt 0 5\n",
            "0\n1\nt x 5\n",
            "0\n1\nt 0\n",
            "0\n1\nt 0 5\nextra 1 2\n",
            "0\n2\nt 0 5\nt 0 6\n",
        ] {
            assert!(parse_checkpoint(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_checkpoint("0\n0\n").unwrap().len(), 0);
    }
}
