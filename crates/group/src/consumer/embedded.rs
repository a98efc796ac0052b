//! The consumer protocol embedded in classic JoinGroup/SyncGroup bytes
//! (`ConsumerProtocolSubscription` and `ConsumerProtocolAssignment`, each
//! prefixed by an `int16` version). The coordinator reads them only when a
//! group moves between the classic and the consumer protocol, or when a
//! classic member lives inside a consumer group: then the coordinator, not
//! a group leader, decides assignments, and must speak this format.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

use super::{Assignment, TopicImage};

/// A member's subscription, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Subscription {
    pub topics: Vec<String>,
    /// Partitions the member reports owning (v1+; empty before).
    pub owned: Vec<(String, Vec<i32>)>,
    pub rack_id: Option<String>,
}

/// Why embedded bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

/// The version prefix. Versions newer than ours only append fields, so
/// they are read as our newest (Kafka's `ConsumerProtocol` does the same).
fn read_version<M: Message>(buf: &mut Bytes) -> Result<i16, Malformed> {
    if buf.len() < 2 {
        return Err(Malformed("shorter than its version prefix".into()));
    }
    let version = buf.get_i16();
    if version < M::VERSIONS.min {
        return Err(Malformed(format!("unknown version {version}")));
    }
    Ok(version.min(M::VERSIONS.max))
}

/// The version of an embedded subscription (0 if unreadable), so an
/// assignment can be written in the version the member speaks.
pub(crate) fn subscription_version(metadata: &Bytes) -> i16 {
    let mut buf = metadata.clone();
    read_version::<ConsumerProtocolSubscription>(&mut buf).unwrap_or(0)
}

pub(crate) fn decode_subscription(metadata: &Bytes) -> Result<Subscription, Malformed> {
    let mut buf = metadata.clone();
    let version = read_version::<ConsumerProtocolSubscription>(&mut buf)?;
    let sub = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|e| Malformed(format!("subscription: {e}")))?;
    Ok(Subscription {
        topics: sub.topics.iter().map(|t| t.to_string()).collect(),
        owned: sub
            .owned_partitions
            .iter()
            .map(|tp| (tp.topic.to_string(), tp.partitions.clone()))
            .collect(),
        rack_id: sub.rack_id.map(|r| r.to_string()),
    })
}

/// The partitions of an embedded assignment, by topic name. Empty bytes
/// (a member that has not been given an assignment yet) mean none.
pub(crate) fn decode_assignment(bytes: &Bytes) -> Result<Vec<(String, Vec<i32>)>, Malformed> {
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    let mut buf = bytes.clone();
    let version = read_version::<ConsumerProtocolAssignment>(&mut buf)?;
    let a = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| Malformed(format!("assignment: {e}")))?;
    Ok(a.assigned_partitions
        .iter()
        .map(|tp| (tp.topic.to_string(), tp.partitions.clone()))
        .collect())
}

/// Encodes `assignment` (by topic id) for a member that speaks `version`;
/// topics missing from `image` are left out.
pub(crate) fn encode_assignment(
    assignment: &Assignment,
    image: &TopicImage,
    version: i16,
) -> Bytes {
    let names = names_by_id(image);
    let version = version.clamp(
        ConsumerProtocolAssignment::VERSIONS.min,
        ConsumerProtocolAssignment::VERSIONS.max,
    );
    let assigned_partitions = assignment
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .filter_map(|(id, ps)| {
            let name = names.get(id)?;
            Some(
                AssignedTopic::default()
                    .with_topic(StrBytes::from_string((*name).to_owned()).into())
                    .with_partitions(ps.iter().copied().collect()),
            )
        })
        .collect();
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(assigned_partitions)
        .with_user_data(None);
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .expect("an assignment of valid names encodes");
    buf.freeze()
}

/// Topic-name lists → an [`Assignment`] by topic id; unknown topics are
/// left out (Kafka's `toTopicPartitionMap`).
pub(crate) fn to_assignment(partitions: &[(String, Vec<i32>)], image: &TopicImage) -> Assignment {
    let mut a = Assignment::new();
    for (name, ps) in partitions {
        if let Some(info) = image.get(name) {
            if !ps.is_empty() {
                a.entry(info.topic_id)
                    .or_default()
                    .extend(ps.iter().copied());
            }
        }
    }
    a
}

fn names_by_id(image: &TopicImage) -> std::collections::HashMap<uuid::Uuid, &str> {
    image
        .iter()
        .map(|(name, info)| (info.topic_id, name.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::TopicInfo;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;

    fn image() -> TopicImage {
        let mut image = TopicImage::new();
        image.insert(
            "orders".into(),
            TopicInfo {
                topic_id: uuid::Uuid::from_u128(1),
                partitions: 3,
            },
        );
        image
    }

    fn subscription(version: i16) -> Bytes {
        let sub = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("orders")])
            .with_owned_partitions(vec![OwnedTopic::default()
                .with_topic(StrBytes::from_static_str("orders").into())
                .with_partitions(vec![0, 2])])
            .with_generation_id(4)
            .with_rack_id(Some(StrBytes::from_static_str("r1")));
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        sub.encode(&mut buf, version.min(3)).unwrap();
        buf.freeze()
    }

    #[test]
    fn subscriptions_of_every_version_decode() {
        let v0 = decode_subscription(&subscription(0)).unwrap();
        assert_eq!(v0.topics, vec!["orders"]);
        assert!(v0.owned.is_empty(), "v0 has no owned partitions");
        let v3 = decode_subscription(&subscription(3)).unwrap();
        assert_eq!(v3.owned, vec![("orders".into(), vec![0, 2])]);
        assert_eq!(v3.rack_id.as_deref(), Some("r1"));
        // A newer version is read as the newest we know.
        assert_eq!(decode_subscription(&subscription(7)).unwrap(), v3);
        assert_eq!(subscription_version(&subscription(1)), 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            &b"\x00"[..],
            &b"\xff\xff"[..],
            &b"\x00\x00\x00\x05ab"[..],
        ] {
            assert!(
                decode_subscription(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(decode_assignment(&Bytes::from_static(b"\x00\x01\x00")).is_err());
        assert_eq!(decode_assignment(&Bytes::new()).unwrap(), vec![]);
    }

    #[test]
    fn assignments_round_trip_and_skip_unknown_topics() {
        let image = image();
        let id = image["orders"].topic_id;
        let mut a = Assignment::new();
        a.entry(id).or_default().extend([1, 2]);
        a.entry(uuid::Uuid::from_u128(99)).or_default().insert(0);
        for version in [0, 1, 3] {
            let bytes = encode_assignment(&a, &image, version);
            assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), version);
            let decoded = decode_assignment(&bytes).unwrap();
            assert_eq!(decoded, vec![("orders".into(), vec![1, 2])]);
            let back = to_assignment(&decoded, &image);
            assert_eq!(back.len(), 1);
            assert_eq!(back[&id], [1, 2].into_iter().collect());
        }
    }
}
