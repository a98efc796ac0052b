//! Coordinator configuration, with Kafka's config names and defaults.

use crate::consumer::MigrationPolicy;

/// The group coordinator's settings. Field names follow Kafka's broker
/// configs (dots become underscores, units last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms` (default 3000): how long the first
    /// rebalance of an empty group waits for more members, extended by this
    /// much (up to the rebalance timeout) each time another member joins.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` (default 6000).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (default 1800000).
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size` (default `i32::MAX`, i.e. unlimited).
    pub group_max_size: usize,
    /// `offset.metadata.max.bytes` (default 4096). Like Kafka, the limit is
    /// checked against the metadata's length in UTF-16 code units
    /// (`String.length()`), not in bytes.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` (default 7 days), in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (default 600000).
    pub offsets_retention_check_interval_ms: i64,
    /// How long a new member's parked JoinGroup may wait before it is
    /// dropped (Kafka's internal `classicGroupNewMemberJoinTimeoutMs`,
    /// 5 minutes). A client that disconnected while parked would otherwise
    /// keep a defunct member in every rebalance.
    pub group_new_member_join_timeout_ms: i64,
    /// `group.consumer.heartbeat.interval.ms` (default 5000): the interval
    /// KIP-848 members are told to heartbeat at.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms` (default 45000): a KIP-848
    /// member that does not heartbeat for this long is removed.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.max.size` (default `i32::MAX`).
    pub group_consumer_max_size: usize,
    /// `group.consumer.assignors` (default `uniform,range`): the server-side
    /// assignors members may name; the first is the default.
    pub group_consumer_assignors: Vec<String>,
    /// `group.consumer.migration.policy` (default `bidirectional`): whether
    /// non-empty groups convert online between the classic and the
    /// consumer protocol. Empty groups always convert.
    pub group_consumer_migration_policy: MigrationPolicy,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4_096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1_000,
            offsets_retention_check_interval_ms: 600_000,
            group_new_member_join_timeout_ms: 5 * 60 * 1_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_max_size: i32::MAX as usize,
            group_consumer_assignors: vec!["uniform".into(), "range".into()],
            group_consumer_migration_policy: MigrationPolicy::Bidirectional,
        }
    }
}
