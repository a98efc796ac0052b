//! Partition directory names and the `partition.metadata` file.

use std::fs;
use std::io;
use std::path::Path;

use crate::checkpoint::{write_atomically, TopicPartition};
use crate::error::{IoContext, Result, StorageError};

pub const PARTITION_METADATA: &str = "partition.metadata";

/// Parses a partition directory name `<topic>-<partition>`. Topic names may
/// contain `-`, so the split is at the last one. Kafka's transient
/// directories (`…-delete`, `…-future`, `…-stray`) are not partitions.
pub fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    if ["-delete", "-future", "-stray"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return None;
    }
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

/// Writes `partition.metadata` as Kafka does: `version: 0` and the topic id
/// in Kafka's textual form (unpadded URL-safe base64 of the 16 bytes).
pub fn write_partition_metadata(partition_dir: &Path, topic_id: [u8; 16]) -> Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", base64_url(topic_id));
    write_atomically(&partition_dir.join(PARTITION_METADATA), text.as_bytes())
}

/// Reads the topic id from `partition.metadata`, if the file exists.
pub fn read_partition_metadata(partition_dir: &Path) -> Result<Option<[u8; 16]>> {
    let path = partition_dir.join(PARTITION_METADATA);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
    };
    let corrupt = |reason: &str| StorageError::Corrupt {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines() {
        match line.split_once(':') {
            Some(("version", v)) => version = Some(v.trim()),
            Some(("topic_id", v)) => topic_id = Some(v.trim()),
            _ => {}
        }
    }
    if version != Some("0") {
        return Err(corrupt("missing or unsupported version"));
    }
    let id = topic_id.ok_or_else(|| corrupt("missing topic_id"))?;
    decode_base64_url(id)
        .map(Some)
        .ok_or_else(|| corrupt("malformed topic_id"))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded URL-safe base64, Kafka's textual form of a `Uuid` (topic ids,
/// cluster ids, directory ids): 16 bytes give 22 characters.
pub fn base64_url(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn decode_base64_url(text: &str) -> Option<[u8; 16]> {
    if text.len() != 22 {
        return None;
    }
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(16);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names_split_at_the_last_dash() {
        let tp = parse_partition_dir("my-topic-with-dashes-12").unwrap();
        assert_eq!(
            (tp.topic.as_str(), tp.partition),
            ("my-topic-with-dashes", 12)
        );
        assert_eq!(tp.dir_name(), "my-topic-with-dashes-12");
        for bad in [
            "nodash",
            "topic-",
            "-3",
            "topic-x1",
            "t-0.abc-delete",
            "t-1-future",
        ] {
            assert_eq!(parse_partition_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn topic_ids_use_kafkas_base64() {
        // Kafka's Uuid.toString() of 0x00..0f is "AAECAwQFBgcICQoLDA0ODw".
        let id: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(base64_url(id), "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(base64_url([0xffu8; 3]), "____");
        assert_eq!(decode_base64_url("AAECAwQFBgcICQoLDA0ODw"), Some(id));
        let dir = tempfile::tempdir().unwrap();
        write_partition_metadata(dir.path(), id).unwrap();
        assert_eq!(read_partition_metadata(dir.path()).unwrap(), Some(id));
    }
}
