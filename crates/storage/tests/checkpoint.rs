//! Kafka-format offset checkpoint files.

use std::fs;

use odradek_storage::{
    read_checkpoint, write_checkpoint, Offsets, StorageError, TopicPartition,
    RECOVERY_POINT_CHECKPOINT,
};

#[test]
fn checkpoint_round_trip_in_kafkas_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
    assert!(
        read_checkpoint(&path).unwrap().is_empty(),
        "missing file is empty"
    );
    let mut offsets = Offsets::new();
    offsets.insert(TopicPartition::new("orders", 0), 1500);
    offsets.insert(TopicPartition::new("my-topic", 12), 0);
    offsets.insert(TopicPartition::new("__consumer_offsets", 49), 7);
    write_checkpoint(&path, &offsets).unwrap();
    assert_eq!(read_checkpoint(&path).unwrap(), offsets);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "0\n3\n__consumer_offsets 49 7\nmy-topic 12 0\norders 0 1500\n"
    );
    // Rewrites replace the file whole and leave no temporary behind.
    offsets.remove(&TopicPartition::new("orders", 0));
    write_checkpoint(&path, &offsets).unwrap();
    assert_eq!(read_checkpoint(&path).unwrap(), offsets);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_file_written_by_kafka_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replication-offset-checkpoint");
    fs::write(&path, "0\n2\nfoo 0 42\nfoo 1 43\n").unwrap();
    let offsets = read_checkpoint(&path).unwrap();
    assert_eq!(offsets[&TopicPartition::new("foo", 1)], 43);
}

#[test]
fn malformed_checkpoint_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
    fs::write(&path, "0\n2\nfoo 0 42\n").unwrap();
    assert!(matches!(
        read_checkpoint(&path),
        Err(StorageError::Corrupt { .. })
    ));
}
