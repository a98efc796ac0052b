//! The follower side (Kafka's `ReplicaFetcherManager` and
//! `AbstractFetcherThread`): one task per leader broker fetches every
//! partition this broker follows from it in one Fetch request, appends
//! what comes back, truncates where the leader says the logs diverge, and
//! backs off partitions the leader refuses until the image changes.
//!
//! Fetch v13 (topic ids, `last_fetched_epoch`, `diverging_epoch`), with
//! `replica_id` = this node, no fetch session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use odradek_client::BrokerClient;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::Broker;
use crate::partition::{FetchPosition, Partition};

/// The Fetch version followers send.
pub const FETCH_VERSION: i16 = 13;
/// How long a connect or a request may take beyond the fetch's own wait
/// (Kafka's `replica.socket.timeout.ms` default).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// The fetcher tasks, one per leader broker, kept in step with the
/// partitions' roles by [`FetcherManager::reconfigure`].
pub struct FetcherManager {
    broker: Arc<Broker>,
    fetchers: HashMap<i32, Fetcher>,
}

struct Fetcher {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What the manager tells one fetcher task.
struct Shared {
    leader: i32,
    partitions: Mutex<(u64, Vec<Arc<Partition>>)>,
    changed: Notify,
}

impl Shared {
    fn snapshot(&self) -> (u64, Vec<Arc<Partition>>) {
        let guard = self.partitions.lock();
        (guard.0, guard.1.clone())
    }
}

impl FetcherManager {
    pub fn new(broker: Arc<Broker>) -> FetcherManager {
        FetcherManager {
            broker,
            fetchers: HashMap::new(),
        }
    }

    /// Matches the fetchers to the partitions' roles now: a fetcher per
    /// leader this broker follows, each told its partitions (which also
    /// ends its back-offs: the image changed, so a refused partition may
    /// now be served); fetchers of leaders no longer followed stop.
    pub fn reconfigure(&mut self) {
        let me = self.broker.config.node_id;
        let mut wanted: HashMap<i32, Vec<Arc<Partition>>> = HashMap::new();
        for p in self.broker.replicas.all_partitions() {
            if let Some(leader) = p.followed_leader() {
                if leader >= 0 && leader != me {
                    wanted.entry(leader).or_default().push(p);
                }
            }
        }
        self.fetchers.retain(|leader, f| {
            let keep = wanted.contains_key(leader);
            if !keep {
                let _ = f.stop.send(true);
            }
            keep
        });
        for (leader, partitions) in wanted {
            match self.fetchers.get(&leader) {
                Some(f) => {
                    let mut guard = f.shared.partitions.lock();
                    guard.0 += 1;
                    guard.1 = partitions;
                    drop(guard);
                    f.shared.changed.notify_one();
                }
                None => {
                    let shared = Arc::new(Shared {
                        leader,
                        partitions: Mutex::new((1, partitions)),
                        changed: Notify::new(),
                    });
                    let (stop, stopped) = watch::channel(false);
                    let task = tokio::spawn(run(self.broker.clone(), shared.clone(), stopped));
                    tracing::info!(leader, "started a replica fetcher");
                    self.fetchers.insert(leader, Fetcher { shared, stop, task });
                }
            }
        }
    }

    /// The leaders fetched from now (tests, diagnostics).
    pub fn leaders(&self) -> Vec<i32> {
        let mut leaders: Vec<i32> = self.fetchers.keys().copied().collect();
        leaders.sort_unstable();
        leaders
    }

    /// Stops every fetcher and waits for them to finish.
    pub async fn shutdown(&mut self) {
        for f in self.fetchers.values() {
            let _ = f.stop.send(true);
        }
        for (_, f) in self.fetchers.drain() {
            let _ = f.task.await;
        }
    }
}

/// One fetcher task: fetch, apply, repeat until stopped.
async fn run(broker: Arc<Broker>, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let leader = shared.leader;
    fetch_loop(&broker, &shared, stop).await;
    tracing::debug!(leader, "replica fetcher stopped");
}

/// The body of [`run`]: returns when stopped.
async fn fetch_loop(broker: &Broker, shared: &Shared, mut stop: watch::Receiver<bool>) {
    let leader = shared.leader;
    let backoff = Duration::from_millis(broker.config.cluster.replica_fetch_backoff_ms);
    let mut client: Option<BrokerClient> = None;
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    let mut generation = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        let (current, partitions) = shared.snapshot();
        if current != generation {
            generation = current;
            delayed.clear();
        }
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let targets: Vec<(Arc<Partition>, FetchPosition)> = partitions
            .into_iter()
            .filter(|p| !delayed.contains_key(&(p.topic_id, p.index)))
            .filter_map(|p| p.fetch_position(leader).map(|pos| (p, pos)))
            .collect();
        if targets.is_empty() {
            let until = delayed.values().min().copied();
            if wait(shared, &mut stop, until).await {
                return;
            }
            continue;
        }
        let Some(c) = connected(broker, leader, &mut client).await else {
            if wait(shared, &mut stop, Some(Instant::now() + backoff)).await {
                return;
            }
            continue;
        };
        let request = fetch_request(broker, &targets);
        let timeout =
            Duration::from_millis(broker.config.cluster.replica_fetch_wait_max_ms.max(0) as u64)
                + SOCKET_TIMEOUT;
        let result = tokio::select! {
            r = c.call(FETCH_VERSION, &request, timeout) => r,
            _ = stop.changed() => return,
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(leader, error = %e, "replica fetch failed; reconnecting after a back-off");
                client = None;
                if wait(shared, &mut stop, Some(Instant::now() + backoff)).await {
                    return;
                }
                continue;
            }
        };
        if response.error_code != 0 {
            let code = ResponseError::try_from_code(response.error_code);
            tracing::warn!(leader, error = ?code, "the leader refused the whole fetch; backing off");
            if wait(shared, &mut stop, Some(Instant::now() + backoff)).await {
                return;
            }
            continue;
        }
        let now = Instant::now();
        for (partition, position) in &targets {
            let Some(data) = find(&response, partition.topic_id, partition.index) else {
                continue;
            };
            let delay = match apply(broker, partition, position, data).await {
                None => continue,
                Some(Pause::Refused(code)) => {
                    tracing::debug!(leader, topic = %partition.topic, partition = partition.index, error = ?code, "the leader refused a partition; backing off");
                    retry_after(code, backoff)
                }
                Some(Pause::NoProgress) => backoff,
            };
            delayed.insert((partition.topic_id, partition.index), now + delay);
        }
    }
}

/// How long a partition the leader refused waits before the next try.
/// Right after a leader change the new leader may not have applied the
/// change yet and answers NOT_LEADER_OR_FOLLOWER or UNKNOWN_LEADER_EPOCH
/// for a moment; waiting the full `replica.fetch.backoff.ms` then would
/// hold acks=all writes for that long, so those retry almost at once.
fn retry_after(code: ResponseError, backoff: Duration) -> Duration {
    match code {
        ResponseError::NotLeaderOrFollower | ResponseError::UnknownLeaderEpoch => {
            backoff.min(LEADER_CHANGE_RETRY)
        }
        _ => backoff,
    }
}

const LEADER_CHANGE_RETRY: Duration = Duration::from_millis(20);

/// The open connection to `leader`, connecting (again) if there is none
/// or the leader's address changed.
async fn connected<'a>(
    broker: &Broker,
    leader: i32,
    client: &'a mut Option<BrokerClient>,
) -> Option<&'a mut BrokerClient> {
    let Some((host, port)) = broker.replicas.endpoint(leader) else {
        tracing::warn!(
            leader,
            "the leader has no registered address; waiting for metadata"
        );
        return None;
    };
    let addr = format!("{host}:{port}");
    if client.as_ref().is_some_and(|c| c.addr() != addr) {
        *client = None;
    }
    if client.is_none() {
        let client_id = format!("odradek-replica-fetcher-{}", broker.config.node_id);
        match BrokerClient::connect(leader, &host, port, client_id, SOCKET_TIMEOUT).await {
            Ok(c) => *client = Some(c),
            Err(e) => {
                tracing::warn!(leader, error = %e, "cannot reach the leader; retrying after a back-off");
                return None;
            }
        }
    }
    client.as_mut()
}

/// Waits for `until`, a change of partitions, or stop. Returns true on stop.
async fn wait(shared: &Shared, stop: &mut watch::Receiver<bool>, until: Option<Instant>) -> bool {
    let sleep = async {
        match until {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = sleep => false,
        _ = shared.changed.notified() => false,
        _ = stop.changed() => true,
    }
}

fn fetch_request(broker: &Broker, targets: &[(Arc<Partition>, FetchPosition)]) -> FetchRequest {
    let cluster = &broker.config.cluster;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, pos) in targets {
        let fp = FetchPartition::default()
            .with_partition(p.index)
            .with_current_leader_epoch(pos.leader_epoch)
            .with_fetch_offset(pos.fetch_offset)
            .with_last_fetched_epoch(pos.last_fetched_epoch)
            .with_log_start_offset(pos.log_start_offset)
            .with_partition_max_bytes(cluster.replica_fetch_max_bytes);
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(fp),
            None => topics.push(
                FetchTopic::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![fp]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_max_wait_ms(cluster.replica_fetch_wait_max_ms)
        .with_min_bytes(cluster.replica_fetch_min_bytes)
        .with_max_bytes(cluster.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

fn find(response: &FetchResponse, topic_id: Uuid, index: i32) -> Option<&PartitionData> {
    response
        .responses
        .iter()
        .filter(|t| t.topic_id == topic_id)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == index)
}

/// What the follower does with one partition's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Append the records (if any) and take the leader's high watermark.
    Append,
    /// Truncate to where the logs diverge.
    Truncate { epoch: i32, end_offset: i64 },
    /// The leader's log starts past ours: start over at its start.
    StartAt(i64),
    /// The leader's log ends before our fetch offset and it gave no epoch
    /// to find the exact point: truncate to its high watermark.
    TruncateTo(i64),
    /// Refused (not leader, stale or newer epoch, unknown topic, storage
    /// error...): back off until the image changes or the back-off ends.
    BackOff(ResponseError),
}

/// Decides what one partition's answer means (Kafka's
/// `AbstractFetcherThread.processFetchRequest` and
/// `handleOutOfRangeError`).
pub fn action(data: &PartitionData, fetch_offset: i64) -> Action {
    if data.error_code == 0 {
        let d = &data.diverging_epoch;
        if d.epoch >= 0 && d.end_offset >= 0 {
            return Action::Truncate {
                epoch: d.epoch,
                end_offset: d.end_offset,
            };
        }
        return Action::Append;
    }
    let code =
        ResponseError::try_from_code(data.error_code).unwrap_or(ResponseError::UnknownServerError);
    if code == ResponseError::OffsetOutOfRange {
        if data.log_start_offset > fetch_offset {
            return Action::StartAt(data.log_start_offset);
        }
        if data.high_watermark >= 0 && data.high_watermark < fetch_offset {
            return Action::TruncateTo(data.high_watermark);
        }
    }
    Action::BackOff(code)
}

/// Why a partition waits before its next fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// The leader refused it, or applying its answer failed.
    Refused(ResponseError),
    /// The leader says the logs diverge where this log already ends:
    /// truncating cut nothing, so fetching again at once would get the
    /// same answer, and the one after it, without end.
    NoProgress,
}

/// Applies one partition's answer. Returns why to wait before fetching
/// the partition again, if it should not be fetched again at once.
async fn apply(
    broker: &Broker,
    partition: &Partition,
    position: &FetchPosition,
    data: &PartitionData,
) -> Option<Pause> {
    let epoch = position.leader_epoch;
    let applied = match action(data, position.fetch_offset) {
        Action::BackOff(code) => return Some(Pause::Refused(code)),
        Action::Truncate {
            epoch: e,
            end_offset,
        } => match partition.truncate_diverging(epoch, (e, end_offset)) {
            Ok(t) if t.offset >= position.fetch_offset => {
                tracing::warn!(
                    topic = %partition.topic,
                    partition = partition.index,
                    fetch_offset = position.fetch_offset,
                    last_fetched_epoch = position.last_fetched_epoch,
                    leader_epoch = e,
                    leader_end_offset = end_offset,
                    "the leader reports a diverging epoch but nothing here is past it; backing off"
                );
                return Some(Pause::NoProgress);
            }
            r => r.map(|_| ()),
        },
        Action::StartAt(offset) => partition.truncate_fully_and_start_at(epoch, offset),
        Action::TruncateTo(offset) => partition.truncate_to(epoch, offset),
        Action::Append => {
            let records = data.records.as_deref().unwrap_or(&[]);
            match partition.append_as_follower(epoch, records, data.high_watermark, broker.now_ms())
            {
                Ok(appended) => match appended.last_offset {
                    Some(last) if appended.must_flush => partition.flush_through(last).await,
                    _ => Ok(()),
                },
                Err(e) => Err(e),
            }
        }
    };
    match applied {
        Ok(()) => None,
        // The role changed since the fetch was sent: the next round uses
        // the new one.
        Err(e) if e.code == ResponseError::NotLeaderOrFollower => None,
        Err(e) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, error = ?e, "applying fetched data failed");
            Some(Pause::Refused(e.code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::EpochEndOffset;

    #[test]
    fn answers_become_actions() {
        let ok = PartitionData::default().with_high_watermark(10);
        assert_eq!(action(&ok, 5), Action::Append);
        let diverging = ok
            .clone()
            .with_diverging_epoch(EpochEndOffset::default().with_epoch(3).with_end_offset(7));
        assert_eq!(
            action(&diverging, 9),
            Action::Truncate {
                epoch: 3,
                end_offset: 7
            }
        );
        let out_of_range = PartitionData::default()
            .with_error_code(ResponseError::OffsetOutOfRange.code())
            .with_log_start_offset(100)
            .with_high_watermark(120);
        assert_eq!(action(&out_of_range, 40), Action::StartAt(100));
        assert_eq!(action(&out_of_range, 130), Action::TruncateTo(120));
        assert_eq!(
            action(&out_of_range, 110),
            Action::BackOff(ResponseError::OffsetOutOfRange)
        );
        for code in [
            ResponseError::NotLeaderOrFollower,
            ResponseError::FencedLeaderEpoch,
            ResponseError::UnknownLeaderEpoch,
        ] {
            let refused = PartitionData::default().with_error_code(code.code());
            assert_eq!(action(&refused, 0), Action::BackOff(code));
        }
    }
}
