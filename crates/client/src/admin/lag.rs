//! The pure part of consumer lag: joining what the group coordinator says
//! (committed offsets, which member owns which partition) with what the
//! partition leaders say (log-end offsets) into rows, and writing the rows
//! as JSON. No I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;

/// A partition of a topic, ordered by topic name, then partition number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The group member a partition is assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOwner {
    pub consumer_id: String,
    pub host: String,
    pub client_id: String,
}

/// One line of `kafka-consumer-groups.sh --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagRow {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The committed offset (the next record the group will read); `None`
    /// when the group has committed nothing for this partition.
    pub current_offset: Option<i64>,
    /// The partition's high watermark; `None` when its leader could not
    /// tell (no leader, topic deleted, timed out).
    pub log_end_offset: Option<i64>,
    /// `log_end_offset - current_offset`, when both are known.
    pub lag: Option<i64>,
    /// The member the partition is assigned to, if any.
    pub owner: Option<PartitionOwner>,
}

/// The partitions `describe` shows, as Kafka's tool does: every partition
/// the group has committed an offset for, and every partition assigned to
/// one of its members (committed or not).
pub fn partitions_of_interest(
    committed: &BTreeMap<TopicPartition, i64>,
    owners: &BTreeMap<TopicPartition, PartitionOwner>,
) -> BTreeSet<TopicPartition> {
    committed.keys().chain(owners.keys()).cloned().collect()
}

/// Joins committed offsets and owners (from the coordinator) with log-end
/// offsets (from the leaders) into rows sorted by topic, then partition.
/// A negative committed offset (Kafka's -1) counts as none.
pub fn lag_rows(
    group: &str,
    committed: &BTreeMap<TopicPartition, i64>,
    log_end: &BTreeMap<TopicPartition, i64>,
    owners: &BTreeMap<TopicPartition, PartitionOwner>,
) -> Vec<LagRow> {
    partitions_of_interest(committed, owners)
        .into_iter()
        .map(|tp| {
            let current_offset = committed.get(&tp).copied().filter(|&o| o >= 0);
            let log_end_offset = log_end.get(&tp).copied().filter(|&o| o >= 0);
            let lag = match (current_offset, log_end_offset) {
                (Some(c), Some(e)) => Some(e - c),
                _ => None,
            };
            LagRow {
                group: group.to_owned(),
                current_offset,
                log_end_offset,
                lag,
                owner: owners.get(&tp).cloned(),
                topic: tp.topic,
                partition: tp.partition,
            }
        })
        .collect()
}

/// The partitions in a classic consumer group member's assignment: the
/// `ConsumerProtocolAssignment` bytes SyncGroup handed it (a version, then
/// the body). Empty bytes (a group not yet stable) assign nothing. Versions
/// above 3 are read as 3, as Kafka does: later versions only add fields.
pub fn decode_classic_assignment(bytes: &[u8]) -> Result<Vec<TopicPartition>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return Err("assignment shorter than its version".into());
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(format!("assignment version {version}"));
    }
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version.min(3))
        .map_err(|e| format!("assignment v{version}: {e}"))?;
    Ok(assignment
        .assigned_partitions
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic.0.to_string();
            t.partitions
                .into_iter()
                .map(move |p| TopicPartition::new(topic.clone(), p))
        })
        .collect())
}

/// The rows as one JSON array of objects with the keys `group`, `topic`,
/// `partition`, `current_offset`, `log_end_offset`, `lag`, `consumer_id`,
/// `host` and `client_id`; unknown values are `null`.
pub fn rows_to_json(rows: &[LagRow]) -> String {
    let mut out = String::from("[");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\n  {\"group\": ");
        json_string(&mut out, &row.group);
        out.push_str(", \"topic\": ");
        json_string(&mut out, &row.topic);
        let _ = write!(out, ", \"partition\": {}", row.partition);
        for (key, value) in [
            ("current_offset", row.current_offset),
            ("log_end_offset", row.log_end_offset),
            ("lag", row.lag),
        ] {
            let _ = write!(out, ", \"{key}\": ");
            match value {
                Some(v) => {
                    let _ = write!(out, "{v}");
                }
                None => out.push_str("null"),
            }
        }
        let owner = row.owner.as_ref();
        for (key, value) in [
            ("consumer_id", owner.map(|o| o.consumer_id.as_str())),
            ("host", owner.map(|o| o.host.as_str())),
            ("client_id", owner.map(|o| o.client_id.as_str())),
        ] {
            let _ = write!(out, ", \"{key}\": ");
            match value {
                Some(s) => json_string(&mut out, s),
                None => out.push_str("null"),
            }
        }
        out.push('}');
    }
    if !rows.is_empty() {
        out.push('\n');
    }
    out.push(']');
    out
}

/// Appends `s` as a JSON string (RFC 8259): quotes, backslashes and
/// control characters escaped; everything else is copied as UTF-8.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    fn owner(id: &str) -> PartitionOwner {
        PartitionOwner {
            consumer_id: id.into(),
            host: "/127.0.0.1".into(),
            client_id: "app".into(),
        }
    }

    #[test]
    fn joins_committed_and_log_end_sorted_by_topic_then_partition() {
        let committed = BTreeMap::from([(tp("b", 0), 3), (tp("a", 10), 5), (tp("a", 2), 0)]);
        let log_end = BTreeMap::from([(tp("a", 2), 7), (tp("a", 10), 5), (tp("b", 0), 9)]);
        let rows = lag_rows("g", &committed, &log_end, &BTreeMap::new());
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.topic.as_str(),
                    r.partition,
                    r.current_offset,
                    r.log_end_offset,
                    r.lag,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", 2, Some(0), Some(7), Some(7)),
                ("a", 10, Some(5), Some(5), Some(0)),
                ("b", 0, Some(3), Some(9), Some(6)),
            ]
        );
        assert!(rows.iter().all(|r| r.group == "g" && r.owner.is_none()));
    }

    #[test]
    fn assigned_but_uncommitted_partitions_have_no_offset_and_no_lag() {
        let committed = BTreeMap::from([(tp("t", 0), 4)]);
        let owners = BTreeMap::from([(tp("t", 0), owner("m1")), (tp("t", 1), owner("m1"))]);
        let log_end = BTreeMap::from([(tp("t", 0), 10), (tp("t", 1), 6)]);
        let rows = lag_rows("g", &committed, &log_end, &owners);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].lag, Some(6));
        assert_eq!(rows[0].owner, Some(owner("m1")));
        assert_eq!(
            (rows[1].current_offset, rows[1].log_end_offset, rows[1].lag),
            (None, Some(6), None)
        );
    }

    #[test]
    fn unknown_log_end_and_negative_commits_give_no_lag() {
        // -1 is how OffsetFetch says "nothing committed".
        let committed = BTreeMap::from([(tp("t", 0), -1), (tp("t", 1), 2)]);
        let log_end = BTreeMap::from([(tp("t", 0), 5)]);
        let rows = lag_rows("g", &committed, &log_end, &BTreeMap::new());
        assert_eq!(
            (rows[0].current_offset, rows[0].log_end_offset, rows[0].lag),
            (None, Some(5), None)
        );
        assert_eq!(
            (rows[1].current_offset, rows[1].log_end_offset, rows[1].lag),
            (Some(2), None, None)
        );
    }

    #[test]
    fn lag_is_not_clamped_like_kafka() {
        // A commit past the high watermark (e.g. after a truncation) shows
        // as negative lag, as kafka-consumer-groups.sh shows it.
        let committed = BTreeMap::from([(tp("t", 0), 12)]);
        let log_end = BTreeMap::from([(tp("t", 0), 10)]);
        assert_eq!(
            lag_rows("g", &committed, &log_end, &BTreeMap::new())[0].lag,
            Some(-2)
        );
    }

    #[test]
    fn json_has_one_object_per_row_with_nulls_for_unknowns() {
        let committed = BTreeMap::from([(tp("t", 0), 4)]);
        let owners = BTreeMap::from([(tp("t", 1), owner("m-1"))]);
        let log_end = BTreeMap::from([(tp("t", 0), 10)]);
        let json = rows_to_json(&lag_rows("g", &committed, &log_end, &owners));
        assert_eq!(
            json,
            "[\n  {\"group\": \"g\", \"topic\": \"t\", \"partition\": 0, \"current_offset\": 4, \
             \"log_end_offset\": 10, \"lag\": 6, \"consumer_id\": null, \"host\": null, \
             \"client_id\": null},\n  {\"group\": \"g\", \"topic\": \"t\", \"partition\": 1, \
             \"current_offset\": null, \"log_end_offset\": null, \"lag\": null, \
             \"consumer_id\": \"m-1\", \"host\": \"/127.0.0.1\", \"client_id\": \"app\"}\n]"
        );
        assert_eq!(rows_to_json(&[]), "[]");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\te\u{1}f\u{7f}é✓");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\te\\u0001f\u{7f}é✓\"");
    }

    fn encoded_assignment(version: i16, topics: &[(&str, &[i32])]) -> Vec<u8> {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(TopicName(StrBytes::from_string((*t).to_owned())))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        assignment.encode(&mut buf, version.min(3)).unwrap();
        buf.to_vec()
    }

    #[test]
    fn classic_assignments_decode_for_every_version() {
        for version in 0..=3 {
            let bytes = encoded_assignment(version, &[("x", &[2, 0]), ("y", &[1])]);
            assert_eq!(
                decode_classic_assignment(&bytes).unwrap(),
                [tp("x", 2), tp("x", 0), tp("y", 1)],
                "v{version}"
            );
        }
        // A newer version than we know is read as the newest we know.
        let mut v4 = encoded_assignment(3, &[("x", &[5])]);
        v4[1] = 4;
        assert_eq!(decode_classic_assignment(&v4).unwrap(), [tp("x", 5)]);
        assert_eq!(decode_classic_assignment(&[]).unwrap(), []);
        assert!(decode_classic_assignment(&[0]).is_err());
        assert!(decode_classic_assignment(&[0, 0, 0, 0, 0, 9]).is_err());
    }
}
