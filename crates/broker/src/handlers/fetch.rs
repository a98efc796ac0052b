//! Fetch (key 1): whole batches from the requested offsets; waits up to
//! `max_wait_ms` for `min_bytes`, woken by the partition rather than by
//! polling. Served by the leader only (no fetching from followers).
//!
//! Consumers (`replica_id` -1) read up to the high watermark and are woken
//! when it advances. Followers (`replica_id` ≥ 0 before v15,
//! `replica_state.replica_id` from v15) read up to the log end, are woken
//! by appends, and each fetch records the follower's progress: it may move
//! the high watermark (waking consumers and acks=all produces) and add the
//! follower to the ISR. A follower whose log diverges from the leader's
//! (its `last_fetched_epoch` ends earlier here) gets `diverging_epoch` and
//! no records.
//!
//! Fetch sessions (KIP-227): we create none. A request for a new session
//! (id 0) gets id 0 back, which tells the client to keep sending full
//! fetches; a request naming a session we never issued gets
//! FETCH_SESSION_ID_NOT_FOUND.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use odradek_protocol::frame::RawRequest;
use uuid::Uuid;

use super::{decode, respond, Reply, RequestError};
use crate::broker::Broker;
use crate::errors::ApiError;
use crate::partition::{FollowerFetch, Partition};
use crate::replication::alter_partition;

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Wanted {
    topic_slot: usize,
    index: i32,
    fetch_offset: i64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    log_start_offset: i64,
    max_bytes: usize,
    partition: Result<Arc<Partition>, ResponseError>,
}

struct Plan {
    topics: Vec<(TopicName, Uuid)>,
    partitions: Vec<Wanted>,
    max_bytes: usize,
    read_committed: bool,
    /// The follower broker fetching, or `None` for a consumer.
    replica_id: Option<i32>,
}

pub async fn handle(broker: &Arc<Broker>, req: &RawRequest) -> Result<Reply, RequestError> {
    let request: FetchRequest = decode(req)?;
    if request.session_id != 0 {
        let response = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return Ok(Reply::Ready(respond(req, &response)?));
    }
    let replica_id = if req.version() >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let plan = resolve(broker, &request, req.version() >= 13, replica_id);
    let min_bytes = request.min_bytes.max(0) as usize;
    let (response, bytes, answer_now) = read_all(broker, &plan);
    if bytes >= min_bytes || answer_now || request.max_wait_ms <= 0 || plan.partitions.is_empty() {
        return Ok(Reply::Ready(respond(req, &response)?));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.max_wait_ms as u64);
    let req = req.clone();
    let broker = broker.clone();
    Ok(Reply::Later(Box::pin(async move {
        let response = wait_for_data(&broker, &plan, min_bytes, deadline).await;
        respond(&req, &response).unwrap_or_else(|e| {
            tracing::error!(error = %e, "encoding fetch response failed");
            Bytes::new()
        })
    })))
}

fn resolve(broker: &Broker, request: &FetchRequest, by_id: bool, replica_id: i32) -> Plan {
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
            let partition = match topic {
                Some(t) => broker.replicas.hosted(
                    &image,
                    &t.topic_id,
                    p.partition,
                    ResponseError::UnknownTopicOrPartition,
                ),
                None => Err(unknown),
            };
            partitions.push(Wanted {
                topic_slot: slot,
                index: p.partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: p.log_start_offset,
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
        replica_id: (replica_id >= 0).then_some(replica_id),
    }
}

/// Reads every partition once. Returns the response, the record bytes in
/// it, and whether to answer at once rather than wait (a partition failed,
/// or a follower must truncate). ISR expansions that followers' progress
/// calls for are sent to the controller in the background.
fn read_all(broker: &Arc<Broker>, plan: &Plan) -> (FetchResponse, usize, bool) {
    let mut remaining = plan.max_bytes;
    let mut total = 0usize;
    let mut errored = false;
    let mut proposals = Vec::new();
    let now_ms = broker.now_ms();
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
        let max_bytes = remaining.min(w.max_bytes);
        let data = match (&w.partition, plan.replica_id) {
            (Err(code), _) => Err(ApiError::bare(*code)),
            (Ok(p), None) => read_one(p, w, max_bytes, total == 0),
            (Ok(p), Some(replica_id)) => {
                let fetch = FollowerFetch {
                    replica_id,
                    fetch_offset: w.fetch_offset,
                    log_start_offset: w.log_start_offset,
                    last_fetched_epoch: w.last_fetched_epoch,
                    current_leader_epoch: w.current_leader_epoch,
                    max_bytes,
                    min_one_batch: total == 0,
                };
                read_for_follower(p, w, &fetch, now_ms, &mut proposals, &mut errored)
            }
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
    alter_partition::spawn(broker, proposals);
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
    p.check_leader(w.current_leader_epoch)?;
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

/// One partition of a follower's fetch: records up to the log end, or the
/// epoch to truncate to (which makes the response go out at once).
fn read_for_follower(
    p: &Arc<Partition>,
    w: &Wanted,
    fetch: &FollowerFetch,
    now_ms: i64,
    proposals: &mut Vec<(Arc<Partition>, alter_partition::IsrProposal)>,
    answer_now: &mut bool,
) -> Result<(PartitionData, usize), ApiError> {
    let out = p.read_for_follower(fetch, now_ms)?;
    if let Some(proposal) = out.isr_proposal {
        proposals.push((p.clone(), proposal));
    }
    let mut entry = PartitionData::default()
        .with_partition_index(w.index)
        .with_high_watermark(out.read.high_watermark)
        .with_last_stable_offset(out.read.high_watermark)
        .with_log_start_offset(out.read.log_start_offset);
    if let Some((epoch, end_offset)) = out.diverging {
        *answer_now = true;
        entry = entry
            .with_diverging_epoch(
                EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset),
            )
            .with_records(Some(Bytes::new()));
        return Ok((entry, 0));
    }
    let records = out
        .read
        .slice
        .read()
        .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
    let n = records.len();
    Ok((entry.with_records(Some(records)), n))
}

/// Parks until the partitions bring `min_bytes` (consumers: the high
/// watermark advanced; followers: an append), or the deadline passes;
/// answers with whatever is there then.
async fn wait_for_data(
    broker: &Arc<Broker>,
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
            .map(|p| {
                let notify = match plan.replica_id {
                    Some(_) => p.appended(),
                    None => p.hw_advanced(),
                };
                Box::pin(notify.notified())
            })
            .collect();
        for w in wakeups.iter_mut() {
            w.as_mut().enable();
        }
        let (response, bytes, answer_now) = read_all(broker, plan);
        if bytes >= min_bytes || answer_now || tokio::time::Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            _ = futures::future::select_all(wakeups) => {}
            _ = tokio::time::sleep_until(deadline) => return read_all(broker, plan).0,
        }
    }
}
