//! Idempotent-producer state of one partition (KIP-98): for each producer
//! id, its epoch and the last few batches' sequence ranges, so a retried
//! batch is recognised as a duplicate and a gap in sequences is refused.
//!
//! Pure logic with no I/O: `check` decides, `record` remembers an appended
//! batch. Rules as in Kafka's `ProducerAppendInfo.checkSequence`:
//! - a batch equal to one of the last `BATCHES_KEPT` of the same epoch is a
//!   duplicate: acknowledged again with its original offsets, not appended;
//! - an older epoch is fenced (INVALID_PRODUCER_EPOCH);
//! - a newer epoch must start at sequence 0;
//! - otherwise the first sequence must follow the last one (wrapping at
//!   `i32::MAX`) or the batch is OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - a producer with no state here (new, or state lost to a restart or
//!   retention) may start at any sequence.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;
use odradek_protocol::batch::BatchHeader;

use crate::errors::ApiError;

/// Kafka keeps metadata of the last five batches per producer, matching
/// the client's maximum of five in-flight requests per connection.
pub const BATCHES_KEPT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRange>,
}

#[derive(Debug, Default)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Already in the log at these offsets.
    Duplicate {
        first_offset: i64,
        last_offset: i64,
    },
}

impl ProducerState {
    pub fn check(&self, header: &BatchHeader) -> Result<Verdict, ApiError> {
        if header.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(Verdict::Append);
        };
        let first_seq = header.base_sequence;
        let last_seq = last_sequence(header);
        if header.producer_epoch < entry.epoch {
            return Err(ApiError::new(
                ResponseError::InvalidProducerEpoch,
                format!(
                    "producer {} epoch {} is older than the current epoch {}",
                    header.producer_id, header.producer_epoch, entry.epoch
                ),
            ));
        }
        if header.producer_epoch > entry.epoch {
            if first_seq != 0 {
                return Err(out_of_order(header, "a new epoch must start at sequence 0"));
            }
            return Ok(Verdict::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(first_seq, |b| next_sequence(b.last_seq));
        if first_seq != expected {
            return Err(out_of_order(
                header,
                &format!("expected sequence {expected}"),
            ));
        }
        Ok(Verdict::Append)
    }

    /// Remembers a batch that is now in the log (appended or replayed at
    /// start-up).
    pub fn record(&mut self, header: &BatchHeader, first_offset: i64, last_offset: i64) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchRange {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset,
            last_offset,
        });
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
}

fn last_sequence(header: &BatchHeader) -> i32 {
    // Sequences wrap from i32::MAX to 0 (Kafka's DefaultRecordBatch).
    let last = header.base_sequence as i64 + header.last_offset_delta as i64;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn out_of_order(header: &BatchHeader, why: &str) -> ApiError {
    ApiError::new(
        ResponseError::OutOfOrderSequenceNumber,
        format!(
            "producer {} epoch {} sent sequence {}: {why}",
            header.producer_id, header.producer_epoch, header.base_sequence
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    fn append(s: &mut ProducerState, h: &BatchHeader, at: i64) -> Result<Verdict, ApiError> {
        let v = s.check(h)?;
        if v == Verdict::Append {
            s.record(h, at, at + h.last_offset_delta as i64);
        }
        Ok(v)
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerState::default();
        assert_eq!(
            append(&mut s, &header(7, 0, 0, 3), 0).unwrap(),
            Verdict::Append
        );
        assert_eq!(
            append(&mut s, &header(7, 0, 3, 2), 3).unwrap(),
            Verdict::Append
        );
        // KIP-98: a retried batch is acknowledged with its original offsets.
        assert_eq!(
            append(&mut s, &header(7, 0, 0, 3), 99).unwrap(),
            Verdict::Duplicate {
                first_offset: 0,
                last_offset: 2
            }
        );
        assert_eq!(
            append(&mut s, &header(7, 0, 3, 2), 99).unwrap(),
            Verdict::Duplicate {
                first_offset: 3,
                last_offset: 4
            }
        );
    }

    #[test]
    fn gaps_are_out_of_order() {
        let mut s = ProducerState::default();
        append(&mut s, &header(7, 0, 0, 3), 0).unwrap();
        let e = append(&mut s, &header(7, 0, 5, 1), 3).unwrap_err();
        assert_eq!(e.code, ResponseError::OutOfOrderSequenceNumber);
    }

    #[test]
    fn epochs_fence_old_and_reset_new() {
        let mut s = ProducerState::default();
        append(&mut s, &header(7, 1, 0, 1), 0).unwrap();
        assert_eq!(
            append(&mut s, &header(7, 0, 1, 1), 1).unwrap_err().code,
            ResponseError::InvalidProducerEpoch
        );
        assert_eq!(
            append(&mut s, &header(7, 2, 4, 1), 1).unwrap_err().code,
            ResponseError::OutOfOrderSequenceNumber
        );
        assert_eq!(
            append(&mut s, &header(7, 2, 0, 1), 1).unwrap(),
            Verdict::Append
        );
    }

    #[test]
    fn unknown_producer_may_start_anywhere_and_non_idempotent_is_unchecked() {
        let mut s = ProducerState::default();
        assert_eq!(
            append(&mut s, &header(9, 3, 41, 1), 0).unwrap(),
            Verdict::Append
        );
        assert_eq!(
            append(&mut s, &header(-1, -1, -1, 5), 1).unwrap(),
            Verdict::Append
        );
        assert_eq!(
            append(&mut s, &header(-1, -1, -1, 5), 6).unwrap(),
            Verdict::Append
        );
        assert_eq!(s.producer_count(), 1);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerState::default();
        for i in 0..6 {
            append(&mut s, &header(7, 0, i, 1), i as i64).unwrap();
        }
        // The first batch fell out of the window: its retry is out of order.
        assert!(append(&mut s, &header(7, 0, 0, 1), 10).is_err());
        let mut s = ProducerState::default();
        append(&mut s, &header(7, 0, i32::MAX - 1, 2), 0).unwrap();
        assert_eq!(
            append(&mut s, &header(7, 0, 0, 1), 2).unwrap(),
            Verdict::Append
        );
    }
}
