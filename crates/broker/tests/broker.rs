//! End-to-end tests of the broker over real TCP with raw Kafka requests.
//! Third-party clients are exercised by tests/e2e (Python); these cover
//! protocol edges that client libraries never send.

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const CORRUPT_MESSAGE: i16 = ResponseError::CorruptMessage.code();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_advertises_what_dispatch_serves() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    let resp: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(resp.error_code, 0);
    let keys: Vec<i16> = resp.api_keys.iter().map(|k| k.api_key).collect();
    for (api, min, max) in odradek_broker::handlers::SUPPORTED_APIS {
        let entry = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == *api as i16)
            .unwrap();
        assert_eq!((entry.min_version, entry.max_version), (*min, *max));
    }
    assert_eq!(keys.len(), odradek_broker::handlers::SUPPORTED_APIS.len());
    broker.stop().await;
}

/// KIP-511: ApiVersions newer than the broker's gets a v0 body with
/// UNSUPPORTED_VERSION and the served list, not a closed connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_unsupported_version_answers_v0() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    let mut frame = BytesMut::from(
        &c.encode_request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())[..],
    );
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&frame).await;
    let mut resp = c.read_frame().await.unwrap();
    let resp: ApiVersionsResponse = decode_response(ApiKey::ApiVersions, 0, &mut resp, 1);
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_round_trip_and_offsets() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(create_topic(&mut c, "t", 2, &[]).await, 0);
    let now = now_ms();
    let first = batch(
        &[
            record("k0", "v0", now),
            record("k1", "v1", now + 1),
            record("k2", "v2", now + 2),
        ],
        Compression::None,
    );
    let second = batch(
        &[record("k3", "v3", now + 3), record("k4", "v4", now + 4)],
        Compression::Lz4,
    );
    assert_eq!(produce(&mut c, "t", 1, first).await, (0, 0));
    assert_eq!(produce(&mut c, "t", 1, second).await, (0, 3));
    let (err, hw, records) = fetch(&mut c, "t", 1, 0).await;
    assert_eq!((err, hw), (0, 5));
    let keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
    assert_eq!(
        keys,
        ["k0", "k1", "k2", "k3", "k4"].map(|k| Bytes::from_static(k.as_bytes()))
    );
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // A fetch from the middle of a batch returns that whole batch.
    let (_, _, records) = fetch(&mut c, "t", 1, 1).await;
    assert_eq!(records[0].offset, 0);
    // At the log end: nothing, no error. Past it: OFFSET_OUT_OF_RANGE.
    let (err, _, records) = fetch(&mut c, "t", 1, 5).await;
    assert_eq!((err, records.len()), (0, 0));
    let (err, _, _) = fetch(&mut c, "t", 1, 6).await;
    assert_eq!(err, ResponseError::OffsetOutOfRange.code());
    // The other partition is untouched.
    assert_eq!(fetch(&mut c, "t", 0, 0).await.1, 0);
    // ListOffsets: earliest, latest, by timestamp (inside a compressed batch).
    assert_eq!(list_offset(&mut c, "t", 1, -2).await.1, 0);
    assert_eq!(list_offset(&mut c, "t", 1, -1).await.1, 5);
    assert_eq!(list_offset(&mut c, "t", 1, now + 1).await, (0, 1, now + 1));
    assert_eq!(list_offset(&mut c, "t", 1, now + 4).await, (0, 4, now + 4));
    assert_eq!(list_offset(&mut c, "t", 1, now + 5).await.1, -1);
    assert_eq!(list_offset(&mut c, "t", 1, -3).await, (0, 4, now + 4));
    assert_eq!(
        list_offset(&mut c, "nope", 0, -1).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_restart_and_offsets_continue() {
    let mut broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(
        create_topic(&mut c, "durable", 1, &[("retention.ms", "-1")]).await,
        0
    );
    for i in 0..20 {
        let b = batch(
            &[record("k", &format!("v{i}"), now_ms())],
            Compression::None,
        );
        assert_eq!(produce(&mut c, "durable", 0, b).await, (0, i));
    }
    drop(c);
    broker.restart().await;
    let mut c = broker.client().await;
    let (_, hw, records) = fetch(&mut c, "durable", 0, 0).await;
    assert_eq!(hw, 20);
    assert_eq!(records.len(), 20);
    let b = batch(&[record("k", "after", now_ms())], Compression::None);
    assert_eq!(produce(&mut c, "durable", 0, b).await, (0, 20));
    // Creating it again fails: the topic came back from the metadata log.
    assert_eq!(
        create_topic(&mut c, "durable", 1, &[]).await,
        ResponseError::TopicAlreadyExists.code()
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_invalid_batches_are_refused_and_nothing_is_appended() {
    let broker = TestBroker::start(&[("message.max.bytes", "2000")]).await;
    let mut c = broker.client().await;
    assert_eq!(create_topic(&mut c, "t", 1, &[]).await, 0);
    let good = batch(&[record("k", "v", now_ms())], Compression::None);

    let mut bad_crc = BytesMut::from(&good[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(
        produce(&mut c, "t", 0, bad_crc.freeze()).await.0,
        CORRUPT_MESSAGE
    );

    let mut bad_len = BytesMut::from(&good[..]);
    bad_len[8..12].copy_from_slice(&1000i32.to_be_bytes());
    assert_eq!(
        produce(&mut c, "t", 0, bad_len.freeze()).await.0,
        CORRUPT_MESSAGE
    );

    let truncated = good.slice(..good.len() - 3);
    assert_eq!(produce(&mut c, "t", 0, truncated).await.0, CORRUPT_MESSAGE);

    let mut magic1 = BytesMut::from(&good[..]);
    magic1[16] = 1;
    assert_eq!(
        produce(&mut c, "t", 0, magic1.freeze()).await.0,
        ResponseError::InvalidRecord.code()
    );

    let mut two = BytesMut::from(&good[..]);
    two.extend_from_slice(&good);
    assert_eq!(
        produce(&mut c, "t", 0, two.freeze()).await.0,
        ResponseError::InvalidRecord.code()
    );

    let big = batch(
        &[record("k", &"x".repeat(3000), now_ms())],
        Compression::None,
    );
    assert_eq!(
        produce(&mut c, "t", 0, big).await.0,
        ResponseError::MessageTooLarge.code()
    );

    let future = batch(
        &[record("k", "v", now_ms() + 2 * 3_600_000)],
        Compression::None,
    );
    assert_eq!(
        produce(&mut c, "t", 0, future).await.0,
        ResponseError::InvalidTimestamp.code()
    );

    let resp: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_request("t", 0, good.clone(), 2),
        )
        .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );

    assert_eq!(
        produce(&mut c, "t", 7, good.clone()).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut c, "nope", 0, good.clone()).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );

    // Nothing was appended, and the same connection still works.
    assert_eq!(list_offset(&mut c, "t", 0, -1).await.1, 0);
    assert_eq!(produce(&mut c, "t", 0, good).await, (0, 0));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_refuses_acks_all_only() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(
        create_topic(&mut c, "t", 1, &[("min.insync.replicas", "2")]).await,
        0
    );
    let b = batch(&[record("k", "v", now_ms())], Compression::None);
    assert_eq!(
        produce(&mut c, "t", 0, b.clone()).await.0,
        ResponseError::NotEnoughReplicas.code()
    );
    let resp: ProduceResponse = c
        .call(ApiKey::Produce, 9, &produce_request("t", 0, b, 1))
        .await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    broker.stop().await;
}

/// Each malformed frame closes its own connection; the broker goes on
/// serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let broker = TestBroker::start(&[("socket.request.max.bytes", "1048576")]).await;
    let mut bad_inputs: Vec<Vec<u8>> = vec![
        (-1i32).to_be_bytes().to_vec(),
        i32::MAX.to_be_bytes().to_vec(),
        (2_000_000i32).to_be_bytes().to_vec(),
    ];
    // A frame too short for a header.
    bad_inputs.push([&3i32.to_be_bytes()[..], b"abc"].concat());
    // Unknown API key 9999.
    let mut unknown = BytesMut::new();
    unknown.put_i32(10);
    unknown.put_i16(9999);
    unknown.put_i16(0);
    unknown.put_i32(1);
    unknown.put_i16(-1);
    bad_inputs.push(unknown.to_vec());
    // Random garbage.
    bad_inputs.push((0..64u8).map(|i| i.wrapping_mul(37)).collect());
    for input in bad_inputs {
        let mut c = broker.client().await;
        c.send_raw(&input).await;
        assert!(
            c.is_closed().await,
            "input {:?} did not close the connection",
            &input[..input.len().min(8)]
        );
    }
    // Unsupported version of a known API (Metadata v99) closes too.
    let mut c = broker.client().await;
    let mut frame =
        BytesMut::from(&c.encode_request(ApiKey::Metadata, 12, &MetadataRequest::default())[..]);
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&frame).await;
    assert!(c.is_closed().await);
    // A body that does not decode (truncated Metadata) closes.
    let mut c = broker.client().await;
    let frame = c.encode_request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(TopicName(StrBytes::from_static_str("abc"))))])),
    );
    let mut cut = BytesMut::from(&frame[..frame.len() - 3]);
    let len = (cut.len() - 4) as i32;
    cut[..4].copy_from_slice(&len.to_be_bytes());
    c.send_raw(&cut).await;
    assert!(c.is_closed().await);
    // A truncated request followed by a close leaves the broker healthy.
    let mut c = broker.client().await;
    c.send_raw(&100i32.to_be_bytes()).await;
    c.send_raw(b"partial").await;
    drop(c);
    let mut c = broker.client().await;
    assert_eq!(create_topic(&mut c, "still-serving", 1, &[]).await, 0);
    broker.stop().await;
}

/// Requests pipelined on one connection are answered in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_answer_in_order() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(create_topic(&mut c, "p", 1, &[]).await, 0);
    let mut wire = BytesMut::new();
    let first_correlation = 2;
    for i in 0..50 {
        let b = batch(&[record("k", &format!("{i}"), now_ms())], Compression::None);
        wire.extend_from_slice(&c.encode_request(
            ApiKey::Produce,
            9,
            &produce_request("p", 0, b, 1),
        ));
        if i % 10 == 0 {
            wire.extend_from_slice(&c.encode_request(
                ApiKey::Metadata,
                12,
                &MetadataRequest::default(),
            ));
        }
    }
    c.send_raw(&wire).await;
    let mut next_offset = 0;
    for correlation in first_correlation..first_correlation + 55 {
        let mut frame = c.read_frame().await.unwrap();
        let got = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(got, correlation, "responses out of order");
        // Produce responses (header v0) carry increasing offsets.
        let is_metadata = (correlation - first_correlation) % 11 == 1;
        if !is_metadata {
            let resp: ProduceResponse =
                decode_response(ApiKey::Produce, 9, &mut frame, correlation);
            assert_eq!(
                resp.responses[0].partition_responses[0].base_offset,
                next_offset
            );
            next_offset += 1;
        }
    }
    broker.stop().await;
}

/// A fetch parked for min_bytes is woken by the append, not by its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_fetch_is_woken_by_append() {
    let broker = TestBroker::start(&[]).await;
    let mut producer = broker.client().await;
    assert_eq!(create_topic(&mut producer, "w", 1, &[]).await, 0);
    let mut consumer = broker.client().await;
    let req = fetch_request("w", 0, 0, 10_000, 1);
    let frame = consumer.encode_request(ApiKey::Fetch, 11, &req);
    consumer.send_raw(&frame).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let b = batch(&[record("k", "v", now_ms())], Compression::None);
    assert_eq!(produce(&mut producer, "w", 0, b).await, (0, 0));
    let mut resp = consumer.read_frame().await.unwrap();
    let waited = start.elapsed();
    let resp: FetchResponse = decode_response(ApiKey::Fetch, 11, &mut resp, 1);
    assert!(!resp.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
    assert!(
        waited < Duration::from_secs(2),
        "fetch answered after {waited:?}, not on append"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_creates_only_when_enabled() {
    let broker = TestBroker::start(&[("num.partitions", "3")]).await;
    let mut c = broker.client().await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("auto"))))]))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions.len(), 3);
    assert!(!resp.topics[0].topic_id.is_nil());
    let bad = req
        .clone()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("bad name"))))]));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &bad).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    broker.stop().await;

    let broker = TestBroker::start(&[("auto.create.topics.enable", "false")]).await;
    let mut c = broker.client().await;
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topic_by_name_and_id() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(create_topic(&mut c, "a", 1, &[]).await, 0);
    assert_eq!(create_topic(&mut c, "b", 1, &[]).await, 0);
    let all_topics = MetadataRequest::default().with_topics(None);
    let meta: MetadataResponse = c.call(ApiKey::Metadata, 12, &all_topics).await;
    let b_id = meta
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.as_str() == "b")
        .unwrap()
        .topic_id;
    let by_name = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("a"))]);
    let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &by_name).await;
    assert_eq!(resp.responses[0].error_code, 0);
    let by_id = DeleteTopicsRequest::default().with_topics(vec![
        delete_topics_request::DeleteTopicState::default().with_topic_id(b_id),
    ]);
    let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 6, &by_id).await;
    assert_eq!(resp.responses[0].error_code, 0);
    let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 5, &by_name).await;
    assert_eq!(
        resp.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let meta: MetadataResponse = c.call(ApiKey::Metadata, 12, &all_topics).await;
    assert!(meta.topics.is_empty());
    // The directories are gone and the name can be reused.
    assert!(!broker.dir.path().join("a-0").exists());
    assert_eq!(create_topic(&mut c, "a", 1, &[]).await, 0);
    assert_eq!(fetch(&mut c, "a", 0, 0).await.1, 0);
    broker.stop().await;
}

fn idempotent_batch(producer_id: i64, epoch: i16, base_sequence: i32, count: i32) -> Bytes {
    let records: Vec<_> = (0..count)
        .map(|i| {
            let mut r = record("k", &format!("v{}", base_sequence + i), now_ms());
            r.producer_id = producer_id;
            r.producer_epoch = epoch;
            r.offset = i as i64;
            r.sequence = base_sequence + i;
            r
        })
        .collect();
    let mut buf = BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

async fn init_producer_id(c: &mut Client) -> InitProducerIdResponse {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    c.call(ApiKey::InitProducerId, 4, &request).await
}

/// KIP-98: retries of an idempotent batch are acknowledged with the
/// original offsets and stored once, also across a restart; gaps and stale
/// epochs are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_dedupes_and_orders() {
    let mut broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(create_topic(&mut c, "idem", 1, &[]).await, 0);
    let init = init_producer_id(&mut c).await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    // The retry of the first batch: same offsets, nothing appended.
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(pid, 0, 0, 3)).await,
        (0, 0)
    );
    assert_eq!(list_offset(&mut c, "idem", 0, -1).await.1, 5);
    let (err, _) = produce(&mut c, "idem", 0, idempotent_batch(pid, 0, 9, 1)).await;
    assert_eq!(err, ResponseError::OutOfOrderSequenceNumber.code());
    drop(c);
    broker.restart().await;
    let mut c = broker.client().await;
    // Producer state is rebuilt from the log: still a duplicate.
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(pid, 0, 3, 2)).await,
        (0, 3)
    );
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(pid, 0, 5, 1)).await,
        (0, 5)
    );
    // A newer InitProducerId never hands out the same id again.
    let again = init_producer_id(&mut c).await;
    assert_ne!(again.producer_id.0, pid);
    broker.stop().await;
}

/// KIP-320: clients' current_leader_epoch is checked on Fetch and
/// ListOffsets, and OffsetForLeaderEpoch reports where an epoch ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_epochs_are_checked_and_reported() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(create_topic(&mut c, "e", 1, &[]).await, 0);
    let b = batch(
        &[record("k", "v", now_ms()), record("k", "w", now_ms())],
        Compression::None,
    );
    assert_eq!(produce(&mut c, "e", 0, b).await, (0, 0));
    let mut req = fetch_request("e", 0, 0, 0, 1);
    req.topics[0].partitions[0].current_leader_epoch = 5;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req).await;
    assert_eq!(
        resp.responses[0].partitions[0].error_code,
        ResponseError::UnknownLeaderEpoch.code()
    );
    req.topics[0].partitions[0].current_leader_epoch = 0;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    // Stored batches carry the leader epoch, not the producer's -1.
    let mut bytes = resp.responses[0].partitions[0].records.clone().unwrap();
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
    assert_eq!(sets[0].records[0].partition_leader_epoch, 0);
    let ask = |epoch| {
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("e")))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(epoch),
                    ]),
            ])
    };
    let resp: OffsetForLeaderEpochResponse = c.call(ApiKey::OffsetForLeaderEpoch, 4, &ask(0)).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 2));
    let resp: OffsetForLeaderEpochResponse = c.call(ApiKey::OffsetForLeaderEpoch, 4, &ask(3)).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.leader_epoch, p.end_offset), (-1, -1));
    broker.stop().await;
}
