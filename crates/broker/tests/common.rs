//! Test harness: a broker started in-process on 127.0.0.1:0 with a
//! temporary data directory, and a minimal raw Kafka client built on the
//! `kafka-protocol` message structs.

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use odradek_broker::config::{BrokerConfig, Source};
use odradek_broker::RunningBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TestBroker {
    pub running: Option<RunningBroker>,
    pub dir: tempfile::TempDir,
    pub overrides: Vec<(String, String)>,
}

impl TestBroker {
    pub async fn start(overrides: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut b = TestBroker {
            running: None,
            dir,
            overrides,
        };
        b.running = Some(b.boot(0).await);
        b
    }

    async fn boot(&self, port: u16) -> RunningBroker {
        let mut settings = vec![
            (
                "listeners".to_string(),
                format!("PLAINTEXT://127.0.0.1:{port}"),
                Source::Override,
            ),
            (
                "log.dirs".to_string(),
                self.dir.path().display().to_string(),
                Source::Override,
            ),
        ];
        settings.extend(
            self.overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), Source::Override)),
        );
        let config = BrokerConfig::from_settings(settings).unwrap();
        odradek_broker::start(config).await.unwrap()
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    /// Clean shutdown and start again on the same data and port.
    pub async fn restart(&mut self) {
        let port = self.addr().port();
        self.running.take().unwrap().shutdown().await;
        self.running = Some(self.boot(port).await);
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr()).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

pub struct Client {
    pub stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    pub fn encode_request<R: Encodable + HeaderVersionOf>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> Bytes {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("odradek-test")));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame; None if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut len)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no response within 10 s"),
        }
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    pub async fn call<Req, Resp>(&mut self, key: ApiKey, version: i16, body: &Req) -> Resp
    where
        Req: Encodable + HeaderVersionOf,
        Resp: Decodable,
    {
        let frame = self.encode_request(key, version, body);
        self.send_raw(&frame).await;
        let mut response = self.read_frame().await.expect("connection closed");
        decode_response(key, version, &mut response, self.correlation)
    }

    /// True if the broker closed the connection (read returns EOF/reset).
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub fn decode_response<Resp: Decodable>(
    key: ApiKey,
    version: i16,
    frame: &mut Bytes,
    correlation: i32,
) -> Resp {
    let header = ResponseHeader::decode(frame, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation);
    let resp = Resp::decode(frame, version).unwrap();
    assert_eq!(frame.remaining(), 0, "trailing bytes in {key:?} response");
    resp
}

/// Marker so `encode_request` accepts any request message.
pub trait HeaderVersionOf {}
impl<T: kafka_protocol::protocol::Request> HeaderVersionOf for T {}

pub fn record(key: &str, value: &str, timestamp: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: Default::default(),
    }
}

pub fn batch(records: &[Record], compression: Compression) -> Bytes {
    let mut records = records.to_vec();
    // The encoder starts a new batch whenever offset - sequence changes;
    // a non-idempotent batch has base sequence -1.
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = i as i64;
        r.sequence = i as i32 - 1;
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub async fn create_topic(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    create_topic_rf(c, name, partitions, 1, configs, 5000).await
}

/// CreateTopics v7 for one topic; returns its error code.
pub async fn create_topic_rf(
    c: &mut Client,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
    timeout_ms: i32,
) -> i16 {
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let resp: CreateTopicsResponse = c
        .call(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(timeout_ms),
        )
        .await;
    resp.topics[0].error_code
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

/// Produces one batch and returns (error code, base offset).
pub async fn produce(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let resp: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_request(topic, partition, records, -1),
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

/// Fetches from `offset` and decodes the records (fetch v11, by name).
pub async fn fetch(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64, Vec<Record>) {
    let resp: FetchResponse = c
        .call(
            ApiKey::Fetch,
            11,
            &fetch_request(topic, partition, offset, 0, 1),
        )
        .await;
    let p = &resp.responses[0].partitions[0];
    let mut records = Vec::new();
    if let Some(mut bytes) = p.records.clone() {
        if !bytes.is_empty() {
            for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap()
            {
                records.extend(set.records);
            }
        }
    }
    (p.error_code, p.high_watermark, records)
}

pub async fn list_offset(
    c: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp),
            ])]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}
