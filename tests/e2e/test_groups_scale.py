"""Consumer groups at scale and under churn (issue 4, Tests section: "a group
with 100 members on 100 partitions stabilises; a churn test (members
joining/leaving every few seconds while producing) ends with every record
consumed at least once and committed offsets never moving backwards").

Members are threads of this process, each with its own confluent-kafka
consumer (group_helpers.ConfluentMember). Each test starts its own broker
with group.initial.rebalance.delay.ms=0. Every wait is bounded, and every
member, poller and producer thread is stopped in a `finally`.
"""

import collections
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition

from clients import admin, ck_conf, create_topic, produce, watermarks
from group_helpers import (ConfluentMember, fresh_committed, stop_all, wait_assignment_complete,
                           wait_until)

# A member thread whose consumer.close() raises fails the test.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

FAST = {"group.initial.rebalance.delay.ms": 0,
        "offsets.topic.num.partitions": 10,          # a faster first FindCoordinator
        "group.consumer.heartbeat.interval.ms": 1000}  # KIP-848 members move quickly

# Lighter librdkafka consumers for the 100-member group: no periodic metadata
# refresh (the topic does not change), short fetch waits, small queues.
LIGHT = {"topic.metadata.refresh.interval.ms": 600_000,
         "statistics.interval.ms": 0,
         "fetch.wait.max.ms": 100,
         "queued.min.messages": 10,
         "queued.max.messages.kbytes": 64}

# Client settings the KIP-848 protocol refuses (server-side session timeout,
# heartbeat interval and assignor).
CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")


def stop_quietly(threads):
    """Cleanup on a failure path: stop whatever still runs, without hiding
    the original failure behind a second one."""
    try:
        stop_all(threads, timeout=30)
    except AssertionError:
        pass


def describe_group(broker, group):
    return admin(broker).describe_consumer_groups([group], request_timeout=10)[group] \
        .result(timeout=20)


# --- 1. 100 members on 100 partitions ---------------------------------------------------
N_MEMBERS = 100
SESSION_MS = 30_000


def test_hundred_member_group_stabilises(start_broker):
    """100 classic members (librdkafka's default range,roundrobin) on a
    100-partition topic: each ends up with exactly one partition, the
    assignments are disjoint and cover the topic, nothing changes for 2 s,
    the coordinator describes one Stable group of 100, and all 100 close
    cleanly (LeaveGroup), leaving the group Empty.

    100 librdkafka consumers fit easily: on the 2-core dev machine the group
    is stable ~2.5 s after the first member starts and the whole test takes
    ~5 s."""
    b = start_broker(overrides=FAST)
    topic = create_topic(b, "scale-100", partitions=N_MEMBERS)
    group = "g-scale-100"
    # A 30 s session: the group going Empty well within it after close()
    # means every member left with LeaveGroup rather than by expiring.
    members = [ConfluentMember(b, group, topic, f"s{i:03d}", **LIGHT,
                               **{"session.timeout.ms": SESSION_MS})
               for i in range(N_MEMBERS)]
    try:
        for m in members:
            m.start()
        # wait_assignment_complete: non-empty, disjoint, covering range(100)
        # -- with 100 members, exactly one partition each -- then no
        # assignment or rebalance callback changes for `settle` seconds.
        assignments = wait_assignment_complete(members, N_MEMBERS, timeout=60, settle=2.0)
        assert sorted(len(a) for a in assignments) == [1] * N_MEMBERS
        desc = describe_group(b, group)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert len(desc.members) == N_MEMBERS
        owned = {}
        for mm in desc.members:
            tps = mm.assignment.topic_partitions
            assert len(tps) == 1, f"{mm.client_id}: {tps}"
            owned[mm.client_id] = tps[0].partition
        assert owned == {m.name: next(iter(a)) for m, a in zip(members, assignments)}

        closing = time.monotonic()
        stop_all(members, timeout=30)  # close(): LeaveGroup, in parallel
        left = SESSION_MS / 1000 / 2 - (time.monotonic() - closing)
        assert left > 1, "closing 100 consumers took too long"
        wait_until(lambda: describe_group(b, group).state == ConsumerGroupState.EMPTY, left,
                   lambda: f"group Empty within half the session timeout after close(): "
                           f"{describe_group(b, group)}", interval=0.2)
    finally:
        stop_quietly(members)


# --- churn helpers ------------------------------------------------------------------------
class CommittedPoller(threading.Thread):
    """A standalone (non-member) Consumer of the group calling committed()
    (OffsetFetch) every `interval` s; records each partition's committed
    offsets in the order observed."""

    def __init__(self, broker, group, topic, partitions, interval=0.2):
        super().__init__(name="committed-poller", daemon=True)
        self.conf = ck_conf(broker, **{"group.id": group, "enable.auto.commit": False})
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.interval = interval
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.seen = collections.defaultdict(list)  # partition -> [offset, ...]
        self.polls = 0
        self.errors = []
        self.exc = None

    def run(self):
        c = None
        try:
            c = Consumer(self.conf)
            while not self.stop_event.is_set():
                try:
                    res = c.committed(self.tps, timeout=5)
                except KafkaException as e:
                    self.errors.append(e)  # e.g. a timeout: try again
                else:
                    with self.lock:
                        self.polls += 1
                        for tp in res:
                            if tp.error is not None:
                                self.errors.append(tp.error)
                            else:
                                self.seen[tp.partition].append(tp.offset)
                self.stop_event.wait(self.interval)
        except BaseException as e:
            self.exc = e
        finally:
            if c is not None:
                c.close()

    def stop(self, timeout=15):
        self.stop_event.set()
        self.join(timeout)
        assert not self.is_alive(), f"the committed() poller did not stop in {timeout}s"
        if self.exc is not None:
            raise AssertionError(f"committed() poller failed: {self.exc!r}") from self.exc

    def backwards(self):
        """[(partition, earlier, later)] for each committed offset that was
        followed by a smaller one (a valid offset followed by "none" counts)."""
        out = []
        with self.lock:
            for p, offs in self.seen.items():
                high = None
                for o in offs:
                    if high is not None and o < high:
                        out.append((p, high, o))
                    if o >= 0:
                        high = o if high is None else max(high, o)
        return out


class KeyedProducer(threading.Thread):
    """Produces `total` keyed records (key partitioning) in batches spread
    evenly over `duration` seconds; `acked` holds every acknowledged Record.
    The last `tail` records wait for `tail_gate` to be set."""

    def __init__(self, broker, topic, total, duration, batch=250, tail=1000):
        super().__init__(name="producer", daemon=True)
        self.broker, self.topic = broker, topic
        self.total, self.duration, self.batch = total, duration, batch
        self.tail = tail
        self.tail_gate = threading.Event()
        self.stop_event = threading.Event()
        self.acked = []
        self.exc = None

    def run(self):
        try:
            t0 = time.monotonic()
            n_batches = self.total // self.batch
            for k in range(n_batches):
                if self.stop_event.is_set():
                    return
                start = k * self.batch
                if start == self.total - self.tail:
                    while not (self.tail_gate.is_set() or self.stop_event.is_set()):
                        self.tail_gate.wait(0.1)
                msgs = [dict(key=b"key-%03d" % (i % 200), value=b"v%06d" % i)
                        for i in range(start, start + self.batch)]
                self.acked.extend(produce(self.broker, self.topic, msgs, flush_timeout=30))
                delay = t0 + (k + 1) * self.duration / n_batches - time.monotonic()
                if delay > 0:
                    self.stop_event.wait(delay)
        except BaseException as e:
            self.exc = e

    def finish(self, timeout):
        self.join(timeout)
        if self.is_alive():
            self.stop_event.set()
            self.join(30)
            raise AssertionError(f"producer not done within {timeout}s: "
                                 f"{len(self.acked)} of {self.total} acked")
        if self.exc is not None:
            raise AssertionError(f"producer failed: {self.exc!r}") from self.exc
        assert len(self.acked) == self.total


def run_churn(broker, topic, group, partitions, make_member, total, duration, steps,
              step_s=2.0):
    """Start 2 members, then every `step_s` s apply one step of `steps`
    ("+" starts a member, "-" stops (closes) the oldest one) while a
    KeyedProducer writes `total` records over `duration` s; members commit
    synchronously after each processed batch, and a CommittedPoller records
    the group's committed offsets. The last two members leave before the
    producer's last 1000 records; a fresh member then drains the rest from
    the committed offsets. Checks: every acked record consumed at least
    once, committed offsets never moved backwards, the drainer started
    exactly at the committed offsets, re-reads only after failed commits,
    every member got partitions. Returns a few numbers for the log."""
    seq = iter(range(1000))
    live = collections.deque(make_member(f"m{next(seq)}") for _ in range(2))
    everyone = list(live)
    poller = CommittedPoller(broker, group, topic, partitions)
    prod = KeyedProducer(broker, topic, total, duration)
    drainer = None
    try:
        for m in live:
            m.start()
        wait_assignment_complete(list(live), partitions, timeout=30, settle=0.5)
        poller.start()
        prod.start()
        peak = len(live)
        next_step = time.monotonic() + step_s
        for step in steps:
            time.sleep(max(0.0, next_step - time.monotonic()))
            next_step += step_s
            if step == "+":
                m = make_member(f"m{next(seq)}")
                everyone.append(m)
                live.append(m)
                m.start()
            else:
                live.popleft().stop(timeout=30)  # close(): leaves the group
            peak = max(peak, len(live))
        assert len(live) == 2 and peak == 4, (len(live), peak)
        # The two last members leave; the producer's tail and whatever they
        # did not read (and commit) is the drainer's.
        stop_all(list(live))
        prod.tail_gate.set()
        prod.finish(timeout=duration + 30)
        acked = {(r.partition, r.offset): r.value for r in prod.acked}
        time.sleep(0.5)  # one more committed() round after the last commits
        poller.stop()

        backwards = poller.backwards()
        assert not backwards, f"committed offsets moved backwards (partition, from, to): " \
                              f"{backwards[:10]}"
        with poller.lock:
            assert poller.polls >= 10, f"only {poller.polls} committed() polls: " \
                                       f"{poller.errors[:5]}"
            last_seen = {p: offs[-1] for p, offs in poller.seen.items()
                         if offs and offs[-1] >= 0}

        hw = {p: watermarks(broker, topic, p)[1] for p in range(partitions)}
        assert sum(hw.values()) == total
        committed = {p: o for p, (o, _) in
                     fresh_committed(broker, group, topic, range(partitions)).items()}
        assert {p: o for p, o in committed.items() if o >= 0} == last_seen, \
            f"the poller's last view {last_seen} is not the committed state {committed}"

        def consumed():
            out = set()
            for m in everyone:
                with m.lock:
                    out.update((p, o) for p, o, _ in m.records)
            return out

        # A fresh member reads the rest, starting from the committed offsets.
        drainer = make_member("drainer")
        everyone.append(drainer)
        drainer.start()
        wait_until(lambda: consumed() >= acked.keys() or drainer.exc, 30,
                   lambda: f"all {len(acked)} records: {len(consumed() & acked.keys())} "
                           f"read; {drainer.describe()}", interval=0.2)
        time.sleep(0.3)
        stop_all([drainer])
        with drainer.lock:
            drained = list(drainer.records)
        first = {}
        for p, o, _ in drained:
            first[p] = min(o, first.get(p, o))
        for p, o in first.items():
            assert o == max(committed[p], 0), \
                f"drainer started partition {p} at {o}, committed offset was {committed[p]}"
        assert len(drained) >= prod.tail, f"the drainer read {len(drained)} records"
        for p in range(partitions):
            if p not in first:
                assert committed[p] == hw[p], \
                    f"partition {p}: nothing drained, committed {committed[p]} != hw {hw[p]}"

        got = {}
        for m in everyone:
            with m.lock:
                for p, o, v in m.records:
                    got[(p, o)] = v
        missing = sorted(acked.keys() - got.keys())
        assert not missing, f"{len(missing)} records never consumed, e.g. {missing[:5]}"
        wrong = [k for k, v in acked.items() if got[k] != v]
        assert not wrong, f"records with other values than produced: {wrong[:5]}"
        # Commit-after-processing: a record is read again only if the commit
        # covering it failed (e.g. ILLEGAL_GENERATION from a commit that
        # raced a rebalance) before its partition moved; each failed commit
        # covers at most one consume() batch (1000 records).
        reads = sum(m.count() for m in everyone)
        failed_commits = sum(1 for m in everyone for e in m.errors
                             if isinstance(e, KafkaException))
        assert reads - len(acked) <= 1000 * failed_commits, \
            f"{reads - len(acked)} records read again with {failed_commits} failed commits"
        silent = [m.name for m in everyone if not m.assign_calls]
        assert not silent, f"members never assigned anything: {silent}"
        with poller.lock:
            distinct = sum(len(set(offs)) for offs in poller.seen.values())
        return dict(members=len(everyone) - 1, drained=len(drained),
                    reread=reads - len(acked), polls=poller.polls,
                    distinct_committed=distinct,
                    assigns=sum(m.assign_calls for m in everyone),
                    member_errors=collections.Counter(
                        str(e)[:90] for m in everyone for e in m.errors))
    finally:
        prod.stop_event.set()
        stop_quietly(everyone + [drainer])
        if poller.is_alive():
            poller.stop_event.set()
            poller.join(15)


# Start with 2, one change every 2 s, peak 4, end with 2.
CHURN_STEPS = "++-+--+-"


# --- 2. classic churn ---------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_classic_churn_nothing_lost_commits_monotonic(start_broker, strategy):
    """20,000 keyed records over ~15 s while classic members join and leave
    every 2 s (2 -> 4 -> 2), each committing synchronously after every
    processed batch."""
    b = start_broker(overrides=FAST)
    topic = create_topic(b, f"churn-{strategy}", partitions=12)
    group = f"g-churn-{strategy}"

    def make(name):
        return ConfluentMember(b, group, topic, name, commit_each_batch=True,
                               **{"partition.assignment.strategy": strategy})

    stats = run_churn(b, topic, group, 12, make, total=20_000, duration=15, steps=CHURN_STEPS)
    print(f"churn {strategy}: {stats}")


# --- 3. KIP-848 churn ---------------------------------------------------------------------
def test_kip848_churn_nothing_lost_commits_monotonic(start_broker):
    """The churn check with group.protocol=consumer (server-side uniform
    assignor), shorter: 10,000 records over ~8 s, a change every 1.5 s."""
    b = start_broker(overrides=FAST)
    topic = create_topic(b, "churn-848", partitions=12)
    group = "g-churn-848"

    def make(name):
        m = ConfluentMember(b, group, topic, name, commit_each_batch=True,
                            **{"group.protocol": "consumer"})
        for k in CLASSIC_ONLY:
            m.conf.pop(k, None)
        return m

    stats = run_churn(b, topic, group, 12, make, total=10_000, duration=8, steps="++-+--",
                      step_s=1.5)
    print(f"churn kip848: {stats}")
