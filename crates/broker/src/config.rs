//! Broker configuration with Kafka's names.
//!
//! Sources, later ones winning: the embedded defaults, a properties file
//! (`--config FILE`), the environment (`ODRADEK_` + the name in upper snake
//! case, e.g. `ODRADEK_LOG_DIRS`), and `--override name=value`. Unknown
//! names and bad values are errors that name the offender, so a typo never
//! silently falls back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cluster_config::{parse_roles, parse_voters, ClusterConfig, CLUSTER_DEFAULTS};
use crate::topic_config::{parse_bool, parse_i64};
use odradek_group::MigrationPolicy;

/// Where a configuration value came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Env,
    Override,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown configuration '{name}' (from {from:?})\nhint: names are Kafka's broker config names, e.g. log.dirs or num.partitions; see docs/configuration.md")]
    Unknown { name: String, from: Source },
    #[error("invalid value '{value}' for '{name}': {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("malformed line {line} in {path}: expected name=value")]
    Syntax { path: String, line: usize },
}

/// A listener as written in `listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    fn parse(s: &str) -> Result<Listener, String> {
        let (name, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("'{s}' is not NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("'{s}' has no port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("'{port}' is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        })
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        std::net::ToSocketAddrs::to_socket_addrs(&(host, self.port))
            .map_err(|e| format!("cannot resolve listener host '{host}': {e}"))?
            .next()
            .ok_or_else(|| format!("listener host '{host}' resolves to nothing"))
    }
}

/// Every broker setting Odradek understands, typed. Topic-level defaults
/// (`log.segment.bytes` → `segment.bytes`, …) live in `topic_defaults`.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    /// Requests read from one connection before its earlier responses are
    /// written; bounds memory per connection like Kafka's muting does.
    pub queued_max_requests: usize,
    pub num_io_threads: usize,
    pub log_flush_scheduler_interval_ms: u64,
    pub log_flush_offset_checkpoint_interval_ms: u64,
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    pub log_retention_check_interval_ms: u64,
    /// Broker-level defaults for topic configs, keyed by *topic* config name.
    pub topic_defaults: BTreeMap<String, String>,
    /// The group coordinator and its `__consumer_offsets` topic.
    pub groups: crate::groups::GroupServiceConfig,
    /// Roles, controller quorum, liveness and replication settings.
    pub cluster: ClusterConfig,
    /// Every broker-level setting as DescribeConfigs shows it: name,
    /// effective value, and whether it was set explicitly.
    pub described: Vec<(&'static str, String, bool)>,
}

/// Broker config names that set a topic config default (Kafka's mapping).
const TOPIC_DEFAULT_NAMES: &[(&str, &str)] = &[
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("message.max.bytes", "max.message.bytes"),
    ("log.message.timestamp.type", "message.timestamp.type"),
    (
        "log.message.timestamp.before.max.ms",
        "message.timestamp.before.max.ms",
    ),
    (
        "log.message.timestamp.after.max.ms",
        "message.timestamp.after.max.ms",
    ),
    ("min.insync.replicas", "min.insync.replicas"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("log.index.size.max.bytes", "segment.index.bytes"),
    ("log.segment.delete.delay.ms", "file.delete.delay.ms"),
    ("compression.type", "compression.type"),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
    ),
];

/// Broker-only names and their defaults.
const BROKER_DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
    ("advertised.listeners", ""),
    ("log.dirs", "./odradek-data"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("delete.topic.enable", "true"),
    ("socket.request.max.bytes", "104857600"),
    ("max.connections", "10000"),
    ("queued.max.requests", "500"),
    ("num.io.threads", "0"),
    ("log.flush.scheduler.interval.ms", "1000"),
    ("log.flush.offset.checkpoint.interval.ms", "60000"),
    ("replica.high.watermark.checkpoint.interval.ms", "5000"),
    ("log.retention.check.interval.ms", "300000"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("offset.metadata.max.bytes", "4096"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.consumer.max.size", "2147483647"),
    ("group.consumer.assignors", "uniform,range"),
    ("group.consumer.migration.policy", "bidirectional"),
];

/// Accepted alternative spellings that Kafka also accepts (`log.dir` for
/// one directory, hour-based retention and roll).
fn canonical(name: &str, value: &str) -> Option<(&'static str, String)> {
    let hours = |v: &str| v.parse::<i64>().ok().map(|h| (h * 3_600_000).to_string());
    match name {
        "log.dir" => Some(("log.dirs", value.to_string())),
        "log.retention.hours" => Some(("log.retention.ms", hours(value)?)),
        "log.retention.minutes" => value
            .parse::<i64>()
            .ok()
            .map(|m| ("log.retention.ms", (m * 60_000).to_string())),
        "log.roll.hours" => Some(("log.roll.ms", hours(value)?)),
        _ => None,
    }
}

impl BrokerConfig {
    /// Builds the config from `(name, value, source)` settings applied in
    /// order over the embedded defaults.
    pub fn from_settings(
        settings: impl IntoIterator<Item = (String, String, Source)>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut values: BTreeMap<&'static str, String> = BROKER_DEFAULTS
            .iter()
            .chain(CLUSTER_DEFAULTS)
            .map(|(k, v)| (*k, v.to_string()))
            .collect();
        let mut topic_defaults: BTreeMap<String, String> = BTreeMap::new();
        let mut explicit: Vec<String> = Vec::new();
        for (name, value, source) in settings {
            let value = value.trim().to_string();
            let (name, value) = match canonical(&name, &value) {
                Some((n, v)) => (n.to_string(), v),
                None if [
                    "log.retention.hours",
                    "log.retention.minutes",
                    "log.roll.hours",
                ]
                .contains(&name.as_str()) =>
                {
                    return Err(invalid(&name, &value, "expected an integer"))
                }
                None => (name, value),
            };
            explicit.push(name.clone());
            if let Some((_, topic_name)) = TOPIC_DEFAULT_NAMES.iter().find(|(b, _)| *b == name) {
                crate::topic_config::validate(topic_name, &value)
                    .map_err(|reason| invalid(&name, &value, &reason))?;
                topic_defaults.insert(topic_name.to_string(), value);
            } else if let Some((key, _)) = BROKER_DEFAULTS
                .iter()
                .chain(CLUSTER_DEFAULTS)
                .find(|(k, _)| *k == name)
            {
                values.insert(key, value);
            } else {
                return Err(ConfigError::Unknown { name, from: source });
            }
        }
        let described = BROKER_DEFAULTS
            .iter()
            .chain(CLUSTER_DEFAULTS)
            .map(|(k, _)| (*k, values[k].clone()))
            .chain(TOPIC_DEFAULT_NAMES.iter().map(|(b, t)| {
                let value = topic_defaults.get(*t).cloned().unwrap_or_else(|| {
                    crate::topic_config::kafka_default(t)
                        .unwrap_or("")
                        .to_string()
                });
                (*b, value)
            }))
            .map(|(k, v)| (k, v, explicit.iter().any(|e| e == k)))
            .collect();
        let mut config = Self::typed(&values, topic_defaults)?;
        config.described = described;
        Ok(config)
    }

    fn typed(
        v: &BTreeMap<&'static str, String>,
        topic_defaults: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let get = |k: &str| v[k].as_str();
        let int = |k: &str, min: i64, max: i64| -> Result<i64, ConfigError> {
            let s = get(k);
            let n = parse_i64(s).map_err(|r| invalid(k, s, &r))?;
            if n < min || n > max {
                return Err(invalid(k, s, &format!("must be in [{min}, {max}]")));
            }
            Ok(n)
        };
        let bool_ = |k: &str| parse_bool(get(k)).map_err(|r| invalid(k, get(k), &r));
        let controller_listener_names: Vec<String> = get("controller.listener.names")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let listeners = parse_listeners("listeners", get("listeners"), &controller_listener_names)?;
        if listeners.is_empty() {
            return Err(invalid(
                "listeners",
                get("listeners"),
                "at least one listener is required",
            ));
        }
        let advertised_listeners = if get("advertised.listeners").is_empty() {
            listeners.clone()
        } else {
            parse_listeners(
                "advertised.listeners",
                get("advertised.listeners"),
                &controller_listener_names,
            )?
        };
        let log_dirs: Vec<PathBuf> = get("log.dirs")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.len() != 1 {
            return Err(invalid(
                "log.dirs",
                get("log.dirs"),
                "exactly one directory is supported in this version",
            ));
        }
        let node_id = int("node.id", 0, i32::MAX as i64)? as i32;
        let cluster = ClusterConfig {
            roles: parse_roles(get("process.roles"))
                .map_err(|r| invalid("process.roles", get("process.roles"), &r))?,
            voters: parse_voters(get("controller.quorum.voters")).map_err(|r| {
                invalid(
                    "controller.quorum.voters",
                    get("controller.quorum.voters"),
                    &r,
                )
            })?,
            controller_listener_names,
            broker_heartbeat_interval_ms: int("broker.heartbeat.interval.ms", 10, i32::MAX as i64)?
                as u64,
            broker_session_timeout_ms: int("broker.session.timeout.ms", 50, i32::MAX as i64)?
                as u64,
            election_timeout_ms: int("controller.quorum.election.timeout.ms", 50, i32::MAX as i64)?
                as u64,
            replica_lag_time_max_ms: int("replica.lag.time.max.ms", 1, i32::MAX as i64)?,
            replica_fetch_max_bytes: int("replica.fetch.max.bytes", 0, i32::MAX as i64)? as i32,
            replica_fetch_response_max_bytes: int(
                "replica.fetch.response.max.bytes",
                0,
                i32::MAX as i64,
            )? as i32,
            replica_fetch_wait_max_ms: int("replica.fetch.wait.max.ms", 0, i32::MAX as i64)? as i32,
            replica_fetch_min_bytes: int("replica.fetch.min.bytes", 1, i32::MAX as i64)? as i32,
            replica_fetch_backoff_ms: int("replica.fetch.backoff.ms", 0, i32::MAX as i64)? as u64,
            controlled_shutdown_enable: bool_("controlled.shutdown.enable")?,
        };
        if cluster.broker_heartbeat_interval_ms >= cluster.broker_session_timeout_ms {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                get("broker.heartbeat.interval.ms"),
                "must be below broker.session.timeout.ms",
            ));
        }
        cluster.validate(node_id, &listeners)?;
        Ok(BrokerConfig {
            node_id,
            cluster,
            listeners,
            advertised_listeners,
            log_dirs,
            num_partitions: int("num.partitions", 1, 100_000)? as i32,
            default_replication_factor: int("default.replication.factor", 1, i16::MAX as i64)?
                as i16,
            auto_create_topics_enable: bool_("auto.create.topics.enable")?,
            delete_topic_enable: bool_("delete.topic.enable")?,
            socket_request_max_bytes: int("socket.request.max.bytes", 1, i32::MAX as i64)? as usize,
            max_connections: int("max.connections", 1, i32::MAX as i64)? as usize,
            queued_max_requests: int("queued.max.requests", 1, 1_000_000)? as usize,
            num_io_threads: int("num.io.threads", 0, 1024)? as usize,
            log_flush_scheduler_interval_ms: int("log.flush.scheduler.interval.ms", 1, i64::MAX)?
                as u64,
            log_flush_offset_checkpoint_interval_ms: int(
                "log.flush.offset.checkpoint.interval.ms",
                1,
                i64::MAX,
            )? as u64,
            replica_high_watermark_checkpoint_interval_ms: int(
                "replica.high.watermark.checkpoint.interval.ms",
                1,
                i64::MAX,
            )? as u64,
            log_retention_check_interval_ms: int("log.retention.check.interval.ms", 1, i64::MAX)?
                as u64,
            groups: crate::groups::GroupServiceConfig {
                num_partitions: int("offsets.topic.num.partitions", 1, 100_000)? as i32,
                replication_factor: int("offsets.topic.replication.factor", 1, i16::MAX as i64)?
                    as i16,
                segment_bytes: int("offsets.topic.segment.bytes", 1_048_576, i32::MAX as i64)?
                    as u64,
                core: odradek_group::GroupConfig {
                    group_initial_rebalance_delay_ms: int(
                        "group.initial.rebalance.delay.ms",
                        0,
                        i64::MAX,
                    )?,
                    group_min_session_timeout_ms: int(
                        "group.min.session.timeout.ms",
                        0,
                        i32::MAX as i64,
                    )? as i32,
                    group_max_session_timeout_ms: int(
                        "group.max.session.timeout.ms",
                        0,
                        i32::MAX as i64,
                    )? as i32,
                    group_max_size: int("group.max.size", 1, i32::MAX as i64)? as usize,
                    offset_metadata_max_bytes: int("offset.metadata.max.bytes", 0, i32::MAX as i64)?
                        as usize,
                    offsets_retention_ms: int("offsets.retention.minutes", 1, i32::MAX as i64)?
                        * 60_000,
                    offsets_retention_check_interval_ms: int(
                        "offsets.retention.check.interval.ms",
                        1,
                        i64::MAX,
                    )?,
                    group_consumer_heartbeat_interval_ms: int(
                        "group.consumer.heartbeat.interval.ms",
                        1,
                        i32::MAX as i64,
                    )? as i32,
                    group_consumer_session_timeout_ms: int(
                        "group.consumer.session.timeout.ms",
                        1,
                        i32::MAX as i64,
                    )? as i32,
                    group_consumer_max_size: int("group.consumer.max.size", 1, i32::MAX as i64)?
                        as usize,
                    group_consumer_assignors: parse_assignors(get("group.consumer.assignors"))?,
                    group_consumer_migration_policy: parse_migration_policy(get(
                        "group.consumer.migration.policy",
                    ))?,
                    ..Default::default()
                },
            },
            topic_defaults,
            described: Vec::new(),
        })
    }

    /// The listener clients connect to (None on a controller-only node).
    pub fn client_listener(&self) -> Option<&Listener> {
        self.cluster.client_listener(&self.listeners)
    }

    /// How clients and other brokers reach this broker.
    pub fn advertised_client_listener(&self) -> Option<&Listener> {
        self.cluster.client_listener(&self.advertised_listeners)
    }

    pub fn log_dir(&self) -> &PathBuf {
        &self.log_dirs[0]
    }

    /// The broker-level default of a topic config, if set on the broker.
    pub fn topic_default(&self, topic_config_name: &str) -> Option<&str> {
        self.topic_defaults
            .get(topic_config_name)
            .map(String::as_str)
    }
}

/// `group.consumer.assignors`: names of the server-side assignors, the
/// first being the default. Kafka also accepts class names; only the two
/// built-in assignors exist here.
fn parse_assignors(value: &str) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = value
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() || names.iter().any(|n| n != "uniform" && n != "range") {
        return Err(invalid(
            "group.consumer.assignors",
            value,
            "must list one or more of: uniform, range",
        ));
    }
    Ok(names)
}

/// `group.consumer.migration.policy`: Kafka's four values.
fn parse_migration_policy(value: &str) -> Result<MigrationPolicy, ConfigError> {
    MigrationPolicy::parse(value.trim()).ok_or_else(|| {
        invalid(
            "group.consumer.migration.policy",
            value,
            "must be one of: disabled, upgrade, downgrade, bidirectional",
        )
    })
}

fn parse_listeners(
    name: &str,
    value: &str,
    controller_names: &[String],
) -> Result<Vec<Listener>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let l = Listener::parse(s).map_err(|r| invalid(name, value, &r))?;
            if l.name != "PLAINTEXT" && !controller_names.contains(&l.name) {
                return Err(invalid(
                    name,
                    value,
                    "only PLAINTEXT listeners (and those in controller.listener.names) are supported in this version",
                ));
            }
            Ok(l)
        })
        .collect()
}

fn invalid(name: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses a Java-style properties file: `name=value` or `name: value`
/// lines, `#` and `!` comments, blank lines ignored.
pub fn parse_properties(path: &str, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).ok_or(ConfigError::Syntax {
            path: path.to_string(),
            line: i + 1,
        })?;
        let (k, v) = line.split_at(split);
        out.push((k.trim().to_string(), v[1..].trim().to_string()));
    }
    Ok(out)
}

/// Reads `ODRADEK_*` variables: `ODRADEK_LOG_DIRS=/x` sets `log.dirs`.
pub fn settings_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    vars.into_iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("ODRADEK_")?;
            // RUST_LOG-style knobs of our own are not broker configs.
            if rest == "LOG" {
                return None;
            }
            Some((rest.to_ascii_lowercase().replace('_', "."), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_settings(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string(), Source::Override)),
        )
    }

    #[test]
    fn embedded_defaults_are_a_single_local_node() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listeners[0].port, 9092);
        assert_eq!(c.listeners[0].host, "127.0.0.1");
        assert_eq!(c.log_dir(), &PathBuf::from("./odradek-data"));
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.socket_request_max_bytes, 100 << 20);
    }

    #[test]
    fn later_sources_win_and_aliases_apply() {
        let c = cfg(&[
            ("num.partitions", "3"),
            ("num.partitions", "6"),
            ("log.dir", "/tmp/x"),
            ("log.retention.hours", "1"),
            ("log.segment.bytes", "1048576"),
        ])
        .unwrap();
        assert_eq!(c.num_partitions, 6);
        assert_eq!(c.log_dir(), &PathBuf::from("/tmp/x"));
        assert_eq!(c.topic_default("retention.ms"), Some("3600000"));
        assert_eq!(c.topic_default("segment.bytes"), Some("1048576"));
    }

    #[test]
    fn unknown_and_bad_values_name_the_offender() {
        let e = cfg(&[("num.partitons", "3")]).unwrap_err();
        assert!(e.to_string().contains("num.partitons"), "{e}");
        let e = cfg(&[("num.partitions", "many")]).unwrap_err();
        assert!(e.to_string().contains("num.partitions") && e.to_string().contains("many"));
        let e = cfg(&[("log.segment.bytes", "-5")]).unwrap_err();
        assert!(e.to_string().contains("log.segment.bytes"), "{e}");
        assert!(cfg(&[("listeners", "PLAINTEXT://127.0.0.1:notaport")]).is_err());
        assert!(cfg(&[("auto.create.topics.enable", "yes")]).is_err());
        let e = cfg(&[("group.consumer.migration.policy", "sideways")]).unwrap_err();
        assert!(
            e.to_string().contains("group.consumer.migration.policy"),
            "{e}"
        );
    }

    #[test]
    fn the_migration_policy_defaults_to_bidirectional() {
        let policy = |c: BrokerConfig| c.groups.core.group_consumer_migration_policy;
        assert_eq!(policy(cfg(&[]).unwrap()), MigrationPolicy::Bidirectional);
        let c = cfg(&[("group.consumer.migration.policy", "UPGRADE")]).unwrap();
        assert_eq!(policy(c), MigrationPolicy::Upgrade);
    }

    #[test]
    fn cluster_roles_voters_and_listeners_fit_together() {
        let three = "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097";
        let c = cfg(&[
            ("node.id", "2"),
            ("controller.quorum.voters", three),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095",
            ),
        ])
        .unwrap();
        assert_eq!(c.client_listener().unwrap().port, 9094);
        assert_eq!(c.advertised_client_listener().unwrap().port, 9094);
        assert_eq!(c.cluster.voters.len(), 3);
        // A voter without a controller listener, a controller that is not
        // a voter, a voter without the role, a broker without voters.
        for bad in [
            vec![("node.id", "2"), ("controller.quorum.voters", three)],
            vec![
                ("node.id", "4"),
                ("controller.quorum.voters", three),
                ("listeners", "PLAINTEXT://:1,CONTROLLER://:2"),
            ],
            vec![
                ("node.id", "1"),
                ("process.roles", "broker"),
                ("controller.quorum.voters", three),
            ],
            vec![("process.roles", "broker")],
            vec![("listeners", "SSL://:1")],
        ] {
            assert!(cfg(&bad).is_err(), "{bad:?}");
        }
        let broker_only = cfg(&[
            ("node.id", "4"),
            ("process.roles", "broker"),
            ("controller.quorum.voters", three),
        ])
        .unwrap();
        assert!(!broker_only.cluster.roles.controller);
    }

    #[test]
    fn properties_and_env() {
        let props = parse_properties("f", "# c\nlog.dirs = /d\n\nnum.partitions:4\n").unwrap();
        assert_eq!(
            props,
            vec![
                ("log.dirs".into(), "/d".into()),
                ("num.partitions".into(), "4".into())
            ]
        );
        assert!(parse_properties("f", "garbage line").is_err());
        let env = settings_from_env(vec![
            ("ODRADEK_LOG_DIRS".into(), "/e".into()),
            ("HOME".into(), "/root".into()),
        ]);
        assert_eq!(env, vec![("log.dirs".into(), "/e".into())]);
    }
}
