//! One partition this broker hosts: its log, its replication role (leader
//! or follower, at a leader epoch) and what the request paths need around
//! them (produce validation, group commit, fetch and acks=all wake-ups).
//!
//! Locking: `state` (the log and the role together) is held only for
//! in-memory work and an append's single `write()`; reading bytes for a
//! fetch (pread) and fsync both happen outside it. The role shares the
//! log's lock so an append checks leadership, the ISR size and stamps the
//! epoch without a second lock. `producers` is only locked while `state`
//! is held. The leader epoch, leadership and high watermark are mirrored
//! in atomics for checks that need no lock.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use odradek_metadata::NO_LEADER;
use odradek_protocol::batch::{self, BatchError, BatchHeader};
use odradek_storage::{Log, ReadSlice, StorageError};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::errors::ApiError;
use crate::producer_state::{ProducerState, Verdict};
use crate::replication::alter_partition::IsrProposal;
use crate::replication::divergence::{self, Truncation};
use crate::replication::isr::{self, AlterOutcome};
use crate::replication::leader::{Assignment, LeaderState};
use crate::topic_config::{EffectiveTopicConfig, TimestampType};

pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    /// The leader epoch from the metadata image; stamped on every batch
    /// this broker appends as leader and checked against clients'
    /// `current_leader_epoch` (KIP-320). Written under `state`.
    leader_epoch: AtomicI32,
    /// Mirrors `Role::Leader`; written under `state`.
    is_leader: AtomicBool,
    /// Mirrors the log's high watermark; written under `state`.
    high_watermark: AtomicI64,
    config: RwLock<Arc<EffectiveTopicConfig>>,
    state: Mutex<State>,
    /// Idempotent producers' sequences. Locked only while `state` is
    /// held, so the check, the append and the update are one step.
    producers: Mutex<ProducerState>,
    /// Woken whenever the high watermark advances, and when the role
    /// changes. Consumer fetches waiting for `min_bytes`, acks=all produces
    /// and group commits wait here; nobody polls.
    hw_advanced: Notify,
    /// Woken on every append while the partition has followers, and when
    /// the role changes: followers' fetches long-poll here.
    appended: Notify,
    /// Held by the one task running an fsync; others queue behind it and
    /// usually find their offsets already covered (group commit).
    flush_lock: tokio::sync::Mutex<()>,
    /// Every offset below this is durable on disk.
    flushed_offset: AtomicI64,
}

struct State {
    log: Log,
    role: Role,
}

enum Role {
    Leader(LeaderState),
    /// `leader` is [`NO_LEADER`] while the image names none.
    Follower {
        leader: i32,
    },
}

/// What a successful append tells the produce path.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The flush policy (`flush.messages`) requires this append to be on
    /// disk before it is acknowledged.
    pub must_flush: bool,
    /// The leader epoch the batch was written in.
    pub leader_epoch: i32,
    /// acks=all only: the high watermark has not passed the batch yet, so
    /// the answer waits in [`Partition::wait_for_acks`].
    pub awaits_replication: bool,
}

/// A fetch's view of the partition at one instant.
pub struct ReadResult {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub slice: ReadSlice,
}

/// One partition of a follower's Fetch, as the leader received it.
#[derive(Debug, Clone, Copy)]
pub struct FollowerFetch {
    pub replica_id: i32,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    /// -1 when the follower names none (before Fetch v12, or an empty log).
    pub last_fetched_epoch: i32,
    pub current_leader_epoch: i32,
    pub max_bytes: usize,
    pub min_one_batch: bool,
}

/// The leader's answer to one partition of a follower's Fetch.
pub struct FollowerRead {
    pub read: ReadResult,
    /// The follower's log diverges: `(epoch, end_offset)` it must truncate
    /// to; no records are read then.
    pub diverging: Option<(i32, i64)>,
    /// An ISR expansion for the caller to send to the controller.
    pub isr_proposal: Option<IsrProposal>,
}

/// Where a follower fetches from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    pub leader_epoch: i32,
    pub fetch_offset: i64,
    /// -1 when the log has no epoch yet.
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// What a follower append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerAppended {
    /// The last offset written, if anything was.
    pub last_offset: Option<i64>,
    /// The flush policy asks for a flush before the next fetch.
    pub must_flush: bool,
}

/// Offsets a ListOffsets request can ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    pub offset: i64,
    pub timestamp: i64,
}

impl Partition {
    /// A hosted partition before the image gave it a role: a follower of
    /// no leader, refusing produce and fetch until `make_leader` or
    /// `make_follower`.
    pub fn new(
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        log: Log,
        config: EffectiveTopicConfig,
    ) -> Partition {
        let flushed = log.recovery_point();
        let producers = rebuild_producer_state(&log);
        let hw = log.high_watermark();
        Partition {
            topic,
            topic_id,
            index,
            leader_epoch: AtomicI32::new(-1),
            is_leader: AtomicBool::new(false),
            high_watermark: AtomicI64::new(hw),
            config: RwLock::new(Arc::new(config)),
            state: Mutex::new(State {
                log,
                role: Role::Follower { leader: NO_LEADER },
            }),
            producers: Mutex::new(producers),
            hw_advanced: Notify::new(),
            appended: Notify::new(),
            flush_lock: tokio::sync::Mutex::new(()),
            flushed_offset: AtomicI64::new(flushed),
        }
    }

    pub fn config(&self) -> Arc<EffectiveTopicConfig> {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: EffectiveTopicConfig) {
        self.state.lock().log.set_config(config.log_config());
        *self.config.write() = Arc::new(config);
    }

    pub fn hw_advanced(&self) -> &Notify {
        &self.hw_advanced
    }

    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// The leader this broker follows for this partition: `None` when it
    /// leads, `Some(NO_LEADER)` when the image names no leader.
    pub fn followed_leader(&self) -> Option<i32> {
        match &self.state.lock().role {
            Role::Leader(_) => None,
            Role::Follower { leader } => Some(*leader),
        }
    }

    // ----- role changes (from the metadata image) -----

    /// Becomes or stays leader at `leader_epoch` (Kafka's `makeLeader`).
    /// A new epoch is recorded in the leader-epoch cache at the log end,
    /// so OffsetForLeaderEpoch and followers' divergence checks see it
    /// before the first append in it. The high watermark moves as the
    /// image's ISR allows (with the leader alone in the ISR, to the log
    /// end).
    pub fn make_leader(
        &self,
        assignment: &Assignment<'_>,
        leader_epoch: i32,
        eligible: &dyn Fn(i32) -> bool,
        now_ms: i64,
        max_lag_ms: i64,
    ) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        let State { log, role } = &mut *state;
        let current = self.leader_epoch();
        if let Role::Leader(leader) = role {
            if leader_epoch <= current {
                leader.max_lag_ms = max_lag_ms;
                leader.on_image(assignment, eligible, now_ms);
                let moved = self.maybe_advance_hw(log, leader, now_ms);
                drop(state);
                if moved {
                    self.hw_advanced.notify_waiters();
                }
                return Ok(());
            }
        }
        if leader_epoch < current {
            tracing::warn!(topic = %self.topic, partition = self.index, leader_epoch, current, "ignoring an older leader epoch");
            return Ok(());
        }
        if log.latest_epoch().is_none_or(|e| e < leader_epoch) {
            log.begin_leader_epoch(leader_epoch)?;
        }
        let previous = match std::mem::replace(role, Role::Follower { leader: NO_LEADER }) {
            Role::Leader(l) => Some(l),
            Role::Follower { .. } => None,
        };
        let mut leader = LeaderState::new(
            assignment,
            eligible,
            log.log_end_offset(),
            now_ms,
            max_lag_ms,
            previous,
        );
        self.maybe_advance_hw(log, &mut leader, now_ms);
        *role = Role::Leader(leader);
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        self.is_leader.store(true, Ordering::Release);
        drop(state);
        tracing::debug!(topic = %self.topic, partition = self.index, leader_epoch, "became leader");
        self.wake_all();
        Ok(())
    }

    /// Becomes or stays a follower of `leader` at `leader_epoch` (Kafka's
    /// `makeFollower`). The log is not truncated here: the first fetch
    /// finds where it diverges from the leader's. Parked produces and
    /// fetches are woken to notice the change.
    pub fn make_follower(&self, leader: i32, leader_epoch: i32) {
        let mut state = self.state.lock();
        let current = self.leader_epoch();
        if leader_epoch < current {
            return;
        }
        let unchanged = leader_epoch == current
            && matches!(state.role, Role::Follower { leader: l } if l == leader);
        if unchanged {
            return;
        }
        state.role = Role::Follower { leader };
        self.leader_epoch.store(leader_epoch, Ordering::Release);
        self.is_leader.store(false, Ordering::Release);
        drop(state);
        tracing::debug!(topic = %self.topic, partition = self.index, leader, leader_epoch, "following");
        self.wake_all();
    }

    /// Wakes every parked request so it re-checks the partition (role
    /// change, deletion).
    pub fn wake_all(&self) {
        self.hw_advanced.notify_waiters();
        self.appended.notify_waiters();
    }

    /// Moves the high watermark forward to what `leader` allows. Returns
    /// whether it moved.
    fn maybe_advance_hw(&self, log: &mut Log, leader: &mut LeaderState, now_ms: i64) -> bool {
        let candidate = leader.high_watermark(log.log_end_offset(), now_ms);
        if candidate <= log.high_watermark() {
            return false;
        }
        log.set_high_watermark(candidate);
        self.high_watermark
            .store(log.high_watermark(), Ordering::Release);
        true
    }

    fn sync_high_watermark(&self, log: &Log) {
        self.high_watermark
            .store(log.high_watermark(), Ordering::Release);
    }

    // ----- leader: produce -----

    /// Validates the `records` of one Produce partition and appends them
    /// as leader. Nothing is written unless every check passes.
    pub fn append(&self, records: &Bytes, acks: i16, now_ms: i64) -> Result<Appended, ApiError> {
        let config = self.config();
        let header = validate_produce_records(records, &config, now_ms)?;
        // The request buffer is shared with the decoded request; the base
        // offset (and for LogAppendTime the timestamps and CRC) are
        // rewritten in a private copy.
        let mut owned = BytesMut::from(&records[..]);
        let log_append_time_ms = match config.timestamp_type {
            TimestampType::LogAppendTime => {
                batch::set_log_append_time(&mut owned, now_ms).map_err(batch_error)?;
                now_ms
            }
            TimestampType::CreateTime => -1,
        };
        let mut state = self.state.lock();
        let State { log, role } = &mut *state;
        let Role::Leader(leader) = role else {
            return Err(self.not_leader());
        };
        let isr_size = leader.isr.isr().len();
        if acks == -1 && (isr_size as i64) < i64::from(config.min_insync_replicas) {
            return Err(ApiError::new(
                ResponseError::NotEnoughReplicas,
                format!(
                    "the in-sync replica set of {}-{} has {isr_size} member(s), below min.insync.replicas={}",
                    self.topic, self.index, config.min_insync_replicas
                ),
            ));
        }
        let leader_epoch = self.leader_epoch();
        // Outside the CRC, so stamping needs no checksum update.
        batch::set_partition_leader_epoch(&mut owned, leader_epoch);
        let mut producers = self.producers.lock();
        if let Verdict::Duplicate {
            first_offset,
            last_offset,
        } = producers.check(&header)?
        {
            // KIP-98: a retry of a batch already in the log is acknowledged
            // again with its original offsets and not appended twice.
            return Ok(Appended {
                base_offset: first_offset,
                last_offset,
                log_append_time_ms,
                log_start_offset: log.log_start_offset(),
                must_flush: log.flush_due(now_ms),
                leader_epoch,
                awaits_replication: acks == -1 && log.high_watermark() <= last_offset,
            });
        }
        let info = log
            .append(&mut owned, now_ms)
            .map_err(|e| ApiError::from(&e))?;
        producers.record(&header, info.first_offset, info.last_offset);
        drop(producers);
        let hw_moved = self.maybe_advance_hw(log, leader, now_ms);
        let has_followers = leader.has_followers();
        let awaits_replication = acks == -1 && log.high_watermark() <= info.last_offset;
        let log_start_offset = log.log_start_offset();
        drop(state);
        // One wake-up per append: followers' fetches when there are
        // followers, else (a single replica) the high watermark moved.
        if has_followers {
            self.appended.notify_waiters();
        }
        if hw_moved {
            self.hw_advanced.notify_waiters();
        }
        debug_assert_eq!(
            info.last_offset - info.first_offset,
            header.last_offset_delta as i64
        );
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time_ms,
            log_start_offset,
            must_flush: info.flush_needed,
            leader_epoch,
            awaits_replication,
        })
    }

    /// The acks=all wait (Kafka's produce purgatory): returns once the high
    /// watermark passes `last_offset`, woken by its advances. Errors:
    /// leadership (at `leader_epoch`) lost -> NOT_LEADER_OR_FOLLOWER; the
    /// ISR fell below `min.insync.replicas` meanwhile ->
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND; `deadline` passed ->
    /// REQUEST_TIMED_OUT.
    pub async fn wait_for_acks(
        &self,
        last_offset: i64,
        leader_epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), ApiError> {
        loop {
            // Register before checking so an advance in between still wakes us.
            let notified = self.hw_advanced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = self.acks_outcome(last_offset, leader_epoch) {
                return outcome;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return self.acks_outcome(last_offset, leader_epoch).unwrap_or_else(|| {
                        Err(ApiError::new(
                            ResponseError::RequestTimedOut,
                            format!(
                                "offset {last_offset} of {}-{} was not replicated to the in-sync replicas in time (high watermark {})",
                                self.topic, self.index, self.high_watermark()
                            ),
                        ))
                    });
                }
            }
        }
    }

    /// Waits until every offset ≤ `offset` is replicated to the ISR, as
    /// acks=all does, for at most `timeout` (group coordinator commits,
    /// Kafka's `offsets.commit.required.acks=-1`). Errors as
    /// [`Partition::wait_for_acks`]; a partition not led now is
    /// NOT_LEADER_OR_FOLLOWER.
    pub async fn wait_for_hw(&self, offset: i64, timeout: Duration) -> Result<(), ApiError> {
        let epoch = self.leader_epoch();
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        self.wait_for_acks(offset, epoch, tokio::time::Instant::now() + timeout)
            .await
    }

    fn acks_outcome(&self, last_offset: i64, leader_epoch: i32) -> Option<Result<(), ApiError>> {
        // Lock-free while nothing can have changed the answer.
        if self.is_leader()
            && self.leader_epoch() == leader_epoch
            && self.high_watermark.load(Ordering::Acquire) <= last_offset
        {
            return None;
        }
        let min_isr = self.config().min_insync_replicas.max(0) as usize;
        let state = self.state.lock();
        let (leading, maximal_isr) = match &state.role {
            Role::Leader(l) if self.leader_epoch() == leader_epoch => (true, l.isr.maximal_size()),
            _ => (false, 0),
        };
        let hw = state.log.high_watermark();
        drop(state);
        let outcome = isr::acks_all_outcome(leading, hw, last_offset, maximal_isr, min_isr)?;
        Some(outcome.map_err(|code| {
            let message = match code {
                ResponseError::NotEnoughReplicasAfterAppend => format!(
                    "offset {last_offset} of {}-{} is written, but the in-sync replica set shrank to {maximal_isr}, below min.insync.replicas={min_isr}",
                    self.topic, self.index
                ),
                _ => format!(
                    "this broker no longer leads {}-{} at leader epoch {leader_epoch}; refresh metadata and retry",
                    self.topic, self.index
                ),
            };
            ApiError::new(code, message)
        }))
    }

    /// Returns once every offset ≤ `offset` is on disk. Concurrent callers
    /// share fsyncs: whoever holds `flush_lock` syncs everything appended so
    /// far, and those queued behind it usually find their offset covered.
    pub async fn flush_through(&self, offset: i64) -> Result<(), ApiError> {
        if self.flushed_offset.load(Ordering::Acquire) > offset {
            return Ok(());
        }
        let _guard = self.flush_lock.lock().await;
        if self.flushed_offset.load(Ordering::Acquire) > offset {
            return Ok(());
        }
        self.flush_now().await
    }

    /// Flushes everything appended so far (the `flush.ms` scheduler and
    /// shutdown use this). Callers hold `flush_lock` or accept a redundant
    /// fsync.
    async fn flush_now(&self) -> Result<(), ApiError> {
        let target = self.state.lock().log.flush_target();
        let up_to = target.up_to();
        let synced = tokio::task::spawn_blocking(move || target.sync())
            .await
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        if let Err(e) = synced {
            // The kernel may have dropped the dirty pages: a retry could
            // report success for lost data, so the log is fenced.
            self.state.lock().log.fence();
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "fsync failed; partition fenced");
            return Err(ApiError::new(
                ResponseError::KafkaStorageError,
                e.to_string(),
            ));
        }
        self.state.lock().log.mark_flushed(up_to);
        self.flushed_offset.fetch_max(up_to, Ordering::AcqRel);
        Ok(())
    }

    /// Flushes if the flush policy (`flush.ms`, `flush.messages`) says so.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), ApiError> {
        if self.state.lock().log.flush_due(now_ms) {
            let _guard = self.flush_lock.lock().await;
            self.flush_now().await?;
        }
        Ok(())
    }

    /// Flush unconditionally (clean shutdown).
    pub async fn flush_all(&self) -> Result<(), ApiError> {
        let _guard = self.flush_lock.lock().await;
        self.flush_now().await
    }

    // ----- leader: fetch, offsets -----

    /// Locates up to `max_bytes` of whole batches starting at the batch that
    /// contains `offset`, never past the high watermark (consumers, and
    /// the group coordinator loading its state).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, ApiError> {
        let state = self.state.lock();
        let log = &state.log;
        let high_watermark = log.high_watermark();
        let slice = log
            .read(offset, max_bytes, high_watermark, min_one_batch)
            .map_err(|e| ApiError::from(&e))?;
        Ok(ReadResult {
            high_watermark,
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            slice,
        })
    }

    /// Whole batches from `offset` up to the log end, uncommitted ones
    /// included, and the offset after the last one returned (a leader
    /// replaying its own log, e.g. the group coordinator after a leader
    /// change, must see everything it will go on from). The bytes are read
    /// outside the lock.
    pub fn read_local(&self, offset: i64, max_bytes: usize) -> Result<(Bytes, i64), ApiError> {
        let slice = {
            let state = self.state.lock();
            let end = state.log.log_end_offset();
            state
                .log
                .read(offset, max_bytes, end, true)
                .map_err(|e| ApiError::from(&e))?
        };
        let bytes = slice
            .read()
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        let next = batch::iter_batches(&bytes)
            .map_while(Result::ok)
            .last()
            .map_or(offset, |(_, h)| h.next_offset());
        Ok((bytes, next))
    }

    /// Answers one partition of a follower's Fetch (Kafka's
    /// `Partition.fetchRecords` for a follower): checks the epoch and that
    /// the fetcher is a replica, answers a diverging log with the epoch to
    /// truncate to, otherwise reads up to the log end (not the high
    /// watermark) and records the follower's progress, which may move the
    /// high watermark and propose an ISR expansion.
    pub fn read_for_follower(
        &self,
        fetch: &FollowerFetch,
        now_ms: i64,
    ) -> Result<FollowerRead, ApiError> {
        self.check_leader(fetch.current_leader_epoch)?;
        let mut state = self.state.lock();
        let State { log, role } = &mut *state;
        let Role::Leader(leader) = role else {
            return Err(self.not_leader());
        };
        if !leader
            .followers
            .iter()
            .any(|f| f.broker_id == fetch.replica_id)
        {
            return Err(ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "broker {} is not a follower of {}-{} in the metadata this leader has",
                    fetch.replica_id, self.topic, self.index
                ),
            ));
        }
        let log_end_offset = log.log_end_offset();
        let answer = log.end_offset_for_epoch(fetch.last_fetched_epoch);
        if let Some(diverging) =
            divergence::diverging_epoch(fetch.last_fetched_epoch, fetch.fetch_offset, answer)
        {
            return Ok(FollowerRead {
                read: ReadResult {
                    high_watermark: log.high_watermark(),
                    log_start_offset: log.log_start_offset(),
                    log_end_offset,
                    slice: ReadSlice::default(),
                },
                diverging: Some(diverging),
                isr_proposal: None,
            });
        }
        let slice = log
            .read(
                fetch.fetch_offset,
                fetch.max_bytes,
                log_end_offset,
                fetch.min_one_batch,
            )
            .map_err(|e| ApiError::from(&e))?;
        let expand = leader
            .on_follower_fetch(
                fetch.replica_id,
                fetch.fetch_offset,
                fetch.log_start_offset,
                now_ms,
                log_end_offset,
                log.high_watermark(),
            )
            .unwrap_or(None);
        let isr_proposal = expand.map(|new_isr| self.propose(leader, new_isr));
        let moved = self.maybe_advance_hw(log, leader, now_ms);
        let read = ReadResult {
            high_watermark: log.high_watermark(),
            log_start_offset: log.log_start_offset(),
            log_end_offset,
            slice,
        };
        drop(state);
        if moved {
            self.hw_advanced.notify_waiters();
        }
        Ok(FollowerRead {
            read,
            diverging: None,
            isr_proposal,
        })
    }

    /// KIP-320 checks, then leadership (Kafka's `getLocalLog` order): a
    /// client that knows a newer epoch than ours talks to a stale leader
    /// (UNKNOWN_LEADER_EPOCH, retriable); one with an older epoch has
    /// stale metadata (FENCED_LEADER_EPOCH); -1 skips the epoch check. A
    /// follower answers NOT_LEADER_OR_FOLLOWER.
    pub fn check_leader(&self, current_leader_epoch: i32) -> Result<(), ApiError> {
        let epoch = self.leader_epoch();
        match current_leader_epoch {
            e if e < 0 || e == epoch => {}
            e if e > epoch => return Err(ApiError::bare(ResponseError::UnknownLeaderEpoch)),
            _ => return Err(ApiError::bare(ResponseError::FencedLeaderEpoch)),
        }
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        Ok(())
    }

    fn not_leader(&self) -> ApiError {
        ApiError::new(
            ResponseError::NotLeaderOrFollower,
            format!(
                "this broker is not the leader of {}-{}; refresh metadata and retry",
                self.topic, self.index
            ),
        )
    }

    /// OffsetForLeaderEpoch on the leader: where `epoch` ends in its log
    /// (`(-1, -1)` if unknown), after the KIP-320 and leadership checks.
    pub fn end_offset_for_epoch(
        &self,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), ApiError> {
        self.check_leader(current_leader_epoch)?;
        Ok(self.state.lock().log.end_offset_for_epoch(epoch))
    }

    /// The epoch of the batch holding `offset`, per the leader-epoch cache
    /// (ListOffsets v4+).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let state = self.state.lock();
        let entries = state.log.epoch_entries();
        let i = entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| entries[i].epoch)
    }

    /// Where the current leader epoch began, while leading.
    pub fn leader_epoch_start_offset(&self) -> Option<i64> {
        match &self.state.lock().role {
            Role::Leader(l) => Some(l.epoch_start_offset),
            Role::Follower { .. } => None,
        }
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.lock().log.latest_epoch()
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.lock().log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.state.lock().log.log_end_offset()
    }

    pub fn recovery_point(&self) -> i64 {
        self.state.lock().log.recovery_point()
    }

    /// ListOffsets for a timestamp ≥ 0: the first record at or after it,
    /// below the high watermark.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<OffsetAndTimestamp>, ApiError> {
        let state = self.state.lock();
        let hw = state.log.high_watermark();
        let found = state
            .log
            .offset_for_timestamp(timestamp)
            .map_err(|e| ApiError::from(&e))?;
        Ok(found
            .filter(|(offset, _)| *offset < hw)
            .map(|(offset, timestamp)| OffsetAndTimestamp { offset, timestamp }))
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<OffsetAndTimestamp>, ApiError> {
        let found = self
            .state
            .lock()
            .log
            .max_timestamp()
            .map_err(|e| ApiError::from(&e))?;
        Ok(found.map(|(timestamp, offset)| OffsetAndTimestamp { offset, timestamp }))
    }

    // ----- leader: ISR maintenance -----

    fn propose(&self, leader: &mut LeaderState, new_isr: Vec<i32>) -> IsrProposal {
        let seq = leader.isr.propose(new_isr.clone());
        IsrProposal {
            topic_id: self.topic_id,
            partition: self.index,
            leader_epoch: self.leader_epoch(),
            partition_epoch: leader.isr.partition_epoch(),
            new_isr,
            seq,
        }
    }

    /// The periodic ISR check (Kafka's `maybeShrinkIsr`): proposes dropping
    /// followers not caught up for `replica.lag.time.max.ms`. Also lets the
    /// high watermark pass replicas that stopped counting as caught up.
    pub fn maybe_shrink_isr(&self, now_ms: i64) -> Option<IsrProposal> {
        let mut state = self.state.lock();
        let State { log, role } = &mut *state;
        let Role::Leader(leader) = role else {
            return None;
        };
        let moved = self.maybe_advance_hw(log, leader, now_ms);
        let proposal = leader
            .shrink_proposal(now_ms)
            .map(|new_isr| self.propose(leader, new_isr));
        drop(state);
        if moved {
            self.hw_advanced.notify_waiters();
        }
        proposal
    }

    /// Applies the controller's answer to an ISR proposal.
    pub fn complete_isr_change(&self, seq: u64, outcome: AlterOutcome, now_ms: i64) {
        let mut state = self.state.lock();
        let State { log, role } = &mut *state;
        let Role::Leader(leader) = role else {
            return;
        };
        if !leader.isr.complete(seq, self.leader_epoch(), outcome) {
            return;
        }
        tracing::info!(topic = %self.topic, partition = self.index, isr = ?leader.isr.isr(), "ISR changed");
        self.maybe_advance_hw(log, leader, now_ms);
        drop(state);
        // acks=all waiters re-check the ISR size even if the high
        // watermark did not move.
        self.hw_advanced.notify_waiters();
    }

    /// Whether proposal `seq` still awaits its answer (its sender retries
    /// while it does).
    pub fn isr_change_pending(&self, seq: u64) -> bool {
        match &self.state.lock().role {
            Role::Leader(l) => l.isr.pending().is_some_and(|p| p.seq == seq),
            Role::Follower { .. } => false,
        }
    }

    /// The committed ISR while leading (tests, diagnostics).
    pub fn isr(&self) -> Option<Vec<i32>> {
        match &self.state.lock().role {
            Role::Leader(l) => Some(l.isr.isr().to_vec()),
            Role::Follower { .. } => None,
        }
    }

    // ----- follower -----

    /// Where to fetch from `leader` next, or `None` if this broker does not
    /// follow `leader` for this partition (any more).
    pub fn fetch_position(&self, leader: i32) -> Option<FetchPosition> {
        let state = self.state.lock();
        match state.role {
            Role::Follower { leader: l } if l == leader && leader != NO_LEADER => {
                Some(FetchPosition {
                    leader_epoch: self.leader_epoch(),
                    fetch_offset: state.log.log_end_offset(),
                    last_fetched_epoch: last_written_epoch(&state.log),
                    log_start_offset: state.log.log_start_offset(),
                })
            }
            _ => None,
        }
    }

    fn check_following(&self, role: &Role, leader_epoch: i32) -> Result<(), ApiError> {
        match role {
            Role::Follower { .. } if self.leader_epoch() == leader_epoch => Ok(()),
            _ => Err(ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "{}-{} is no longer followed at leader epoch {leader_epoch}",
                    self.topic, self.index
                ),
            )),
        }
    }

    /// Appends batches fetched from the leader at `leader_epoch` (ignored,
    /// as an error, if the role changed since the fetch was sent), keeps
    /// idempotent-producer state in step so this replica dedups correctly
    /// if it becomes leader, and takes the leader's high watermark as far
    /// as its own log reaches.
    pub fn append_as_follower(
        &self,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<FollowerAppended, ApiError> {
        let mut state = self.state.lock();
        self.check_following(&state.role, leader_epoch)?;
        let log = &mut state.log;
        let info = log
            .append_as_follower(records, now_ms)
            .map_err(|e| ApiError::from(&e))?;
        if let Some(info) = &info {
            let mut producers = self.producers.lock();
            for (_, header) in batch::iter_batches(&records[..info.bytes]).map_while(Result::ok) {
                if !header.is_control() {
                    producers.record(&header, header.base_offset, header.last_offset());
                }
            }
        }
        log.set_high_watermark(leader_high_watermark.min(log.log_end_offset()));
        self.sync_high_watermark(log);
        Ok(FollowerAppended {
            last_offset: info.map(|i| i.last_offset),
            must_flush: info.is_some_and(|i| i.flush_needed),
        })
    }

    /// Truncates after the leader answered a fetch with a diverging epoch.
    pub fn truncate_diverging(
        &self,
        leader_epoch: i32,
        diverging: (i32, i64),
    ) -> Result<Truncation, ApiError> {
        let mut state = self.state.lock();
        self.check_following(&state.role, leader_epoch)?;
        let log = &mut state.log;
        let local = match log.end_offset_for_epoch(diverging.0) {
            (_, end) if end < 0 => None,
            answer => Some(answer),
        };
        let truncation = divergence::truncation_offset(diverging, local, log.log_end_offset());
        if truncation.offset < log.log_end_offset() {
            tracing::info!(
                topic = %self.topic,
                partition = self.index,
                from = log.log_end_offset(),
                to = truncation.offset,
                leader_epoch = diverging.0,
                leader_end_offset = diverging.1,
                "truncating to where the log diverges from the leader's"
            );
            log.truncate_to(truncation.offset)
                .map_err(|e| ApiError::from(&e))?;
            self.after_truncation(log);
        }
        Ok(truncation)
    }

    /// The leader's log starts above ours ends (OFFSET_OUT_OF_RANGE):
    /// drops everything and continues at the leader's log start.
    pub fn truncate_fully_and_start_at(
        &self,
        leader_epoch: i32,
        offset: i64,
    ) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        self.check_following(&state.role, leader_epoch)?;
        let log = &mut state.log;
        tracing::info!(topic = %self.topic, partition = self.index, from = log.log_end_offset(), start = offset, "leader's log starts past ours; starting over there");
        log.truncate_fully_and_start_at(offset)
            .map_err(|e| ApiError::from(&e))?;
        self.after_truncation(log);
        Ok(())
    }

    /// Truncates to `offset` (an OFFSET_OUT_OF_RANGE answer showed the
    /// leader's log ends before ours, without epochs to find the exact
    /// point).
    pub fn truncate_to(&self, leader_epoch: i32, offset: i64) -> Result<(), ApiError> {
        let mut state = self.state.lock();
        self.check_following(&state.role, leader_epoch)?;
        let log = &mut state.log;
        log.truncate_to(offset).map_err(|e| ApiError::from(&e))?;
        self.after_truncation(log);
        Ok(())
    }

    /// Producer state may name batches that are gone: rebuilt from what
    /// the log holds now (rare; reads the active segment).
    fn after_truncation(&self, log: &Log) {
        *self.producers.lock() = rebuild_producer_state(log);
        self.flushed_offset
            .fetch_min(log.recovery_point(), Ordering::AcqRel);
        self.sync_high_watermark(log);
    }

    // ----- lifecycle -----

    /// Removes the partition's files. The log is unusable afterwards; the
    /// caller has already dropped the partition from the routing table.
    /// Parked requests and the fetcher see it as led by no one.
    pub fn delete_files(&self) -> Result<(), StorageError> {
        let deleted = {
            let mut state = self.state.lock();
            state.role = Role::Follower { leader: NO_LEADER };
            self.is_leader.store(false, Ordering::Release);
            state.log.delete()
        };
        self.wake_all();
        deleted
    }

    /// Applies retention (`retention.ms`, `retention.bytes`).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let config = self.config();
        self.state.lock().log.delete_expired_segments(
            now_ms,
            config.retention_ms,
            config.retention_bytes,
        )
    }
}

/// The checks Kafka makes on a v3+ Produce partition before appending,
/// without decoding records: exactly one intact magic-v2 batch (see
/// `batch::validate_produce_records`), within `max.message.bytes`, with
/// timestamps inside the configured bounds.
pub fn validate_produce_records(
    records: &Bytes,
    config: &EffectiveTopicConfig,
    now_ms: i64,
) -> Result<BatchHeader, ApiError> {
    let header = batch::validate_produce_records(records).map_err(batch_error)?;
    if header.total_len() > config.max_message_bytes {
        return Err(ApiError::new(
            ResponseError::MessageTooLarge,
            format!(
                "record batch of {} bytes exceeds max.message.bytes={}",
                header.total_len(),
                config.max_message_bytes
            ),
        ));
    }
    if config.timestamp_type == TimestampType::CreateTime {
        let latest_allowed = now_ms.saturating_add(config.timestamp_after_max_ms);
        let earliest_allowed = now_ms.saturating_sub(config.timestamp_before_max_ms);
        if header.max_timestamp > latest_allowed || header.base_timestamp < earliest_allowed {
            return Err(ApiError::new(
                ResponseError::InvalidTimestamp,
                format!(
                    "batch timestamps [{}, {}] are outside message.timestamp.before.max.ms/after.max.ms of now ({now_ms})",
                    header.base_timestamp, header.max_timestamp
                ),
            ));
        }
    }
    Ok(header)
}

fn batch_error(e: BatchError) -> ApiError {
    let code = match e {
        BatchError::Truncated { .. }
        | BatchError::InvalidLength(_)
        | BatchError::CrcMismatch { .. }
        | BatchError::InvalidRecords(_) => ResponseError::CorruptMessage,
        BatchError::UnknownCompression(_) => ResponseError::UnsupportedCompressionType,
        BatchError::LogAppendTimeFromProducer => ResponseError::InvalidTimestamp,
        BatchError::UnsupportedMagic(_)
        | BatchError::InvalidRecordCount { .. }
        | BatchError::Empty
        | BatchError::MultipleBatches
        | BatchError::ControlBatch
        | BatchError::InvalidSequence(_) => ResponseError::InvalidRecord,
    };
    ApiError::new(code, e.to_string())
}

/// The epoch of the last batch in `log` (KIP-595's `last_fetched_epoch`),
/// -1 if none carries one. This is not always the cache's latest epoch: a
/// replica that became leader records its epoch at the log end before
/// writing anything (`make_leader`), and if it loses the leadership before
/// it writes, that entry stays at the log end with no data behind it. The
/// next leader never had that epoch, so naming it would be answered with a
/// diverging epoch ending exactly at this log end: a truncation that cuts
/// nothing, and the same answer to every fetch after it (the replica
/// would never catch up or rejoin the ISR). The entry goes once data is
/// appended at the log end (or on reopen).
fn last_written_epoch(log: &Log) -> i32 {
    let end = log.log_end_offset();
    log.epoch_entries()
        .iter()
        .rev()
        .find(|e| e.start_offset < end)
        .map_or(-1, |e| e.epoch)
}

/// How much of the active segment one read covers while rebuilding.
const REBUILD_CHUNK_BYTES: usize = 1 << 20;

/// Rebuilds idempotent-producer state from the batch headers of the active
/// segment. Producers whose last write is older are forgotten and treated
/// as new (any sequence accepted), as Kafka does for expired producers.
fn rebuild_producer_state(log: &Log) -> ProducerState {
    let mut state = ProducerState::default();
    let mut offset = log
        .segment_base_offsets()
        .last()
        .copied()
        .unwrap_or_else(|| log.log_start_offset())
        .max(log.log_start_offset());
    let end = log.log_end_offset();
    while offset < end {
        let bytes = match log
            .read(offset, REBUILD_CHUNK_BYTES, end, true)
            .map(|s| s.read())
        {
            Ok(Ok(b)) if !b.is_empty() => b,
            _ => break,
        };
        for (_, header) in batch::iter_batches(&bytes).map_while(Result::ok) {
            state.record(&header, header.base_offset, header.last_offset());
            offset = header.last_offset() + 1;
        }
    }
    state
}
