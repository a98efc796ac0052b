"""CreateTopics / DeleteTopics through confluent-kafka's and kafka-python's admin clients.

Kafka's rules (ReplicationControlManager in KRaft mode, Topic.validate):
- a topic name is 1..249 characters of [a-zA-Z0-9._-] and not "." or "..",
  else INVALID_TOPIC_EXCEPTION (17);
- num_partitions must be positive or -1 (broker default), else
  INVALID_PARTITIONS (37); replication factor above the number of brokers is
  INVALID_REPLICATION_FACTOR (38);
- an existing name is TOPIC_ALREADY_EXISTS (36); unknown topic configs or
  bad values are INVALID_CONFIG (40);
- validate_only runs every check and creates nothing;
- deleting an unknown topic is UNKNOWN_TOPIC_OR_PARTITION (3); a deleted
  name can be created again and starts empty.
"""

import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

import clients
import kafkawire as w

TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
CLIENT_INVALID_ARG = -186  # librdkafka refused it before sending

INVALID_NAMES = ["", ".", "..", "x" * 250, "bad name!", "slash/topic", "ümlaut"]


def ck_create(broker, name, partitions=1, rf=1, config=None, validate_only=False):
    """Create via confluent AdminClient; return the Kafka error code (0 on success)."""
    fs = clients.admin(broker).create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config or {})],
        validate_only=validate_only, operation_timeout=10, request_timeout=15)
    try:
        fs[name].result(timeout=20)
        return 0
    except KafkaException as e:
        return e.args[0].code()


def kp_admin(broker):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)


def kp_create(broker, name, partitions=1, rf=1, config=None, validate_only=False):
    a = kp_admin(broker)
    try:
        res = a.create_topics({name: dict(num_partitions=partitions, replication_factor=rf,
                                           configs=config or {})},
                              validate_only=validate_only, raise_errors=False)
        (t,) = res["topics"]
        assert t["name"] == name
        return t["error_code"]
    finally:
        a.close()


CREATORS = {"confluent": ck_create, "kafka-python": kp_create}


@pytest.fixture(params=sorted(CREATORS))
def create(request):
    return CREATORS[request.param]


def test_create_with_partitions_and_list(broker, create):
    assert create(broker, "t-six", partitions=6) == 0
    assert clients.topic_partitions(broker, "t-six") == [0, 1, 2, 3, 4, 5]
    # Usable right away: produce to the last partition and read it back.
    acked = clients.produce(broker, "t-six", [dict(value=b"x", partition=5)])
    assert (acked[0].partition, acked[0].offset) == (5, 0)


def test_create_default_partitions(start_broker):
    broker = start_broker({"num.partitions": 4})
    assert kp_create(broker, "t-default", partitions=-1, rf=-1) == 0
    assert clients.topic_partitions(broker, "t-default") == [0, 1, 2, 3]


def test_duplicate_is_topic_already_exists(broker, create):
    assert create(broker, "t-dup", partitions=2) == 0
    assert create(broker, "t-dup", partitions=3) == TOPIC_ALREADY_EXISTS
    assert clients.topic_partitions(broker, "t-dup") == [0, 1], "the original is untouched"


@pytest.mark.parametrize("name", INVALID_NAMES, ids=lambda n: repr(n[:12]) + f"-len{len(n)}")
def test_invalid_topic_name(broker, create, name):
    code = create(broker, name)
    if code == CLIENT_INVALID_ARG:
        pytest.skip("client refused the name itself")
    assert code == w.INVALID_TOPIC_EXCEPTION
    md = clients.admin(broker).list_topics(timeout=10)
    assert name not in md.topics


def test_longest_valid_name_accepted(broker):
    name = "a.b_c-" + "x" * 243
    assert len(name) == 249
    assert kp_create(broker, name) == 0
    assert clients.topic_partitions(broker, name) == [0]


@pytest.mark.parametrize("partitions", [0, -2])
def test_invalid_partitions(broker, partitions):
    # kafka-python sends any count; librdkafka refuses -2 itself, so confluent
    # only covers 0.
    assert kp_create(broker, "t-parts", partitions=partitions) == INVALID_PARTITIONS
    if partitions == 0:
        assert ck_create(broker, "t-parts", partitions=0) == INVALID_PARTITIONS
    assert clients.topic_partitions(broker, "t-parts") is None


def test_replication_factor_above_broker_count(broker, create):
    assert create(broker, "t-rf3", rf=3) == INVALID_REPLICATION_FACTOR
    assert clients.topic_partitions(broker, "t-rf3") is None


def test_validate_only_creates_nothing(broker, create):
    assert create(broker, "t-validate", partitions=3, validate_only=True) == 0
    assert clients.topic_partitions(broker, "t-validate") is None
    # ... but still runs the checks.
    assert create(broker, "t-rf", rf=3, validate_only=True) == INVALID_REPLICATION_FACTOR
    assert create(broker, "bad name!", validate_only=True) == w.INVALID_TOPIC_EXCEPTION
    assert create(broker, "t-validate", partitions=3) == 0
    assert create(broker, "t-validate", validate_only=True) == TOPIC_ALREADY_EXISTS


@pytest.mark.parametrize("config", [{"no.such.config": "1"}, {"retention.ms": "soon"}],
                         ids=["unknown-name", "bad-value"])
def test_invalid_topic_config(broker, create, config):
    assert create(broker, "t-badconf", config=config) == INVALID_CONFIG
    assert clients.topic_partitions(broker, "t-badconf") is None


def test_config_overrides_are_kept(broker):
    overrides = {"retention.ms": "3600000", "cleanup.policy": "delete",
                 "max.message.bytes": "200000"}
    assert ck_create(broker, "t-conf", config=overrides) == 0
    res = ConfigResource(ResourceType.TOPIC, "t-conf")
    entries = clients.admin(broker).describe_configs([res], request_timeout=10)[res].result(timeout=15)
    for k, v in overrides.items():
        assert entries[k].value == v, k
    # A config nobody set reports Kafka's default.
    assert entries["segment.bytes"].value == "1073741824"


def test_delete_topic(broker):
    clients.create_topic(broker, "t-del", partitions=2)
    clients.produce(broker, "t-del", [dict(value=b"old", partition=0)] * 5)
    fs = clients.admin(broker).delete_topics(["t-del"], operation_timeout=10, request_timeout=15)
    fs["t-del"].result(timeout=20)
    assert clients.topic_partitions(broker, "t-del") is None
    # The name is free again and the new topic starts empty.
    clients.create_topic(broker, "t-del", partitions=1)
    assert clients.watermarks(broker, "t-del") == (0, 0)
    acked = clients.produce(broker, "t-del", [dict(value=b"new")])
    assert acked[0].offset == 0
    assert [r.value for r in clients.consume(broker, "t-del")] == [b"new"]


def test_delete_unknown_topic(broker):
    fs = clients.admin(broker).delete_topics(["t-nope"], operation_timeout=10, request_timeout=15)
    with pytest.raises(KafkaException) as e:
        fs["t-nope"].result(timeout=20)
    assert e.value.args[0].code() == w.UNKNOWN_TOPIC_OR_PARTITION


def test_kafka_python_delete_by_name_and_by_id(broker):
    clients.create_topic(broker, "t-kp-name")
    clients.create_topic(broker, "t-kp-id")
    a = kp_admin(broker)
    try:
        res = a.delete_topics(["t-kp-name"], raise_errors=False)
        assert [t["error_code"] for t in res["topics"]] == [0]
        (desc,) = a.describe_topics(["t-kp-id"])
        topic_id = uuid.UUID(str(desc.get("topic_id")))  # Metadata v10+ (KIP-516)
        assert topic_id.int != 0, "topics get UUID ids"
        res = a.delete_topics([topic_id], raise_errors=False)
        assert [t["error_code"] for t in res["topics"]] == [0]
        res = a.delete_topics([uuid.uuid4()], raise_errors=False)
        assert res["topics"][0]["error_code"] != 0  # UNKNOWN_TOPIC_ID (100)
    finally:
        a.close()
    md = clients.admin(broker).list_topics(timeout=10)
    assert "t-kp-name" not in md.topics and "t-kp-id" not in md.topics
