"""Harness for the multi-broker end-to-end tests (test_cluster_*.py).

`Cluster` runs N combined broker+controller `odradek serve` processes
(conftest's `Broker`, one per node) on free 127.0.0.1 ports, each with its
own data directory and log file, optionally behind a `faultproxy.FaultProxy`
for network partitions. It answers the questions the tests ask of a
cluster through the wire protocol, never through the brokers' internals:

- `metadata(node)`: a raw Metadata v4 request to that one node (brokers,
  controller id, leader/replicas/ISR of every partition);
- `wait_partition(...)`: poll until every running node's view satisfies a
  condition (a new leader, a full ISR);
- `high_watermark()`: ListOffsets through librdkafka (it asks the leader);
- `replica_prefix()` / `assert_replicas_identical()`: the bytes of a
  replica's partition log (`<log.dirs>/<topic>-<p>/*.log`) covering the
  offsets below the high watermark, compared across replicas.

`AckingProducer` is a librdkafka producer in a thread recording every
acknowledged record; `assert_acked_exactly_once()` reads the topic back.

Fixture `cluster_factory` (import it into a test module): starts clusters,
attaches every node's log tail to a failing test's report (through
conftest's report hook), and SIGKILLs every node at teardown, failing the
test if a node had exited by itself.
"""

import re
import socket
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import clients
import kafkawire as w
from conftest import Broker, broker_binary, free_port
from faultproxy import FaultProxy
from group_helpers import wait_until

# Every node's settings unless a test overrides them. Fewer offsets-topic
# partitions than Kafka's 50 keep debug-build clusters quick to start.
BASE_OVERRIDES = {
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": 6,
    "group.initial.rebalance.delay.ms": 0,
    "num.partitions": 1,
}

READY_TIMEOUT_S = 30
NO_LEADER = -1


def free_ports(n):
    """n distinct free ports (see conftest.free_port)."""
    return [free_port() for _ in range(n)]


class Node(Broker):
    """One combined broker+controller node. Keeps its ports and data
    directory across restarts."""

    def __init__(self, workdir, node_id, port, controller_port, overrides):
        super().__init__(workdir, overrides, name=f"node{node_id}")
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.voters = ""
        self.advertised_port = None  # set when behind the fault proxy

    def command(self):
        cmd = [broker_binary(), "serve",
               "--override", f"node.id={self.node_id}",
               "--override", f"controller.quorum.voters={self.voters}",
               "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                             f"CONTROLLER://127.0.0.1:{self.controller_port}",
               "--override", f"log.dirs={self.data_dir}"]
        if self.advertised_port is not None:
            cmd += ["--override",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.advertised_port}"]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    def partition_dir(self, topic, partition):
        return self.data_dir / f"{topic}-{partition}"


class _Bootstrap:
    """Something with a `.bootstrap` for clients.py's helpers."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap


class Cluster:
    def __init__(self, workdir: Path, n=3, overrides=None, proxied=False, node_overrides=None):
        self.workdir = workdir
        self.overrides = {**BASE_OVERRIDES, **(overrides or {})}
        self.proxy = None
        ports = free_ports(2 * n)
        self.nodes = {}
        for i in range(1, n + 1):
            o = {**self.overrides, **((node_overrides or {}).get(i, {}))}
            self.nodes[i] = Node(workdir / f"node{i}", i, ports[2 * (i - 1)],
                                 ports[2 * (i - 1) + 1], o)
        voter_port = {i: nd.controller_port for i, nd in self.nodes.items()}
        if proxied:
            self.proxy = FaultProxy(labels=self._pids)
            for i, nd in self.nodes.items():
                nd.advertised_port = self.proxy.add_route(f"data{i}", i, nd.port, "data")
                voter_port[i] = self.proxy.add_route(f"controller{i}", i, nd.controller_port,
                                                     "controller")
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in voter_port.items())
        for nd in self.nodes.values():
            nd.voters = voters
        self._admins = {}

    def _pids(self):
        return {i: (nd.proc.pid if nd.alive() else None) for i, nd in self.nodes.items()}

    # -- addresses --
    def client_port(self, node_id):
        """The port clients are told about (the proxy's, if proxied)."""
        nd = self.nodes[node_id]
        return nd.advertised_port or nd.port

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.client_port(i)}" for i in self.nodes)

    def bootstrap_of(self, *node_ids):
        return _Bootstrap(",".join(f"127.0.0.1:{self.client_port(i)}" for i in node_ids))

    def running(self):
        return [i for i, nd in self.nodes.items() if nd.alive()]

    # -- lifecycle --
    def start(self, wait=True):
        for nd in self.nodes.values():
            nd.start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S, nodes=None):
        """Every running node's metadata lists every running node as a broker
        and names a running controller."""
        want = set(nodes or self.running())

        def ready():
            for i in want:
                md = self.metadata(i)
                if md is None or {b[0] for b in md["brokers"]} != want \
                        or md["controller"] not in want:
                    return False
            return True

        wait_until(ready, timeout, lambda: f"cluster ready: every node of {sorted(want)} listing "
                                           f"them all and a controller; {self.describe()}")

    def kill(self, node_id):
        self._drop_admins()
        self.nodes[node_id].kill()

    def stop(self, node_id, timeout=30):
        """SIGTERM (controlled shutdown); returns the exit code."""
        self._drop_admins()
        return self.nodes[node_id].stop(timeout)

    def restart(self, node_id):
        nd = self.nodes[node_id]
        if nd.alive():
            nd.kill()
        nd.start()
        return nd

    def shutdown(self):
        """Teardown: SIGKILL everything; returns the problems seen."""
        self._drop_admins()
        problems = []
        for nd in self.nodes.values():
            nd._admin_client = None
            code = nd.crashed()
            if code is not None:
                problems.append(f"{nd.name} exited by itself with code {code}\n{nd.log_tail()}")
            nd.kill()
        if self.proxy is not None:
            self.proxy.close()
        return problems

    # -- clients --
    def admin(self, *node_ids):
        """A cached confluent AdminClient bootstrapped to `node_ids` (default:
        the running nodes)."""
        ids = tuple(node_ids or self.running())
        a = self._admins.get(ids)
        if a is None:
            a = self._admins[ids] = AdminClient(clients.ck_conf(self.bootstrap_of(*ids)))
        return a

    def _drop_admins(self):
        self._admins.clear()

    def create_topic(self, name, partitions=1, rf=3, config=None, via=None, timeout=30):
        a = self.admin(*(via or ()))
        fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf,
                                       config={k: str(v) for k, v in (config or {}).items()})],
                             operation_timeout=20, request_timeout=25)
        fs[name].result(timeout=timeout)
        self.wait_topic(name, partitions, rf, timeout=timeout)
        return name

    def wait_topic(self, name, partitions, rf, timeout=30):
        """Every running node knows the topic, every partition has a leader
        and a full ISR."""
        def ok(p):
            return (p is not None and p["leader"] != NO_LEADER and len(p["replicas"]) == rf
                    and sorted(p["isr"]) == sorted(p["replicas"]))
        for part in range(partitions):
            self.wait_partition(name, part, ok, timeout,
                                f"{name}[{part}] with a leader and {rf} in-sync replicas")

    # -- metadata --
    def metadata(self, node_id, topics=None, timeout=3.0):
        """Raw Metadata v4 from `node_id` itself (None if it does not answer):
        dict(brokers=[(id, host, port, rack)], controller, cluster_id,
        topics={name: dict(error, partitions=[dict(index, leader, replicas, isr)])})."""
        nd = self.nodes[node_id]
        if not nd.alive():
            return None
        try:
            with w.connect(nd.port, timeout=timeout) as s:
                r = w.roundtrip(s, w.METADATA, 4, 1, w.metadata_v4_body(topics, False))
                return w.decode_metadata_v4(r)
        except (OSError, ConnectionError, AssertionError):
            return None

    def partition(self, topic, partition, via):
        """{leader, replicas, isr, error} as node `via` sees it, or None."""
        md = self.metadata(via, [topic])
        if md is None:
            return None
        t = md["topics"].get(topic)
        if t is None or t["error"] not in (0, w.LEADER_NOT_AVAILABLE):
            return None
        for p in t["partitions"] or []:
            if p["index"] == partition:
                return p
        return None

    def views(self, topic, partition, nodes=None):
        return {i: self.partition(topic, partition, i) for i in (nodes or self.running())}

    def wait_partition(self, topic, partition, cond, timeout, what, nodes=None):
        """Poll until cond(view) holds for the view of every running node (or
        of `nodes`); returns the view of the first of them."""
        def check():
            v = self.views(topic, partition, nodes)
            return next(iter(v.values())) if v and all(
                x is not None and cond(x) for x in v.values()) else None

        return wait_until(check, timeout, lambda: f"{what}: views "
                                                  f"{self.views(topic, partition, nodes)}")

    def leader(self, topic, partition, via=None):
        p = self.partition(topic, partition, via or self.running()[0])
        return None if p is None else p["leader"]

    def wait_new_leader(self, topic, partition, not_in, timeout=30, nodes=None):
        """A leader outside `not_in`, agreed by every running node (or `nodes`)."""
        not_in = set(not_in) | {NO_LEADER}
        v = self.wait_partition(topic, partition, lambda p: p["leader"] not in not_in, timeout,
                                f"{topic}[{partition}] to get a leader outside {sorted(not_in)}",
                                nodes=nodes)
        return v["leader"]

    def wait_isr(self, topic, partition, members, timeout=30):
        members = set(members)
        try:
            return self.wait_partition(topic, partition, lambda p: set(p["isr"]) == members,
                                       timeout, f"{topic}[{partition}] ISR == {sorted(members)}")
        except AssertionError as e:
            raise AssertionError(f"{e}\non disk: {self.disk_state(topic, partition)}") from None

    def disk_state(self, topic, partition):
        """{node: "next offset N, last batch epoch E"} of each node's copy of
        the partition, read from its segment files (for failure messages)."""
        out = {}
        for i, nd in self.nodes.items():
            d = nd.partition_dir(topic, partition)
            if not d.exists():
                out[i] = "no replica dir"
                continue
            try:
                b = log_batches(d)
            except OSError as e:
                out[i] = repr(e)
                continue
            out[i] = ("empty" if not b else
                      f"next offset {b[-1][1] + 1}, last batch epoch "
                      f"{int.from_bytes(b[-1][2][12:16], 'big', signed=True)}")
        return out

    def controller(self, via=None, timeout=20):
        """The active controller's id, as the running nodes agree on it."""
        def check():
            ids = {(self.metadata(i) or {}).get("controller") for i in (via or self.running())}
            if len(ids) == 1:
                c = ids.pop()
                if c is not None and c in self.running():
                    return c
            return None

        return wait_until(check, timeout, lambda: f"an agreed, running controller; "
                                                  f"{self.describe()}")

    def describe(self):
        out = []
        for i, nd in self.nodes.items():
            md = self.metadata(i, timeout=1.0) if nd.alive() else None
            if md is None:
                out.append(f"node{i}: {'down' if not nd.alive() else 'no answer'}")
            else:
                out.append(f"node{i}: brokers={sorted(b[0] for b in md['brokers'])} "
                           f"controller={md['controller']}")
        return "; ".join(out)

    # -- data --
    def high_watermark(self, topic, partition, timeout=10):
        c = clients.consumer(self.bootstrap_of(*self.running()))
        try:
            return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout,
                                           cached=False)[1]
        finally:
            c.close()

    def replica_prefix(self, node_id, topic, partition, hw):
        """(bytes, last offset covered) of the whole batches of node_id's
        replica log with offsets below `hw`, read from its segment files."""
        return log_prefix(self.nodes[node_id].partition_dir(topic, partition), hw)

    def assert_replicas_identical(self, topic, partition, replicas=None, hw=None):
        """Every replica's log holds the same bytes for the offsets below the
        high watermark, and covers all of them."""
        if replicas is None:
            p = self.partition(topic, partition, self.running()[0])
            replicas = p["replicas"]
        if hw is None:
            hw = self.high_watermark(topic, partition)
        assert hw > 0, f"{topic}[{partition}] is empty: nothing to compare"
        prefixes = {r: self.replica_prefix(r, topic, partition, hw) for r in replicas}
        first = replicas[0]
        ref, ref_end = prefixes[first]
        for r in replicas:
            data, end = prefixes[r]
            assert end == hw, (f"{topic}[{partition}]: node{r}'s log covers offsets below {end}, "
                               f"not up to the high watermark {hw}")
            if data != ref:
                raise AssertionError(
                    f"{topic}[{partition}]: node{r}'s log differs from node{first}'s below "
                    f"HW {hw}: {describe_difference(ref, data)}")
        return hw


# --- reading partition logs from disk ---------------------------------------------
BATCH_HEADER = 61


def log_batches(partition_dir):
    """[(base_offset, last_offset, bytes)] of every whole batch in the
    partition's segments, in order."""
    out = []
    for seg in sorted(Path(partition_dir).glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + BATCH_HEADER <= len(data):
            base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
            length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
            if length <= 0 or pos + 12 + length > len(data):
                break  # preallocated or torn tail
            last_delta = int.from_bytes(data[pos + 23:pos + 27], "big", signed=True)
            out.append((base, base + last_delta, data[pos:pos + 12 + length]))
            pos += 12 + length
    return out


def log_prefix(partition_dir, hw):
    """(bytes of the batches entirely below hw, offset after the last of them)."""
    data, end = [], None
    for base, last, raw in log_batches(partition_dir):
        if last >= hw:
            break
        data.append(raw)
        end = last + 1
    if end is None:
        end = 0
    return b"".join(data), end


def describe_difference(a, b):
    ba = {base: raw for base, _, raw in _split(a)}
    bb = {base: raw for base, _, raw in _split(b)}
    for base in sorted(set(ba) | set(bb)):
        if ba.get(base) != bb.get(base):
            def info(raw):
                if raw is None:
                    return "missing"
                epoch = int.from_bytes(raw[12:16], "big", signed=True)
                return f"{len(raw)} bytes, leader epoch {epoch}"
            return f"first differing batch at offset {base}: {info(ba.get(base))} vs {info(bb.get(base))}"
    return f"{len(a)} vs {len(b)} bytes"


def _split(data):
    pos, out = 0, []
    while pos + BATCH_HEADER <= len(data):
        base = int.from_bytes(data[pos:pos + 8], "big", signed=True)
        length = int.from_bytes(data[pos + 8:pos + 12], "big", signed=True)
        raw = data[pos:pos + 12 + length]
        last = base + int.from_bytes(raw[23:27], "big", signed=True)
        out.append((base, last, raw))
        pos += 12 + length
    return out


# --- a producer that records what was acknowledged -----------------------------------
class AckingProducer(threading.Thread):
    """A librdkafka producer in a thread, writing round-robin to explicit
    partitions until stopped. Value b"p<partition>-<seq>" with a per-partition
    sequence, key b"k<partition>". Records every delivery report:
    `acked` [(partition, offset, value, monotonic time)] and `errors`
    [(partition, value, KafkaError)]. Keeps at most `max_in_flight`
    unreported records, so a failover does not pile up an unbounded backlog."""

    def __init__(self, bootstrap, topic, partitions=(0,), rate=200, max_in_flight=500,
                 name="acking-producer", **conf):
        super().__init__(name=name, daemon=True)
        self.topic = topic
        self.partitions = list(partitions)
        self.interval = 1.0 / rate if rate else 0.0
        self.max_in_flight = max_in_flight
        self.conf = clients.ck_conf(_Bootstrap(bootstrap), **{
            "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 60000, "request.timeout.ms": 5000,
            "retry.backoff.ms": 50, "retry.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1000, **conf})
        self.lock = threading.Lock()
        self.acked = []
        self.errors = []
        self.sent = 0
        self.exc = None
        self._stop_event = threading.Event()
        self.flush_left = None
        self.flush_timeout = 60

    def _on_delivery(self, err, msg):
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), msg.value(), time.monotonic()))
            else:
                self.errors.append((msg.partition(), msg.value(), err))

    def ack_count(self):
        with self.lock:
            return len(self.acked)

    def run(self):
        try:
            p = Producer(self.conf)
            seq = {part: 0 for part in self.partitions}
            i = 0
            next_send = time.monotonic()
            while not self._stop_event.is_set():
                with self.lock:
                    outstanding = self.sent - len(self.acked) - len(self.errors)
                now = time.monotonic()
                if outstanding >= self.max_in_flight or now < next_send:
                    p.poll(0.005)
                    continue
                part = self.partitions[i % len(self.partitions)]
                i += 1
                value = f"p{part}-{seq[part]:07d}".encode()
                try:
                    p.produce(self.topic, value=value, key=f"k{part}".encode(), partition=part,
                              on_delivery=self._on_delivery)
                except BufferError:
                    p.poll(0.05)
                    continue
                seq[part] += 1
                with self.lock:
                    self.sent += 1
                next_send = max(next_send + self.interval, now - 1.0)
                p.poll(0)
            self.flush_left = p.flush(self.flush_timeout)
        except BaseException as e:
            self.exc = e

    def wait_acks(self, more, timeout=30, what="acknowledgements"):
        """Wait for `more` acknowledgements beyond the current count."""
        target = self.ack_count() + more
        wait_until(lambda: self.ack_count() >= target or self.exc or not self.is_alive(), timeout,
                   lambda: f"{more} more {what} ({self.ack_count()} of {target}); "
                           f"sent {self.sent}, errors {self.errors[-3:]}")
        assert self.exc is None, f"producer failed: {self.exc!r}"
        assert self.ack_count() >= target, "producer stopped"

    def stop(self, timeout=90, flush_timeout=60):
        """Stop producing, wait up to `flush_timeout` s for outstanding
        delivery reports (`flush_left`: how many never came)."""
        self.flush_timeout = flush_timeout
        self._stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not stop within {timeout}s"
        assert self.exc is None, f"{self.name} failed: {self.exc!r}"
        return self

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        # After a failure, do not wait out the message timeout as well.
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop(flush_timeout=2)
            except AssertionError:
                pass
        return False


def read_all(cluster, topic, partitions, timeout=30):
    """{partition: [(offset, value)]} of everything up to the end of each
    partition, through a librdkafka consumer bootstrapped to the running nodes."""
    got = clients.consume(cluster.bootstrap_of(*cluster.running()), topic,
                          partitions=tuple(partitions), timeout=timeout)
    out = {p: [] for p in partitions}
    for r in got:
        out[r.partition].append((r.offset, r.value))
    return out


_PRODUCER_VALUE = re.compile(rb"p(\d+)-(\d+)")


def assert_acked_exactly_once(cluster, topic, partitions, acked, timeout=30):
    """Every acknowledged record is in the log once, at the offset it was
    acknowledged with; no value appears twice; each partition's sequence
    numbers increase (produced order). Returns the per-partition logs."""
    logs = read_all(cluster, topic, partitions, timeout)
    problems = []
    for part, records in logs.items():
        at = {}
        seen = {}
        last_seq = -1
        for off, val in records:
            if val in seen:
                problems.append(f"[{part}] {val!r} twice: offsets {seen[val]} and {off}")
            seen[val] = off
            at[off] = val
            m = _PRODUCER_VALUE.fullmatch(val or b"")
            if m is None:
                continue  # written by the test itself, not by an AckingProducer
            seq = int(m.group(2))
            if int(m.group(1)) != part:
                problems.append(f"[{part}] {val!r} at {off} belongs to partition {m.group(1)}")
            if seq <= last_seq:
                problems.append(f"[{part}] out of order: {val!r} at {off} after seq {last_seq}")
            last_seq = max(last_seq, seq)
        for p, off, val, _t in (a for a in acked if a[0] == part):
            if at.get(off) != val:
                problems.append(f"[{part}] acknowledged {val!r} at offset {off}, log has "
                                f"{at.get(off)!r} there (value at offset {seen.get(val)})")
    if problems:
        raise AssertionError(f"{len(problems)} problems in {topic}; first ones:\n  "
                             + "\n  ".join(problems[:15]))
    return logs


# --- fixture ---------------------------------------------------------------------------
@pytest.fixture
def cluster_factory(request, tmp_path):
    """Factory: cluster_factory(n=3, overrides={...}, proxied=False) -> a started
    Cluster. Nodes are SIGKILLed at teardown."""
    clusters = []
    brokers = getattr(request.node, "_odradek_brokers", None)
    if brokers is None:
        brokers = request.node._odradek_brokers = []

    def make(n=3, overrides=None, proxied=False, start=True, node_overrides=None):
        c = Cluster(tmp_path / f"cluster{len(clusters)}", n, overrides, proxied, node_overrides)
        clusters.append(c)
        brokers.extend(c.nodes.values())
        if start:
            c.start()
        return c

    yield make

    problems = []
    for c in clusters:
        problems += c.shutdown()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --- raw produce to one node --------------------------------------------------------
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
NOT_ENOUGH_REPLICAS = 19
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20


def raw_produce(port, topic, partition, values, acks=-1, timeout_ms=3000, wait_s=None):
    """One Produce v3 request with one batch of `values` straight to the
    broker on `port` (whatever the client metadata says). Returns
    (error code, base offset), or (None, None) if no answer came within
    `wait_s` (default: timeout_ms + 5 s)."""
    records = w.record_batch([(None, v, []) for v in values])
    body = w.produce_v3_body(topic, partition, records, acks=acks, timeout_ms=timeout_ms)
    wait_s = timeout_ms / 1000 + 5 if wait_s is None else wait_s
    try:
        with w.connect(port, timeout=wait_s) as s:
            s.sendall(w.frame(w.request_header_v1(w.PRODUCE, 3, 7) + body))
            r = w.Reader(w.recv_frame(s))
            assert r.i32() == 7
            return w.decode_produce_v3(r)[(topic, partition)]
    except (socket.timeout, ConnectionError, OSError):
        return None, None


def produce_acked(target, topic, messages, acks="all", timeout=20, **conf):
    """clients.produce with a bounded delivery time: a record not acknowledged
    within `timeout` s fails the call with its delivery error."""
    return clients.produce(target, topic, messages, flush_timeout=timeout + 10, acks=acks,
                           **{"message.timeout.ms": int(timeout * 1000), **conf})
