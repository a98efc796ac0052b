//! A zero-copy view of Kafka magic-v2 record batches.
//!
//! The broker never decodes records on the hot path (see the design doc):
//! it validates batch headers and CRC32C, writes offsets and the partition
//! leader epoch in place (both lie outside the CRC) and stores the bytes as
//! received. Everything here is pure, works on plain byte slices, and must
//! never panic, whatever the input: the functions are fed straight from the
//! network and from disk.
//!
//! Layout of a v2 batch header (big endian, 61 bytes):
//!
//! ```text
//!  0  baseOffset            i64
//!  8  batchLength           i32   bytes after this field
//! 12  partitionLeaderEpoch  i32
//! 16  magic                 i8    = 2
//! 17  crc                   u32   CRC32C of bytes 21..end of batch
//! 21  attributes            i16
//! 23  lastOffsetDelta       i32
//! 27  baseTimestamp         i64
//! 35  maxTimestamp          i64
//! 43  producerId            i64
//! 51  producerEpoch         i16
//! 53  baseSequence          i32
//! 57  recordsCount          i32
//! 61  records...
//! ```
//!
//! Kafka error codes for [`BatchError`] are chosen by the broker, not here;
//! each variant's doc names the code Kafka uses for the same condition.

use std::ops::ControlFlow;

use bytes::Bytes;

/// Length of the v2 batch header; the first record starts here.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength` (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only record format Odradek accepts.
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a batch sent without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;

/// Byte offsets of the header fields within a batch.
pub mod field {
    pub const BASE_OFFSET: usize = 0;
    pub const BATCH_LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
}

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// The smallest encoded record: size varint plus six one-byte fields
/// (attributes, timestamp delta, offset delta, key length, value length,
/// header count). Bounds `recordsCount` of uncompressed batches.
const MIN_RECORD_LEN: usize = 7;

/// Why a buffer is not an acceptable sequence of v2 batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The buffer ends inside a batch. Kafka: CORRUPT_MESSAGE (2).
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// `batchLength` is below the 49-byte minimum. Kafka: CORRUPT_MESSAGE.
    #[error("invalid record batch length {0}")]
    InvalidLength(i32),
    /// Magic is not 2. Kafka (produce v3+): INVALID_RECORD (87) /
    /// UNSUPPORTED_VERSION for old message formats.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The stored CRC32C does not match the bytes. Kafka: CORRUPT_MESSAGE.
    #[error("record batch CRC mismatch: stored {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    /// `recordsCount` is negative, zero where records are required,
    /// inconsistent with `lastOffsetDelta`, or larger than the bytes can
    /// hold. Kafka: INVALID_RECORD (87).
    #[error("invalid record count {count} (lastOffsetDelta {last_offset_delta})")]
    InvalidRecordCount { count: i32, last_offset_delta: i32 },
    /// The buffer holds no batch at all. Kafka: INVALID_RECORD.
    #[error("no record batches")]
    Empty,
    /// Compression codec id 5..=7. Kafka: UNSUPPORTED_COMPRESSION_TYPE (76).
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// A produce request carried more than one v2 batch for a partition.
    /// Kafka: INVALID_RECORD.
    #[error("more than one record batch in a produce request partition")]
    MultipleBatches,
    /// A client tried to write a control batch. Kafka: INVALID_RECORD.
    #[error("clients may not write control batches")]
    ControlBatch,
    /// An idempotent batch (producerId >= 0) with a negative base sequence.
    /// Kafka: INVALID_RECORD.
    #[error("invalid base sequence {0} for an idempotent batch")]
    InvalidSequence(i32),
    /// A producer set the LogAppendTime attribute. Kafka: INVALID_TIMESTAMP (32).
    #[error("producers may not set the LogAppendTime timestamp type")]
    LogAppendTimeFromProducer,
    /// Records inside the batch could not be decoded (bad varints,
    /// overflowing deltas, failed decompression). Kafka: CORRUPT_MESSAGE.
    #[error("malformed records: {0}")]
    InvalidRecords(&'static str),
}

/// Compression codec from the low three attribute bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub fn from_id(id: u8) -> Result<Compression, BatchError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }
}

/// The decoded 61-byte header of one v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `buf`. Needs 17 bytes to see the
    /// magic byte and, for v2, the full 61-byte header. Checks nothing
    /// beyond the magic; see [`check_batch`] for a full check.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < field::MAGIC + 1 {
            return Err(BatchError::Truncated {
                needed: field::MAGIC + 1,
                available: buf.len(),
            });
        }
        let magic = buf[field::MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let Some(h) = buf.get(..BATCH_HEADER_LEN) else {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        };
        Ok(BatchHeader {
            base_offset: read_i64(h, field::BASE_OFFSET),
            batch_length: read_i32(h, field::BATCH_LENGTH),
            partition_leader_epoch: read_i32(h, field::PARTITION_LEADER_EPOCH),
            magic,
            crc: read_i32(h, field::CRC) as u32,
            attributes: read_i16(h, field::ATTRIBUTES),
            last_offset_delta: read_i32(h, field::LAST_OFFSET_DELTA),
            base_timestamp: read_i64(h, field::BASE_TIMESTAMP),
            max_timestamp: read_i64(h, field::MAX_TIMESTAMP),
            producer_id: read_i64(h, field::PRODUCER_ID),
            producer_epoch: read_i16(h, field::PRODUCER_EPOCH),
            base_sequence: read_i32(h, field::BASE_SEQUENCE),
            records_count: read_i32(h, field::RECORDS_COUNT),
        })
    }

    /// Size of the whole batch in bytes, including the 12-byte log overhead.
    /// Zero-or-negative `batch_length` yields a value below the header size;
    /// callers that iterate must check `batch_length` first.
    pub fn total_len(&self) -> usize {
        (self.batch_length.max(0) as usize) + LOG_OVERHEAD
    }

    /// Offset of the last record (wrapping on nonsense input rather than
    /// panicking; validated batches never wrap).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Raw codec id, 0..=7 (only 0..=4 are defined).
    pub fn compression_id(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_id(self.compression_id())
    }

    pub fn is_compressed(&self) -> bool {
        self.compression_id() != 0
    }

    pub fn timestamp_type_is_log_append(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }
}

/// Checks one complete batch at the start of `buf` (which may continue with
/// further batches): magic, length, completeness, CRC32C, codec id and the
/// count fields' signs. This is what storage recovery trusts; it accepts
/// empty batches and gaps between `lastOffsetDelta` and `recordsCount`,
/// which Kafka's log cleaner produces. Produce requests need
/// [`validate_batches`] or [`validate_produce_records`].
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    let total = header.total_len();
    let Some(batch) = buf.get(..total) else {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    };
    let actual = crc32c::crc32c(&batch[field::ATTRIBUTES..]);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    // Corruption is reported as such before the semantic checks.
    check_header(&header)?;
    Ok(header)
}

/// The checks of [`check_batch`] that need only the header: length, codec
/// id and the count fields. Lets storage verify a batch whose bytes it
/// streams through the CRC rather than holding them in memory.
pub fn check_header(header: &BatchHeader) -> Result<(), BatchError> {
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    header.compression()?;
    let count_err = BatchError::InvalidRecordCount {
        count: header.records_count,
        last_offset_delta: header.last_offset_delta,
    };
    if header.records_count < 0 || header.last_offset_delta < 0 {
        return Err(count_err);
    }
    let body_len = header.total_len() - BATCH_HEADER_LEN;
    if !header.is_compressed() && header.records_count as usize > body_len / MIN_RECORD_LEN {
        return Err(count_err);
    }
    Ok(())
}

/// Validates the `records` field of one partition in a Produce request,
/// without decoding records: every batch complete and CRC-clean (see
/// [`check_batch`]), at least one record each, and `lastOffsetDelta ==
/// recordsCount - 1` (Kafka's LogValidator.validateBatch: "Inconsistent
/// batch offset range and record count"). Returns the headers in order.
pub fn validate_batches(buf: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let header = check_batch(&buf[pos..])?;
        if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
            return Err(BatchError::InvalidRecordCount {
                count: header.records_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        pos += header.total_len();
        headers.push(header);
    }
    Ok(headers)
}

/// [`validate_batches`] plus the rules Kafka applies to batches a client
/// sends (LogValidator, origin CLIENT): exactly one v2 batch per partition,
/// no control batches, idempotent batches carry a sequence, and producers
/// never set LogAppendTime.
pub fn validate_produce_records(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let headers = validate_batches(buf)?;
    let [header] = headers[..] else {
        return Err(BatchError::MultipleBatches);
    };
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::InvalidSequence(header.base_sequence));
    }
    if header.timestamp_type_is_log_append() {
        return Err(BatchError::LogAppendTimeFromProducer);
    }
    Ok(header)
}

/// Walks concatenated batches by header alone (no CRC), yielding each
/// batch's start position and header. Stops after the first error.
pub fn iter_batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        pos: 0,
        done: false,
    }
}

/// Iterator returned by [`iter_batches`].
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(usize, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let result = BatchHeader::parse(rest).and_then(|h| {
            if h.batch_length < MIN_BATCH_LENGTH {
                Err(BatchError::InvalidLength(h.batch_length))
            } else if h.total_len() > rest.len() {
                Err(BatchError::Truncated {
                    needed: h.total_len(),
                    available: rest.len(),
                })
            } else {
                Ok(h)
            }
        });
        match result {
            Ok(h) => {
                let at = self.pos;
                self.pos += h.total_len();
                Some(Ok((at, h)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Writes consecutive base offsets into every batch, starting at
/// `first_offset`, and returns the offset after the last batch. The base
/// offset lies outside the CRC, so no checksum changes. Stops at the first
/// malformed batch (validated input has none).
pub fn assign_offsets(buf: &mut [u8], first_offset: i64) -> i64 {
    let mut next = first_offset;
    let positions: Vec<(usize, i32)> = iter_batches(buf)
        .map_while(Result::ok)
        .map(|(pos, h)| (pos, h.last_offset_delta))
        .collect();
    for (pos, last_offset_delta) in positions {
        write_i64(buf, pos + field::BASE_OFFSET, next);
        next = next.wrapping_add(i64::from(last_offset_delta.max(0)) + 1);
    }
    next
}

/// Stamps the partition leader epoch into every batch (outside the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    let positions: Vec<usize> = iter_batches(buf)
        .map_while(Result::ok)
        .map(|(pos, _)| pos)
        .collect();
    for pos in positions {
        write_i32(buf, pos + field::PARTITION_LEADER_EPOCH, epoch);
    }
}

/// Turns every batch into a LogAppendTime batch stamped `ts`, as Kafka's
/// `DefaultRecordBatch.setMaxTimestamp(LOG_APPEND_TIME, now)` does: sets the
/// timestamp-type attribute bit and `maxTimestamp` (baseTimestamp is left
/// alone; readers take every record's timestamp from maxTimestamp), then
/// recomputes the CRC. Fails without modifying anything if a batch is
/// malformed.
pub fn set_log_append_time(buf: &mut [u8], ts: i64) -> Result<(), BatchError> {
    let mut batches = Vec::new();
    for item in iter_batches(buf) {
        let (pos, h) = item?;
        batches.push((pos, h));
    }
    for (pos, h) in batches {
        let batch = &mut buf[pos..pos + h.total_len()];
        if h.timestamp_type_is_log_append() && h.max_timestamp == ts {
            continue;
        }
        write_i16(batch, field::ATTRIBUTES, h.attributes | TIMESTAMP_TYPE_BIT);
        write_i64(batch, field::MAX_TIMESTAMP, ts);
        let crc = crc32c::crc32c(&batch[field::ATTRIBUTES..]);
        write_i32(batch, field::CRC, crc as i32);
    }
    Ok(())
}

/// The exact first record in `batch` whose timestamp is `>= target_ts`, as
/// `(offset, timestamp)`. Decodes (and decompresses) records, so it is for
/// ListOffsets, not the produce/fetch path. In a LogAppendTime batch every
/// record carries the batch's maxTimestamp.
pub fn first_offset_at_or_after_timestamp(
    batch: &[u8],
    target_ts: i64,
) -> Result<Option<(i64, i64)>, BatchError> {
    first_record_at_or_after(batch, target_ts, i64::MIN)
}

/// Like [`first_offset_at_or_after_timestamp`], considering only records
/// with offset `>= min_offset` (Kafka skips records below the log start
/// offset the same way).
pub fn first_record_at_or_after(
    batch: &[u8],
    target_ts: i64,
    min_offset: i64,
) -> Result<Option<(i64, i64)>, BatchError> {
    let header = batch_for_decoding(batch)?;
    if header.max_timestamp < target_ts {
        // Kafka trusts the header's maxTimestamp to skip whole batches too;
        // in a LogAppendTime batch it is every record's timestamp.
        return Ok(None);
    }
    let mut found = None;
    for_each_record(batch, &header, |offset, ts| {
        if ts >= target_ts && offset >= min_offset {
            found = Some((offset, ts));
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(found)
}

/// The largest record timestamp in `batch` and the offset of the first
/// record carrying it (KIP-734's MAX_TIMESTAMP answer), or `None` for a
/// batch without records. Computed from the records rather than trusted
/// from the header.
pub fn max_timestamp_and_offset(batch: &[u8]) -> Result<Option<(i64, i64)>, BatchError> {
    let header = batch_for_decoding(batch)?;
    let mut best: Option<(i64, i64)> = None;
    for_each_record(batch, &header, |offset, ts| {
        match best {
            Some((best_ts, _)) if best_ts >= ts => {}
            _ => best = Some((ts, offset)),
        }
        ControlFlow::Continue(())
    })?;
    Ok(best)
}

/// Header of a batch about to be decoded: structurally sound and complete.
/// The CRC is not rechecked (stored batches were checked on the way in).
fn batch_for_decoding(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    match iter_batches(batch).next() {
        Some(Ok((_, h))) => {
            h.compression()?;
            if h.records_count < 0 {
                return Err(BatchError::InvalidRecordCount {
                    count: h.records_count,
                    last_offset_delta: h.last_offset_delta,
                });
            }
            Ok(h)
        }
        Some(Err(e)) => Err(e),
        None => Err(BatchError::Empty),
    }
}

/// Calls `f(offset, timestamp)` for each record in order. Parses just the
/// record prefix (size, attributes, timestamp delta, offset delta) and skips
/// keys, values and headers. We walk records ourselves rather than through
/// `kafka_protocol::records::RecordBatchDecoder` because that decoder
/// allocates from untrusted counts and adds untrusted deltas with
/// overflow-checked arithmetic, so hostile bytes could panic it; we still
/// use kafka-protocol's codecs for decompression.
fn for_each_record(
    batch: &[u8],
    header: &BatchHeader,
    mut f: impl FnMut(i64, i64) -> ControlFlow<()>,
) -> Result<(), BatchError> {
    let body = &batch[BATCH_HEADER_LEN..header.total_len()];
    let decompressed;
    let mut records: &[u8] = match header.compression()? {
        Compression::None => body,
        codec => {
            decompressed = decompress(codec, body)?;
            &decompressed
        }
    };
    let log_append_ts = header
        .timestamp_type_is_log_append()
        .then_some(header.max_timestamp);
    for _ in 0..header.records_count {
        let size = read_varint(&mut records)?;
        let size = usize::try_from(size).map_err(|_| BatchError::InvalidRecords("record size"))?;
        let Some(mut record) = records.get(..size) else {
            return Err(BatchError::InvalidRecords("record overruns batch"));
        };
        records = &records[size..];
        let Some((_attributes, rest)) = record.split_first() else {
            return Err(BatchError::InvalidRecords("empty record"));
        };
        record = rest;
        let ts_delta = read_varlong(&mut record)?;
        let offset_delta = read_varint(&mut record)?;
        let ts = match log_append_ts {
            Some(ts) => ts,
            None => header
                .base_timestamp
                .checked_add(ts_delta)
                .ok_or(BatchError::InvalidRecords("timestamp overflow"))?,
        };
        let offset = header
            .base_offset
            .checked_add(i64::from(offset_delta))
            .ok_or(BatchError::InvalidRecords("offset overflow"))?;
        if f(offset, ts).is_break() {
            break;
        }
    }
    Ok(())
}

fn decompress(codec: Compression, body: &[u8]) -> Result<Bytes, BatchError> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    let mut input = Bytes::copy_from_slice(body);
    let take = |out: &mut Bytes| Ok(std::mem::take(out));
    let result = match codec {
        Compression::None => Ok(input),
        Compression::Gzip => <Gzip as Decompressor<Bytes>>::decompress(&mut input, take),
        Compression::Snappy => <Snappy as Decompressor<Bytes>>::decompress(&mut input, take),
        Compression::Lz4 => <Lz4 as Decompressor<Bytes>>::decompress(&mut input, take),
        Compression::Zstd => <Zstd as Decompressor<Bytes>>::decompress(&mut input, take),
    };
    result.map_err(|_| BatchError::InvalidRecords("decompression failed"))
}

/// Kafka's zigzag varint (i32, at most 5 bytes).
fn read_varint(buf: &mut &[u8]) -> Result<i32, BatchError> {
    let raw = read_unsigned_varint(buf, 5)?;
    let raw = u32::try_from(raw).map_err(|_| BatchError::InvalidRecords("varint overflow"))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Kafka's zigzag varlong (i64, at most 10 bytes).
fn read_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let raw = read_unsigned_varint(buf, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned_varint(buf: &mut &[u8], max_bytes: usize) -> Result<u64, BatchError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(BatchError::InvalidRecords("truncated varint"));
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(BatchError::InvalidRecords("varint too long"))
}

// Fixed-width big-endian accessors. Callers guarantee the range is in
// bounds (every use is on a slice already checked to hold a header).
fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

fn write_i16(buf: &mut [u8], at: usize, v: i16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn write_i32(buf: &mut [u8], at: usize, v: i32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn write_i64(buf: &mut [u8], at: usize, v: i64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType,
    };
    use proptest::prelude::*;

    const ALL_CODECS: [KCompression; 5] = [
        KCompression::None,
        KCompression::Gzip,
        KCompression::Snappy,
        KCompression::Lz4,
        KCompression::Zstd,
    ];

    fn record(offset: i64, ts: i64, value: &str) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder groups records into one batch while offset minus
            // sequence is constant; this yields baseSequence -1 as a
            // non-idempotent client sends.
            sequence: offset as i32 - 1,
            timestamp: ts,
            key: Some(Bytes::from(format!("k{offset}"))),
            value: Some(Bytes::from(value.to_owned())),
            headers: Default::default(),
        }
    }

    /// One batch with the given record timestamps, offsets 0.., as a client
    /// would send it.
    fn encode(timestamps: &[i64], codec: KCompression) -> Vec<u8> {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, &ts)| record(i as i64, ts, &"v".repeat(i % 7 + 1)))
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    fn decode_offsets_and_timestamps(buf: &[u8]) -> Vec<(i64, i64, TimestampType)> {
        let mut bytes = Bytes::copy_from_slice(buf);
        RecordBatchDecoder::decode_all(&mut bytes)
            .expect("decode")
            .into_iter()
            .flat_map(|set| set.records)
            .map(|r| (r.offset, r.timestamp, r.timestamp_type))
            .collect()
    }

    /// Rewrites a header field and fixes the CRC, to build batches that are
    /// checksum-clean but semantically wrong.
    fn patch(buf: &mut [u8], f: impl FnOnce(&mut [u8])) {
        f(buf);
        let crc = crc32c::crc32c(&buf[field::ATTRIBUTES..]);
        write_i32(buf, field::CRC, crc as i32);
    }

    #[test]
    fn parse_reads_every_field_the_encoder_wrote() {
        let buf = encode(&[100, 300, 200], KCompression::None);
        let h = BatchHeader::parse(&buf).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.total_len(), buf.len());
        assert_eq!(h.magic, 2);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.base_timestamp, 100);
        assert_eq!(h.max_timestamp, 300);
        assert_eq!(h.producer_id, -1);
        assert_eq!(h.compression(), Ok(Compression::None));
        assert!(!h.is_transactional() && !h.is_control());
        assert!(!h.timestamp_type_is_log_append());
        assert_eq!(h.last_offset(), 2);
        assert_eq!(h.crc, crc32c::crc32c(&buf[21..]));
    }

    #[test]
    fn every_codec_validates_and_reports_its_compression() {
        for (id, codec) in ALL_CODECS.into_iter().enumerate() {
            let buf = encode(&[1, 2, 3, 4], codec);
            let headers = validate_batches(&buf).unwrap();
            assert_eq!(headers.len(), 1);
            assert_eq!(headers[0].compression_id(), id as u8);
            assert_eq!(validate_produce_records(&buf), Ok(headers[0]));
        }
    }

    #[test]
    fn concatenated_batches_validate_in_order() {
        let mut buf = encode(&[1, 2], KCompression::None);
        buf.extend(encode(&[3], KCompression::Gzip));
        buf.extend(encode(&[4, 5, 6], KCompression::Zstd));
        let counts: Vec<i32> = validate_batches(&buf)
            .unwrap()
            .iter()
            .map(|h| h.records_count)
            .collect();
        assert_eq!(counts, [2, 1, 3]);
        // KIP-98 era rule: one v2 batch per partition per produce request.
        assert_eq!(
            validate_produce_records(&buf),
            Err(BatchError::MultipleBatches)
        );
    }

    #[test]
    fn empty_buffer_is_rejected() {
        assert_eq!(validate_batches(&[]), Err(BatchError::Empty));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let mut buf = encode(&[1, 2, 3], KCompression::None);
        buf.extend(encode(&[4], KCompression::None));
        for len in 1..buf.len() {
            if len == BatchHeader::parse(&buf).unwrap().total_len() {
                assert!(validate_batches(&buf[..len]).is_ok());
                continue;
            }
            assert!(
                matches!(
                    validate_batches(&buf[..len]),
                    Err(BatchError::Truncated { .. })
                ),
                "len {len}"
            );
        }
    }

    #[test]
    fn crc_detects_any_flipped_byte_in_the_covered_range() {
        let buf = encode(&[5, 6, 7], KCompression::None);
        for i in field::ATTRIBUTES..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(check_batch(&bad), Err(BatchError::CrcMismatch { .. })),
                "byte {i}"
            );
        }
        for i in field::CRC..field::ATTRIBUTES {
            let mut bad = buf.clone();
            bad[i] ^= 0x80;
            assert!(matches!(
                check_batch(&bad),
                Err(BatchError::CrcMismatch { .. })
            ));
        }
    }

    #[test]
    fn base_offset_and_leader_epoch_are_outside_the_crc() {
        let mut buf = encode(&[5, 6, 7], KCompression::Lz4);
        buf.extend(encode(&[8, 9], KCompression::None));
        let next = assign_offsets(&mut buf, 1000);
        assert_eq!(next, 1005);
        set_partition_leader_epoch(&mut buf, 7);
        let headers = validate_batches(&buf).unwrap();
        assert_eq!(headers[0].base_offset, 1000);
        assert_eq!(headers[1].base_offset, 1003);
        assert!(headers.iter().all(|h| h.partition_leader_epoch == 7));
        let offsets: Vec<i64> = decode_offsets_and_timestamps(&buf)
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(offsets, [1000, 1001, 1002, 1003, 1004]);
    }

    #[test]
    fn unsupported_magic_is_named() {
        let mut buf = encode(&[1], KCompression::None);
        buf[field::MAGIC] = 1;
        assert_eq!(validate_batches(&buf), Err(BatchError::UnsupportedMagic(1)));
        assert_eq!(
            BatchHeader::parse(&buf[..17]),
            Err(BatchError::UnsupportedMagic(1))
        );
        assert!(matches!(
            BatchHeader::parse(&buf[..16]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn short_batch_length_is_invalid() {
        let mut buf = encode(&[1], KCompression::None);
        write_i32(&mut buf, field::BATCH_LENGTH, 48);
        assert_eq!(validate_batches(&buf), Err(BatchError::InvalidLength(48)));
        write_i32(&mut buf, field::BATCH_LENGTH, -5);
        assert_eq!(validate_batches(&buf), Err(BatchError::InvalidLength(-5)));
    }

    #[test]
    fn record_count_rules_follow_log_validator() {
        // count != lastOffsetDelta + 1
        let mut buf = encode(&[1, 2], KCompression::None);
        patch(&mut buf, |b| write_i32(b, field::RECORDS_COUNT, 1));
        assert!(matches!(
            validate_batches(&buf),
            Err(BatchError::InvalidRecordCount { count: 1, .. })
        ));
        // Zero records.
        let mut buf = encode(&[1], KCompression::None);
        patch(&mut buf, |b| {
            write_i32(b, field::RECORDS_COUNT, 0);
            write_i32(b, field::LAST_OFFSET_DELTA, -1);
        });
        assert!(matches!(
            validate_batches(&buf),
            Err(BatchError::InvalidRecordCount { .. })
        ));
        // More records than an uncompressed body can hold.
        let mut buf = encode(&[1], KCompression::None);
        patch(&mut buf, |b| {
            write_i32(b, field::RECORDS_COUNT, 1_000_000);
            write_i32(b, field::LAST_OFFSET_DELTA, 999_999);
        });
        assert!(matches!(
            check_batch(&buf),
            Err(BatchError::InvalidRecordCount { .. })
        ));
    }

    #[test]
    fn unknown_codec_is_rejected() {
        let mut buf = encode(&[1], KCompression::None);
        patch(&mut buf, |b| write_i16(b, field::ATTRIBUTES, 5));
        assert_eq!(
            validate_batches(&buf),
            Err(BatchError::UnknownCompression(5))
        );
    }

    #[test]
    fn client_origin_rules() {
        let mut control = encode(&[1], KCompression::None);
        patch(&mut control, |b| {
            write_i16(b, field::ATTRIBUTES, CONTROL_BIT)
        });
        assert_eq!(
            validate_produce_records(&control),
            Err(BatchError::ControlBatch)
        );

        let mut no_seq = encode(&[1], KCompression::None);
        patch(&mut no_seq, |b| {
            write_i64(b, field::PRODUCER_ID, 42);
            write_i32(b, field::BASE_SEQUENCE, -1);
        });
        assert_eq!(
            validate_produce_records(&no_seq),
            Err(BatchError::InvalidSequence(-1))
        );

        let mut lat = encode(&[1], KCompression::None);
        patch(&mut lat, |b| {
            write_i16(b, field::ATTRIBUTES, TIMESTAMP_TYPE_BIT)
        });
        assert_eq!(
            validate_produce_records(&lat),
            Err(BatchError::LogAppendTimeFromProducer)
        );
    }

    #[test]
    fn log_append_time_rewrites_header_and_crc() {
        for codec in ALL_CODECS {
            let mut buf = encode(&[10, 20, 30], codec);
            set_log_append_time(&mut buf, 5_000).unwrap();
            let h = check_batch(&buf).unwrap();
            assert!(h.timestamp_type_is_log_append());
            assert_eq!(h.max_timestamp, 5_000);
            // Kafka's setMaxTimestamp leaves baseTimestamp alone.
            assert_eq!(h.base_timestamp, 10);
            assert_eq!(h.compression_id(), codec as u8);
            let decoded = decode_offsets_and_timestamps(&buf);
            assert!(decoded.iter().all(|r| r.2 == TimestampType::LogAppend));
            // Every record of a LogAppendTime batch has maxTimestamp.
            assert_eq!(
                first_offset_at_or_after_timestamp(&buf, 0),
                Ok(Some((0, 5_000)))
            );
            assert_eq!(
                first_offset_at_or_after_timestamp(&buf, 5_000),
                Ok(Some((0, 5_000)))
            );
            assert_eq!(first_offset_at_or_after_timestamp(&buf, 5_001), Ok(None));
            assert_eq!(max_timestamp_and_offset(&buf), Ok(Some((5_000, 0))));
        }
    }

    #[test]
    fn timestamp_search_is_exact_for_every_codec() {
        let timestamps = [100, 300, 200, 400, 400, 50];
        for codec in ALL_CODECS {
            let mut buf = encode(&timestamps, codec);
            assign_offsets(&mut buf, 70);
            let cases = [
                (0, Some((70, 100))),
                (100, Some((70, 100))),
                (101, Some((71, 300))),
                (250, Some((71, 300))),
                (301, Some((73, 400))),
                (400, Some((73, 400))),
                (401, None),
            ];
            for (target, expected) in cases {
                assert_eq!(
                    first_offset_at_or_after_timestamp(&buf, target),
                    Ok(expected),
                    "{codec:?} target {target}"
                );
            }
            assert_eq!(max_timestamp_and_offset(&buf), Ok(Some((400, 73))));
        }
    }

    #[test]
    fn garbage_compressed_body_is_an_error_not_a_panic() {
        let mut buf = encode(&[1, 2], KCompression::Gzip);
        let len = buf.len();
        patch(&mut buf, |b| {
            for byte in &mut b[BATCH_HEADER_LEN..len] {
                *byte = 0xAB;
            }
        });
        assert_eq!(
            first_offset_at_or_after_timestamp(&buf, 0),
            Err(BatchError::InvalidRecords("decompression failed"))
        );
    }

    #[test]
    fn varints_match_kafka_zigzag() {
        let cases: [(&[u8], i64); 5] = [
            (&[0x00], 0),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0x7f], -64),
            (&[0xd0, 0x0f], 1000),
        ];
        for (bytes, expected) in cases {
            let mut b = bytes;
            assert_eq!(read_varlong(&mut b), Ok(expected));
            let mut b = bytes;
            assert_eq!(read_varint(&mut b), Ok(expected as i32));
        }
        let mut too_long: &[u8] = &[0xff; 11];
        assert!(read_varlong(&mut too_long).is_err());
    }

    /// Feeds `buf` to every public entry point; none may panic.
    fn exercise(buf: &[u8]) {
        let _ = BatchHeader::parse(buf);
        let _ = check_batch(buf);
        let _ = validate_batches(buf);
        let _ = validate_produce_records(buf);
        let _ = iter_batches(buf).count();
        let _ = first_offset_at_or_after_timestamp(buf, 0);
        let _ = first_offset_at_or_after_timestamp(buf, i64::MAX);
        let _ = max_timestamp_and_offset(buf);
        let mut owned = buf.to_vec();
        let _ = assign_offsets(&mut owned, i64::MAX - 1);
        set_partition_leader_epoch(&mut owned, 3);
        let _ = set_log_append_time(&mut owned, i64::MIN);
    }

    fn valid_batches() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::collection::vec(0i64..1 << 45, 1..6),
            0..ALL_CODECS.len(),
            1..3usize,
        )
            .prop_map(|(timestamps, codec, copies)| {
                let one = encode(&timestamps, ALL_CODECS[codec]);
                one.repeat(copies)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..300)) {
            exercise(&buf);
        }

        #[test]
        fn random_bytes_behind_a_v2_header_never_panic(
            mut buf in prop::collection::vec(any::<u8>(), 61..400),
            fix_crc in any::<bool>(),
        ) {
            buf[field::MAGIC] = 2;
            let len = buf.len() as i32 - LOG_OVERHEAD as i32;
            write_i32(&mut buf, field::BATCH_LENGTH, len);
            if fix_crc {
                patch(&mut buf, |_| {});
            }
            exercise(&buf);
        }

        #[test]
        fn mutated_valid_batches_never_panic(
            mut buf in valid_batches(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            fix_crc in any::<bool>(),
        ) {
            for (at, byte) in edits {
                let i = at.index(buf.len());
                buf[i] = byte;
            }
            if fix_crc && buf.len() >= BATCH_HEADER_LEN {
                patch(&mut buf, |_| {});
            }
            exercise(&buf);
        }

        #[test]
        fn valid_batches_round_trip(buf in valid_batches(), first in 0i64..1 << 40) {
            let mut buf = buf;
            let headers = validate_batches(&buf).unwrap();
            let total: i64 = headers.iter().map(|h| i64::from(h.records_count)).sum();
            prop_assert_eq!(assign_offsets(&mut buf, first), first + total);
            let decoded = decode_offsets_and_timestamps(&buf);
            let expected: Vec<i64> = (first..first + total).collect();
            let offsets: Vec<i64> = decoded.iter().map(|r| r.0).collect();
            prop_assert_eq!(offsets, expected);
            prop_assert!(validate_batches(&buf).is_ok());
        }
    }
}
