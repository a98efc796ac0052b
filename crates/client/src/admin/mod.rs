//! Admin queries a client answers by asking brokers, as Kafka's tools do.
//!
//! [`group_lag`] is `kafka-consumer-groups.sh --describe --group G`:
//!
//! 1. FindCoordinator (key type group), asked of a bootstrap server, names
//!    the group's coordinator;
//! 2. the coordinator describes the group (ConsumerGroupDescribe for a
//!    KIP-848 group, else DescribeGroups for a classic one: state, members
//!    and who owns which partition) and returns every committed offset
//!    (OffsetFetch with all topics);
//! 3. Metadata for those topics names each partition's leader, and
//!    ListOffsets (latest, READ_UNCOMMITTED: the high watermark) goes to
//!    each leader for its partitions;
//! 4. [`lag_rows`] joins the two: lag = log end − committed.
//!
//! NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS and
//! COORDINATOR_NOT_AVAILABLE (and a coordinator that cannot be reached)
//! make step 1 start again after a short back-off, until the timeout.
//! Leader errors in step 3 refresh the metadata and retry the partitions
//! concerned; a partition still without an answer at the timeout gets no
//! log-end offset and a warning. Every connection first asks ApiVersions
//! and each request uses the highest version both sides speak.

mod conn;
mod coordinator;
mod describe;
mod lag;
mod log_end;
mod offsets;

pub use lag::{
    decode_classic_assignment, json_string, lag_rows, partitions_of_interest, rows_to_json, LagRow,
    PartitionOwner, TopicPartition,
};

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

use crate::connection::ClientError;
use conn::Conn;

/// The client id admin requests carry.
pub const CLIENT_ID: &str = "odradek-admin";

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid bootstrap server list '{0}': expected HOST:PORT[,HOST:PORT...]")]
    InvalidBootstrap(String),
    #[error("the group id is empty")]
    EmptyGroupId,
    #[error(
        "cannot reach any bootstrap server ({0}); check --bootstrap-server and that a broker \
         is running there"
    )]
    Unreachable(String),
    #[error(
        "consumer group '{0}' does not exist (its coordinator knows no such group and it has \
         no committed offsets); check the group id"
    )]
    GroupNotFound(String),
    #[error(
        "timed out after {} ms {what}; the cluster may be unavailable or slow: check it, or \
         retry with a longer --timeout",
        timeout.as_millis()
    )]
    Timeout { what: String, timeout: Duration },
    #[error("{api} for {subject} failed: {error}")]
    Kafka {
        api: &'static str,
        subject: String,
        error: String,
    },
    #[error(
        "broker {broker} serves {api} versions {theirs}, and this tool needs one of {ours}; \
         upgrade the broker (Kafka 3.0 or later, or Odradek)"
    )]
    Unsupported {
        broker: i32,
        api: &'static str,
        ours: String,
        theirs: String,
    },
    #[error("{0}")]
    Connection(#[from] ClientError),
}

/// What [`group_lag`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    pub group: String,
    /// The coordinator's node id.
    pub coordinator: i32,
    /// Kafka's state name (Empty, Stable, PreparingRebalance, Assigning,
    /// ...); `None` if the coordinator did not describe the group but it
    /// has committed offsets.
    pub state: Option<String>,
    /// Sorted by topic, then partition.
    pub rows: Vec<LagRow>,
    /// Things the rows cannot show, for a human (a log-end offset nobody
    /// answered, an assignment that could not be decoded).
    pub warnings: Vec<String>,
}

impl GroupLag {
    /// Rebalancing states, in which classic members' assignments are not
    /// shown (Kafka's tool warns about them).
    pub fn is_rebalancing(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling")
        )
    }
}

/// Per-partition lag of consumer group `group`, asked of the cluster
/// `bootstrap` (`host:port[,host:port...]`) within `timeout`.
pub async fn group_lag(
    bootstrap: &str,
    group: &str,
    timeout: Duration,
) -> Result<GroupLag, AdminError> {
    if group.is_empty() {
        return Err(AdminError::EmptyGroupId);
    }
    let servers = parse_bootstrap(bootstrap)?;
    let mut admin = Admin {
        servers,
        deadline: Instant::now() + timeout,
        timeout,
        any: None,
        nodes: HashMap::new(),
        addrs: HashMap::new(),
        warnings: Vec::new(),
    };
    let coordinated = admin.coordinated(group).await?;
    let owners = coordinated.owners;
    let committed = coordinated.committed;
    if coordinated.state.is_none() && committed.is_empty() {
        return Err(AdminError::GroupNotFound(group.to_owned()));
    }
    let wanted = partitions_of_interest(&committed, &owners);
    let log_end = admin.log_end_offsets(&wanted).await?;
    Ok(GroupLag {
        group: group.to_owned(),
        coordinator: coordinated.coordinator,
        state: coordinated.state,
        rows: lag_rows(group, &committed, &log_end, &owners),
        warnings: admin.warnings,
    })
}

/// `host:port[,host:port...]`, spaces around entries allowed.
pub fn parse_bootstrap(list: &str) -> Result<Vec<(String, u16)>, AdminError> {
    let bad = || AdminError::InvalidBootstrap(list.to_owned());
    let servers = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok((host.to_owned(), port))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(bad());
    }
    Ok(servers)
}

/// A Kafka error code as Kafka names it: `NOT_COORDINATOR (16)`, followed
/// by the broker's message if it sent one.
pub fn error_name(code: i16, message: Option<&str>) -> String {
    let name = match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(_)) => "UNKNOWN_ERROR_CODE".to_owned(),
        Some(e) => {
            let camel = e.to_string();
            let mut snake = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_uppercase());
            }
            snake
        }
    };
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{name} ({code}): {m}"),
        None => format!("{name} ({code})"),
    }
}

/// What the steps share: the deadline, the connections, what is known of
/// the brokers, and the warnings for the caller.
struct Admin {
    servers: Vec<(String, u16)>,
    deadline: Instant,
    timeout: Duration,
    /// A connection to one of the bootstrap servers (FindCoordinator,
    /// Metadata).
    any: Option<Conn>,
    /// Connections to brokers by node id (coordinator, leaders).
    nodes: HashMap<i32, Conn>,
    /// Broker addresses from Metadata and FindCoordinator.
    addrs: HashMap<i32, (String, u16)>,
    warnings: Vec<String>,
}

impl Admin {
    fn timed_out(&self, what: impl Into<String>) -> AdminError {
        AdminError::Timeout {
            what: what.into(),
            timeout: self.timeout,
        }
    }

    /// Time left before the deadline, or a timeout error naming `what`.
    fn left(&self, what: &str) -> Result<Duration, AdminError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(what));
        }
        Ok(left)
    }

    /// Sleeps `backoff` (then doubles it) if that ends before the
    /// deadline; false if there is no time left for another attempt.
    async fn back_off(&self, backoff: &mut Duration) -> bool {
        if Instant::now() + *backoff >= self.deadline {
            return false;
        }
        tokio::time::sleep(*backoff).await;
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
        true
    }
}

#[cfg(test)]
mod fake_broker_tests;

#[cfg(test)]
mod tests {
    use super::coordinator::is_coordinator_error;
    use super::*;

    #[test]
    fn bootstrap_lists_parse() {
        assert_eq!(
            parse_bootstrap("a:1, b:2,,").unwrap(),
            [("a".to_owned(), 1), ("b".to_owned(), 2)]
        );
        assert_eq!(
            parse_bootstrap("[::1]:9092").unwrap(),
            [("[::1]".to_owned(), 9092)]
        );
        for bad in [
            "",
            "host",
            "host:",
            ":9092",
            "host:0",
            "host:70000",
            "host:x",
            " , ",
        ] {
            assert!(
                matches!(parse_bootstrap(bad), Err(AdminError::InvalidBootstrap(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn error_codes_are_named_as_kafka_names_them() {
        assert_eq!(error_name(16, None), "NOT_COORDINATOR (16)");
        assert_eq!(
            error_name(6, Some("moved")),
            "NOT_LEADER_OR_FOLLOWER (6): moved"
        );
        assert_eq!(error_name(17, Some("")), "INVALID_TOPIC_EXCEPTION (17)");
        assert_eq!(error_name(30000, None), "UNKNOWN_ERROR_CODE (30000)");
        assert!(is_coordinator_error(14) && is_coordinator_error(15) && is_coordinator_error(16));
        assert!(!is_coordinator_error(69));
    }

    #[tokio::test]
    async fn unreachable_bootstrap_names_every_server() {
        let free = |_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (a, b) = (free(0), free(1));
        let err = group_lag(
            &format!("127.0.0.1:{a},127.0.0.1:{b}"),
            "g",
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, AdminError::Unreachable(_)), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{a}")), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{b}")), "{text}");
        assert!(text.contains("--bootstrap-server"), "{text}");
    }
}
