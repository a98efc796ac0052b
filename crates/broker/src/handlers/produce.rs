//! Produce (key 0): validate each partition's batch, append as leader, and
//! answer once the flush policy is satisfied and, for acks=all, once the
//! in-sync replicas have the batch (the high watermark passed it) or
//! `timeout_ms` ran out. acks=0 gets no answer at all.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use odradek_metadata::MetadataImage;
use odradek_protocol::frame::RawRequest;

use super::{decode, message, respond, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::partition::Partition;

pub fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: ProduceRequest = decode(req)?;
    let acks = request.acks;
    let now_ms = broker.now_ms();
    let by_id = req.version() >= 13;
    let image = broker.image();
    let mut to_flush: Vec<(Arc<Partition>, i64)> = Vec::new();
    // acks=all batches the high watermark has not passed yet:
    // (partition, last offset, leader epoch of the append).
    let mut to_replicate: Vec<(Arc<Partition>, i64, i32)> = Vec::new();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut failed = false;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in &request.topic_data {
        let found = if by_id {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.name.0.as_str())
        };
        let partitions = topic
            .partition_data
            .iter()
            .map(|pd| {
                let outcome = if !(-1..=1).contains(&acks) {
                    Err(ApiError::new(
                        ResponseError::InvalidRequiredAcks,
                        format!("acks={acks} is not one of -1, 0, 1"),
                    ))
                } else {
                    append_one(broker, &image, found.map(|t| (t.topic_id, &*t.name)), by_id, pd.index, pd.records.as_ref(), acks, now_ms)
                };
                let response = PartitionProduceResponse::default().with_index(pd.index);
                match outcome {
                    Ok((partition, appended)) => {
                        if appended.awaits_replication {
                            to_replicate.push((
                                partition.clone(),
                                appended.last_offset,
                                appended.leader_epoch,
                            ));
                        }
                        if appended.must_flush {
                            to_flush.push((partition, appended.last_offset));
                        }
                        response
                            .with_base_offset(appended.base_offset)
                            .with_log_append_time_ms(appended.log_append_time_ms)
                            .with_log_start_offset(appended.log_start_offset)
                    }
                    Err(e) => {
                        failed = true;
                        tracing::debug!(topic = %topic.name.0, partition = pd.index, error = ?e, "produce refused");
                        response
                            .with_error_code(e.code())
                            .with_error_message(message(&e))
                            .with_base_offset(-1)
                    }
                }
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    let response = ProduceResponse::default().with_responses(responses);
    if acks == 0 {
        if !to_flush.is_empty() {
            tokio::spawn(flush_all(to_flush));
        }
        // Kafka closes an acks=0 connection after a failed append: the
        // only way such a producer can learn that something went wrong.
        return if failed {
            Err(RequestError::AcksZeroFailure)
        } else {
            Ok(Reply::Nothing)
        };
    }
    if to_flush.is_empty() && to_replicate.is_empty() {
        return Ok(Reply::Ready(respond(req, &response)?));
    }
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let mut response = response;
        let (replication_failures, flush_failures) =
            futures::future::join(replicate_all(to_replicate, deadline), flush_all(to_flush)).await;
        // A failed fsync is the more serious news: it overwrites.
        for (partition, e) in replication_failures.into_iter().chain(flush_failures) {
            let same_topic = |t: &&mut TopicProduceResponse| {
                t.name.0.as_str() == &*partition.topic || t.topic_id == partition.topic_id
            };
            let index = partition.index;
            for t in response.responses.iter_mut().filter(same_topic) {
                for p in t
                    .partition_responses
                    .iter_mut()
                    .filter(|p| p.index == index)
                {
                    p.error_code = e.code();
                    p.error_message = message(&e);
                }
            }
        }
        respond(&req, &response).unwrap_or_else(|e| {
            tracing::error!(error = %e, "encoding produce response failed");
            bytes::Bytes::new()
        })
    })))
}

#[allow(clippy::too_many_arguments)]
fn append_one(
    broker: &Broker,
    image: &MetadataImage,
    topic: Option<(uuid::Uuid, &str)>,
    by_id: bool,
    index: i32,
    records: Option<&bytes::Bytes>,
    acks: i16,
    now_ms: i64,
) -> Result<(Arc<Partition>, crate::partition::Appended), ApiError> {
    let unknown = if by_id {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    let (topic_id, name) = topic.ok_or(ApiError::bare(unknown))?;
    if crate::broker::is_internal_topic(name) {
        return Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!("cannot append to internal topic {name}"),
        ));
    }
    let partition = broker
        .replicas
        .hosted(image, &topic_id, index, unknown)
        .map_err(ApiError::bare)?;
    let records = records
        .ok_or_else(|| ApiError::new(ResponseError::InvalidRecord, "partition has null records"))?;
    let appended = partition.append(records, acks, now_ms)?;
    Ok((partition, appended))
}

/// Waits until the in-sync replicas have each batch (acks=all), all
/// partitions concurrently, and returns the ones that failed.
async fn replicate_all(
    to_replicate: Vec<(Arc<Partition>, i64, i32)>,
    deadline: tokio::time::Instant,
) -> Vec<(Arc<Partition>, ApiError)> {
    let results = futures::future::join_all(
        to_replicate
            .iter()
            .map(|(p, last_offset, epoch)| p.wait_for_acks(*last_offset, *epoch, deadline)),
    )
    .await;
    to_replicate
        .iter()
        .zip(results)
        .filter_map(|((p, _, _), r)| r.err().map(|e| (p.clone(), e)))
        .collect()
}

/// Waits for each partition's flush (concurrently, sharing fsyncs with
/// other requests) and returns the ones that failed.
async fn flush_all(to_flush: Vec<(Arc<Partition>, i64)>) -> Vec<(Arc<Partition>, ApiError)> {
    let results =
        futures::future::join_all(to_flush.iter().map(|(p, offset)| p.flush_through(*offset)))
            .await;
    to_flush
        .iter()
        .zip(results)
        .filter_map(|((p, _), r)| r.err().map(|e| (p.clone(), e)))
        .collect()
}
