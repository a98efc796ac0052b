//! Fetch (key 1): whole batches from the requested offsets, never past the
//! high watermark; waits up to `max_wait_ms` for `min_bytes`, woken by
//! appends rather than by polling.
//!
//! Fetch sessions (KIP-227): we create none. A request for a new session
//! (id 0) gets id 0 back, which tells the client to keep sending full
//! fetches; a request naming a session we never issued gets
//! FETCH_SESSION_ID_NOT_FOUND.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use odradek_protocol::frame::RawRequest;
use uuid::Uuid;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::partition::Partition;

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Wanted {
    topic_slot: usize,
    index: i32,
    fetch_offset: i64,
    current_leader_epoch: i32,
    max_bytes: usize,
    partition: Result<Arc<Partition>, ResponseError>,
}

struct Plan {
    topics: Vec<(TopicName, Uuid)>,
    partitions: Vec<Wanted>,
    max_bytes: usize,
    read_committed: bool,
}

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: FetchRequest = decode(req)?;
    if request.session_id != 0 {
        let response = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return Ok(Reply::Ready(respond(req, &response)?));
    }
    let plan = resolve(broker, &request, req.version() >= 13);
    let min_bytes = request.min_bytes.max(0) as usize;
    let (response, bytes, errored) = read_all(&plan);
    if bytes >= min_bytes || errored || request.max_wait_ms <= 0 || plan.partitions.is_empty() {
        return Ok(Reply::Ready(respond(req, &response)?));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms as u64);
    let req = req.clone();
    Ok(Reply::Later(Box::pin(async move {
        let response = wait_for_data(&plan, min_bytes, deadline).await;
        respond(&req, &response).unwrap_or_else(|e| {
            tracing::error!(error = %e, "encoding fetch response failed");
            Bytes::new()
        })
    })))
}

fn resolve(broker: &Broker, request: &FetchRequest, by_id: bool) -> Plan {
    let image = broker.image();
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut partitions = Vec::new();
    for (slot, t) in request.topics.iter().enumerate() {
        let topic = if by_id {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topic(t.topic.0.as_str())
        };
        topics.push((t.topic.clone(), t.topic_id));
        let unknown = if by_id {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        for p in &t.partitions {
            let partition = topic
                .and_then(|t| broker.replicas.partition(&t.topic_id, p.partition))
                .ok_or(if topic.is_some() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    unknown
                });
            partitions.push(Wanted {
                topic_slot: slot,
                index: p.partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                partition,
            });
        }
    }
    Plan {
        topics,
        partitions,
        max_bytes: request.max_bytes.max(0) as usize,
        read_committed: request.isolation_level == READ_COMMITTED,
    }
}

/// Reads every partition once. Returns the response, the record bytes in
/// it, and whether any partition failed (a failed partition answers at
/// once rather than waiting).
fn read_all(plan: &Plan) -> (FetchResponse, usize, bool) {
    let mut remaining = plan.max_bytes;
    let mut total = 0usize;
    let mut errored = false;
    let mut topics: Vec<FetchableTopicResponse> = plan
        .topics
        .iter()
        .map(|(name, id)| {
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_topic_id(*id)
        })
        .collect();
    for w in &plan.partitions {
        let data = match &w.partition {
            Err(code) => Err(ApiError::bare(*code)),
            Ok(p) => read_one(p, w, remaining.min(w.max_bytes), total == 0),
        };
        let entry = match data {
            Ok((entry, n)) => {
                total += n;
                remaining = remaining.saturating_sub(n);
                entry
            }
            Err(e) => {
                errored = true;
                let mut entry = PartitionData::default()
                    .with_partition_index(w.index)
                    .with_error_code(e.code())
                    .with_high_watermark(-1);
                if let Ok(p) = &w.partition {
                    let hw = p.high_watermark();
                    entry = entry
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(p.log_start_offset());
                }
                entry
            }
        };
        let entry = if plan.read_committed {
            entry.with_aborted_transactions(Some(Vec::new()))
        } else {
            entry.with_aborted_transactions(None)
        };
        topics[w.topic_slot].partitions.push(entry);
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        errored,
    )
}

fn read_one(
    p: &Partition,
    w: &Wanted,
    max_bytes: usize,
    min_one_batch: bool,
) -> Result<(PartitionData, usize), ApiError> {
    p.check_leader_epoch(w.current_leader_epoch)?;
    let read = p.read(w.fetch_offset, max_bytes, min_one_batch)?;
    // pread happens here, outside the partition lock.
    let records = read
        .slice
        .read()
        .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
    let n = records.len();
    // Without transactions the last stable offset is the high watermark.
    let entry = PartitionData::default()
        .with_partition_index(w.index)
        .with_high_watermark(read.high_watermark)
        .with_last_stable_offset(read.high_watermark)
        .with_log_start_offset(read.log_start_offset)
        .with_records(Some(records));
    Ok((entry, n))
}

/// Parks until an append to one of the partitions brings `min_bytes`, or
/// the deadline passes; answers with whatever is there then.
async fn wait_for_data(
    plan: &Plan,
    min_bytes: usize,
    deadline: tokio::time::Instant,
) -> FetchResponse {
    let watched: Vec<&Arc<Partition>> = plan
        .partitions
        .iter()
        .filter_map(|w| w.partition.as_ref().ok())
        .collect();
    loop {
        // Register before reading so an append between the read and the
        // wait still wakes us.
        let mut wakeups: Vec<_> = watched
            .iter()
            .map(|p| Box::pin(p.hw_advanced().notified()))
            .collect();
        for w in wakeups.iter_mut() {
            w.as_mut().enable();
        }
        let (response, bytes, errored) = read_all(plan);
        if bytes >= min_bytes || errored || tokio::time::Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            _ = futures::future::select_all(wakeups) => {}
            _ = tokio::time::sleep_until(deadline) => return read_all(plan).0,
        }
    }
}
