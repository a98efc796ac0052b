"""Group coordinator failover on a 3-node cluster: a group commits offsets,
the coordinator (as FindCoordinator names it) is SIGKILLed, and a new
member of the same group resumes exactly from the committed offsets and
can commit again through the new coordinator. __consumer_offsets has
RF=3, so the commits survive the coordinator.
"""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

import clients
from cluster import cluster_factory, produce_acked  # noqa: F401
from group_helpers import (ConfluentMember, RawGroupClient, fresh_committed, stop_all,
                           wait_assignment_complete, wait_until)

PARTS = 3
PER_PART = 40


def _coordinator(c, group, via, timeout=30):
    """The coordinator node id FindCoordinator on node `via` names."""
    cl = RawGroupClient(c.nodes[via])
    try:
        return cl.find_coordinator(group, timeout=timeout)[0]
    finally:
        cl.close()


def _offsets(c, nodes, group, topic):
    got = fresh_committed(c.bootstrap_of(*nodes), group, topic, range(PARTS), timeout=20)
    return {p: o for p, (o, _meta) in got.items()}


def _member(c, group, nodes):
    return Consumer(clients.ck_conf(c.bootstrap_of(*nodes), **{
        "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}))


def _consume_until(consumer, want, timeout, what):
    """Consume until `want(records)`; returns [(partition, offset, value)]."""
    out, errors = [], []
    deadline = time.monotonic() + timeout
    while not want(out):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {len(out)} records after {timeout}s; "
                                 f"errors {errors[:5]}")
        for m in consumer.consume(num_messages=500, timeout=0.2):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.value()))
            elif m.error().code() != KafkaError._PARTITION_EOF:
                errors.append(m.error())
    return out


@pytest.mark.timeout(120)
def test_group_resumes_from_committed_offsets_after_coordinator_sigkill(cluster_factory):
    c = cluster_factory(3)
    topic = c.create_topic("grp-data", partitions=PARTS, rf=3)
    produce_acked(c, topic, [dict(value=f"{p}-{i}".encode(), partition=p)
                             for p in range(PARTS) for i in range(PER_PART)])
    group = "failover-group"

    # First member: read the first half of every partition, commit it.
    half = PER_PART // 2
    a = _member(c, group, c.running())
    try:
        a.subscribe([topic])
        _consume_until(a, lambda rs: all(sum(1 for r in rs if r[0] == p) >= half
                                                for p in range(PARTS)), 45,
                              "first member reading half of each partition")
        committed = {p: half for p in range(PARTS)}
        a.commit(offsets=[TopicPartition(topic, p, o) for p, o in committed.items()],
                 asynchronous=False)
    finally:
        a.close()
    assert _offsets(c, c.running(), group, topic) == committed

    coordinator = _coordinator(c, group, c.running()[0])
    assert coordinator in c.nodes
    survivors = [i for i in c.nodes if i != coordinator]
    c.kill(coordinator)
    killed_at = time.monotonic()

    def moved():
        try:
            n = _coordinator(c, group, survivors[0], timeout=5)
        except AssertionError:
            return None
        return n if n in survivors else None

    new_coordinator = wait_until(moved, 30, f"a coordinator other than node{coordinator}")
    print(f"coordinator node{coordinator} killed; node{new_coordinator} took over after "
          f"{time.monotonic() - killed_at:.2f}s")
    assert _offsets(c, survivors, group, topic) == committed, \
        "committed offsets lost with the coordinator"

    # A new member resumes exactly at the committed offsets.
    b = _member(c, group, survivors)
    try:
        b.subscribe([topic])
        rest = _consume_until(b, lambda rs: len(rs) >= PARTS * (PER_PART - half), 45,
                              "second member reading the rest")
        first = {}
        for p, off, _v in rest:
            first.setdefault(p, off)
        assert first == committed, f"resumed at {first}, committed {committed}"
        by_part = {p: [v.decode() for q, _, v in rest if q == p] for p in range(PARTS)}
        assert by_part == {p: [f"{p}-{i}" for i in range(half, PER_PART)] for p in range(PARTS)}
        b.commit(asynchronous=False)
    finally:
        b.close()
    assert _offsets(c, survivors, group, topic) == {p: PER_PART for p in range(PARTS)}, \
        "commit through the new coordinator"


@pytest.mark.timeout(120)
def test_live_members_keep_consuming_and_committing_across_coordinator_sigkill(cluster_factory):
    """Two members stay in the group while its coordinator dies: they find
    the new coordinator, keep their partitions, read everything produced
    before and after the kill, and their commits land on the new
    coordinator (at-least-once: a record may be read twice, none missed)."""
    c = cluster_factory(3)
    topic = c.create_topic("grp-live", partitions=4, rf=3)
    group = "live-group"
    members = [ConfluentMember(c, group, topic, f"m{i}", commit_each_batch=True)
               for i in range(2)]
    for m in members:
        m.start()
    try:
        wait_assignment_complete(members, 4, timeout=45)
        survivors = _read_across_coordinator_kill(c, group, topic, members)
        end = {p: c.high_watermark(topic, p) for p in range(4)}
        wait_until(lambda: _offsets4(c, survivors, group, topic) == end, 30,
                   lambda: f"committed {_offsets4(c, survivors, group, topic)} == end {end} "
                           f"(through coordinator "
                           f"{_coordinator(c, group, survivors[0], timeout=5)})")
    finally:
        stop_all(members)


def _read_across_coordinator_kill(c, group, topic, members):
    """Members of `group` read 200 records of the 4-partition `topic`; the
    coordinator is SIGKILLed; 200 more are produced through the survivors.
    Waits until the members read all 400 (at least once, nothing else) and
    returns the surviving node ids."""
    first = {f"a{i:04d}".encode() for i in range(200)}
    produce_acked(c, topic, [dict(value=v, partition=i % 4) for i, v in enumerate(sorted(first))])
    wait_until(lambda: _values(members) >= first, 30,
               lambda: f"the first 200 records: {len(_values(members))} read")
    coordinator = _coordinator(c, group, c.running()[0])
    c.kill(coordinator)
    survivors = [i for i in c.nodes if i != coordinator]
    produce_acked(c.bootstrap_of(*survivors), topic,
                  [dict(value=f"b{i:04d}".encode(), partition=i % 4) for i in range(200)])
    want = {f"{p}{i:04d}".encode() for p in "ab" for i in range(200)}
    wait_until(lambda: _values(members) >= want or any(m.exc for m in members), 60,
               lambda: f"all 400 records: {len(_values(members) & want)} read; "
                       + "; ".join(m.describe() for m in members))
    assert _values(members) == want
    return survivors


def _values(members):
    out = set()
    for m in members:
        with m.lock:
            out.update(v for _, _, v in m.records)
    return out


def _offsets4(c, nodes, group, topic):
    try:
        got = fresh_committed(c.bootstrap_of(*nodes), group, topic, range(4), timeout=10)
    except Exception as e:  # a coordinator moving: try again
        return repr(e)
    return {p: o for p, (o, _meta) in got.items()}


@pytest.mark.timeout(150)
def test_migrated_group_survives_coordinator_sigkill(cluster_factory):
    """A classic group upgraded online (one classic and one KIP-848 member)
    keeps both members across a coordinator SIGKILL: the new coordinator
    replays the consumer group with its classic member (ClassicMemberMetadata
    in __consumer_offsets), both keep reading, and after the KIP-848 member
    leaves the group is downgraded to classic by the new coordinator."""
    from confluent_kafka import ConsumerGroupType
    from test_groups_kip848 import Kip848Member

    c = cluster_factory(3, overrides={"group.consumer.heartbeat.interval.ms": 1000})
    topic = c.create_topic("grp-mixed", partitions=4, rf=3)
    group = "mixed-group"
    classic = ConfluentMember(c, group, topic, "classic", commit_each_batch=True)
    kip = Kip848Member(c, group, topic, "kip", commit_each_batch=True)
    members = [classic, kip]

    def group_type(nodes):
        a = clients.admin(c.bootstrap_of(*nodes))  # kept alive until the answer
        res = a.list_consumer_groups(request_timeout=10).result(timeout=20)
        return {g.group_id: g.type for g in res.valid}.get(group)

    try:
        classic.start()
        wait_assignment_complete([classic], 4, timeout=45)
        kip.start()
        wait_assignment_complete(members, 4, timeout=60)
        assert group_type(c.running()) == ConsumerGroupType.CONSUMER

        survivors = _read_across_coordinator_kill(c, group, topic, members)
        assert group_type(survivors) == ConsumerGroupType.CONSUMER
        both = wait_assignment_complete(members, 4, timeout=60)
        assert all(both), both

        kip.stop()  # the last KIP-848 member leaves: downgrade
        wait_assignment_complete([classic], 4, timeout=60)
        wait_until(lambda: group_type(survivors) == ConsumerGroupType.CLASSIC, 20,
                   lambda: f"group type {group_type(survivors)}")
        end = {p: c.high_watermark(topic, p) for p in range(4)}
        wait_until(lambda: _offsets4(c, survivors, group, topic) == end, 30,
                   lambda: f"committed {_offsets4(c, survivors, group, topic)} == end {end}")
    finally:
        stop_all(members)
