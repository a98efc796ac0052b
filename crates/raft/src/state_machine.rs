//! The replicated state machine: committed commands applied to the
//! metadata image.
//!
//! The image lives in memory and is published to readers through a
//! `tokio::sync::watch` channel as `Arc<MetadataImage>` after every applied
//! batch, so the broker can react to each change (create logs, move
//! leaderships) and readers never see a half-applied command. Durability
//! comes from the log plus the persisted snapshot (the "persistent
//! snapshot" option of openraft's `RaftStateMachine` docs): on start the
//! image is rebuilt from the snapshot, and openraft re-applies the
//! committed entries after it.

use std::io::Cursor;
use std::sync::Arc;

use odradek_metadata::MetadataImage;
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    StorageError, StorageIOError, StoredMembership,
};
use tokio::sync::watch;

use crate::snapshot::{self, Meta, SnapshotStore, StoredSnapshot};
use crate::{Entry, NodeId, TypeConfig};

pub struct StateMachine {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// Owned here (openraft moves the state machine into its own task);
    /// receivers are handed out by `MetadataQuorum::image`. When the Raft
    /// node stops, the sender is dropped and receivers keep the last image.
    published: watch::Sender<Arc<MetadataImage>>,
    snapshots: SnapshotStore,
}

/// Builds a snapshot from a frozen view of the state machine; openraft
/// runs it on a separate task while applying continues.
pub struct SnapshotBuilder {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshots: SnapshotStore,
}

impl StateMachine {
    /// Opens the state machine over `dir` (the `__cluster_metadata-0`
    /// directory), rebuilding the image from the persisted snapshot.
    pub fn open(dir: &std::path::Path) -> std::io::Result<StateMachine> {
        let snapshots = SnapshotStore::open(dir)?;
        let (image, last_applied, membership) = match snapshots.current() {
            None => (MetadataImage::default(), None, StoredMembership::default()),
            Some(s) => {
                let image = snapshot::decode_data(&s.data).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                })?;
                (image, s.meta.last_log_id, s.meta.last_membership)
            }
        };
        let image = Arc::new(image);
        Ok(StateMachine {
            published: watch::Sender::new(image.clone()),
            image,
            last_applied,
            membership,
            snapshots,
        })
    }

    /// A receiver of every applied image, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.published.subscribe()
    }

    fn publish(&self) {
        self.published.send_replace(self.image.clone());
    }
}

fn snapshot_of(s: &StoredSnapshot) -> Snapshot<TypeConfig> {
    Snapshot {
        meta: s.meta.clone(),
        snapshot: Box::new(Cursor::new(s.data.to_vec())),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snapshot_id = match &self.last_applied {
            Some(id) => format!(
                "{}-{}-{}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => "empty".to_string(),
        };
        let stored = StoredSnapshot {
            meta: Meta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data: Arc::new(snapshot::encode_data(&self.image)),
        };
        let signature = stored.meta.signature();
        self.snapshots
            .save(stored.clone())
            .map_err(|e| StorageIOError::write_snapshot(Some(signature), AnyError::new(&e)))?;
        Ok(snapshot_of(&stored))
    }
}

/// The contract openraft relies on, and how it is kept:
///
/// - `apply` records every entry's log id as applied and every membership
///   entry as the applied membership, and returns one response per entry
///   (the image right after that entry).
/// - Only committed entries reach `apply`; applying is deterministic, so
///   all voters hold equal images at equal applied log ids.
/// - `install_snapshot` replaces the whole image, persists the snapshot
///   before returning, and makes it the one `get_current_snapshot` returns.
impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<Arc<MetadataImage>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut changed = false;
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(cmd) => {
                    // Copy-on-write: clones only if a reader holds the
                    // previous image, which is the usual case.
                    let image = Arc::make_mut(&mut self.image);
                    cmd.records.iter().for_each(|r| image.apply(r));
                    changed = true;
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            responses.push(self.image.clone());
        }
        if changed {
            self.publish();
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let image = snapshot::decode_data(&data).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: Arc::new(data),
        };
        self.snapshots.save(stored).map_err(|e| {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.snapshots.current().as_ref().map(snapshot_of))
    }
}
