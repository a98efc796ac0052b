"""kcat (Debian's 1.7.1 on librdkafka 2.0.2): the older-client check.

Metadata listing, produce with keys/headers/compression/NULL values, consume
with format strings, relative offsets, consumption by timestamp (`-o s@TS`,
`-o e@TS`) and offset queries by timestamp (`-Q`).
"""

import re

import pytest

import clients

BASE_TS = 1_700_000_000_000


def test_kcat_metadata_list(broker):
    clients.create_topic(broker, "kl", partitions=2)
    out = clients.kcat(broker, "-L").stdout.decode()
    assert re.search(rf"broker 1 at 127\.0\.0\.1:{broker.port}", out), out
    assert 'topic "kl" with 2 partitions' in out, out
    out = clients.kcat(broker, "-L", "-t", "kl").stdout.decode()
    assert "partition 0, leader 1" in out and "partition 1, leader 1" in out, out


def test_kcat_produce_consume_format(broker):
    clients.create_topic(broker, "kf")
    lines = b"".join(f"key{i}:value {i}\n".encode() for i in range(100))
    clients.kcat(broker, "-P", "-t", "kf", "-K:", "-H", "a=1", "-H", "b=two", input=lines)
    out = clients.kcat(broker, "-C", "-t", "kf", "-o", "beginning", "-e", "-q",
                       "-f", "%p|%o|%k|%s|%h\n").stdout.decode().splitlines()
    assert out == [f"0|{i}|key{i}|value {i}|a=1,b=two" for i in range(100)]
    # Relative offset from the end (librdkafka asks ListOffsets LATEST, then subtracts).
    out = clients.kcat(broker, "-C", "-t", "kf", "-o", "-3", "-e", "-q",
                       "-f", "%o\n").stdout.decode().split()
    assert out == ["97", "98", "99"]
    # Absolute offset and a count limit.
    out = clients.kcat(broker, "-C", "-t", "kf", "-o", "40", "-c", "2", "-q",
                       "-f", "%s\n").stdout.decode().splitlines()
    assert out == ["value 40", "value 41"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compressed_produce(broker, codec):
    clients.create_topic(broker, f"kz-{codec}")
    lines = b"".join(f"k{i}:{'payload ' * 10}{i}\n".encode() for i in range(300))
    comp = ["-z", codec] if codec != "zstd" else ["-X", "compression.codec=zstd"]
    clients.kcat(broker, "-P", "-t", f"kz-{codec}", "-K:", *comp, "-X", "linger.ms=50", input=lines)
    got = clients.consume(broker, f"kz-{codec}", count=300)
    assert [r.offset for r in got] == list(range(300))
    assert got[299].key == b"k299" and got[299].value.endswith(b" 299")
    assert len(clients.kcat_consume_json(broker, f"kz-{codec}", partition=0)) == 300


def test_kcat_null_value_tombstone(broker):
    clients.create_topic(broker, "knull")
    clients.kcat(broker, "-P", "-t", "knull", "-K:", "-Z", input=b"gone:\nhere:x\n")
    got = clients.consume(broker, "knull", count=2)
    assert [(r.key, r.value) for r in got] == [(b"gone", None), (b"here", b"x")]


def produce_timestamped(broker, topic, n=10):
    clients.create_topic(broker, topic)
    clients.produce(broker, topic, [dict(value=f"v{i}".encode(), timestamp=BASE_TS + i * 1000,
                                         partition=0) for i in range(n)],
                    **{"linger.ms": 100, "compression.type": "lz4"})


def test_kcat_consume_by_timestamp(broker):
    produce_timestamped(broker, "kts")
    out = clients.kcat(broker, "-C", "-t", "kts", "-p", "0", "-o", f"s@{BASE_TS + 4500}", "-e",
                       "-q", "-f", "%o %T\n").stdout.decode().splitlines()
    assert out == [f"{i} {BASE_TS + i * 1000}" for i in range(5, 10)]
    # End at a timestamp (exclusive).
    out = clients.kcat(broker, "-C", "-t", "kts", "-p", "0", "-o", f"s@{BASE_TS + 2000}",
                       "-o", f"e@{BASE_TS + 6000}", "-q", "-f", "%o\n",
                       timeout=30).stdout.decode().split()
    assert out == ["2", "3", "4", "5"]


def test_kcat_query_offset_by_timestamp(broker):
    produce_timestamped(broker, "kq")
    out = clients.kcat(broker, "-Q", "-t", f"kq:0:{BASE_TS + 3000}").stdout.decode()
    m = re.search(r"offset\s+(-?\d+)", out)
    assert m and int(m.group(1)) == 3, out
