//! Per-partition log settings, named after Kafka's topic configs.

/// Settings for one partition's log. Field names follow Kafka's topic
/// configs (`segment.bytes`, `segment.ms`, `index.interval.bytes`,
/// `segment.index.bytes`, `flush.messages`, `flush.ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before the active one would exceed this size.
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// Add a sparse index entry after this many bytes of batches.
    pub index_interval_bytes: u64,
    /// Roll when an index file of the active segment reaches this size.
    pub segment_index_bytes: u64,
    /// Ask for a flush once this many messages are unflushed.
    pub flush_messages: u64,
    /// Ask for a flush once the oldest unflushed append is this old.
    pub flush_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
        }
    }
}
