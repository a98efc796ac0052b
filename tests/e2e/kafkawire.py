"""Hand-made Kafka wire protocol pieces for raw-socket tests.

Real clients never send malformed bytes, so the bad-input tests build their
requests here with `struct`. Only what those tests need is implemented:
request/response framing, header v1/v2, ApiVersions v0/v3, Metadata v4,
Produce v3 (classic) and v9 (flexible), Fetch v4, and magic v2 record batches
(with the CRC32C Kafka uses) plus a legacy magic v1 message.

References: https://kafka.apache.org/protocol (framing, headers, primitive
types), KIP-482 (tagged fields / flexible versions), KIP-98 (record batch v2
layout), KIP-511 (ApiVersions fallback).
"""

import socket
import struct
import time

# --- API keys and error codes (Kafka's numbering) ---------------------------
PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
API_VERSIONS, CREATE_TOPICS, DELETE_TOPICS = 18, 19, 20

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
INVALID_REQUIRED_ACKS = 21
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
INVALID_RECORD = 87


# --- CRC32C (Castagnoli), table driven --------------------------------------
def _crc32c_table():
    poly = 0x82F63B78  # reversed 0x1EDC6F41
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --- primitive encoders ------------------------------------------------------
def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v):
    """Signed zig-zag varint (record fields)."""
    return uvarint((v << 1) ^ (v >> 63))


def string(s):
    """STRING / NULLABLE_STRING (int16 length)."""
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def compact_string(s):
    """COMPACT_STRING / COMPACT_NULLABLE_STRING (uvarint length + 1)."""
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def nbytes(b):
    """BYTES / NULLABLE_BYTES / RECORDS (int32 length)."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def compact_bytes(b):
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + b


def array(items):
    items = list(items)
    return i32(len(items)) + b"".join(items)


def compact_array(items):
    items = list(items)
    return uvarint(len(items) + 1) + b"".join(items)


NO_TAGS = uvarint(0)


# --- decoder -----------------------------------------------------------------
class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError(f"short read: need {n} at {self.pos}, have {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self._take(1))[0]

    def i16(self):
        return struct.unpack(">h", self._take(2))[0]

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def u32(self):
        return struct.unpack(">I", self._take(4))[0]

    def i64(self):
        return struct.unpack(">q", self._take(8))[0]

    def uvarint(self):
        shift = 0
        result = 0
        while True:
            b = self._take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def varint(self):
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def string(self):
        n = self.i16()
        return None if n < 0 else self._take(n).decode()

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self._take(n - 1).decode()

    def nbytes(self):
        n = self.i32()
        return None if n < 0 else self._take(n)

    def compact_bytes(self):
        n = self.uvarint()
        return None if n == 0 else self._take(n - 1)

    def array(self, item):
        n = self.i32()
        return None if n < 0 else [item(self) for _ in range(n)]

    def compact_array(self, item):
        n = self.uvarint()
        return None if n == 0 else [item(self) for _ in range(n - 1)]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())

    def remaining(self):
        return len(self.data) - self.pos


# --- framing -----------------------------------------------------------------
def request_header_v1(api_key, api_version, correlation_id, client_id="raw-test"):
    return i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)


def request_header_v2(api_key, api_version, correlation_id, client_id="raw-test"):
    return request_header_v1(api_key, api_version, correlation_id, client_id) + NO_TAGS


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock) -> bytes:
    (n,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= n < 64 << 20, f"implausible response size {n}"
    return recv_exact(sock, n)


def wait_closed(sock, timeout=5.0):
    """True if the peer closes (EOF or reset) within `timeout` seconds.

    Any bytes the peer sends before closing are drained and ignored."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True


def roundtrip(sock, api_key, api_version, correlation_id, body, flexible_header=False):
    """Send one request, return the response payload after the correlation id."""
    hdr = (request_header_v2 if flexible_header else request_header_v1)(
        api_key, api_version, correlation_id)
    sock.sendall(frame(hdr + body))
    resp = recv_frame(sock)
    r = Reader(resp)
    got = r.i32()
    assert got == correlation_id, f"correlation id {got} != {correlation_id}"
    return r


# --- ApiVersions ---------------------------------------------------------------
def api_versions_v0_body():
    return b""


def api_versions_v3_body(name="raw-test", version="0.1"):
    return compact_string(name) + compact_string(version) + NO_TAGS


def decode_api_versions_v0(r: Reader):
    """v0 body: error_code, [api_key, min, max]. Used by the KIP-511 fallback."""
    error = r.i16()
    keys = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
    return error, {k: (lo, hi) for k, lo, hi in (keys or [])}


def decode_api_versions_v3(r: Reader):
    # The ApiVersions response header is always v0 (no tag buffer), KIP-511.
    error = r.i16()

    def key(r):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        r.tags()
        return k, lo, hi

    keys = r.compact_array(key)
    throttle = r.i32()
    r.tags()
    return error, {k: (lo, hi) for k, lo, hi in (keys or [])}, throttle


# --- Metadata v4 -------------------------------------------------------------
def metadata_v4_body(topics, allow_auto_topic_creation):
    t = i32(-1) if topics is None else array(string(n) for n in topics)
    return t + i8(1 if allow_auto_topic_creation else 0)


def decode_metadata_v4(r: Reader):
    r.i32()  # throttle
    brokers = r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))
    cluster_id = r.string()
    controller = r.i32()

    def partition(r):
        return dict(error=r.i16(), index=r.i32(), leader=r.i32(),
                    replicas=r.array(Reader.i32), isr=r.array(Reader.i32))

    def topic(r):
        return dict(error=r.i16(), name=r.string(), internal=r.i8(),
                    partitions=r.array(partition))

    topics = r.array(topic)
    return dict(brokers=brokers, cluster_id=cluster_id, controller=controller,
                topics={t["name"]: t for t in topics})


# --- record batches ----------------------------------------------------------
def encode_record(offset_delta, timestamp_delta, key, value, headers=()):
    body = (i8(0) + varint(timestamp_delta) + varint(offset_delta)
            + (varint(-1) if key is None else varint(len(key)) + key)
            + (varint(-1) if value is None else varint(len(value)) + value)
            + varint(len(headers))
            + b"".join(varint(len(hk)) + hk + varint(len(hv)) + hv for hk, hv in headers))
    return varint(len(body)) + body


def record_batch(records, base_timestamp=None, base_offset=0, attributes=0,
                 record_count=None, last_offset_delta=None, magic=2,
                 crc=None, batch_length_delta=0):
    """A magic v2 record batch (KIP-98 layout).

    `records` is a list of (key, value, headers) tuples; timestamps are
    base_timestamp + index. The keyword arguments exist to break the batch on
    purpose: record_count/last_offset_delta lie about the contents, crc
    overrides the computed CRC, batch_length_delta skews the length field.
    """
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    encoded = b"".join(encode_record(i, i, k, v, h) for i, (k, v, h) in enumerate(records))
    n = len(records) if record_count is None else record_count
    lod = len(records) - 1 if last_offset_delta is None else last_offset_delta
    after_crc = (i16(attributes) + i32(lod) + i64(base_timestamp)
                 + i64(base_timestamp + max(len(records) - 1, 0))
                 + i64(-1) + i16(-1) + i32(-1)  # producer id, epoch, base sequence
                 + i32(n) + encoded)
    c = crc32c(after_crc) if crc is None else crc
    after_length = i32(-1) + i8(magic) + struct.pack(">I", c) + after_crc
    return i64(base_offset) + i32(len(after_length) + batch_length_delta) + after_length


def legacy_message_v1(key, value, timestamp=None, offset=0):
    """One message of the pre-0.11 message set format, magic 1 (KIP-32)."""
    import zlib

    if timestamp is None:
        timestamp = int(time.time() * 1000)

    def b(x):
        return i32(-1) if x is None else i32(len(x)) + x

    body = i8(1) + i8(0) + i64(timestamp) + b(key) + b(value)
    msg = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF) + body
    return i64(offset) + i32(len(msg)) + msg


def decode_record_batches(data: bytes):
    """Decode uncompressed v2 batches into [(offset, timestamp, key, value, headers)]."""
    out = []
    r = Reader(data)
    while r.remaining() >= 61:
        base_offset = r.i64()
        length = r.i32()
        if r.remaining() < length:
            break  # partial batch at the end of a fetch response
        batch = Reader(r._take(length))
        batch.i32()  # leader epoch
        magic = batch.i8()
        assert magic == 2, f"magic {magic}"
        crc = batch.u32()
        assert crc == crc32c(batch.data[batch.pos:]), "bad CRC in fetched batch"
        attrs = batch.i16()
        assert attrs & 0x7 == 0, "compressed batch; decode with a real client"
        batch.i32()
        base_ts = batch.i64()
        batch.i64()
        batch.i64(), batch.i16(), batch.i32()
        for _ in range(batch.i32()):
            batch.varint()  # record length
            batch.i8()
            ts_delta = batch.varint()
            off_delta = batch.varint()
            kl = batch.varint()
            key = None if kl < 0 else batch._take(kl)
            vl = batch.varint()
            value = None if vl < 0 else batch._take(vl)
            headers = []
            for _ in range(batch.varint()):
                hk = batch._take(batch.varint())
                hl = batch.varint()
                headers.append((hk, None if hl < 0 else batch._take(hl)))
            out.append((base_offset + off_delta, base_ts + ts_delta, key, value, headers))
    return out


# --- Produce -------------------------------------------------------------------
def produce_v3_body(topic, partition, records, acks=-1, timeout_ms=10000):
    return (string(None) + i16(acks) + i32(timeout_ms)
            + array([string(topic) + array([i32(partition) + nbytes(records)])]))


def decode_produce_v3(r: Reader):
    """-> {(topic, partition): (error_code, base_offset)}"""
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            idx, err, base, _log_append = r.i32(), r.i16(), r.i64(), r.i64()
            out[(name, idx)] = (err, base)
    r.i32()  # throttle
    return out


def produce_v9_body(topic, partition, records, acks=-1, timeout_ms=10000):
    part = i32(partition) + compact_bytes(records) + NO_TAGS
    top = compact_string(topic) + compact_array([part]) + NO_TAGS
    return compact_string(None) + i16(acks) + i32(timeout_ms) + compact_array([top]) + NO_TAGS


def decode_produce_v9(r: Reader):
    r.tags()  # response header v1
    out = {}
    for _ in range(r.uvarint() - 1):
        name = r.compact_string()
        for _ in range(r.uvarint() - 1):
            idx, err, base = r.i32(), r.i16(), r.i64()
            r.i64(), r.i64()  # log append time, log start offset
            for _ in range(r.uvarint() - 1):  # record_errors
                r.i32(), r.compact_string(), r.tags()
            msg = r.compact_string()
            r.tags()
            out[(name, idx)] = (err, base, msg)
        r.tags()
    r.i32()
    r.tags()
    return {k: v[:2] for k, v in out.items()}


def produce(sock, version, correlation_id, topic, partition, records, acks=-1):
    """Raw Produce v3 or v9; returns (error_code, base_offset) of the one partition.

    With acks=0 Kafka sends no response at all, so this returns None."""
    if version == 3:
        body, flexible, decode = produce_v3_body(topic, partition, records, acks), False, decode_produce_v3
    elif version == 9:
        body, flexible, decode = produce_v9_body(topic, partition, records, acks), True, decode_produce_v9
    else:
        raise ValueError(version)
    hdr = (request_header_v2 if flexible else request_header_v1)(PRODUCE, version, correlation_id)
    sock.sendall(frame(hdr + body))
    if acks == 0:
        return None
    resp = Reader(recv_frame(sock))
    got = resp.i32()
    assert got == correlation_id, f"correlation id {got} != {correlation_id}"
    return decode(resp)[(topic, partition)]


# --- Fetch v4 --------------------------------------------------------------------
def fetch_v4_body(topic, partition, offset, max_wait_ms=0, min_bytes=1,
                  max_bytes=1 << 20, partition_max_bytes=1 << 20):
    return (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
            + array([string(topic) + array([i32(partition) + i64(offset) + i32(partition_max_bytes)])]))


def fetch_v4(sock, correlation_id, topic, partition, offset, **kw):
    """-> (error_code, high_watermark, records bytes)"""
    r = roundtrip(sock, FETCH, 4, correlation_id, fetch_v4_body(topic, partition, offset, **kw))
    r.i32()  # throttle
    result = None
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            idx, err, hw, _lso = r.i32(), r.i16(), r.i64(), r.i64()
            r.array(lambda r: (r.i64(), r.i64()))
            records = r.nbytes()
            if (name, idx) == (topic, partition):
                result = (err, hw, records or b"")
    assert result is not None, "partition missing from fetch response"
    return result


def batch_headers(data: bytes):
    """[(base_offset, attributes, record_count)] of the whole batches in `data`,
    compressed or not (only the uncompressed batch header is read)."""
    out = []
    r = Reader(data)
    while r.remaining() >= 61:
        base_offset = r.i64()
        length = r.i32()
        if r.remaining() < length:
            break
        b = Reader(r._take(length))
        b.i32(), b.i8(), b.u32()
        attrs = b.i16()
        b._take(4 + 8 + 8 + 8 + 2 + 4)
        out.append((base_offset, attrs, b.i32()))
    return out
