//! OffsetForLeaderEpoch (key 23, KIP-101/KIP-320): where a leader epoch
//! ends in the leader's log, from its leader-epoch cache. Consumers use it
//! to detect truncation after a leader change; followers may use it to
//! find where their log diverges (ours learn that from Fetch instead).
//!
//! Kafka's semantics (`LeaderEpochFileCache.endOffsetFor`): the largest
//! epoch at or below the requested one and the offset where it ends (the
//! latest epoch ends at the log end); an epoch older than every one in
//! the log gets itself and the first epoch's start; a newer or unknown one
//! gets (-1, -1). Answered by the leader only.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: OffsetForLeaderEpochRequest = decode(req)?;
    let image = broker.image();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = image.topic(t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let entry = EpochEndOffset::default().with_partition(p.partition);
                    let found = topic
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|topic| {
                            broker.replicas.hosted(
                                &image,
                                &topic.topic_id,
                                p.partition,
                                ResponseError::UnknownTopicOrPartition,
                            )
                        })
                        .map_err(ApiError::bare)
                        .and_then(|part| {
                            part.end_offset_for_epoch(p.current_leader_epoch, p.leader_epoch)
                        });
                    match found {
                        Ok((epoch, end_offset)) => {
                            entry.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(e) => entry
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    ready(
        req,
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
    )
}
