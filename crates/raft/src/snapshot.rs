//! Snapshots of the metadata image: the list of records that rebuilds it.
//!
//! A snapshot's data is a `MetadataCommand` encoding of
//! [`image_to_records`]. The order is deterministic (topics by name,
//! partitions and configs in key order), so two voters that applied the
//! same log produce byte-identical snapshots, and a snapshot is named by
//! its last log id alone.
//!
//! The current snapshot is kept in `__cluster_metadata-0/snapshot` as
//! `SnapshotMeta | data: bytes`, replaced atomically and fsynced (see
//! `files`). It must be durable before openraft purges the log entries it
//! covers, and it is: `build_snapshot` and `install_snapshot` save it
//! before returning, and openraft purges only after they return.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use odradek_metadata::{MetadataImage, MetadataRecord};
use openraft::SnapshotMeta;

use crate::codec::{self, DecodeError, Put, Reader};
use crate::command::MetadataCommand;
use crate::files;
use crate::NodeId;

pub type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

const SNAPSHOT_FILE: &str = "snapshot";

/// The records that, applied in order to an empty image, rebuild `image`.
pub fn image_to_records(image: &MetadataImage) -> Vec<MetadataRecord> {
    image.to_records()
}

pub fn image_from_records(records: &[MetadataRecord]) -> MetadataImage {
    MetadataImage::from_records(records)
}

pub fn encode_data(image: &MetadataImage) -> Vec<u8> {
    let mut buf = Vec::new();
    MetadataCommand::new(image_to_records(image)).encode(&mut buf);
    buf
}

pub fn decode_data(data: &[u8]) -> Result<MetadataImage, DecodeError> {
    let mut r = Reader::new(data);
    let cmd = MetadataCommand::decode(&mut r)?;
    r.finish()?;
    Ok(image_from_records(&cmd.records))
}

#[derive(Clone, Debug)]
pub struct StoredSnapshot {
    pub meta: Meta,
    pub data: Arc<Vec<u8>>,
}

/// The durable current snapshot, shared by the state machine and its
/// snapshot builders (which openraft runs on other tasks).
#[derive(Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl SnapshotStore {
    pub fn open(dir: &Path) -> io::Result<SnapshotStore> {
        std::fs::create_dir_all(dir)?;
        let current = match files::read_checked(dir, SNAPSHOT_FILE)? {
            None => None,
            Some(body) => Some(parse(&body).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", dir.join(SNAPSHOT_FILE).display()),
                )
            })?),
        };
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
            current: Arc::new(Mutex::new(current)),
        })
    }

    pub fn current(&self) -> Option<StoredSnapshot> {
        self.current.lock().expect("snapshot lock poisoned").clone()
    }

    /// Makes `snapshot` the durable current one unless a newer one is
    /// already there (a builder can finish after a snapshot from the
    /// leader was installed). Returns whether it was saved.
    pub fn save(&self, snapshot: StoredSnapshot) -> io::Result<bool> {
        let mut current = self.current.lock().expect("snapshot lock poisoned");
        if let Some(c) = &*current {
            if c.meta.last_log_id > snapshot.meta.last_log_id {
                return Ok(false);
            }
        }
        let mut body = Vec::new();
        codec::put_snapshot_meta(&mut body, &snapshot.meta);
        body.put_bytes(&snapshot.data);
        files::write_atomic(&self.dir, SNAPSHOT_FILE, &body, true)?;
        *current = Some(snapshot);
        Ok(true)
    }
}

fn parse(body: &[u8]) -> Result<StoredSnapshot, DecodeError> {
    let mut r = Reader::new(body);
    let meta = codec::get_snapshot_meta(&mut r)?;
    let data = r.bytes()?.to_vec();
    r.finish()?;
    Ok(StoredSnapshot {
        meta,
        data: Arc::new(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn sample_image() -> MetadataImage {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut records = vec![
            MetadataRecord::Topic {
                name: "b".into(),
                topic_id: b,
            },
            MetadataRecord::Topic {
                name: "a".into(),
                topic_id: a,
            },
            MetadataRecord::ProducerIds {
                next_producer_id: 1000,
            },
        ];
        for p in 0..3 {
            records.push(MetadataRecord::Partition {
                topic_id: a,
                partition: p,
                state: odradek_metadata::PartitionImage {
                    isr: vec![1, 2],
                    partition_epoch: 2 * p,
                    ..odradek_metadata::PartitionImage::new(vec![1, 2, 3], 1 + p, p)
                },
            });
        }
        records.extend([
            MetadataRecord::TopicConfig {
                topic_id: a,
                key: "retention.ms".into(),
                value: Some("1".into()),
            },
            MetadataRecord::TopicConfig {
                topic_id: a,
                key: "cleanup.policy".into(),
                value: Some("compact".into()),
            },
            MetadataRecord::TopicConfig {
                topic_id: a,
                key: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::RemoveTopic { topic_id: b },
        ]);
        image_from_records(&records)
    }

    #[test]
    fn records_rebuild_the_image_exactly() {
        let image = sample_image();
        assert_eq!(image_from_records(&image_to_records(&image)), image);
        assert_eq!(decode_data(&encode_data(&image)).unwrap(), image);
        // Deterministic: the same image gives the same bytes.
        assert_eq!(encode_data(&image), encode_data(&image.clone()));
        assert_eq!(image_to_records(&MetadataImage::default()), vec![]);
    }

    #[test]
    fn store_keeps_the_newest_snapshot_across_reopen() {
        use openraft::{CommittedLeaderId, LogId, StoredMembership};
        let dir = tempfile::tempdir().unwrap();
        let image = sample_image();
        let snap = |index: u64| StoredSnapshot {
            meta: Meta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
                last_membership: StoredMembership::default(),
                snapshot_id: format!("1-1-{index}"),
            },
            data: Arc::new(encode_data(&image)),
        };
        let store = SnapshotStore::open(dir.path()).unwrap();
        assert!(store.current().is_none());
        assert!(store.save(snap(7)).unwrap());
        assert!(!store.save(snap(5)).unwrap(), "older snapshot is ignored");
        let reopened = SnapshotStore::open(dir.path()).unwrap();
        let current = reopened.current().unwrap();
        assert_eq!(current.meta, snap(7).meta);
        assert_eq!(decode_data(&current.data).unwrap(), image);
    }
}
