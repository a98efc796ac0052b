//! [`group_lag`] against a scripted fake broker: the retries on
//! coordinator and leader errors, version negotiation, the classic
//! assignment path, and what goes on the wire.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, ConsumerProtocolAssignment,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetFetchRequest, OffsetFetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// The fake broker's script, shared by its connections (a std mutex: no
/// lock is held across an await).
#[derive(Default)]
struct Script {
    inner: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// FindCoordinator answers COORDINATOR_LOAD_IN_PROGRESS this many more
    /// times.
    loading: u32,
    /// DescribeGroups answers NOT_COORDINATOR this many more times.
    not_coordinator: u32,
    /// ListOffsets answers NOT_LEADER_OR_FOLLOWER for t-1 this many more
    /// times.
    not_leader: u32,
    /// The group does not exist.
    unknown_group: bool,
    /// (api key, version) of every request, in order.
    seen: Vec<(i16, i16)>,
    /// ListOffsets requests: (replica id, isolation level, timestamps).
    list_offsets: Vec<(i32, i8, Vec<i64>)>,
}

/// The requests the fake broker understands (kafka-protocol's own
/// `RequestKind` needs a feature the workspace does not enable).
#[derive(Debug)]
enum RequestKind {
    ApiVersions(ApiVersionsRequest),
    FindCoordinator(FindCoordinatorRequest),
    DescribeGroups(DescribeGroupsRequest),
    OffsetFetch(OffsetFetchRequest),
    Metadata(MetadataRequest),
    ListOffsets(ListOffsetsRequest),
}

impl RequestKind {
    fn decode(key: ApiKey, body: &mut Bytes, version: i16) -> RequestKind {
        match key {
            ApiKey::ApiVersions => Self::ApiVersions(Decodable::decode(body, version).unwrap()),
            ApiKey::FindCoordinator => {
                Self::FindCoordinator(Decodable::decode(body, version).unwrap())
            }
            ApiKey::DescribeGroups => {
                Self::DescribeGroups(Decodable::decode(body, version).unwrap())
            }
            ApiKey::OffsetFetch => Self::OffsetFetch(Decodable::decode(body, version).unwrap()),
            ApiKey::Metadata => Self::Metadata(Decodable::decode(body, version).unwrap()),
            ApiKey::ListOffsets => Self::ListOffsets(Decodable::decode(body, version).unwrap()),
            other => panic!("unexpected request {other:?}"),
        }
    }
}

enum ResponseKind {
    ApiVersions(ApiVersionsResponse),
    FindCoordinator(FindCoordinatorResponse),
    DescribeGroups(DescribeGroupsResponse),
    OffsetFetch(OffsetFetchResponse),
    Metadata(MetadataResponse),
    ListOffsets(ListOffsetsResponse),
}

impl ResponseKind {
    fn encode(&self, out: &mut BytesMut, version: i16) {
        match self {
            Self::ApiVersions(r) => r.encode(out, version),
            Self::FindCoordinator(r) => r.encode(out, version),
            Self::DescribeGroups(r) => r.encode(out, version),
            Self::OffsetFetch(r) => r.encode(out, version),
            Self::Metadata(r) => r.encode(out, version),
            Self::ListOffsets(r) => r.encode(out, version),
        }
        .unwrap()
    }
}

const GROUP: &str = "g";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn assignment(partitions: &[i32]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![AssignedTopic::default()
            .with_topic(TopicName(s("t")))
            .with_partitions(partitions.to_vec())])
        .encode(&mut buf, 1)
        .unwrap();
    buf.freeze()
}

fn answer(script: &Script, port: u16, request: RequestKind) -> ResponseKind {
    let mut st = script.inner.lock().unwrap();
    match request {
        RequestKind::ApiVersions(r) => {
            // Kafka refuses (INVALID_REQUEST) a v3+ request without a
            // valid software name and version.
            assert_eq!(r.client_software_name.as_str(), "odradek-client");
            assert!(!r.client_software_version.is_empty());
            // No ConsumerGroupDescribe: a pre-KIP-848 broker.
            let api = |k: ApiKey, min, max| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            };
            ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(vec![
                api(ApiKey::ApiVersions, 0, 3),
                api(ApiKey::FindCoordinator, 0, 4),
                api(ApiKey::DescribeGroups, 0, 5),
                api(ApiKey::OffsetFetch, 1, 8),
                api(ApiKey::Metadata, 0, 9),
                api(ApiKey::ListOffsets, 1, 7),
            ]))
        }
        RequestKind::FindCoordinator(r) => {
            assert_eq!(r.key_type, 0);
            assert_eq!(r.coordinator_keys, [s(GROUP)]);
            let c = Coordinator::default().with_key(s(GROUP));
            let c = if st.loading > 0 {
                st.loading -= 1;
                c.with_node_id(BrokerId(-1))
                    .with_error_code(ResponseError::CoordinatorLoadInProgress.code())
            } else {
                c.with_node_id(BrokerId(1))
                    .with_host(s("127.0.0.1"))
                    .with_port(port.into())
            };
            ResponseKind::FindCoordinator(
                FindCoordinatorResponse::default().with_coordinators(vec![c]),
            )
        }
        RequestKind::DescribeGroups(r) => {
            assert_eq!(r.groups, [GroupId(s(GROUP))]);
            let g = DescribedGroup::default().with_group_id(GroupId(s(GROUP)));
            let g = if st.not_coordinator > 0 {
                st.not_coordinator -= 1;
                g.with_error_code(ResponseError::NotCoordinator.code())
            } else if st.unknown_group {
                g.with_group_state(s("Dead"))
            } else {
                g.with_group_state(s("Stable"))
                    .with_protocol_type(s("consumer"))
                    .with_protocol_data(s("range"))
                    .with_members(vec![DescribedGroupMember::default()
                        .with_member_id(s("m-1"))
                        .with_client_id(s("app"))
                        .with_client_host(s("/10.0.0.7"))
                        .with_member_assignment(assignment(&[0, 1]))])
            };
            ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(vec![g]))
        }
        RequestKind::OffsetFetch(r) => {
            assert_eq!(r.groups.len(), 1);
            assert!(r.groups[0].topics.is_none(), "all topics");
            let topics = if st.unknown_group {
                vec![]
            } else {
                vec![OffsetFetchResponseTopics::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![OffsetFetchResponsePartitions::default()
                        .with_partition_index(0)
                        .with_committed_offset(5)])]
            };
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(vec![
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_topics(topics),
            ]))
        }
        RequestKind::Metadata(r) => {
            assert!(!r.allow_auto_topic_creation);
            let names: Vec<_> = r
                .topics
                .unwrap()
                .into_iter()
                .map(|t| t.name.unwrap().0.to_string())
                .collect();
            assert_eq!(names, ["t"]);
            let part = |i| {
                MetadataResponsePartition::default()
                    .with_partition_index(i)
                    .with_leader_id(BrokerId(1))
            };
            ResponseKind::Metadata(
                MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(s("127.0.0.1"))
                        .with_port(port.into())])
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(TopicName(s("t"))))
                        .with_partitions(vec![part(0), part(1)])]),
            )
        }
        RequestKind::ListOffsets(r) => {
            st.list_offsets.push((
                r.replica_id.0,
                r.isolation_level,
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.timestamp))
                    .collect(),
            ));
            let mut parts = Vec::new();
            for p in &r.topics[0].partitions {
                let reply =
                    ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                parts.push(match p.partition_index {
                    1 if st.not_leader > 0 => {
                        st.not_leader -= 1;
                        reply.with_error_code(ResponseError::NotLeaderOrFollower.code())
                    }
                    0 => reply.with_offset(9),
                    _ => reply.with_offset(4),
                });
            }
            ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(vec![
                ListOffsetsTopicResponse::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(parts),
            ]))
        }
    }
}

async fn serve_connection(mut stream: TcpStream, script: Arc<Script>, port: u16) {
    loop {
        let Ok(len) = stream.read_i32().await else {
            return;
        };
        let mut body = BytesMut::zeroed(len as usize);
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut body = body.freeze();
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).unwrap();
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
        script
            .inner
            .lock()
            .unwrap()
            .seen
            .push((key as i16, version));
        let request = RequestKind::decode(key, &mut body, version);
        let response = answer(&script, port, request);
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, key.response_header_version(version))
            .unwrap();
        response.encode(&mut out, version);
        let n = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&n.to_be_bytes());
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn fake_broker(script: Arc<Script>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, script.clone(), port));
        }
    });
    port
}

#[tokio::test]
async fn retries_coordinator_and_leader_errors_then_joins() {
    let script = Arc::new(Script::default());
    {
        let mut st = script.inner.lock().unwrap();
        st.loading = 2;
        st.not_coordinator = 1;
        st.not_leader = 2;
    }
    let port = fake_broker(script.clone()).await;
    let lag = group_lag(&format!("127.0.0.1:{port}"), GROUP, Duration::from_secs(10))
        .await
        .unwrap();
    let owner = PartitionOwner {
        consumer_id: "m-1".into(),
        host: "/10.0.0.7".into(),
        client_id: "app".into(),
    };
    assert_eq!(
        lag,
        GroupLag {
            group: GROUP.into(),
            coordinator: 1,
            state: Some("Stable".into()),
            rows: vec![
                LagRow {
                    group: GROUP.into(),
                    topic: "t".into(),
                    partition: 0,
                    current_offset: Some(5),
                    log_end_offset: Some(9),
                    lag: Some(4),
                    owner: Some(owner.clone()),
                },
                LagRow {
                    group: GROUP.into(),
                    topic: "t".into(),
                    partition: 1,
                    current_offset: None,
                    log_end_offset: Some(4),
                    lag: None,
                    owner: Some(owner),
                },
            ],
            warnings: vec![],
        }
    );
    let st = script.inner.lock().unwrap();
    // The highest versions both sides speak.
    let versions: BTreeMap<i16, i16> = st.seen.iter().copied().collect();
    assert_eq!(versions[&(ApiKey::FindCoordinator as i16)], 4);
    assert_eq!(versions[&(ApiKey::DescribeGroups as i16)], 5);
    assert_eq!(versions[&(ApiKey::OffsetFetch as i16)], 8);
    assert_eq!(versions[&(ApiKey::Metadata as i16)], 9);
    assert_eq!(versions[&(ApiKey::ListOffsets as i16)], 7);
    assert!(!versions.contains_key(&(ApiKey::ConsumerGroupDescribe as i16)));
    // 2 × loading, then NOT_COORDINATOR from DescribeGroups: 4 lookups.
    let finds = st
        .seen
        .iter()
        .filter(|(k, _)| *k == ApiKey::FindCoordinator as i16)
        .count();
    assert_eq!(finds, 4);
    // A consumer's ListOffsets: latest, READ_UNCOMMITTED; t-1 asked again
    // after each NOT_LEADER_OR_FOLLOWER, t-0 only once.
    assert_eq!(
        st.list_offsets,
        [(-1, 0, vec![-1, -1]), (-1, 0, vec![-1]), (-1, 0, vec![-1]),]
    );
}

#[tokio::test]
async fn unknown_group_is_an_error() {
    let script = Arc::new(Script::default());
    script.inner.lock().unwrap().unknown_group = true;
    let port = fake_broker(script).await;
    let err = group_lag(&format!("127.0.0.1:{port}"), GROUP, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AdminError::GroupNotFound(ref g) if g == GROUP),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn a_coordinator_that_never_loads_times_out_naming_the_error() {
    let script = Arc::new(Script::default());
    script.inner.lock().unwrap().loading = u32::MAX;
    let port = fake_broker(script).await;
    let err = group_lag(
        &format!("127.0.0.1:{port}"),
        GROUP,
        Duration::from_millis(400),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AdminError::Timeout { .. }), "{text}");
    assert!(text.contains("COORDINATOR_LOAD_IN_PROGRESS (14)"), "{text}");
    assert!(text.contains("--timeout"), "{text}");
}

#[tokio::test]
async fn a_leader_that_never_answers_leaves_the_log_end_unknown() {
    let script = Arc::new(Script::default());
    script.inner.lock().unwrap().not_leader = u32::MAX;
    let port = fake_broker(script).await;
    let lag = group_lag(
        &format!("127.0.0.1:{port}"),
        GROUP,
        Duration::from_millis(600),
    )
    .await
    .unwrap();
    assert_eq!(lag.rows[0].log_end_offset, Some(9));
    assert_eq!(lag.rows[1].log_end_offset, None);
    assert_eq!(lag.warnings.len(), 1, "{:?}", lag.warnings);
    assert!(
        lag.warnings[0].contains("t-1") && lag.warnings[0].contains("NOT_LEADER_OR_FOLLOWER"),
        "{:?}",
        lag.warnings
    );
}
