//! OffsetFetch (key 9): one group (v1–v7) or a batch of groups (v8+).

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use odradek_group::FetchedOffset;
use odradek_group::GroupError;
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;

type Fetched = Result<Vec<(String, Vec<FetchedOffset>)>, GroupError>;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: OffsetFetchRequest = decode(req)?;
    let version = req.version();
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let topics: Option<Vec<(String, Vec<i32>)>> = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                // v9 (KIP-848): a consumer-group member proves its epoch.
                let member = (version >= 9)
                    .then(|| g.member_id.as_ref().map(|m| (m.as_str(), g.member_epoch)))
                    .flatten();
                let fetched = fetch(broker, g.group_id.0.as_str(), member, topics.as_deref());
                group_entry(g.group_id.clone(), fetched)
            })
            .collect();
        return ready(req, &OffsetFetchResponse::default().with_groups(groups));
    }
    let topics: Option<Vec<(String, Vec<i32>)>> = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let fetched = fetch(broker, request.group_id.0.as_str(), None, topics.as_deref());
    let response = match fetched {
        Ok(found) => OffsetFetchResponse::default().with_topics(
            found
                .into_iter()
                .map(|(topic, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p.partition)
                                        .with_committed_offset(p.offset)
                                        .with_committed_leader_epoch(if version >= 5 {
                                            p.leader_epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(Some(StrBytes::from_string(p.metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        // v2+ carries a top-level error; v1 only per partition.
        Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
        Err(e) => OffsetFetchResponse::default().with_topics(
            topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_error_code(e.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    };
    ready(req, &response)
}

fn fetch(
    broker: &Broker,
    group_id: &str,
    member: Option<(&str, i32)>,
    topics: Option<&[(String, Vec<i32>)]>,
) -> Fetched {
    let (member_id, member_epoch) = member.map_or((None, -1), |(id, epoch)| (Some(id), epoch));
    broker
        .groups
        .with_core(group_id, |core| {
            core.fetch_offsets_checked(group_id, member_id, member_epoch, topics)
        })
        .and_then(|r| r)
}

fn group_entry(group_id: GroupId, fetched: Fetched) -> OffsetFetchResponseGroup {
    match fetched {
        Err(e) => OffsetFetchResponseGroup::default()
            .with_group_id(group_id)
            .with_error_code(e.code()),
        Ok(found) => OffsetFetchResponseGroup::default()
            .with_group_id(group_id)
            .with_topics(
                found
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p.partition)
                                            .with_committed_offset(p.offset)
                                            .with_committed_leader_epoch(p.leader_epoch)
                                            .with_metadata(Some(StrBytes::from_string(p.metadata)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
    }
}
