//! DescribeLogDirs (key 35): the log directory, its capacity, and the size
//! of each partition this broker hosts in it.

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: DescribeLogDirsRequest = decode(req)?;
    let image = broker.image();
    let dir = broker.config.log_dir();
    let mut topics = Vec::new();
    let mut names: Vec<_> = image.topics().collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    for topic in names {
        let wanted: Option<&Vec<i32>> = match &request.topics {
            None => None,
            Some(list) => match list.iter().find(|t| t.topic.0.as_str() == &*topic.name) {
                Some(t) => Some(&t.partitions),
                None => continue,
            },
        };
        let partitions: Vec<_> = topic
            .partitions
            .keys()
            .filter(|i| wanted.is_none_or(|w| w.contains(i)))
            .filter(|i| broker.replicas.partition(&topic.topic_id, **i).is_some())
            .map(|i| {
                let size = dir_size(&dir.join(format!("{}-{}", topic.name, i)));
                DescribeLogDirsPartition::default()
                    .with_partition_index(*i)
                    .with_partition_size(size)
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.name.to_string())))
                    .with_partitions(partitions),
            );
        }
    }
    let (total, usable) = capacity(dir).unwrap_or((-1, -1));
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(absolute.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    ready(
        req,
        &DescribeLogDirsResponse::default().with_results(vec![result]),
    )
}

/// Bytes of the segment and index files, as Kafka's partition size counts
/// the log (its `.log` files) only.
fn dir_size(dir: &Path) -> i64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len() as i64)
                .sum()
        })
        .unwrap_or(0)
}

/// Total and usable bytes of the file system holding `dir` (KIP-827).
fn capacity(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` is a
    // properly sized, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as i64;
    Some((stat.f_blocks as i64 * block, stat.f_bavail as i64 * block))
}
