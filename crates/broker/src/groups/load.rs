//! Rebuilding a coordinator from its offsets partition: every record from
//! the log start, in offset order, through `GroupCoordinator::replay`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::RecordBatchDecoder;
use odradek_group::records::Record;
use odradek_group::{GroupConfig, GroupCoordinator};

use crate::errors::ApiError;
use crate::partition::Partition;

/// How much of the log one read covers while loading.
const LOAD_CHUNK_BYTES: usize = 4 << 20;

pub fn replay_partition(
    partition: &Partition,
    config: GroupConfig,
) -> Result<GroupCoordinator, ApiError> {
    let mut core = GroupCoordinator::new(config);
    let mut offset = partition.log_start_offset();
    // To the log end, not the high watermark: a new leader's HW can lag
    // records that are about to commit, and the coordinator must know them.
    let end = partition.log_end_offset();
    let mut replayed = 0usize;
    while offset < end {
        let (mut bytes, next): (Bytes, i64) = partition.read_local(offset, LOAD_CHUNK_BYTES)?;
        if bytes.is_empty() || next <= offset {
            break;
        }
        // Only the broker writes this topic (client produces are refused),
        // so the stored batches are our own encoding.
        let sets = RecordBatchDecoder::decode_all(&mut bytes)
            .map_err(|e| ApiError::new(ResponseError::CorruptMessage, e.to_string()))?;
        for set in sets {
            for r in set.records {
                offset = offset.max(r.offset + 1);
                if r.offset < partition.log_start_offset() {
                    continue;
                }
                let Some(key) = r.key.as_ref() else { continue };
                match Record::decode(key, r.value.as_deref()) {
                    Ok(record) => {
                        core.replay(record);
                        replayed += 1;
                    }
                    // Newer record types (KIP-848, share groups) are not
                    // ours to interpret yet; skipping keeps the rest usable.
                    Err(e) => {
                        tracing::warn!(topic = %partition.topic, partition = partition.index, offset = r.offset, error = %e, "skipping undecodable group record")
                    }
                }
            }
        }
    }
    if replayed > 0 {
        tracing::info!(
            partition = partition.index,
            records = replayed,
            "replayed group records"
        );
    }
    Ok(core)
}
