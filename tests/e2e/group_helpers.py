"""Helpers for the consumer-group end-to-end tests (test_groups.py).

Group members run in threads, each with its own client, and publish what
they see (current assignment, rebalance callbacks, consumed records) through
attributes guarded by a lock, so a test can wait for "assignments disjoint
and complete" and then check every record was read exactly once.

Also: a few raw-wire encoders (FindCoordinator v1, JoinGroup v5, SyncGroup
v3, Heartbeat v3, OffsetCommit v5) on top of kafkawire's primitives for the
bad-input tests, where a real client would not send the bad request.

Every wait is bounded.
"""

import json
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

import kafkawire as w
from clients import ck_conf


def wait_until(cond, timeout, what, interval=0.05):
    """Poll `cond()` until truthy; return its value or fail after `timeout` s.

    `what` is a string or a callable giving one (for a failure message with
    the latest state)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            msg = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {msg}")
        time.sleep(interval)


def partitions_cover(assignments, n):
    """True if every assignment is non-empty, they are pairwise disjoint and
    their union is range(n)."""
    if not assignments or any(not a for a in assignments):
        return False
    total = sum(len(a) for a in assignments)
    union = set().union(*assignments)
    return total == len(union) and union == set(range(n))


class _Member(threading.Thread):
    """Common state of a group member thread."""

    def __init__(self, name):
        super().__init__(name=name, daemon=True)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.assignment = frozenset()   # partition numbers, updated after every poll
        self.assign_calls = 0           # rebalance callbacks (assign)
        self.revoke_calls = 0
        self.records = []               # (partition, offset, value)
        self.errors = []
        self.exc = None
        self.commit_request = threading.Event()
        self.commit_done = threading.Event()
        self.commit_error = None

    def snapshot(self):
        with self.lock:
            return self.assignment, len(self.records), self.assign_calls

    def count(self):
        with self.lock:
            return len(self.records)

    def request_commit(self, timeout=30):
        self.commit_done.clear()
        self.commit_request.set()
        if not self.commit_done.wait(timeout):
            raise AssertionError(f"{self.name}: synchronous commit did not finish in {timeout}s")
        if self.commit_error is not None:
            raise AssertionError(f"{self.name}: commit failed: {self.commit_error!r}")

    def stop(self, timeout=30):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not stop within {timeout}s"
        if self.exc is not None:
            raise AssertionError(f"{self.name} failed: {self.exc!r}") from self.exc

    def _commit_after_batch(self, c, batch):
        """Commit after processing (`commit_each_batch`) and serve
        `request_commit()`; used by the confluent-kafka members' loops."""
        if batch and self.commit_each_batch:
            try:
                c.commit(asynchronous=False)
            except KafkaException as e:
                # e.g. a rebalance in progress: the records are
                # re-delivered to the next owner; that is allowed.
                self.errors.append(e)
        if self.commit_request.is_set():
            self.commit_request.clear()
            try:
                c.commit(asynchronous=False)
                self.commit_error = None
            except KafkaException as e:
                self.commit_error = e
            self.commit_done.set()

    def describe(self):
        a, n, calls = self.snapshot()
        return (f"{self.name}: assignment={sorted(a)} records={n} assigns={calls} "
                f"errors={self.errors[:3]}")


class ConfluentMember(_Member):
    """A confluent-kafka consumer subscribed to `topic` in group `group`.

    commit_each_batch: commit synchronously after each processed batch
    (commit-after-processing). Otherwise commits only on request_commit()."""

    def __init__(self, broker, group, topic, name, commit_each_batch=False, close=True,
                 **conf):
        super().__init__(name)
        self.topic = topic
        self.commit_each_batch = commit_each_batch
        self.close_on_stop = close
        self.conf = ck_conf(broker, **{
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "topic.metadata.refresh.interval.ms": 2000,
            **conf})
        self.consumer = None

    def _on_assign(self, c, parts):
        with self.lock:
            self.assign_calls += 1

    def _on_revoke(self, c, parts):
        with self.lock:
            self.revoke_calls += 1

    def run(self):
        try:
            c = self.consumer = Consumer(self.conf)
            c.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self.stop_event.is_set():
                msgs = c.consume(num_messages=1000, timeout=0.1)
                batch = []
                for m in msgs:
                    err = m.error()
                    if err is None:
                        batch.append((m.partition(), m.offset(), m.value()))
                    elif err.code() != KafkaError._PARTITION_EOF:
                        self.errors.append(err)
                assignment = frozenset(tp.partition for tp in c.assignment())
                with self.lock:
                    self.records.extend(batch)
                    self.assignment = assignment
                self._commit_after_batch(c, batch)
        except BaseException as e:  # reported by stop()
            self.exc = e
        finally:
            if self.consumer is not None and self.close_on_stop:
                self.consumer.close()


class KafkaPythonMember(_Member):
    """A kafka-python KafkaConsumer subscribed to `topic` in group `group`
    with the client's default partition assignors."""

    def __init__(self, broker, group, topic, name, **kw):
        super().__init__(name)
        self.topic = topic
        self.kw = dict(bootstrap_servers=broker.bootstrap, group_id=group, client_id=name,
                       auto_offset_reset="earliest", enable_auto_commit=False,
                       session_timeout_ms=6000, heartbeat_interval_ms=500,
                       request_timeout_ms=15000, metadata_max_age_ms=2000)
        self.kw.update(kw)
        self.consumer = None

    def run(self):
        from kafka import KafkaConsumer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                with member.lock:
                    member.revoke_calls += 1

            def on_partitions_assigned(self, assigned):
                with member.lock:
                    member.assign_calls += 1
                    member.assignment = frozenset(tp.partition for tp in assigned)

        try:
            c = self.consumer = KafkaConsumer(**self.kw)
            # kafka-python 3.0.12 client race: if the group leader joins
            # before it has the topic's metadata it assigns nothing and
            # rejoins; if that rejoin's JoinGroup/SyncGroup then completes
            # between two poll() calls, need_rejoin() is already False on the
            # next poll and the finished join is never applied (no assignment,
            # heartbeats never re-enabled, the coordinator expires the
            # member). So: subscribe, let the background metadata refresh
            # deliver the topic (no poll() yet, so no JoinGroup), then join.
            c.subscribe([self.topic], listener=Listener())
            coordinator = getattr(c, "_coordinator", None)
            if coordinator is not None and hasattr(coordinator, "_metadata_snapshot"):
                wait_until(lambda: coordinator._metadata_snapshot.get(self.topic), 15,
                           f"{self.name}: kafka-python metadata for {self.topic}")
            while not self.stop_event.is_set():
                polled = c.poll(timeout_ms=500, max_records=1000)
                batch = [(m.partition, m.offset, m.value)
                         for msgs in polled.values() for m in msgs]
                assignment = frozenset(tp.partition for tp in c.assignment())
                with self.lock:
                    self.records.extend(batch)
                    self.assignment = assignment
                if self.commit_request.is_set():
                    self.commit_request.clear()
                    try:
                        c.commit(timeout_ms=20000)
                        self.commit_error = None
                    except Exception as e:
                        self.commit_error = e
                    self.commit_done.set()
        except BaseException as e:
            self.exc = e
        finally:
            if self.consumer is not None:
                self.consumer.close(autocommit=False)


def stop_all(members, timeout=30):
    """Stop member threads in parallel (None entries and stopped ones are
    skipped); raise the first failure."""
    members = [m for m in members if m is not None and m.is_alive()]
    for m in members:
        m.stop_event.set()
    first = None
    for m in members:
        try:
            m.stop(timeout)
        except AssertionError as e:
            first = first or e
    if first is not None:
        raise first


def wait_assignment_complete(members, partitions, timeout=45, settle=1.5):
    """Wait until the members' assignments are non-empty, disjoint and cover
    range(partitions), and then unchanged (no rebalance callbacks either) for
    `settle` seconds. Returns the list of assignments."""

    def state():
        return [m.snapshot() for m in members]

    def describe():
        for m in members:
            if m.exc is not None:
                raise AssertionError(f"{m.name} failed: {m.exc!r}") from m.exc
        return "complete disjoint assignments:\n  " + "\n  ".join(m.describe() for m in members)

    deadline = time.monotonic() + timeout
    while True:
        wait_until(lambda: partitions_cover([s[0] for s in state()], partitions),
                   max(0.1, deadline - time.monotonic()), describe)
        before = [(s[0], s[2]) for s in state()]
        time.sleep(settle)
        after = [(s[0], s[2]) for s in state()]
        if before == after:
            return [a for a, _ in after]
        if time.monotonic() > deadline:
            raise AssertionError(f"assignments kept changing: {describe()}")


def fresh_committed(broker, group, topic, partitions, timeout=20):
    """{partition: (offset, metadata)} from a non-member Consumer's committed()."""
    c = Consumer(ck_conf(broker, **{"group.id": group, "enable.auto.commit": False}))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
        out = {}
        for tp in tps:
            assert tp.error is None, f"committed({topic}[{tp.partition}]): {tp.error}"
            out[tp.partition] = (tp.offset, tp.metadata)
        return out
    finally:
        c.close()


# --- raw wire: group APIs ------------------------------------------------------
FIND_COORDINATOR, OFFSET_COMMIT, OFFSET_FETCH = 10, 8, 9
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14

COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
MEMBER_ID_REQUIRED = 79


class RawGroupClient:
    """One socket to the broker speaking group APIs by hand."""

    def __init__(self, broker):
        self.sock = w.connect(broker.port)
        self.corr = 0

    def close(self):
        self.sock.close()

    def _rt(self, api, version, body):
        self.corr += 1
        return w.roundtrip(self.sock, api, version, self.corr, body)

    def find_coordinator(self, group, timeout=20):
        """FindCoordinator v1 until the coordinator is available: (node, host, port)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self._rt(FIND_COORDINATOR, 1, w.string(group) + w.i8(0))
            r.i32()  # throttle
            err = r.i16()
            r.string()  # error message
            node, host, port = r.i32(), r.string(), r.i32()
            if err == 0:
                return node, host, port
            assert err in (COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS), \
                f"FindCoordinator error {err}"
            assert time.monotonic() < deadline, f"coordinator not available in {timeout}s"
            time.sleep(0.1)

    def join_group(self, group, member_id="", session_timeout=10000, rebalance_timeout=10000,
                   instance_id=None, protocol_type="consumer",
                   protocols=(("range", b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),)):
        """JoinGroup v5 -> dict(error, generation, protocol, leader, member_id, members)."""
        body = (w.string(group) + w.i32(session_timeout) + w.i32(rebalance_timeout)
                + w.string(member_id) + w.string(instance_id) + w.string(protocol_type)
                + w.array(w.string(n) + w.nbytes(m) for n, m in protocols))
        r = self._rt(JOIN_GROUP, 5, body)
        r.i32()  # throttle
        out = dict(error=r.i16(), generation=r.i32(), protocol=r.string(), leader=r.string(),
                   member_id=r.string())
        out["members"] = r.array(lambda r: (r.string(), r.string(), r.nbytes()))
        return out

    def sync_group(self, group, generation, member_id, assignments=(), instance_id=None):
        """SyncGroup v3 -> (error, assignment bytes)."""
        body = (w.string(group) + w.i32(generation) + w.string(member_id)
                + w.string(instance_id)
                + w.array(w.string(m) + w.nbytes(a) for m, a in assignments))
        r = self._rt(SYNC_GROUP, 3, body)
        r.i32()
        return r.i16(), r.nbytes()

    def heartbeat(self, group, generation, member_id, instance_id=None):
        """Heartbeat v3 -> error code."""
        r = self._rt(HEARTBEAT, 3, w.string(group) + w.i32(generation) + w.string(member_id)
                     + w.string(instance_id))
        r.i32()
        return r.i16()

    def offset_commit(self, group, generation, member_id, topic, offsets):
        """OffsetCommit v5 of {partition: offset} -> {partition: error code}."""
        parts = [w.i32(p) + w.i64(o) + w.string(None) for p, o in sorted(offsets.items())]
        body = (w.string(group) + w.i32(generation) + w.string(member_id)
                + w.array([w.string(topic) + w.array(parts)]))
        r = self._rt(OFFSET_COMMIT, 5, body)
        r.i32()
        out = {}
        for _name, ps in r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16())))):
            for p, e in ps:
                out[p] = e
        return out


def wait_survivor_consumed(survivor, child_vals, want, timeout=60):
    """After a member was killed: wait until the survivor plus what the dead
    member read before dying cover exactly the values in `want`."""
    def consumed():
        with survivor.lock:
            got = {v for _, _, v in survivor.records}
        return got | child_vals

    wait_until(lambda: consumed() >= want or survivor.exc, timeout,
               lambda: f"all {len(want)} values: {len(consumed() & want)} consumed; "
                       f"{survivor.describe()}")
    assert survivor.exc is None
    assert consumed() == want


# --- a member in a child process ------------------------------------------------
CHILD_CONSUMER = r'''
import sys, time
import json
from confluent_kafka import Consumer, KafkaException
bootstrap, group, topic, extra = sys.argv[1:5]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "child",
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              **json.loads(extra)})
c.subscribe([topic])
last = None
while True:
    msgs = c.consume(num_messages=50, timeout=0.1)
    a = sorted(tp.partition for tp in c.assignment())
    if a != last:
        print("ASSIGN " + ",".join(map(str, a)), flush=True)
        last = a
    vals = [m.value().decode() for m in msgs if m.error() is None]
    if vals:
        # process (report) first, then commit: commit-after-processing
        print("V " + " ".join(vals), flush=True)
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            print("ERR " + str(e), flush=True)
        time.sleep(0.05)  # a slow consumer, so it dies half-way
'''


class ChildConsumer:
    """A group member in its own process (so a test can SIGKILL it without a
    LeaveGroup), running CHILD_CONSUMER with `extra_conf` on top of the base
    settings; its stdout is read by a thread."""

    def __init__(self, tmp_path, broker, group, topic, extra_conf):
        script = tmp_path / "child_consumer.py"
        script.write_text(CHILD_CONSUMER)
        self.proc = subprocess.Popen([sys.executable, str(script), broker.bootstrap, group,
                                      topic, json.dumps(extra_conf)], stdout=subprocess.PIPE,
                                     stderr=open(tmp_path / "child.stderr", "wb"),
                                     stdin=subprocess.DEVNULL)
        self.lock = threading.Lock()
        self.assignment = frozenset()
        self.values = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.decode().rstrip("\n")
            with self.lock:
                if line.startswith("ASSIGN "):
                    s = line[len("ASSIGN "):]
                    self.assignment = frozenset(int(p) for p in s.split(",") if p)
                elif line.startswith("V "):
                    self.values.extend(line[2:].split(" "))

    def snapshot(self):
        with self.lock:
            return self.assignment, len(self.values)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.reader.join(5)
