"""Bad input over raw sockets, each followed by normal service for real clients.

Design invariant 7: bad input gets a precise Kafka error code or a closed
connection, never a panic, a corrupt append, or harm to other clients.
Kafka's behaviour, which these tests hold the broker to:
- a size prefix that is negative or above socket.request.max.bytes closes the
  connection before any of the body is read (Kafka's NetworkReceive);
- an unparsable header, an unknown API key, or an unknown version of an API
  other than ApiVersions closes the connection;
- ApiVersions with a version the broker does not know is answered in the v0
  format with UNSUPPORTED_VERSION (35) and ApiVersions' own range (KIP-511);
- Produce v3+ accepts only magic v2 batches (INVALID_RECORD, 87); a CRC
  mismatch is CORRUPT_MESSAGE (2); inconsistent lengths or counts are
  CORRUPT_MESSAGE or INVALID_RECORD; nothing of a refused batch is appended;
- responses on one connection come back in request order.
"""

import resource
import time

import pytest

import clients
import kafkawire as w
from kafkawire import frame, i16, i32


@pytest.fixture
def topic(broker):
    clients.create_topic(broker, "raw")
    return "raw"


def closes(broker, payload, timeout=5.0):
    s = w.connect(broker.port)
    with s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return True
        return w.wait_closed(s, timeout)


# --- framing ------------------------------------------------------------------
GARBAGE = {
    "http-request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "tls-client-hello": bytes.fromhex("160301020001000200030300") + b"\x00" * 40,
    "unparsable-header": frame(b"\xff\xff"),
    "zero-length-frame": i32(0),
    "header-only-client-id-overrun": frame(i16(18) + i16(0) + i32(1) + i16(500) + b"abc"),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_closes_connection(broker, name):
    assert closes(broker, GARBAGE[name]), "connection should be closed"
    clients.assert_healthy(broker)


@pytest.mark.parametrize("prefix", [-1, -(2 ** 31), 2 ** 31 - 1],
                         ids=["minus-one", "int-min", "2GiB"])
def test_bad_length_prefix(broker, prefix):
    rss_before = broker.rss_bytes()
    # Send a little of the "body" too: the broker must not wait for the rest.
    assert closes(broker, i32(prefix) + b"\x00" * 1000)
    assert broker.rss_bytes() < rss_before + (64 << 20), "no buffer sized from the prefix"
    clients.assert_healthy(broker)


def test_request_above_socket_request_max_bytes(start_broker):
    broker = start_broker({"socket.request.max.bytes": str(1 << 20)})
    header = w.request_header_v1(w.PRODUCE, 3, 1)
    started = time.monotonic()
    assert closes(broker, i32(2 << 20) + header + b"\x00" * 4096)
    assert time.monotonic() - started < 5, "refused without waiting for the 2 MiB body"
    # Just under the limit is still served.
    clients.create_topic(broker, "near-limit")
    s = w.connect(broker.port)
    with s:
        batch = w.record_batch([(b"k", b"x" * 900_000, [])])
        assert w.produce(s, 3, 2, "near-limit", 0, batch) == (0, 0)
    clients.assert_healthy(broker)


def test_truncated_request_then_close(broker):
    for cut in (2, 10, 30):
        req = frame(w.request_header_v1(w.METADATA, 4, 1) + w.metadata_v4_body(None, False))
        s = w.connect(broker.port)
        s.sendall(req[:cut])
        s.close()
    # A truncated request on a connection that stays open must not block others.
    hold = w.connect(broker.port)
    hold.sendall(frame(b"\x00" * 100)[:50])
    try:
        clients.assert_healthy(broker)
    finally:
        hold.close()


@pytest.mark.parametrize("api_key,version", [(9999, 0), (-5, 0), (w.METADATA, 999)],
                         ids=["unknown-key", "negative-key", "unknown-metadata-version"])
def test_unknown_api_key_or_version(broker, api_key, version):
    s = w.connect(broker.port)
    with s:
        s.sendall(frame(w.request_header_v1(api_key, version, 42) + b"\x00" * 8))
        try:
            s.settimeout(5)
            resp = w.recv_frame(s)
        except (ConnectionError, OSError):
            resp = None  # closed: what Kafka does
        if resp is not None:
            assert w.Reader(resp).i32() == 42, "an answer must carry the request's correlation id"
    clients.assert_healthy(broker)


def test_api_versions_unsupported_version_kip511(broker):
    s = w.connect(broker.port)
    with s:
        r = w.roundtrip(s, w.API_VERSIONS, 99, 5, w.api_versions_v3_body(), flexible_header=True)
        err, keys = w.decode_api_versions_v0(r)
        assert err == w.UNSUPPORTED_VERSION
        assert w.API_VERSIONS in keys, "the answer says which ApiVersions versions exist"
        lo, hi = keys[w.API_VERSIONS]
        assert lo == 0 and hi >= 3
        # The client retries with a version from the answer on the same connection.
        r = w.roundtrip(s, w.API_VERSIONS, hi, 6, w.api_versions_v3_body(), flexible_header=hi >= 3)
        assert w.decode_api_versions_v3(r)[0] == 0
    s = w.connect(broker.port)
    with s:
        err, keys = w.decode_api_versions_v0(w.roundtrip(s, w.API_VERSIONS, 0, 7, b""))
        assert err == 0 and w.PRODUCE in keys and w.FETCH in keys


# --- produce: good and bad batches -----------------------------------------------
@pytest.mark.parametrize("version", [3, 9])
def test_raw_produce_valid_batch(broker, topic, version):
    batch = w.record_batch([(b"k1", b"v1", [(b"h", b"x")]), (None, b"v2", [])],
                           base_timestamp=1_700_000_000_000)
    s = w.connect(broker.port)
    with s:
        assert w.produce(s, version, 1, topic, 0, batch) == (0, 0)
        assert w.produce(s, version, 2, topic, 0, batch) == (0, 2), "base offset continues"
    got = clients.consume(broker, topic, count=4)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got[:2]] == [
        (0, b"k1", b"v1", [("h", b"x")], 1_700_000_000_000),
        (1, None, b"v2", [], 1_700_000_000_001)]
    assert clients.watermarks(broker, topic) == (0, 4)


def good_records():
    return [(b"k", b"v", []), (b"k2", b"v2", [])]


BAD_BATCHES = {
    "wrong-crc": (lambda: w.record_batch(good_records(), crc=0xDEADBEEF), {w.CORRUPT_MESSAGE}),
    "flipped-payload-bit": (
        lambda: (lambda b: b[:-3] + bytes([b[-3] ^ 0x01]) + b[-2:])(w.record_batch(good_records())),
        {w.CORRUPT_MESSAGE}),
    "magic-1-message-set": (lambda: w.legacy_message_v1(b"k", b"v"),
                            {w.INVALID_RECORD, w.CORRUPT_MESSAGE}),
    "magic-1-in-v2-layout": (lambda: w.record_batch(good_records(), magic=1),
                             {w.INVALID_RECORD, w.CORRUPT_MESSAGE}),
    "length-claims-more": (lambda: w.record_batch(good_records(), batch_length_delta=+40),
                           {w.CORRUPT_MESSAGE, w.INVALID_RECORD}),
    "length-claims-less": (lambda: w.record_batch(good_records(), batch_length_delta=-7),
                           {w.CORRUPT_MESSAGE, w.INVALID_RECORD}),
    "count-says-five": (lambda: w.record_batch(good_records(), record_count=5),
                        {w.CORRUPT_MESSAGE, w.INVALID_RECORD}),
    "last-offset-delta-lies": (lambda: w.record_batch(good_records(), last_offset_delta=9),
                               {w.CORRUPT_MESSAGE, w.INVALID_RECORD}),
    "truncated-batch": (lambda: w.record_batch(good_records())[:40],
                        {w.CORRUPT_MESSAGE, w.INVALID_RECORD}),
    "empty-records": (lambda: b"", {w.CORRUPT_MESSAGE, w.INVALID_RECORD}),
}


@pytest.mark.parametrize("version", [3, 9])
@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_raw_produce_bad_batch_is_refused(broker, topic, case, version):
    make, allowed = BAD_BATCHES[case]
    clients.produce(broker, topic, [dict(value=b"before")])
    s = w.connect(broker.port)
    with s:
        try:
            err, _ = w.produce(s, version, 1, topic, 0, make())
        except (ConnectionError, OSError):
            err = None  # a closed connection is also an acceptable refusal
        assert err is None or err in allowed, f"error code {err}, want one of {sorted(allowed)}"
    assert clients.watermarks(broker, topic) == (0, 1), "nothing appended"
    # The partition still takes good data at the next offset.
    assert clients.produce(broker, topic, [dict(value=b"after")])[0].offset == 1
    assert [r.value for r in clients.consume(broker, topic, count=2)] == [b"before", b"after"]


def test_raw_produce_unknown_partition(broker, topic):
    s = w.connect(broker.port)
    with s:
        batch = w.record_batch(good_records())
        assert w.produce(s, 3, 1, topic, 7, batch)[0] == w.UNKNOWN_TOPIC_OR_PARTITION
        assert w.produce(s, 9, 2, topic, -1, batch)[0] == w.UNKNOWN_TOPIC_OR_PARTITION
    clients.assert_healthy(broker)


# --- pipelining -----------------------------------------------------------------
def test_pipelined_requests_answered_in_order(broker, topic):
    batch = w.record_batch(good_records())
    reqs = []
    for cid in range(1, 31):
        kind = cid % 3
        if kind == 0:
            reqs.append(frame(w.request_header_v1(w.API_VERSIONS, 0, cid)))
        elif kind == 1:
            reqs.append(frame(w.request_header_v1(w.PRODUCE, 3, cid)
                              + w.produce_v3_body(topic, 0, batch)))
        else:
            reqs.append(frame(w.request_header_v1(w.METADATA, 4, cid)
                              + w.metadata_v4_body([topic], False)))
    s = w.connect(broker.port)
    with s:
        s.sendall(b"".join(reqs))  # all at once, before reading anything
        order = [w.Reader(w.recv_frame(s)).i32() for _ in reqs]
    assert order == list(range(1, 31))
    assert clients.watermarks(broker, topic) == (0, 20)


# --- many idle connections --------------------------------------------------------
def _produce_consume(broker, topic, n):
    started = time.monotonic()
    clients.produce(broker, topic, [dict(key=str(i).encode(), value=b"v" * 100) for i in range(n)],
                    acks="all")
    got = clients.consume(broker, topic, count=n, start=0)
    assert len(got) == n
    return time.monotonic() - started


def test_thousand_idle_connections_do_not_slow_service(broker):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 and hard >= 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    clients.create_topic(broker, "base")
    clients.create_topic(broker, "busy")
    baseline = _produce_consume(broker, "base", 10_000)
    idle = []
    try:
        for i in range(1000):
            s = w.connect(broker.port)
            if i % 10 == 0:
                s.sendall(i32(64)[:2])  # some are mid-frame, as slow clients are
            idle.append(s)
        loaded = _produce_consume(broker, "busy", 10_000)
        # Service is not starved by the idle sockets.
        assert loaded < 3 * baseline + 5, f"baseline {baseline:.2f}s, with 1000 idle {loaded:.2f}s"
        s = w.connect(broker.port)
        with s:
            assert w.decode_api_versions_v0(w.roundtrip(s, w.API_VERSIONS, 0, 1, b""))[0] == 0
    finally:
        for s in idle:
            s.close()
    clients.assert_healthy(broker)


def test_connection_limit_max_connections(start_broker):
    """max.connections caps open connections. Kafka (KIP-402) stops accepting
    at the cap and resumes as connections close; whether a client over the cap
    waits or is closed, the broker must serve again once below it."""
    broker = start_broker({"max.connections": "20"})
    idle = [w.connect(broker.port) for _ in range(25)]
    try:
        # Whatever happens to the ones over the cap, nothing crashes...
        time.sleep(0.3)
        assert broker.alive()
    finally:
        for s in idle:
            s.close()
    # ... and once they are gone, service is back for everyone.
    deadline = time.monotonic() + 10
    while True:
        try:
            s = w.connect(broker.port, timeout=2)
            with s:
                err, _ = w.decode_api_versions_v0(w.roundtrip(s, w.API_VERSIONS, 0, 1, b""))
            assert err == 0
            break
        except (OSError, ConnectionError):
            assert time.monotonic() < deadline, "no service after the idle connections closed"
            time.sleep(0.2)
    clients.assert_healthy(broker)
