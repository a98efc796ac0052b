//! Topic-level configs: Kafka's names, their defaults, validation, and the
//! typed values a partition runs with.
//!
//! Resolution order for a topic: the topic's own override, else the
//! broker-level default (`log.segment.bytes` → `segment.bytes`, see
//! `config.rs`), else Kafka's default below.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Kind of a topic config value, for validation.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Integer in [min, max].
    Long(i64, i64),
    Int(i64, i64),
    Bool,
    Ratio,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config Odradek accepts: (name, default, kind).
const DEFS: &[(&str, &str, Kind)] = &[
    (
        "cleanup.policy",
        "delete",
        Kind::ListOf(&["delete", "compact"]),
    ),
    (
        "compression.type",
        "producer",
        Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    ),
    ("delete.retention.ms", "86400000", Kind::Long(0, i64::MAX)),
    ("file.delete.delay.ms", "60000", Kind::Long(0, i64::MAX)),
    ("flush.messages", LONG_MAX, Kind::Long(1, i64::MAX)),
    ("flush.ms", LONG_MAX, Kind::Long(0, i64::MAX)),
    (
        "index.interval.bytes",
        "4096",
        Kind::Int(0, i32::MAX as i64),
    ),
    ("max.compaction.lag.ms", LONG_MAX, Kind::Long(1, i64::MAX)),
    (
        "max.message.bytes",
        "1048588",
        Kind::Int(0, i32::MAX as i64),
    ),
    (
        "message.timestamp.after.max.ms",
        "3600000",
        Kind::Long(0, i64::MAX),
    ),
    (
        "message.timestamp.before.max.ms",
        LONG_MAX,
        Kind::Long(0, i64::MAX),
    ),
    (
        "message.timestamp.type",
        "CreateTime",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    ("min.cleanable.dirty.ratio", "0.5", Kind::Ratio),
    ("min.compaction.lag.ms", "0", Kind::Long(0, i64::MAX)),
    ("min.insync.replicas", "1", Kind::Int(1, i32::MAX as i64)),
    ("preallocate", "false", Kind::Bool),
    ("retention.bytes", "-1", Kind::Long(-1, i64::MAX)),
    ("retention.ms", "604800000", Kind::Long(-1, i64::MAX)),
    (
        "segment.bytes",
        "1073741824",
        Kind::Int(1_048_576, i32::MAX as i64),
    ),
    (
        "segment.index.bytes",
        "10485760",
        Kind::Int(4096, i32::MAX as i64),
    ),
    ("segment.jitter.ms", "0", Kind::Long(0, i64::MAX)),
    ("segment.ms", "604800000", Kind::Long(1, i64::MAX)),
    ("unclean.leader.election.enable", "false", Kind::Bool),
];

pub fn parse_i64(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| "expected an integer".to_string())
}

pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// Kafka's default for a topic config, or None for an unknown name.
pub fn kafka_default(name: &str) -> Option<&'static str> {
    DEFS.iter().find(|(n, _, _)| *n == name).map(|(_, d, _)| *d)
}

/// All known topic config names, for DescribeConfigs-style listings.
pub fn names() -> impl Iterator<Item = &'static str> {
    DEFS.iter().map(|(n, _, _)| *n)
}

/// Kafka's ConfigSource values (DescribeConfigs, CreateTopics v5+).
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
}

/// Every topic config of a topic with its effective value and where that
/// value comes from: the topic's override, the broker default, or Kafka's.
pub fn describe(
    overrides: &BTreeMap<String, String>,
    broker_defaults: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    names()
        .map(|name| {
            let (value, source) = if let Some(v) = overrides.get(name) {
                (v.clone(), SOURCE_TOPIC)
            } else if let Some(v) = broker_defaults.get(name) {
                (v.clone(), SOURCE_STATIC_BROKER)
            } else {
                (
                    kafka_default(name).unwrap_or("").to_string(),
                    SOURCE_DEFAULT,
                )
            };
            ConfigEntry {
                name,
                value,
                source,
            }
        })
        .collect()
}

/// Kafka's ConfigType of a topic config (DescribeConfigs v3+).
pub fn config_type(name: &str) -> i8 {
    match DEFS.iter().find(|(n, _, _)| *n == name).map(|(_, _, k)| *k) {
        Some(Kind::Bool) => 1,
        Some(Kind::OneOf(_)) => 2,
        Some(Kind::Int(..)) => 3,
        Some(Kind::Long(..)) => 5,
        Some(Kind::Ratio) => 6,
        Some(Kind::ListOf(_)) => 7,
        None => 0,
    }
}

/// Checks a topic config name and value; the error says what is wrong.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let (_, _, kind) = DEFS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| format!("unknown topic config '{name}'"))?;
    match *kind {
        Kind::Long(min, max) | Kind::Int(min, max) => {
            let n = parse_i64(value)?;
            if n < min || n > max {
                return Err(format!("must be in [{min}, {max}]"));
            }
        }
        Kind::Bool => {
            parse_bool(value)?;
        }
        Kind::Ratio => {
            let r: f64 = value
                .trim()
                .parse()
                .map_err(|_| "expected a number".to_string())?;
            if !(0.0..=1.0).contains(&r) {
                return Err("must be in [0, 1]".to_string());
            }
        }
        Kind::OneOf(options) => {
            if !options.contains(&value.trim()) {
                return Err(format!("must be one of {}", options.join(", ")));
            }
        }
        Kind::ListOf(options) => {
            for part in value.split(',').map(str::trim) {
                if !options.contains(&part) {
                    return Err(format!("'{part}' is not one of {}", options.join(", ")));
                }
            }
        }
    }
    Ok(())
}

/// The values a partition runs with, resolved once when the topic is
/// created or its configs change (never on the hot path).
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveTopicConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    pub max_message_bytes: usize,
    pub timestamp_type: TimestampType,
    pub timestamp_after_max_ms: i64,
    pub timestamp_before_max_ms: i64,
    pub min_insync_replicas: i32,
    pub flush_messages: u64,
    pub flush_ms: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
}

impl EffectiveTopicConfig {
    /// `lookup(name)` returns the topic override or broker default if any.
    pub fn resolve<'a>(lookup: impl Fn(&str) -> Option<&'a str>) -> EffectiveTopicConfig {
        // Values were validated when they were set, so parsing cannot fail;
        // fall back to Kafka's default defensively all the same.
        let get = |name: &str| -> i64 {
            lookup(name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| {
                    kafka_default(name)
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0)
                })
        };
        let timestamp_type = match lookup("message.timestamp.type") {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        EffectiveTopicConfig {
            segment_bytes: get("segment.bytes") as u64,
            segment_ms: get("segment.ms"),
            segment_index_bytes: get("segment.index.bytes") as u64,
            index_interval_bytes: get("index.interval.bytes") as u64,
            max_message_bytes: get("max.message.bytes") as usize,
            timestamp_type,
            timestamp_after_max_ms: get("message.timestamp.after.max.ms"),
            timestamp_before_max_ms: get("message.timestamp.before.max.ms"),
            min_insync_replicas: get("min.insync.replicas") as i32,
            flush_messages: get("flush.messages") as u64,
            flush_ms: get("flush.ms") as u64,
            retention_ms: get("retention.ms"),
            retention_bytes: get("retention.bytes"),
        }
    }

    pub fn from_maps(
        overrides: &BTreeMap<String, String>,
        broker_defaults: &BTreeMap<String, String>,
    ) -> EffectiveTopicConfig {
        Self::resolve(|name| {
            overrides
                .get(name)
                .or_else(|| broker_defaults.get(name))
                .map(String::as_str)
        })
    }
}

impl EffectiveTopicConfig {
    /// The subset of settings the storage engine acts on.
    pub fn log_config(&self) -> odradek_storage::LogConfig {
        odradek_storage::LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes,
            segment_index_bytes: self.segment_index_bytes,
            flush_messages: self.flush_messages,
            flush_ms: self.flush_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kafka() {
        let c = EffectiveTopicConfig::from_maps(&BTreeMap::new(), &BTreeMap::new());
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.flush_messages, i64::MAX as u64);
        assert_eq!(c.timestamp_type, TimestampType::CreateTime);
        assert_eq!(c.retention_ms, 7 * 24 * 3_600_000);
    }

    #[test]
    fn override_beats_broker_default() {
        let mut o = BTreeMap::new();
        o.insert("flush.messages".to_string(), "1".to_string());
        let mut b = BTreeMap::new();
        b.insert("flush.messages".to_string(), "10".to_string());
        b.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let c = EffectiveTopicConfig::from_maps(&o, &b);
        assert_eq!(c.flush_messages, 1);
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
    }

    #[test]
    fn validation() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("no.such.config", "1").is_err());
        assert!(validate("segment.bytes", "1024").is_err());
    }
}
