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

mod lag;

pub use lag::{
    decode_classic_assignment, json_string, lag_rows, partitions_of_interest, rows_to_json, LagRow,
    PartitionOwner, TopicPartition,
};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, ConsumerGroupDescribeRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, ListOffsetsRequest, MetadataRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::time::Instant;

use crate::connection::{BrokerClient, ClientError};

/// The client id admin requests carry.
pub const CLIENT_ID: &str = "odradek-admin";

// Versions this client speaks, per API. Each request uses the highest one
// the broker also serves (ApiVersions).
const API_VERSIONS_VERSION: i16 = 3;
const FIND_COORDINATOR: RangeInclusive<i16> = 1..=6; // v4+: batched keys
const CONSUMER_GROUP_DESCRIBE: RangeInclusive<i16> = 0..=1; // optional (KIP-848)
const DESCRIBE_GROUPS: RangeInclusive<i16> = 0..=6;
const OFFSET_FETCH: RangeInclusive<i16> = 8..=9; // the per-group layout
const METADATA: RangeInclusive<i16> = 4..=12; // v4+: no auto-creation
const LIST_OFFSETS: RangeInclusive<i16> = 2..=10; // v2+: isolation level

const COORDINATOR_KEY_GROUP: i8 = 0;
const LATEST_TIMESTAMP: i64 = -1;
const READ_UNCOMMITTED: i8 = 0;

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

/// The errors that mean "ask FindCoordinator again".
fn is_coordinator_error(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::CoordinatorNotAvailable
        )
    )
}

fn is_retriable(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// One broker connection and the API versions that broker serves.
struct Conn {
    node: i32,
    client: BrokerClient,
    apis: HashMap<i16, (i16, i16)>,
}

impl Conn {
    /// The highest version in `ours` the broker serves too.
    fn version(&self, key: ApiKey, ours: &RangeInclusive<i16>) -> Option<i16> {
        pick_version(self.apis.get(&(key as i16)).copied(), ours)
    }

    fn require(
        &self,
        key: ApiKey,
        name: &'static str,
        ours: &RangeInclusive<i16>,
    ) -> Result<i16, AdminError> {
        self.version(key, ours)
            .ok_or_else(|| AdminError::Unsupported {
                broker: self.node,
                api: name,
                ours: format!("{}-{}", ours.start(), ours.end()),
                theirs: match self.apis.get(&(key as i16)) {
                    Some((min, max)) => format!("{min}-{max}"),
                    None => "none".to_owned(),
                },
            })
    }
}

/// The highest version in `ours` within `theirs` (the broker's min, max),
/// if any.
fn pick_version(theirs: Option<(i16, i16)>, ours: &RangeInclusive<i16>) -> Option<i16> {
    let (min, max) = theirs?;
    let v = (*ours.end()).min(max);
    (v >= min && v >= *ours.start()).then_some(v)
}

/// Why an attempt at the coordinator steps must start over.
enum Step {
    Retry(String),
    Fail(AdminError),
}

impl From<AdminError> for Step {
    fn from(e: AdminError) -> Step {
        Step::Fail(e)
    }
}

/// What the coordinator said about the group.
struct Coordinated {
    coordinator: i32,
    state: Option<String>,
    owners: BTreeMap<TopicPartition, PartitionOwner>,
    committed: BTreeMap<TopicPartition, i64>,
}

struct Described {
    state: Option<String>,
    owners: BTreeMap<TopicPartition, PartitionOwner>,
}

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

    async fn open(&self, node: i32, host: &str, port: u16) -> Result<Conn, AdminError> {
        let what = format!("connecting to {host}:{port}");
        let host = bracket_ipv6(host);
        let mut client =
            BrokerClient::connect(node, &host, port, CLIENT_ID.into(), self.left(&what)?).await?;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("odradek-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = client
            .call(API_VERSIONS_VERSION, &request, self.left(&what)?)
            .await?;
        if response.error_code != 0 {
            return Err(AdminError::Kafka {
                api: "ApiVersions",
                subject: format!("broker {host}:{port}"),
                error: error_name(response.error_code, None),
            });
        }
        let apis = response
            .api_keys
            .iter()
            .map(|a| (a.api_key, (a.min_version, a.max_version)))
            .collect();
        Ok(Conn { node, client, apis })
    }

    /// The bootstrap connection, opened to the first server that answers.
    async fn any(&mut self) -> Result<&mut Conn, AdminError> {
        if self.any.is_none() {
            let mut failures = Vec::new();
            for (host, port) in self.servers.clone() {
                match self.open(-1, &host, port).await {
                    Ok(conn) => {
                        self.any = Some(conn);
                        break;
                    }
                    Err(AdminError::Connection(e)) => {
                        failures.push(format!("{host}:{port}: {}", without_broker_id(&e)));
                    }
                    Err(e) => return Err(e),
                }
            }
            if self.any.is_none() {
                return Err(AdminError::Unreachable(failures.join("; ")));
            }
        }
        Ok(self.any.as_mut().expect("connected above"))
    }

    /// The connection to broker `node`, (re)opened if there is none or its
    /// address changed.
    async fn node(&mut self, node: i32) -> Result<&mut Conn, AdminError> {
        let (host, port) = self.addrs.get(&node).cloned().ok_or_else(|| {
            AdminError::Connection(ClientError::Protocol {
                broker: node,
                reason: "no address known for this broker".into(),
            })
        })?;
        let addr = format!("{}:{port}", bracket_ipv6(&host));
        if self
            .nodes
            .get(&node)
            .is_some_and(|c| c.client.addr() != addr)
        {
            self.nodes.remove(&node);
        }
        if !self.nodes.contains_key(&node) {
            let conn = self.open(node, &host, port).await?;
            self.nodes.insert(node, conn);
        }
        Ok(self.nodes.get_mut(&node).expect("inserted above"))
    }

    /// Sends `request` on the bootstrap connection; drops the connection
    /// after an error.
    async fn call_any<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        what: &str,
    ) -> Result<R::Response, AdminError> {
        let left = self.left(what)?;
        let result = self.any().await?.client.call(version, request, left).await;
        if result.is_err() {
            self.any = None;
        }
        Ok(result?)
    }

    async fn call_node<R: Request>(
        &mut self,
        node: i32,
        version: i16,
        request: &R,
        what: &str,
    ) -> Result<R::Response, AdminError> {
        let left = self.left(what)?;
        let result = self
            .node(node)
            .await?
            .client
            .call(version, request, left)
            .await;
        if result.is_err() {
            self.nodes.remove(&node);
        }
        Ok(result?)
    }

    // --- steps 1 and 2: the coordinator ---------------------------------

    async fn coordinated(&mut self, group: &str) -> Result<Coordinated, AdminError> {
        let mut backoff = BACKOFF_START;
        loop {
            match self.try_coordinated(group).await {
                Ok(c) => return Ok(c),
                Err(Step::Fail(e)) => return Err(e),
                Err(Step::Retry(why)) => {
                    if !self.back_off(&mut backoff).await {
                        return Err(self.timed_out(format!(
                            "waiting for the coordinator of group '{group}' (last: {why})"
                        )));
                    }
                }
            }
        }
    }

    async fn try_coordinated(&mut self, group: &str) -> Result<Coordinated, Step> {
        let coordinator = self.find_coordinator(group).await?;
        // A coordinator that cannot be reached may have moved: ask again.
        if let Err(e) = self.node(coordinator).await {
            return Err(match e {
                AdminError::Connection(e) => Step::Retry(format!("coordinator {coordinator}: {e}")),
                e => Step::Fail(e),
            });
        }
        let described = self.describe_group(coordinator, group).await?;
        let committed = self.committed_offsets(coordinator, group).await?;
        Ok(Coordinated {
            coordinator,
            state: described.state,
            owners: described.owners,
            committed,
        })
    }

    async fn find_coordinator(&mut self, group: &str) -> Result<i32, Step> {
        let what = format!("finding the coordinator of group '{group}'");
        let version = self.any().await?.require(
            ApiKey::FindCoordinator,
            "FindCoordinator",
            &FIND_COORDINATOR,
        )?;
        let key = StrBytes::from_string(group.to_owned());
        let request = FindCoordinatorRequest::default().with_key_type(COORDINATOR_KEY_GROUP);
        let request = if version >= 4 {
            request.with_coordinator_keys(vec![key])
        } else {
            request.with_key(key)
        };
        let response = match self.call_any(version, &request, &what).await {
            Ok(r) => r,
            Err(AdminError::Connection(e)) => return Err(Step::Retry(e.to_string())),
            Err(e) => return Err(Step::Fail(e)),
        };
        let (code, message, node, host, port) = if version >= 4 {
            let c = response.coordinators.into_iter().next().unwrap_or_default();
            (c.error_code, c.error_message, c.node_id, c.host, c.port)
        } else {
            (
                response.error_code,
                response.error_message,
                response.node_id,
                response.host,
                response.port,
            )
        };
        if code != 0 {
            let error = error_name(code, message.as_deref());
            return Err(if is_coordinator_error(code) {
                Step::Retry(error)
            } else {
                Step::Fail(AdminError::Kafka {
                    api: "FindCoordinator",
                    subject: format!("group '{group}'"),
                    error,
                })
            });
        }
        let port = u16::try_from(port).ok().filter(|&p| p > 0).ok_or_else(|| {
            Step::Retry(format!("coordinator {} has no valid port ({port})", node.0))
        })?;
        self.addrs.insert(node.0, (host.to_string(), port));
        Ok(node.0)
    }

    /// State and partition owners: ConsumerGroupDescribe first (KIP-848
    /// groups), DescribeGroups when the group is not such a group, as
    /// Kafka's admin client does. `state: None` for an unknown group.
    async fn describe_group(&mut self, coordinator: i32, group: &str) -> Result<Described, Step> {
        let what = format!("describing group '{group}'");
        let subject = || format!("group '{group}'");
        let retry = |e: AdminError| match e {
            AdminError::Connection(e) => Step::Retry(format!("coordinator {coordinator}: {e}")),
            e => Step::Fail(e),
        };
        let conn = self.node(coordinator).await.map_err(retry)?;
        let consumer_version =
            conn.version(ApiKey::ConsumerGroupDescribe, &CONSUMER_GROUP_DESCRIBE);
        let classic_version =
            conn.require(ApiKey::DescribeGroups, "DescribeGroups", &DESCRIBE_GROUPS);
        if let Some(version) = consumer_version {
            let request = ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
            let response = self
                .call_node(coordinator, version, &request, &what)
                .await
                .map_err(retry)?;
            let g = response.groups.into_iter().next().unwrap_or_default();
            match g.error_code {
                0 => {
                    let mut owners = BTreeMap::new();
                    for m in g.members {
                        let owner = PartitionOwner {
                            consumer_id: m.member_id.to_string(),
                            host: m.client_host.to_string(),
                            client_id: m.client_id.to_string(),
                        };
                        for t in m.assignment.topic_partitions {
                            for p in t.partitions {
                                owners.insert(
                                    TopicPartition::new(t.topic_name.0.to_string(), p),
                                    owner.clone(),
                                );
                            }
                        }
                    }
                    return Ok(Described {
                        state: Some(g.group_state.to_string()),
                        owners,
                    });
                }
                // Not a KIP-848 group (or the broker has them disabled).
                code if code == ResponseError::GroupIdNotFound.code()
                    || code == ResponseError::UnsupportedVersion.code() => {}
                code if is_coordinator_error(code) => {
                    return Err(Step::Retry(error_name(code, g.error_message.as_deref())))
                }
                code => {
                    return Err(Step::Fail(AdminError::Kafka {
                        api: "ConsumerGroupDescribe",
                        subject: subject(),
                        error: error_name(code, g.error_message.as_deref()),
                    }))
                }
            }
        }
        let version = classic_version?;
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let response = self
            .call_node(coordinator, version, &request, &what)
            .await
            .map_err(retry)?;
        let g = response.groups.into_iter().next().unwrap_or_default();
        match g.error_code {
            0 if g.group_state.as_str() != "Dead" => {}
            0 => {
                return Ok(Described {
                    state: None,
                    owners: BTreeMap::new(),
                })
            }
            code if code == ResponseError::GroupIdNotFound.code() => {
                return Ok(Described {
                    state: None,
                    owners: BTreeMap::new(),
                })
            }
            code if is_coordinator_error(code) => {
                return Err(Step::Retry(error_name(code, g.error_message.as_deref())))
            }
            code => {
                return Err(Step::Fail(AdminError::Kafka {
                    api: "DescribeGroups",
                    subject: subject(),
                    error: error_name(code, g.error_message.as_deref()),
                }))
            }
        }
        let mut owners = BTreeMap::new();
        let protocol_type = g.protocol_type.as_str();
        if protocol_type.is_empty() || protocol_type == "consumer" {
            for m in &g.members {
                match decode_classic_assignment(&m.member_assignment) {
                    Ok(partitions) => {
                        for tp in partitions {
                            owners.insert(
                                tp,
                                PartitionOwner {
                                    consumer_id: m.member_id.to_string(),
                                    host: m.client_host.to_string(),
                                    client_id: m.client_id.to_string(),
                                },
                            );
                        }
                    }
                    Err(e) => self.warnings.push(format!(
                        "the assignment of member {} cannot be read ({e}); its partitions \
                         are shown without an owner",
                        m.member_id.as_str()
                    )),
                }
            }
        } else {
            self.warnings.push(format!(
                "group '{group}' uses protocol type '{protocol_type}', not 'consumer': \
                 partition owners are not shown"
            ));
        }
        Ok(Described {
            state: Some(g.group_state.to_string()),
            owners,
        })
    }

    /// Every offset the group has committed (OffsetFetch, all topics).
    async fn committed_offsets(
        &mut self,
        coordinator: i32,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, Step> {
        let what = format!("fetching the committed offsets of group '{group}'");
        let retry = |e: AdminError| match e {
            AdminError::Connection(e) => Step::Retry(format!("coordinator {coordinator}: {e}")),
            e => Step::Fail(e),
        };
        let version = self.node(coordinator).await.map_err(retry)?.require(
            ApiKey::OffsetFetch,
            "OffsetFetch",
            &OFFSET_FETCH,
        )?;
        // No member id: an admin read, which KIP-848 groups allow too.
        let request = OffsetFetchRequest::default()
            .with_require_stable(false)
            .with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_member_id(None)
                .with_member_epoch(-1)
                .with_topics(None)]);
        let response = self
            .call_node(coordinator, version, &request, &what)
            .await
            .map_err(retry)?;
        let g = response.groups.into_iter().next().unwrap_or_default();
        let unstable = ResponseError::UnstableOffsetCommit.code();
        match g.error_code {
            0 => {}
            code if code == ResponseError::GroupIdNotFound.code() => return Ok(BTreeMap::new()),
            code if is_coordinator_error(code) || code == unstable => {
                return Err(Step::Retry(error_name(code, None)))
            }
            code => {
                return Err(Step::Fail(AdminError::Kafka {
                    api: "OffsetFetch",
                    subject: format!("group '{group}'"),
                    error: error_name(code, None),
                }))
            }
        }
        let mut committed = BTreeMap::new();
        for t in g.topics {
            for p in t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                match p.error_code {
                    0 if p.committed_offset >= 0 => {
                        committed.insert(tp, p.committed_offset);
                    }
                    0 => {}
                    code if code == unstable => return Err(Step::Retry(error_name(code, None))),
                    code => self.warnings.push(format!(
                        "the committed offset of {tp} is unknown: {}",
                        error_name(code, None)
                    )),
                }
            }
        }
        Ok(committed)
    }

    // --- step 3: log-end offsets from the leaders -----------------------

    /// The high watermark of each partition in `wanted` that some leader
    /// reports before the deadline; a warning for each other one.
    async fn log_end_offsets(
        &mut self,
        wanted: &BTreeSet<TopicPartition>,
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        let mut log_end = BTreeMap::new();
        let mut pending: BTreeSet<TopicPartition> = wanted.clone();
        // Why each pending partition has no answer yet.
        let mut why: BTreeMap<TopicPartition, String> = BTreeMap::new();
        let mut backoff = BACKOFF_START;
        while !pending.is_empty() {
            let leaders = match self.leaders(&mut pending, &mut why).await {
                Ok(leaders) => leaders,
                Err(AdminError::Connection(e)) => {
                    for tp in &pending {
                        why.insert(tp.clone(), format!("metadata: {e}"));
                    }
                    BTreeMap::new()
                }
                Err(AdminError::Timeout { .. }) => break,
                Err(e) => return Err(e),
            };
            for (leader, partitions) in leaders {
                match self.list_latest(leader, &partitions).await {
                    Ok(answers) => {
                        for (tp, answer) in answers {
                            match answer {
                                Ok(offset) => {
                                    pending.remove(&tp);
                                    why.remove(&tp);
                                    log_end.insert(tp, offset);
                                }
                                Err(code) if is_retriable(code) => {
                                    why.insert(
                                        tp,
                                        format!("{} from broker {leader}", error_name(code, None)),
                                    );
                                }
                                Err(code) => {
                                    pending.remove(&tp);
                                    self.warnings.push(format!(
                                        "the log-end offset of {tp} is unknown: {} from broker \
                                         {leader}",
                                        error_name(code, None)
                                    ));
                                }
                            }
                        }
                    }
                    Err(AdminError::Connection(e)) => {
                        for tp in partitions {
                            why.insert(tp, format!("leader {leader}: {e}"));
                        }
                    }
                    Err(AdminError::Timeout { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
            if pending.is_empty() || !self.back_off(&mut backoff).await {
                break;
            }
        }
        for tp in pending {
            let reason = why
                .remove(&tp)
                .unwrap_or_else(|| "no answer before the timeout".to_owned());
            self.warnings.push(format!(
                "the log-end offset of {tp} is unknown after {} ms: {reason}",
                self.timeout.as_millis()
            ));
        }
        Ok(log_end)
    }

    /// The leader of each pending partition, from Metadata. Partitions of
    /// topics that do not exist leave `pending` with a warning; those
    /// without a leader stay pending with the reason in `why`.
    async fn leaders(
        &mut self,
        pending: &mut BTreeSet<TopicPartition>,
        why: &mut BTreeMap<TopicPartition, String>,
    ) -> Result<BTreeMap<i32, Vec<TopicPartition>>, AdminError> {
        let topics: BTreeSet<&str> = pending.iter().map(|tp| tp.topic.as_str()).collect();
        let version = self
            .any()
            .await?
            .require(ApiKey::Metadata, "Metadata", &METADATA)?;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
                    })
                    .collect(),
            ));
        let response = self
            .call_any(version, &request, "asking for partition leaders")
            .await?;
        for b in &response.brokers {
            if let Ok(port) = u16::try_from(b.port) {
                self.addrs.insert(b.node_id.0, (b.host.to_string(), port));
            }
        }
        let mut leaders: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut known: BTreeSet<TopicPartition> = BTreeSet::new();
        let mut gone = Vec::new();
        for t in &response.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 && !is_retriable(t.error_code)
                || t.error_code == ResponseError::UnknownTopicOrPartition.code()
            {
                gone.push((name, error_name(t.error_code, None)));
                continue;
            }
            for p in &t.partitions {
                let tp = TopicPartition::new(name.clone(), p.partition_index);
                if !pending.contains(&tp) {
                    continue;
                }
                known.insert(tp.clone());
                if p.leader_id.0 < 0 || p.error_code == ResponseError::LeaderNotAvailable.code() {
                    why.insert(
                        tp,
                        format!("no leader ({})", error_name(p.error_code, None)),
                    );
                } else {
                    leaders.entry(p.leader_id.0).or_default().push(tp);
                }
            }
            if t.error_code != 0 {
                for tp in pending.iter().filter(|tp| tp.topic == name) {
                    why.insert(
                        tp.clone(),
                        format!("topic {}", error_name(t.error_code, None)),
                    );
                }
            }
        }
        for (topic, error) in gone {
            pending.retain(|tp| {
                let keep = tp.topic != topic;
                if !keep {
                    self.warnings.push(format!(
                        "the log-end offset of {tp} is unknown: topic '{topic}' {error}"
                    ));
                }
                keep
            });
        }
        // A partition the topic does not have (any more).
        let listed: BTreeSet<String> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        pending.retain(|tp| {
            let missing = listed.contains(&tp.topic) && !known.contains(tp);
            if missing {
                self.warnings.push(format!(
                    "the log-end offset of {tp} is unknown: the topic has no such partition"
                ));
            }
            !missing
        });
        Ok(leaders)
    }

    /// ListOffsets (latest, READ_UNCOMMITTED) to `leader` for `partitions`:
    /// each partition's high watermark or error code.
    async fn list_latest(
        &mut self,
        leader: i32,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Result<i64, i16>)>, AdminError> {
        let what = format!("asking broker {leader} for log-end offsets");
        let version =
            self.node(leader)
                .await?
                .require(ApiKey::ListOffsets, "ListOffsets", &LIST_OFFSETS)?;
        let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(LATEST_TIMESTAMP),
            );
        }
        let timeout_ms = i32::try_from(self.left(&what)?.as_millis()).unwrap_or(i32::MAX);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(READ_UNCOMMITTED)
            .with_timeout_ms(timeout_ms)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response = self.call_node(leader, version, &request, &what).await?;
        let mut answers: BTreeMap<TopicPartition, Result<i64, i16>> = BTreeMap::new();
        for t in response.topics {
            for p in t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                answers.insert(
                    tp,
                    if p.error_code == 0 {
                        Ok(p.offset)
                    } else {
                        Err(p.error_code)
                    },
                );
            }
        }
        // A partition the answer left out: UNKNOWN_SERVER_ERROR (a warning).
        Ok(partitions
            .iter()
            .map(|tp| {
                let answer = answers
                    .remove(tp)
                    .unwrap_or(Err(ResponseError::UnknownServerError.code()));
                (tp.clone(), answer)
            })
            .collect())
    }
}

/// A connection error to a bootstrap server, whose node id is unknown.
fn without_broker_id(e: &ClientError) -> String {
    match e {
        ClientError::Connect { source, .. } => source.to_string(),
        ClientError::Io { source, .. } => format!("connection failed: {source}"),
        ClientError::Timeout { timeout, .. } => format!("no answer within {timeout:?}"),
        ClientError::Protocol { reason, .. } => format!("malformed response: {reason}"),
    }
}

/// `::1` → `[::1]`, so that `host:port` parses.
fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod fake_broker_tests;

#[cfg(test)]
mod tests {
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

    #[test]
    fn versions_are_the_highest_both_sides_speak() {
        assert_eq!(pick_version(Some((0, 13)), &METADATA), Some(12));
        assert_eq!(pick_version(Some((0, 7)), &OFFSET_FETCH), None);
        assert_eq!(pick_version(Some((1, 10)), &LIST_OFFSETS), Some(10));
        assert_eq!(pick_version(Some((0, 4)), &LIST_OFFSETS), Some(4));
        assert_eq!(pick_version(Some((9, 12)), &OFFSET_FETCH), Some(9));
        assert_eq!(pick_version(Some((10, 12)), &OFFSET_FETCH), None);
        assert_eq!(pick_version(None, &CONSUMER_GROUP_DESCRIBE), None);
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(bracket_ipv6("::1"), "[::1]");
        assert_eq!(bracket_ipv6("[::1]"), "[::1]");
        assert_eq!(bracket_ipv6("broker-1"), "broker-1");
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
