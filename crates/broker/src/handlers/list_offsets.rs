//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3),
//! earliest local (-4), latest tiered (-5), or the first offset whose
//! record timestamp is at or after a given time.

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
                        .and_then(|topic| {
                            broker
                                .replicas
                                .partition(&topic.topic_id, p.partition_index)
                        })
                        .ok_or(ApiError::bare(ResponseError::UnknownTopicOrPartition));
                    let found = partition.and_then(|part| {
                        part.check_leader_epoch(p.current_leader_epoch)?;
                        lookup(&part, p.timestamp)
                    });
                    match found {
                        Ok(found) => response
                            .with_offset(found.offset)
                            .with_timestamp(found.timestamp)
                            // v4+ carries the epoch of the found offset.
                            .with_leader_epoch(if found.offset >= 0 && req.version() >= 4 {
                                0
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
/// so both isolation levels get the same "latest".
fn lookup(p: &Partition, timestamp: i64) -> Result<OffsetAndTimestamp, ApiError> {
    let at = |offset| OffsetAndTimestamp {
        offset,
        timestamp: -1,
    };
    Ok(match timestamp {
        LATEST => at(p.high_watermark()),
        EARLIEST | EARLIEST_LOCAL => at(p.log_start_offset()),
        MAX_TIMESTAMP => p.max_timestamp()?.unwrap_or(NONE),
        // No tiered storage: nothing is tiered (Kafka answers -1 too).
        LATEST_TIERED => NONE,
        t if t >= 0 => p.offset_for_timestamp(t)?.unwrap_or(NONE),
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("timestamp {other} is not a valid ListOffsets target"),
            ))
        }
    })
}
