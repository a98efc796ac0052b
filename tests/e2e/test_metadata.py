"""ApiVersions and Metadata through real clients, and topic auto-creation.

Kafka rules checked: a single node is broker and controller with node id 1
and advertises the listener it was given; Metadata creates a missing topic
only when the request allows it (`allow_auto_topic_creation`, v4+) AND the
broker's `auto.create.topics.enable` is true (Kafka's default), with
`num.partitions` partitions; a newly auto-created topic may first be reported
as LEADER_NOT_AVAILABLE (Kafka does so while creating it).
"""

import json
import time

import pytest
from confluent_kafka import KafkaError

import clients
import kafkawire as w


def test_confluent_list_topics_shows_single_node(broker):
    clients.create_topic(broker, "md-a", partitions=3)
    md = clients.admin(broker).list_topics(timeout=10)
    assert list(md.brokers) == [1]
    b = md.brokers[1]
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    assert md.controller_id == 1
    assert md.cluster_id, "Metadata v2+ carries a cluster id"
    t = md.topics["md-a"]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert (p.leader, p.replicas, p.isrs) == (1, [1], [1])


def test_confluent_describe_cluster(broker):
    cluster = clients.admin(broker).describe_cluster(request_timeout=10).result(timeout=15)
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.controller.id == 1
    assert cluster.cluster_id


def test_kafka_python_metadata_and_api_versions(broker):
    from kafka import KafkaAdminClient
    clients.create_topic(broker, "md-kp", partitions=2)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        assert "md-kp" in a.list_topics()
        (t,) = a.describe_topics(["md-kp"])
        assert t["error_code"] == 0
        assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1]
        assert {p["leader_id"] for p in t["partitions"]} == {1}
    finally:
        a.close()
    c = clients.kp_consumer(broker)
    try:
        assert "md-kp" in c.topics()
        assert c.partitions_for_topic("md-kp") == {0, 1}
    finally:
        c.close()


def test_kcat_metadata_json(broker):
    clients.create_topic(broker, "md-kcat", partitions=4)
    r = clients.kcat(broker, "-L", "-J")
    md = json.loads(r.stdout)
    assert [b["id"] for b in md["brokers"]] == [1]
    assert md["brokers"][0]["name"] == f"127.0.0.1:{broker.port}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert "md-kcat" in topics
    parts = topics["md-kcat"]["partitions"]
    assert sorted(p["partition"] for p in parts) == [0, 1, 2, 3]
    assert {p["leader"] for p in parts} == {1}


# The issue's APIs, with the lowest "newest version" each must reach for the
# features the issue lists: (key, name, must serve at least up to this version).
ISSUE_APIS = [
    (w.PRODUCE, "Produce", 3),           # v3: magic v2 batches (KIP-98)
    (w.FETCH, "Fetch", 13),              # v13: topic ids (KIP-516)
    (w.LIST_OFFSETS, "ListOffsets", 7),  # v7: MAX_TIMESTAMP (KIP-734)
    (w.METADATA, "Metadata", 10),        # v10: topic ids
    (w.API_VERSIONS, "ApiVersions", 3),  # v3: flexible, KIP-511
    (w.CREATE_TOPICS, "CreateTopics", 5),
    (w.DELETE_TOPICS, "DeleteTopics", 6),  # v6: delete by topic id
    (60, "DescribeCluster", 0),
    (32, "DescribeConfigs", 1),
]


@pytest.fixture
def advertised(broker):
    s = w.connect(broker.port)
    with s:
        r = w.roundtrip(s, w.API_VERSIONS, 3, 1, w.api_versions_v3_body(), flexible_header=True)
        err, keys, _ = w.decode_api_versions_v3(r)
    assert err == 0
    return keys


@pytest.mark.parametrize("key,name,at_least", ISSUE_APIS, ids=[a[1] for a in ISSUE_APIS])
def test_api_versions_advertises_issue_api(advertised, key, name, at_least):
    assert key in advertised, f"{name} ({key}) not advertised"
    lo, hi = advertised[key]
    assert 0 <= lo <= hi, (lo, hi)
    assert hi >= at_least, f"{name} served up to v{hi}; the issue's features need v{at_least}"
    if key == w.PRODUCE:
        assert lo <= 3, "older magic-v2 clients use Produce v3"


# --- auto-creation -----------------------------------------------------------
def _raw_metadata(broker, topics, allow):
    s = w.connect(broker.port)
    with s:
        r = w.roundtrip(s, w.METADATA, 4, 7, w.metadata_v4_body(topics, allow))
        return w.decode_metadata_v4(r)


def _wait_topic(broker, name, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = clients.topic_partitions(broker, name)
        if parts:
            return parts
        time.sleep(0.1)
    return None


def test_metadata_auto_creates_when_allowed(start_broker):
    broker = start_broker({"num.partitions": 3})
    md = _raw_metadata(broker, ["auto-md"], allow=True)
    assert md["topics"]["auto-md"]["error"] in (w.NONE, w.LEADER_NOT_AVAILABLE)
    assert _wait_topic(broker, "auto-md") == [0, 1, 2], "num.partitions applies to auto-created topics"
    md = _raw_metadata(broker, ["auto-md"], allow=True)
    t = md["topics"]["auto-md"]
    assert t["error"] == w.NONE
    assert sorted(p["index"] for p in t["partitions"]) == [0, 1, 2]


def test_metadata_does_not_create_when_request_disallows(broker):
    md = _raw_metadata(broker, ["not-asked"], allow=False)
    assert md["topics"]["not-asked"]["error"] == w.UNKNOWN_TOPIC_OR_PARTITION
    assert clients.topic_partitions(broker, "not-asked") is None


def test_metadata_invalid_name_not_created(broker):
    md = _raw_metadata(broker, ["bad name!"], allow=True)
    assert md["topics"]["bad name!"]["error"] in (w.INVALID_TOPIC_EXCEPTION,
                                                  w.UNKNOWN_TOPIC_OR_PARTITION)
    assert clients.topic_partitions(broker, "bad name!") is None


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "kcat"])
def test_produce_auto_creates_topic(start_broker, client):
    broker = start_broker({"num.partitions": 2})
    topic = f"auto-{client}"
    if client == "confluent":
        clients.produce(broker, topic, [dict(key=b"k", value=b"v")])
    elif client == "kafka-python":
        clients.kp_produce(broker, topic, [dict(key=b"k", value=b"v")])
    else:
        clients.kcat(broker, "-P", "-t", topic, "-K:", input=b"k:v\n")
    assert _wait_topic(broker, topic) == [0, 1]
    got = clients.consume(broker, topic, partitions=[0, 1], count=1)
    assert (got[0].key, got[0].value) == (b"k", b"v")


def test_auto_create_disabled(start_broker):
    broker = start_broker({"auto.create.topics.enable": "false"})
    md = _raw_metadata(broker, ["never"], allow=True)
    assert md["topics"]["never"]["error"] == w.UNKNOWN_TOPIC_OR_PARTITION
    # A real producer cannot make it appear either: its delivery fails.
    err = clients.produce_one_expect_error(
        broker, "never", b"v", timeout=20,
        **{"message.timeout.ms": 3000, "topic.metadata.propagation.max.ms": 1000})
    assert err is not None
    assert err.code() in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART,
                          KafkaError._MSG_TIMED_OUT), err
    assert clients.topic_partitions(broker, "never") is None
    # Explicit creation still works.
    clients.create_topic(broker, "explicit")
    assert clients.topic_partitions(broker, "explicit") == [0]


def test_regression_librdkafka_metadata_v13_trailing_bytes(broker):
    """librdkafka 2.16 asks for all topics with Metadata v13 by writing a
    4-byte int32 placeholder where the compact topics array belongs, so its
    request carries 3 bytes after the last field. Kafka's parser ignores
    bytes after the message (it never checks that the buffer was consumed),
    so clients get away with it; a broker that refuses trailing bytes closes
    every AdminClient.list_topics() connection. These are the exact bytes
    confluent-kafka 2.16.1 sent (captured on loopback)."""
    header = bytes.fromhex("0003000d00000003000772646b61666b6100")  # Metadata v13, cid 3, "rdkafka"
    body = bytes.fromhex("00000000010000")  # null topics, allow=0, incl=0, tags=0, then 01 00 00
    s = w.connect(broker.port)
    with s:
        s.sendall(w.frame(header + body))
        s.settimeout(10)
        resp = w.recv_frame(s)
        assert w.Reader(resp).i32() == 3
        # The connection is still usable.
        err, _ = w.decode_api_versions_v0(w.roundtrip(s, w.API_VERSIONS, 0, 4, b""))
        assert err == 0
