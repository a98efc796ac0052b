//! Replication through real partitions and logs, without a network: a
//! leader and followers exchange what Fetch would carry, time is passed
//! in, and nothing sleeps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use odradek_storage::Log;
use uuid::Uuid;

use super::isr::AlterOutcome;
use super::leader::Assignment;
use crate::partition::{FollowerFetch, Partition};
use crate::topic_config::EffectiveTopicConfig;

const T0: i64 = 1_700_000_000_000;
const LAG: i64 = 30_000;

fn partition(dir: &tempfile::TempDir, name: &str, min_isr: &str) -> Arc<Partition> {
    let overrides = BTreeMap::from([("min.insync.replicas".to_string(), min_isr.to_string())]);
    let config = EffectiveTopicConfig::from_maps(&overrides, &BTreeMap::new());
    let log = Log::open(&dir.path().join(name), config.log_config(), 0).unwrap();
    Arc::new(Partition::new(
        "t".into(),
        Uuid::from_u128(1),
        0,
        log,
        config,
    ))
}

fn lead(p: &Partition, me: i32, replicas: &[i32], isr: &[i32], epoch: i32) {
    let a = Assignment {
        local_id: me,
        replicas,
        isr,
        partition_epoch: epoch,
    };
    p.make_leader(&a, epoch, &|_| true, T0, LAG).unwrap();
}

/// One batch of `n` records; idempotent when `producer` is `Some((id, seq))`.
fn batch(n: usize, value: &str, producer: Option<(i64, i32)>) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: if producer.is_some() { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: producer.map_or(i as i32 - 1, |p| p.1 + i as i32),
            timestamp: T0,
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn fetch(replica_id: i32, fetch_offset: i64, last_fetched_epoch: i32) -> FollowerFetch {
    FollowerFetch {
        replica_id,
        fetch_offset,
        log_start_offset: 0,
        last_fetched_epoch,
        current_leader_epoch: -1,
        max_bytes: 1 << 20,
        min_one_batch: true,
    }
}

/// One follower fetch round: the leader answers, the follower applies.
/// Returns the follower's log end afterwards.
fn replicate(
    leader: &Partition,
    follower: &Partition,
    leader_id: i32,
    follower_id: i32,
    now: i64,
) -> i64 {
    let pos = follower.fetch_position(leader_id).expect("follows");
    let out = leader
        .read_for_follower(
            &FollowerFetch {
                current_leader_epoch: pos.leader_epoch,
                ..fetch(follower_id, pos.fetch_offset, pos.last_fetched_epoch)
            },
            now,
        )
        .unwrap();
    if let Some(d) = out.diverging {
        follower.truncate_diverging(pos.leader_epoch, d).unwrap();
    } else {
        let bytes = out.read.slice.read().unwrap();
        follower
            .append_as_follower(pos.leader_epoch, &bytes, out.read.high_watermark, now)
            .unwrap();
    }
    follower.log_end_offset()
}

fn values(p: &Partition) -> Vec<String> {
    let end = p.log_end_offset();
    let mut out = Vec::new();
    let mut offset = p.log_start_offset();
    while offset < end {
        let (slice, next) = p.read_local(offset, 1 << 20).unwrap();
        let mut bytes = slice;
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for r in set.records {
                out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        offset = next;
    }
    out
}

#[test]
fn a_single_replica_commits_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(&dir, "p", "1");
    lead(&p, 1, &[1], &[1], 0);
    let a = p.append(&batch(2, "a", None), -1, T0).unwrap();
    assert!(!a.awaits_replication);
    assert_eq!(p.high_watermark(), 2);
    assert_eq!(p.latest_epoch(), Some(0));
}

#[test]
fn the_high_watermark_waits_for_every_isr_member() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(&dir, "p", "1");
    lead(&p, 1, &[1, 2, 3], &[1, 2, 3], 4);
    let a = p.append(&batch(3, "a", None), -1, T0).unwrap();
    assert!(a.awaits_replication);
    assert_eq!(p.high_watermark(), 0);
    // Follower 2 has it all; 3 has not fetched yet: nothing committed.
    let r = p.read_for_follower(&fetch(2, 3, 4), T0).unwrap();
    assert!(r.diverging.is_none());
    assert_eq!(p.high_watermark(), 0);
    // 3 fetched the first... only whole batches: at 0 it still has nothing.
    p.read_for_follower(&fetch(3, 0, -1), T0).unwrap();
    assert_eq!(p.high_watermark(), 0);
    p.read_for_follower(&fetch(3, 3, 4), T0).unwrap();
    assert_eq!(p.high_watermark(), 3);
    // Consumers see committed data only; followers read to the log end.
    p.append(&batch(1, "b", None), 1, T0).unwrap();
    assert_eq!(p.read(3, 1 << 20, true).unwrap().slice.len(), 0);
    assert!(!p
        .read_for_follower(&fetch(2, 3, 4), T0)
        .unwrap()
        .read
        .slice
        .is_empty());
    // A broker that is not a replica is refused.
    let e = p.read_for_follower(&fetch(9, 0, -1), T0).err().unwrap();
    assert_eq!(e.code, ResponseError::NotLeaderOrFollower);
}

#[tokio::test]
async fn acks_all_completes_when_the_isr_has_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(&dir, "p", "2");
    lead(&p, 1, &[1, 2], &[1, 2], 1);
    let a = p.append(&batch(1, "a", None), -1, T0).unwrap();
    assert!(a.awaits_replication);
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    let waiting = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_for_acks(a.last_offset, a.leader_epoch, far).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    // The follower's next fetch (from offset 1) shows it has the batch.
    p.read_for_follower(&fetch(2, 1, 1), T0).unwrap();
    assert_eq!(waiting.await.unwrap(), Ok(()));
}

#[tokio::test]
async fn acks_all_times_out_or_fails_when_the_isr_shrinks_or_leadership_moves() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(&dir, "p", "2");
    lead(&p, 1, &[1, 2], &[1, 2], 1);
    // Deadline passed and not replicated: REQUEST_TIMED_OUT.
    let a = p.append(&batch(1, "a", None), -1, T0).unwrap();
    let now = tokio::time::Instant::now();
    let e = p
        .wait_for_acks(a.last_offset, a.leader_epoch, now)
        .await
        .unwrap_err();
    assert_eq!(e.code, ResponseError::RequestTimedOut);
    // The follower stops fetching; the ISR shrinks to the leader alone,
    // which lets the high watermark pass the batch: written, but with
    // fewer copies than min.insync.replicas asks for.
    let proposal = p.maybe_shrink_isr(T0 + LAG + 1).expect("2 lags");
    assert_eq!(proposal.new_isr, vec![1]);
    let far = now + Duration::from_secs(3600);
    let waiting = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_for_acks(a.last_offset, a.leader_epoch, far).await })
    };
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "a pending shrink still counts 2");
    p.complete_isr_change(
        proposal.seq,
        AlterOutcome::Committed {
            leader_epoch: 1,
            isr: vec![1],
            partition_epoch: 2,
        },
        T0 + LAG + 1,
    );
    let e = waiting.await.unwrap().unwrap_err();
    assert_eq!(e.code, ResponseError::NotEnoughReplicasAfterAppend);
    // Now below min.insync.replicas: acks=all is refused up front,
    // acks=1 is not.
    let e = p.append(&batch(1, "b", None), -1, T0).unwrap_err();
    assert_eq!(e.code, ResponseError::NotEnoughReplicas);
    p.append(&batch(1, "b", None), 1, T0).unwrap();
    // Leadership lost while waiting: NOT_LEADER_OR_FOLLOWER.
    lead(&p, 1, &[1, 2], &[1, 2], 2);
    let a = p.append(&batch(1, "c", None), -1, T0).unwrap();
    let waiting = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_for_acks(a.last_offset, a.leader_epoch, far).await })
    };
    tokio::task::yield_now().await;
    p.make_follower(2, 3);
    let e = waiting.await.unwrap().unwrap_err();
    assert_eq!(e.code, ResponseError::NotLeaderOrFollower);
    let e = p.append(&batch(1, "d", None), 1, T0).unwrap_err();
    assert_eq!(e.code, ResponseError::NotLeaderOrFollower);
}

#[test]
fn a_caught_up_follower_is_proposed_for_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    let leader = partition(&dir, "l", "1");
    let follower = partition(&dir, "f", "1");
    lead(&leader, 1, &[1, 2], &[1], 3);
    follower.make_follower(1, 3);
    leader.append(&batch(2, "a", None), 1, T0).unwrap();
    assert_eq!(leader.high_watermark(), 2, "the leader alone is the ISR");
    // First round copies the batch; the follower's fetch offset was 0.
    assert_eq!(replicate(&leader, &follower, 1, 2, T0), 2);
    assert_eq!(follower.high_watermark(), 2);
    // Second round reports offset 2 = the high watermark: expansion.
    let pos = follower.fetch_position(1).unwrap();
    assert_eq!(pos.last_fetched_epoch, 3);
    let out = leader
        .read_for_follower(&fetch(2, pos.fetch_offset, pos.last_fetched_epoch), T0)
        .unwrap();
    let proposal = out.isr_proposal.expect("caught up");
    assert_eq!(
        (
            proposal.new_isr.clone(),
            proposal.leader_epoch,
            proposal.partition_epoch
        ),
        (vec![1, 2], 3, 3)
    );
    assert!(leader.isr_change_pending(proposal.seq));
    // One change at a time.
    let again = leader.read_for_follower(&fetch(2, 2, 3), T0).unwrap();
    assert!(again.isr_proposal.is_none());
    leader.complete_isr_change(
        proposal.seq,
        AlterOutcome::Committed {
            leader_epoch: 3,
            isr: vec![1, 2],
            partition_epoch: 4,
        },
        T0,
    );
    assert_eq!(leader.isr(), Some(vec![1, 2]));
    assert!(!leader.isr_change_pending(proposal.seq));
}

#[test]
fn a_follower_truncates_what_the_new_leader_never_had() {
    let dir = tempfile::tempdir().unwrap();
    let a = partition(&dir, "a", "1");
    let b = partition(&dir, "b", "1");
    // Epoch 1: a leads, b copies two records.
    lead(&a, 1, &[1, 2], &[1, 2], 1);
    b.make_follower(1, 1);
    a.append(&batch(1, "x0", None), 1, T0).unwrap();
    a.append(&batch(1, "x1", None), 1, T0).unwrap();
    assert_eq!(replicate(&a, &b, 1, 2, T0), 2);
    // a writes two more that b never gets.
    a.append(&batch(1, "lost2", None), 1, T0).unwrap();
    a.append(&batch(1, "lost3", None), 1, T0).unwrap();
    // Epoch 2: b leads and writes its own offset 2.
    lead(&b, 2, &[1, 2], &[2], 2);
    b.append(&batch(1, "y2", None), 1, T0).unwrap();
    // a follows b: its epoch 1 ends at 2 on b, so a cuts to 2 ...
    a.make_follower(2, 2);
    assert_eq!(a.log_end_offset(), 4);
    assert_eq!(replicate(&b, &a, 2, 1, T0), 2);
    // ... and then copies b's record.
    assert_eq!(replicate(&b, &a, 2, 1, T0), 3);
    assert_eq!(values(&a), ["x0", "x1", "y2"]);
    assert_eq!(a.fetch_position(2).unwrap().last_fetched_epoch, 2);
    // OffsetForLeaderEpoch on b: epoch 1 ends where epoch 2 begins.
    assert_eq!(b.end_offset_for_epoch(2, 1).unwrap(), (1, 2));
    assert_eq!(b.end_offset_for_epoch(-1, 2).unwrap(), (2, 3));
    assert_eq!(
        a.end_offset_for_epoch(-1, 1).unwrap_err().code,
        ResponseError::NotLeaderOrFollower
    );
    assert_eq!(
        b.end_offset_for_epoch(1, 1).unwrap_err().code,
        ResponseError::FencedLeaderEpoch
    );
    assert_eq!(
        b.end_offset_for_epoch(3, 1).unwrap_err().code,
        ResponseError::UnknownLeaderEpoch
    );
}

#[test]
fn a_new_leader_records_its_epoch_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let a = partition(&dir, "a", "1");
    a.append(&batch(1, "never", None), 1, T0).unwrap_err();
    lead(&a, 1, &[1, 2], &[1, 2], 5);
    assert_eq!(a.latest_epoch(), Some(5));
    // A follower with epoch-3 data the leader never had diverges at 0.
    let out = a.read_for_follower(&fetch(2, 4, 3), T0).unwrap();
    assert_eq!(out.diverging, Some((3, 0)));
}

#[test]
fn producer_state_follows_replicated_batches() {
    let dir = tempfile::tempdir().unwrap();
    let a = partition(&dir, "a", "1");
    let b = partition(&dir, "b", "1");
    lead(&a, 1, &[1, 2], &[1, 2], 1);
    b.make_follower(1, 1);
    let first = batch(2, "p", Some((77, 0)));
    a.append(&first, 1, T0).unwrap();
    replicate(&a, &b, 1, 2, T0);
    // b takes over: the producer's retry is a duplicate, its next batch
    // must follow the sequence.
    lead(&b, 2, &[1, 2], &[2], 2);
    let retry = b.append(&first, 1, T0).unwrap();
    assert_eq!((retry.base_offset, retry.last_offset), (0, 1));
    assert_eq!(b.log_end_offset(), 2);
    let gap = b.append(&batch(1, "q", Some((77, 5))), 1, T0).unwrap_err();
    assert_eq!(gap.code, ResponseError::OutOfOrderSequenceNumber);
    b.append(&batch(1, "q", Some((77, 2))), 1, T0).unwrap();
}

/// A replica that became leader and lost the leadership before writing
/// anything keeps that epoch's entry at its log end (`make_leader` records
/// it up front). The next leader never had that epoch. The replica must
/// still catch up: naming that epoch as its last fetched one got it a
/// diverging epoch that ended exactly at its log end, a truncation that
/// cut nothing, and the same answer on every later fetch.
#[test]
fn a_leader_deposed_before_writing_catches_up_as_follower() {
    let dir = tempfile::tempdir().unwrap();
    let a = partition(&dir, "a", "1");
    let b = partition(&dir, "b", "1");
    // Epoch 0: a leads and b copies two records.
    lead(&a, 1, &[1, 2], &[1, 2], 0);
    b.make_follower(1, 0);
    a.append(&batch(1, "x0", None), 1, T0).unwrap();
    a.append(&batch(1, "x1", None), 1, T0).unwrap();
    assert_eq!(replicate(&a, &b, 1, 2, T0), 2);
    // Epoch 1: b leads, but loses it before a single write.
    lead(&b, 2, &[1, 2], &[1, 2], 1);
    assert_eq!(b.latest_epoch(), Some(1));
    // Epoch 2: a leads again, without ever having seen epoch 1, and writes.
    lead(&a, 1, &[1, 2], &[1, 2], 2);
    a.append(&batch(1, "y2", None), 1, T0).unwrap();
    a.append(&batch(1, "y3", None), 1, T0).unwrap();
    b.make_follower(1, 2);
    // b names the epoch of its last batch, not its empty epoch 1 ...
    let pos = b.fetch_position(1).unwrap();
    assert_eq!((pos.fetch_offset, pos.last_fetched_epoch), (2, 0));
    // ... so one round copies a's epoch-2 records, which replace b's entry
    // for the epoch it never wrote in. (Naming epoch 1, every round was
    // answered "diverging at (0, 2)" and b stayed at 2.)
    for _ in 0..3 {
        replicate(&a, &b, 1, 2, T0);
    }
    assert_eq!(b.log_end_offset(), 4);
    assert_eq!(values(&b), ["x0", "x1", "y2", "y3"]);
    assert_eq!(b.latest_epoch(), Some(2));
    assert_eq!(b.epoch_for_offset(1), Some(0));
    assert_eq!(b.epoch_for_offset(2), Some(2));
    // b's next fetch shows it level with a: it can join the ISR.
    let pos = b.fetch_position(1).unwrap();
    let out = a
        .read_for_follower(&fetch(2, pos.fetch_offset, pos.last_fetched_epoch), T0)
        .unwrap();
    assert_eq!(out.diverging, None);
    assert_eq!(a.high_watermark(), 4);
}
