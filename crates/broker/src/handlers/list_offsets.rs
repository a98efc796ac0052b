//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3),
//! earliest local (-4), latest tiered (-5), or the first offset whose
//! record timestamp is at or after a given time. Answered by the leader
//! (KIP-320 epoch checks first); a follower broker asking (`replica_id` ≥
//! 0) gets the log end rather than the high watermark for "latest", as in
//! Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use odradek_protocol::frame::RawRequest;

use super::{decode, ready, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::partition::{OffsetAndTimestamp, Partition};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const NONE: OffsetAndTimestamp = OffsetAndTimestamp {
    offset: -1,
    timestamp: -1,
};

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: ListOffsetsRequest = decode(req)?;
    let from_replica = request.replica_id.0 >= 0;
    let image = broker.image();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let topic = image.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let partition = topic
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|topic| {
                            broker.replicas.hosted(
                                &image,
                                &topic.topic_id,
                                p.partition_index,
                                ResponseError::UnknownTopicOrPartition,
                            )
                        })
                        .map_err(ApiError::bare);
                    let found = partition.and_then(|part| {
                        part.check_leader(p.current_leader_epoch)?;
                        let found = lookup(&part, p.timestamp, from_replica)?;
                        Ok((found, epoch_of(&part, p.timestamp, found.offset)))
                    });
                    match found {
                        Ok((found, epoch)) => response
                            .with_offset(found.offset)
                            .with_timestamp(found.timestamp)
                            // v4+ carries the epoch of the found offset.
                            .with_leader_epoch(if found.offset >= 0 && req.version() >= 4 {
                                epoch
                            } else {
                                -1
                            }),
                        Err(e) => response
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ready(req, &ListOffsetsResponse::default().with_topics(topics))
}

/// Without transactions the last stable offset equals the high watermark,
/// so both isolation levels get the same "latest". A new leader whose high
/// watermark has not yet reached the start of its epoch cannot tell
/// clients where "latest" is (Kafka: OFFSET_NOT_AVAILABLE, retriable).
fn lookup(
    p: &Partition,
    timestamp: i64,
    from_replica: bool,
) -> Result<OffsetAndTimestamp, ApiError> {
    let at = |offset| OffsetAndTimestamp {
        offset,
        timestamp: -1,
    };
    let lagging = || {
        p.leader_epoch_start_offset()
            .filter(|&start| !from_replica && start > p.high_watermark())
            .map(|start| {
                ApiError::new(
                    ResponseError::OffsetNotAvailable,
                    format!(
                        "the high watermark of {}-{} ({}) has not reached the start of leader epoch {} ({start}) yet; retry",
                        p.topic,
                        p.index,
                        p.high_watermark(),
                        p.leader_epoch()
                    ),
                )
            })
    };
    Ok(match timestamp {
        LATEST if from_replica => at(p.log_end_offset()),
        LATEST => match lagging() {
            Some(e) => return Err(e),
            None => at(p.high_watermark()),
        },
        EARLIEST | EARLIEST_LOCAL => at(p.log_start_offset()),
        MAX_TIMESTAMP => p.max_timestamp()?.unwrap_or(NONE),
        // No tiered storage: nothing is tiered (Kafka answers -1 too).
        LATEST_TIERED => NONE,
        // Only a record past the high watermark could be missed then.
        t if t >= 0 => match p.offset_for_timestamp(t)? {
            Some(found) => found,
            None => match lagging() {
                Some(e) => return Err(e),
                None => NONE,
            },
        },
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("timestamp {other} is not a valid ListOffsets target"),
            ))
        }
    })
}

/// The leader epoch ListOffsets v4+ reports: the current one for "latest"
/// (Kafka's choice), else the epoch of the batch holding the offset.
fn epoch_of(p: &Partition, timestamp: i64, offset: i64) -> i32 {
    if timestamp == LATEST {
        return p.leader_epoch();
    }
    p.epoch_for_offset(offset).unwrap_or(-1)
}
