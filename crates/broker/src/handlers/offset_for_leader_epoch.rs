//! OffsetForLeaderEpoch (key 23, KIP-101/KIP-320): the end offset of a
//! leader epoch, which consumers use to detect log truncation after a
//! leader change.
//!
//! Every batch here is written in the partition's one leader epoch (a
//! single node never changes leader), so the epoch history is that one
//! epoch starting at the log start: the requested current epoch ends at
//! the log end offset, and an epoch newer than ours is unknown (-1, -1).
//! The cluster issue replaces this with the leader-epoch cache.

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
                        .and_then(|topic| broker.replicas.partition(&topic.topic_id, p.partition))
                        .ok_or(ApiError::bare(ResponseError::UnknownTopicOrPartition))
                        .and_then(|part| {
                            part.check_leader_epoch(p.current_leader_epoch)?;
                            Ok(if p.leader_epoch == part.leader_epoch {
                                (part.leader_epoch, part.log_end_offset())
                            } else if p.leader_epoch < part.leader_epoch && p.leader_epoch >= 0 {
                                // Older than any epoch in the log: Kafka answers the
                                // requested epoch ending where the first one starts.
                                (p.leader_epoch, part.log_start_offset())
                            } else {
                                (-1, -1)
                            })
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
