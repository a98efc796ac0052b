"""Restarts on the same data directory.

Design invariant 3: a restart never loses what the flush policy says was
flushed; recovery truncates only a torn tail (detected by CRC), never valid
data. Invariant 1: offsets are dense and never change, so new appends after
a restart continue from the old log end.
- SIGTERM is a clean shutdown: exit code 0, everything acknowledged is kept.
- SIGKILL with flush.messages=1 (fsync per append; the broker default is
  log.flush.interval.messages): every
  record acknowledged with acks=all is still there, at the offset the
  acknowledgement named.
- Topics, partition counts, configs and topic ids come back from the
  metadata log; deleted topics stay deleted.
- Garbage after the last batch of a segment (a torn write) is cut off at
  start-up and the earlier batches survive.
"""

import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource, ResourceType

import clients


def wait_until(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigterm_restart_keeps_everything(start_broker):
    broker = start_broker()
    clients.create_topic(broker, "durable", partitions=3)
    n = 20_000
    acked = clients.produce(broker, "durable",
                            [dict(key=f"k{i}".encode(), value=f"v{i}".encode(),
                                  headers=[("i", str(i).encode())]) for i in range(n)],
                            acks="all", flush_timeout=90)
    marks = [clients.watermarks(broker, "durable", p) for p in range(3)]
    started = time.monotonic()
    assert broker.stop() == 0, "SIGTERM is a clean shutdown (exit code 0)"
    assert time.monotonic() - started < 10, "shutdown is prompt"
    broker.start()
    assert [clients.watermarks(broker, "durable", p) for p in range(3)] == marks
    got = clients.consume(broker, "durable", partitions=range(3), count=n, timeout=60)
    assert sorted(got) == sorted(acked)
    # New appends continue each partition's offsets.
    more = clients.produce(broker, "durable", [dict(value=b"after", partition=p) for p in range(3)])
    assert sorted((r.partition, r.offset) for r in more) == [(p, marks[p][1]) for p in range(3)]


def test_ctrl_c_is_a_clean_shutdown(start_broker):
    broker = start_broker()
    clients.create_topic(broker, "sigint")
    clients.produce(broker, "sigint", [dict(value=f"v{i}".encode()) for i in range(100)])
    assert broker.stop(sig=signal.SIGINT) == 0, "Ctrl-C (SIGINT) exits cleanly"
    broker.start()
    assert clients.watermarks(broker, "sigint") == (0, 100)
    assert clients.produce(broker, "sigint", [dict(value=b"v100")])[0].offset == 100


def test_metadata_survives_restart(start_broker):
    broker = start_broker()
    clients.create_topic(broker, "keep", partitions=4, config={"retention.ms": "123456"})
    clients.create_topic(broker, "gone")
    a = clients.admin(broker)
    a.delete_topics(["gone"], operation_timeout=10)["gone"].result(timeout=15)

    def topic_id(name):
        from confluent_kafka import TopicCollection
        return a.describe_topics(TopicCollection([name]))[name].result(timeout=15).topic_id

    before = str(topic_id("keep"))
    broker.restart()
    a = clients.admin(broker)
    md = a.list_topics(timeout=10)
    assert "gone" not in md.topics, "a deleted topic stays deleted"
    assert sorted(md.topics["keep"].partitions) == [0, 1, 2, 3]
    assert str(topic_id("keep")) == before, "the topic id is stable"
    res = ConfigResource(ResourceType.TOPIC, "keep")
    entries = a.describe_configs([res])[res].result(timeout=15)
    assert entries["retention.ms"].value == "123456"


@pytest.mark.parametrize("where", ["broker", "topic"])
def test_sigkill_with_flush_messages_1_loses_nothing_acknowledged(start_broker, where):
    # Kafka's names: log.flush.interval.messages for the broker default,
    # flush.messages as the topic override.
    if where == "broker":
        broker = start_broker({"log.flush.interval.messages": "1"})
        clients.create_topic(broker, "crash", partitions=2)
    else:
        broker = start_broker()
        clients.create_topic(broker, "crash", partitions=2, config={"flush.messages": "1"})
    acked, errors = [], []
    p = Producer(clients.ck_conf(broker, **{"acks": "all", "linger.ms": 1,
                                            "message.timeout.ms": 5000, "retries": 0}))

    def on_delivery(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            errors.append(err)

    stop = threading.Event()
    sent = [0]

    def pump():
        i = 0
        while not stop.is_set():
            try:
                p.produce("crash", value=f"value-{i}".encode(), key=str(i % 7).encode(),
                          on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 100 == 0 else 0)
        sent[0] = i

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(acked) >= 3000, timeout=60, what="3000 acknowledged records")
        broker.kill()  # mid-stream: the producer is still sending
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(10)
    # Drop whatever was still unacknowledged, so nothing is sent after the restart.
    p.purge()
    p.flush(5)
    del p
    assert acked, "nothing was acknowledged"
    broker.start()
    by_pos = {(part, off): v for part, off, v in acked}
    marks = {part: clients.watermarks(broker, "crash", part)[1] for part in (0, 1)}
    got = clients.consume(broker, "crash", partitions=(0, 1), timeout=60)
    stored = {(r.partition, r.offset): r.value for r in got}
    missing = [pos for pos in by_pos if pos not in stored]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
    changed = [pos for pos, v in by_pos.items() if stored[pos] != v]
    assert not changed, f"acknowledged records changed at {changed[:5]}"
    for part in (0, 1):
        offsets = sorted(off for pp, off in stored if pp == part)
        assert offsets == list(range(marks[part])), f"partition {part}: offsets not dense"
    more = clients.produce(broker, "crash", [dict(value=b"after", partition=part) for part in (0, 1)])
    assert sorted((r.partition, r.offset) for r in more) == [(0, marks[0]), (1, marks[1])]


def _last_segment(data_dir: Path, topic, partition):
    d = data_dir / f"{topic}-{partition}"
    segs = sorted(d.glob("*.log"))
    assert segs, f"no segment files in {d} (Kafka's layout: <log.dir>/<topic>-<partition>/)"
    return segs[-1]


def test_torn_tail_is_truncated_on_restart(start_broker):
    broker = start_broker({"log.flush.interval.messages": "1"})
    clients.create_topic(broker, "torn")
    clients.produce(broker, "torn", [dict(value=f"v{i}".encode()) for i in range(10)],
                    **{"linger.ms": 0, "batch.num.messages": 1})
    broker.kill()  # unclean: start-up must check the tail, not trust a clean-shutdown marker
    seg = _last_segment(broker.data_dir, "torn", 0)
    size = seg.stat().st_size
    # A torn write: half a batch header of garbage after the last batch.
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x01\x00\xde\xad\xbe\xef" * 3)
    broker.start()
    assert clients.watermarks(broker, "torn") == (0, 10)
    assert [r.value for r in clients.consume(broker, "torn")] == [f"v{i}".encode() for i in range(10)]
    assert clients.produce(broker, "torn", [dict(value=b"v10")])[0].offset == 10
    assert clients.consume(broker, "torn", count=11)[-1].value == b"v10"
    # Now cut the final batch in half: only that batch is lost.
    broker.kill()
    seg = _last_segment(broker.data_dir, "torn", 0)
    assert seg.stat().st_size >= size
    with open(seg, "r+b") as f:
        f.truncate(seg.stat().st_size - 20)
    broker.start()
    assert clients.watermarks(broker, "torn") == (0, 10), "only the torn batch (offset 10) is lost"
    assert clients.produce(broker, "torn", [dict(value=b"again")])[0].offset == 10


def _segment_checks(broker, n):
    assert clients.watermarks(broker, "seg") == (0, n)
    got = clients.consume(broker, "seg", start=n // 2 + 7)
    assert [r.offset for r in got] == list(range(n // 2 + 7, n))
    assert got[0].value.startswith(f"v{n // 2 + 7}-".encode())
    c = clients.consumer(broker)
    try:
        for target in (0, n // 3, n - 2):
            (tp,) = c.offsets_for_times(
                [clients.TopicPartition("seg", 0, SEG_BASE_TS + target * 10 + 5)], timeout=10)
            assert tp.offset == target + 1, f"by timestamp across segments: {target}"
    finally:
        c.close()


SEG_BASE_TS = 1_700_000_000_000


def test_segments_roll_and_indexes_are_rebuilt(start_broker):
    """log.segment.bytes rolls segments (Kafka's <20-digit base offset>.log
    names); reads by offset and by timestamp work across segments, and
    still work after the .index/.timeindex files are deleted or damaged
    while the broker is down (they are rebuilt from the log)."""
    broker = start_broker({"log.segment.bytes": str(1 << 20)})
    clients.create_topic(broker, "seg")
    n = 3000
    clients.produce(broker, "seg", [dict(value=f"v{i}-".encode() + b"x" * 1000,
                                         timestamp=SEG_BASE_TS + i * 10, partition=0)
                                    for i in range(n)], **{"linger.ms": 20})
    part_dir = broker.data_dir / "seg-0"
    logs = sorted(part_dir.glob("*.log"))
    assert len(logs) >= 3, f"~3 MB in 1 MiB segments, got {[p.name for p in logs]}"
    assert logs[0].name == "00000000000000000000.log"
    assert all(len(p.stem) == 20 and p.stem.isdigit() for p in logs)
    _segment_checks(broker, n)

    assert broker.stop() == 0
    for p in list(part_dir.glob("*.index")) + list(part_dir.glob("*.timeindex")):
        p.unlink()
    broker.start()
    _segment_checks(broker, n)

    broker.kill()
    for p in list(part_dir.glob("*.index")) + list(part_dir.glob("*.timeindex")):
        with open(p, "r+b") as f:  # damaged: garbage in the first entries
            f.write(b"\xff" * 64)
    broker.start()
    _segment_checks(broker, n)
    assert clients.produce(broker, "seg", [dict(value=b"next")])[0].offset == n
