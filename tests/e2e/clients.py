"""Thin helpers over the three real clients the suite drives.

confluent-kafka (librdkafka 2.16), kafka-python (pure Python) and kcat
(Debian's, librdkafka 2.0.2). Consumers always use manual assignment with
explicit start offsets: consumer groups are not part of this broker yet, and
no helper ever commits offsets.

Every wait here is bounded, so a broker that stops answering fails the test
with what was received so far instead of hanging the suite.
"""

import functools
import json
import logging
import subprocess
import time
from collections import namedtuple

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

# One consumed or acknowledged record, the same shape for every client.
# headers: list of (str, bytes); timestamp: ms since the epoch.
Record = namedtuple("Record", "partition offset key value headers timestamp")


# --- confluent-kafka ---------------------------------------------------------
# librdkafka's own log lines go to Python logging, so pytest shows them only
# with a failing test (they are delivered when the client is polled).
RDKAFKA_LOG = logging.getLogger("rdkafka")


def ck_conf(broker, **extra):
    conf = {"bootstrap.servers": broker.bootstrap,
            "socket.connection.setup.timeout.ms": 10000,
            "reconnect.backoff.max.ms": 1000,
            "logger": RDKAFKA_LOG}
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return conf


def admin(broker):
    """The broker's AdminClient, created once and kept with the Broker object.

    Kept because a result future fails with _DESTROY if its AdminClient is
    garbage-collected before the answer arrives."""
    a = getattr(broker, "_admin_client", None)
    if a is None:
        a = broker._admin_client = AdminClient(ck_conf(broker))
    return a


def create_topic(broker, name, partitions=1, config=None, replication_factor=1):
    fs = admin(broker).create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor,
                  config=config or {})],
        operation_timeout=10, request_timeout=15)
    fs[name].result(timeout=20)
    return name


def topic_partitions(broker, name, timeout=10):
    md = admin(broker).list_topics(timeout=timeout)
    t = md.topics.get(name)
    return None if t is None or t.error is not None else sorted(t.partitions)


def _headers(h):
    return [(k, v) for k, v in (h or [])]


def produce(broker, topic, messages, flush_timeout=60, **conf):
    """Produce dicts of confluent `produce()` arguments; return the acked Records.

    Fails if any delivery report carries an error."""
    p = Producer(ck_conf(broker, **{"linger.ms": 5, **conf}))
    acked, errors = [], []

    def on_delivery(sent_headers, err, msg):
        # librdkafka's delivery reports carry no headers: take the sent ones.
        if err is not None:
            errors.append(err)
        else:
            acked.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value(),
                                _headers(sent_headers), msg.timestamp()[1]))

    for m in messages:
        cb = functools.partial(on_delivery, m.get("headers"))
        while True:
            try:
                p.produce(topic, on_delivery=cb, **m)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(flush_timeout)
    assert left == 0, f"{left} messages not delivered within {flush_timeout}s; errors: {errors[:5]}"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    return acked


def produce_one_expect_error(broker, topic, value, key=None, timeout=30, **conf):
    """Produce one message; return the KafkaError of its delivery report (or None)."""
    p = Producer(ck_conf(broker, **{"linger.ms": 0, **conf}))
    result = []
    p.produce(topic, value=value, key=key, on_delivery=lambda err, msg: result.append(err))
    left = p.flush(timeout)
    assert left == 0 and result, "no delivery report"
    return result[0]


def consumer(broker, **conf):
    return Consumer(ck_conf(broker, **{"group.id": "e2e-manual-assign",
                                       "enable.auto.commit": False,
                                       "enable.auto.offset.store": False,
                                       **conf}))


def consume(broker, topic, partitions=(0,), count=None, timeout=30, start=OFFSET_BEGINNING,
            **conf):
    """Read records with manual assignment from `start` on every partition.

    Stops after `count` records, or (count=None) when every partition reports
    end-of-partition. Partition errors raise; returns Records in arrival order."""
    c = consumer(broker, **{"enable.partition.eof": True, **conf})
    c.assign([TopicPartition(topic, p, start) for p in partitions])
    out, eof, client_errors = [], set(), []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if count is not None and len(out) >= count:
                break
            if count is None and eof >= set(partitions):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"consume({topic}): {len(out)} records (wanted {count}), eof={sorted(eof)} "
                    f"after {timeout}s; client errors: {client_errors[:5]}")
            for m in c.consume(num_messages=2000, timeout=0.2):
                err = m.error()
                if err is None:
                    eof.discard(m.partition())
                    out.append(Record(m.partition(), m.offset(), m.key(), m.value(),
                                      _headers(m.headers()), m.timestamp()[1]))
                elif err.code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                elif m.topic() is None:
                    client_errors.append(err)  # e.g. a broker connection went down
                else:
                    raise AssertionError(f"consume({topic} [{m.partition()}]): {err}")
    finally:
        c.close()
    return out


def watermarks(broker, topic, partition=0, timeout=10):
    c = consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    finally:
        c.close()


def assert_healthy(broker, topic="health-check"):
    """A normal client can still create a topic, produce and read back."""
    if topic_partitions(broker, topic) is None:
        create_topic(broker, topic)
    before = watermarks(broker, topic)[1]
    acked = produce(broker, topic, [dict(key=b"hk", value=b"still-alive")], flush_timeout=20)
    assert acked[0].offset == before
    got = consume(broker, topic, count=before + 1, timeout=20)
    assert got[-1].value == b"still-alive"


def advertised_apis(broker):
    """{api_key: (min, max)} from a raw ApiVersions v0 request."""
    import kafkawire as w
    s = w.connect(broker.port)
    with s:
        err, keys = w.decode_api_versions_v0(w.roundtrip(s, w.API_VERSIONS, 0, 1, b""))
    assert err == 0
    return keys


# --- kafka-python ------------------------------------------------------------
def kp_producer(broker, **kw):
    """kafka-python producer. Idempotence (kafka-python 3's default, KIP-679)
    needs InitProducerId; it is off here unless asked for, so these helpers
    test produce/fetch alone. test_kafka_python_default_producer covers the
    client's defaults."""
    from kafka import KafkaProducer
    kw.setdefault("enable_idempotence", False)
    return KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000, **kw)


def kp_produce(broker, topic, messages, **kw):
    """messages: dicts with key/value/headers/timestamp_ms/partition -> acked Records."""
    p = kp_producer(broker, **kw)
    try:
        futures = [(m, p.send(topic, **m)) for m in messages]
        p.flush(timeout=30)
        acked = []
        for m, f in futures:
            md = f.get(timeout=30)
            acked.append(Record(md.partition, md.offset, m.get("key"), m.get("value"),
                                list(m.get("headers") or []), md.timestamp))
        return acked
    finally:
        p.close(timeout=5)


def kp_consumer(broker, **kw):
    from kafka import KafkaConsumer
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                         enable_auto_commit=False, request_timeout_ms=15000, **kw)


def kp_consume(broker, topic, partitions=(0,), count=None, timeout=30, offsets=None, **kw):
    """Read `count` records with kafka-python, from the beginning or `offsets`."""
    from kafka import TopicPartition as KTP
    c = kp_consumer(broker, **kw)
    try:
        tps = [KTP(topic, p) for p in partitions]
        c.assign(tps)
        if offsets is None:
            c.seek_to_beginning(*tps)
        else:
            for tp in tps:
                c.seek(tp, offsets[tp.partition])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"kafka-python consume({topic}): {len(out)} of {count} records")
            for tp, msgs in c.poll(timeout_ms=200).items():
                for m in msgs:
                    out.append(Record(m.partition, m.offset, m.key, m.value,
                                      [(k, v) for k, v in (m.headers or [])], m.timestamp))
        return out
    finally:
        c.close(autocommit=False)


# --- kcat --------------------------------------------------------------------
def kcat(broker, *args, input=None, timeout=60, check=True):
    cmd = ["kcat", "-b", broker.bootstrap, "-X", "socket.connection.setup.timeout.ms=10000",
           *args]
    r = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}\nstderr: "
                             f"{r.stderr.decode(errors='replace')[-3000:]}")
    return r


def kcat_consume_json(broker, topic, *extra, partition=None, offset="beginning", timeout=60):
    """kcat -C -e -J: every record until the end of the partition(s)."""
    args = ["-C", "-t", topic, "-o", str(offset), "-e", "-J", "-q"]
    if partition is not None:
        args += ["-p", str(partition)]
    r = kcat(broker, *args, *extra, timeout=timeout)
    out = []
    for line in r.stdout.decode().splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        h = j.get("headers") or []
        if isinstance(h, dict):
            h = list(h.items())
        elif h and isinstance(h[0], str):  # kcat prints ["k1","v1","k2","v2"]
            h = list(zip(h[0::2], h[1::2]))
        elif h and isinstance(h[0], dict):
            h = [(next(iter(d)), next(iter(d.values()))) for d in h]
        out.append(Record(j["partition"], j["offset"],
                          None if j.get("key") is None else j["key"].encode(),
                          None if j.get("payload") is None else j["payload"].encode(),
                          [(k, None if v is None else v.encode()) for k, v in h],
                          j.get("ts")))
    return out
