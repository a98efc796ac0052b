//! The durable Raft log and vote: `<dir>/__cluster_metadata-0/`.
//!
//! Files:
//! - `raft.log`: CRC-framed entries (layout and recovery in `log_file`).
//! - `vote`: the last vote, replaced atomically and fsynced.
//! - `committed`: the last committed log id, replaced atomically but not
//!   fsynced; losing it only means re-learning the commit index from the
//!   leader (or, for a quorum of one, from the next election).
//!
//! The whole log is also kept in memory: metadata entries are small and
//! the snapshot policy bounds how many there are, so reads never touch
//! the disk. Writes are synchronous file I/O on the Raft core task: they
//! are rare, and the fsync is what a caller is waiting for anyway.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};

use crate::codec::{self, Reader};
use crate::files;
use crate::log_file::{self, Recovered};
use crate::{Entry, NodeId, TypeConfig};

pub const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";

/// Entries visible to readers; shared by the store and its `LogReader`s.
#[derive(Default)]
struct Entries {
    purged: Option<LogId<NodeId>>,
    entries: VecDeque<Entry>,
}

impl Entries {
    fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.entries.back().map(|e| e.log_id).or(self.purged)
    }

    /// The index the next appended entry must have; `None` for an empty,
    /// never purged log, which may start anywhere (openraft's conformance
    /// suite starts logs at 1; a real voter starts at 0 or at a snapshot).
    fn next_index(&self) -> Option<u64> {
        self.last_log_id().map(|id| id.index + 1)
    }

    fn range(&self, range: impl RangeBounds<u64>) -> Vec<Entry> {
        let Some(first) = self.entries.front().map(|e| e.log_id.index) else {
            return Vec::new();
        };
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        let lo = start.saturating_sub(first).min(self.entries.len() as u64) as usize;
        let hi = end.saturating_sub(first).min(self.entries.len() as u64) as usize;
        self.entries.range(lo..hi.max(lo)).cloned().collect()
    }
}

/// The writer. openraft owns it and calls it from one task, which
/// serialises every write as the trait contract requires.
pub struct LogStore {
    dir: PathBuf,
    file: File,
    shared: Arc<Mutex<Entries>>,
    /// Byte offset of each entry's frame in `raft.log`, parallel to
    /// `shared.entries`; only the writer needs it (for truncation).
    offsets: VecDeque<u64>,
    file_len: u64,
    vote: Option<Vote<NodeId>>,
    /// Set after a failed write: the file may end in a partial frame, so
    /// nothing more is written until the store is reopened (and recovery
    /// cuts the torn frame).
    failed: bool,
}

/// A cheap handle that reads entries from memory.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Mutex<Entries>>,
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, which is the
    /// `__cluster_metadata-0` directory itself. Cuts a torn tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let Recovered {
            purged,
            entries,
            valid_len,
        } = log_file::recover(&bytes).map_err(|e| invalid(&path, e))?;
        if valid_len < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = valid_len,
                dropped_bytes = bytes.len() as u64 - valid_len,
                "truncating torn tail of the raft log"
            );
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        let vote = match files::read_checked(dir, VOTE_FILE)? {
            None => None,
            Some(b) => Some(codec::get_vote(&mut Reader::new(&b)).map_err(|e| invalid(dir, e))?),
        };
        let (offsets, entries) = entries.into_iter().unzip();
        Ok(LogStore {
            dir: dir.to_path_buf(),
            file,
            shared: Arc::new(Mutex::new(Entries { purged, entries })),
            offsets,
            file_len: valid_len,
            vote,
            failed: false,
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.shared.lock().expect("raft log lock poisoned")
    }

    fn check_usable(&self) -> io::Result<()> {
        match self.failed {
            true => Err(io::Error::other(
                "an earlier raft log write failed; reopen the store",
            )),
            false => Ok(()),
        }
    }

    /// Runs a write, fencing the store if it fails.
    fn fenced<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        self.check_usable()?;
        let r = f(self);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn write_entries(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut next = self.entries().next_index();
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for e in &entries {
            if next.is_some_and(|n| n != e.log_id.index) {
                // openraft promised consecutive appends; a gap is a bug
                // above us, and writing it would corrupt the log.
                return Err(io::Error::other(format!(
                    "append of index {} when the next index is {next:?}",
                    e.log_id.index
                )));
            }
            next = Some(e.log_id.index + 1);
            offsets.push(self.file_len + buf.len() as u64);
            log_file::encode_entry(&mut buf, e);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.file_len += buf.len() as u64;
        self.offsets.extend(offsets);
        self.entries().entries.extend(entries);
        Ok(())
    }

    fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let first = self.entries().entries.front().map(|e| e.log_id.index);
        let Some(first) = first else { return Ok(()) };
        if index < first {
            return Err(io::Error::other(format!(
                "truncate at {index} is below the first present index {first}"
            )));
        }
        let pos = (index - first) as usize;
        if pos >= self.offsets.len() {
            return Ok(());
        }
        let offset = self.offsets[pos];
        self.file.set_len(offset)?;
        self.file.sync_data()?;
        self.file_len = offset;
        self.offsets.truncate(pos);
        self.entries().entries.truncate(pos);
        Ok(())
    }

    /// Rewrites the file as a purge marker plus the entries after
    /// `upto`, then renames it into place (fsync file, rename, fsync
    /// directory), so a crash leaves either the old or the new file.
    fn purge_upto(&mut self, upto: LogId<NodeId>) -> io::Result<()> {
        let mut buf = Vec::new();
        log_file::encode_purged(&mut buf, &upto);
        let mut offsets = VecDeque::new();
        let kept: Vec<Entry> = self.entries().range(upto.index + 1..);
        for e in &kept {
            offsets.push_back(buf.len() as u64);
            log_file::encode_entry(&mut buf, e);
        }
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(LOG_FILE))?;
        files::sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.file_len = buf.len() as u64;
        self.offsets = offsets;
        let mut shared = self.entries();
        shared.entries = kept.into();
        shared.purged = Some(upto);
        Ok(())
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

fn write_err(e: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self
            .shared
            .lock()
            .expect("raft log lock poisoned")
            .range(range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self.entries().range(range))
    }
}

/// The correctness contract openraft relies on, and how it is kept:
///
/// - **Logs are consecutive, with no hole.** `append` refuses an entry
///   whose index is not the next one; `truncate` cuts a suffix and `purge`
///   a prefix, never the middle; recovery refuses a file whose valid
///   frames are not consecutive.
/// - **Writes are serialised.** openraft calls this store from a single
///   task, and every method finishes its I/O before returning, so a vote
///   and an append can never be reordered.
/// - **An append is durable before it is acknowledged.** `append` writes
///   the frames and fsyncs the file before calling `callback`, and the
///   entries are readable (in memory) before it returns.
/// - **A vote is durable before `save_vote` returns** (atomic replace with
///   fsync of the file and the directory).
/// - **After an I/O error the store is fenced**: it returns errors until
///   reopened, because the file may end in a partial frame.
impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let shared = self.entries();
        Ok(LogState {
            last_purged_log_id: shared.purged,
            last_log_id: shared.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut buf = Vec::new();
        codec::put_vote(&mut buf, vote);
        self.fenced(|s| files::write_atomic(&s.dir, VOTE_FILE, &buf, true))
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut buf = Vec::new();
        codec::put_opt_log_id(&mut buf, &committed);
        self.fenced(|s| files::write_atomic(&s.dir, COMMITTED_FILE, &buf, false))
            .map_err(write_err)
    }

    /// A lost or torn `committed` file reads as `None`; a value beyond the
    /// log (whose tail was torn) is clamped to the last entry.
    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let saved = match files::read_checked(&self.dir, COMMITTED_FILE) {
            Ok(Some(b)) => codec::get_opt_log_id(&mut Reader::new(&b)).ok().flatten(),
            Ok(None) | Err(_) => None,
        };
        let last = self.entries().last_log_id();
        Ok(match (saved, last) {
            (Some(c), Some(l)) if c.index > l.index => Some(l),
            (Some(_), None) => None,
            (c, _) => c,
        })
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        match self.fenced(|s| s.write_entries(entries)) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.fenced(|s| s.truncate_from(log_id.index))
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        if self
            .entries()
            .purged
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        self.fenced(|s| s.purge_upto(log_id)).map_err(write_err)
    }
}
