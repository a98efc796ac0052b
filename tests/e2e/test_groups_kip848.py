"""KIP-848 consumer groups (`group.protocol=consumer`) through confluent-kafka
(issue 4, Tests section: "KIP-848 with confluent-kafka: assignment, member
leave, and a mixed upgrade from a classic group").

librdkafka's KIP-848 consumer refuses the classic client settings
`session.timeout.ms`, `heartbeat.interval.ms` and
`partition.assignment.strategy`: the session timeout and heartbeat interval
come from the broker (`group.consumer.session.timeout.ms`,
`group.consumer.heartbeat.interval.ms`), the assignor is chosen with
`group.remote.assignor` (server-side `uniform` or `range`).

Each test starts its own broker, with a 1 s heartbeat interval so groups
move quickly. The session timeout stays at Kafka's 45 s default except in
the SIGKILL (6 s) and static-member (15 s) tests: a member that leaves must
be removed by its leave heartbeat, not by its session expiring. Members are
threads (group_helpers), the SIGKILLed one a child process. Every wait is
bounded.

Covered: disjoint assignments and exactly-once reading with commits equal
to the high watermarks; a member leaving; `uniform` and `range` shapes
(checked against ConsumerGroupDescribe's member ids); an Empty classic
group converted to a consumer group and back, offsets kept; AdminClient
list/describe (ConsumerGroupDescribe) and delete; a SIGKILLed member fenced
at the session timeout; server-side regex subscriptions picking up new
topics; the group surviving broker restarts; static members; a member
joining and another leaving mid-stream; the online upgrade of a busy
classic group by KIP-848 members, a rolling replacement of its classic
members, and the downgrade back to classic when the last KIP-848 member
leaves.
"""

import collections
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions,
                             ConsumerGroupType, KafkaError, KafkaException)

from clients import admin, create_topic, produce, watermarks
from group_helpers import (ChildConsumer, wait_survivor_consumed, ConfluentMember, fresh_committed,
                           KafkaPythonMember, stop_all, wait_assignment_complete, wait_until)
from test_groups import consume_all_exactly_once, produce_spread, values

HEARTBEAT_MS = 1000
KIP848 = {"group.initial.rebalance.delay.ms": 0,       # for the classic phase of the upgrade test
          "offsets.topic.num.partitions": 10,          # a faster first FindCoordinator
          "group.consumer.heartbeat.interval.ms": HEARTBEAT_MS}
# Broker default; tests check moves happen well before it.
DEFAULT_SESSION_S = 45


@pytest.fixture
def kbroker(start_broker):
    return start_broker(overrides=KIP848)


# Client settings the KIP-848 protocol does not take (ConfluentMember sets the
# first two for classic members).
CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")


class Kip848Member(ConfluentMember):
    """A confluent-kafka consumer with group.protocol=consumer subscribed to
    one or more topics.

    `assignment` holds the partition numbers of the first topic (what
    group_helpers' waits look at), `tps` every (topic, partition) owned,
    `member_id` the id librdkafka generated (KIP-1082, v1 heartbeats)."""

    def __init__(self, broker, group, topics, name, **conf):
        topics = [topics] if isinstance(topics, str) else list(topics)
        super().__init__(broker, group, topics[0], name,
                         **{"group.protocol": "consumer", **conf})
        for k in CLASSIC_ONLY:
            self.conf.pop(k, None)
        self.topics = topics
        self.tps = frozenset()
        self.member_id = None
        self.lost_calls = 0
        self.per_topic = collections.Counter()  # records read, every topic
        self.history = []  # (seconds since creation, callback, partitions)
        self.born = time.monotonic()

    def _note(self, what, parts):
        self.history.append((round(time.monotonic() - self.born, 2), what,
                             sorted((tp.topic, tp.partition) for tp in parts)))

    def _on_assign(self, c, parts):
        with self.lock:
            self.assign_calls += 1
            self._note("assign", parts)

    def _on_revoke(self, c, parts):
        with self.lock:
            self.revoke_calls += 1
            self._note("revoke", parts)

    def _on_lost(self, c, parts):
        with self.lock:
            self.lost_calls += 1
            self._note("lost", parts)

    def describe(self):
        with self.lock:
            h = list(self.history)
        return f"{super().describe()} member_id={self.member_id} callbacks={h[-8:]}"

    def tps_snapshot(self):
        with self.lock:
            return self.tps

    def run(self):
        try:
            c = self.consumer = Consumer(self.conf)
            c.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                        on_lost=self._on_lost)
            while not self.stop_event.is_set():
                msgs = c.consume(num_messages=1000, timeout=0.1)
                batch = []
                topics_read = collections.Counter()
                for m in msgs:
                    err = m.error()
                    if err is None:
                        topics_read[m.topic()] += 1
                        if m.topic() == self.topic:
                            batch.append((m.partition(), m.offset(), m.value()))
                    elif err.code() != KafkaError._PARTITION_EOF:
                        self.errors.append(err)
                tps = frozenset((tp.topic, tp.partition) for tp in c.assignment())
                member_id = c.memberid()
                with self.lock:
                    self.records.extend(batch)
                    self.per_topic.update(topics_read)
                    self.tps = tps
                    self.assignment = frozenset(p for t, p in tps if t == self.topic)
                    self.member_id = member_id or self.member_id
                self._commit_after_batch(c, batch)
        except BaseException as e:  # reported by stop()
            self.exc = e
        finally:
            if self.consumer is not None and self.close_on_stop:
                self.consumer.close()


def describe(broker, group):
    return admin(broker).describe_consumer_groups([group], request_timeout=10)[group] \
        .result(timeout=20)


def listing(broker, **filters):
    res = admin(broker).list_consumer_groups(request_timeout=10, **filters).result(timeout=20)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def wait_empty(broker, group, timeout=15):
    """Wait until ListGroups shows `group` Empty; return its listing."""
    def empty():
        g = listing(broker).get(group)
        return g if g is not None and g.state == ConsumerGroupState.EMPTY else None

    return wait_until(empty, timeout, lambda: f"{group} Empty: "
                      f"{getattr(listing(broker).get(group), '__dict__', None)}")


def committed_offsets(broker, group, topic, partitions):
    return {p: o for p, (o, _) in fresh_committed(broker, group, topic, partitions).items()}


def high_watermarks(broker, topic, partitions):
    return {p: watermarks(broker, topic, p)[1] for p in range(partitions)}


# --- 1. assignment and exactly-once ---------------------------------------------------
def test_kip848_group_splits_partitions_exactly_once(kbroker):
    topic = create_topic(kbroker, "k848-split", partitions=6)
    group = "k848-split"
    members = [Kip848Member(kbroker, group, topic, f"c{i}") for i in range(3)]
    try:
        for m in members:
            m.start()
        assignments = wait_assignment_complete(members, 6, timeout=40)
        # uniform (the default): 6 partitions over 3 members, 2 each.
        assert sorted(len(a) for a in assignments) == [2, 2, 2], assignments
        vals = values(30_000)
        produce_spread(kbroker, topic, vals, 6)
        hw = consume_all_exactly_once(kbroker, topic, members, assignments, 30_000, 6)
        assert {v for m in members for _, _, v in m.records} == set(vals)
        for m in members:
            m.request_commit()  # OffsetCommit v9 with the member epoch
        assert committed_offsets(kbroker, group, topic, range(6)) == hw
        assert all(not m.lost_calls for m in members), [m.describe() for m in members]
    finally:
        stop_all(members)


# --- 2. a member leaves --------------------------------------------------------------------
def test_kip848_member_leave_moves_partitions(kbroker):
    topic = create_topic(kbroker, "k848-leave", partitions=6)
    group = "k848-leave"
    members = [Kip848Member(kbroker, group, topic, f"l{i}") for i in range(3)]
    try:
        for m in members:
            m.start()
        assignments = wait_assignment_complete(members, 6, timeout=40)
        first = values(6000)
        produce_spread(kbroker, topic, first, 6)
        consume_all_exactly_once(kbroker, topic, members, assignments, 6000, 6)
        for m in members:
            m.request_commit()
        leaver, survivors = members[2], members[:2]
        before = [m.count() for m in survivors]
        left_at = time.monotonic()
        leaver.stop()  # close(): a leave heartbeat (member epoch -1)
        after = wait_assignment_complete(survivors, 6, timeout=20, settle=1.0)
        moved_in = time.monotonic() - left_at
        # Removed by the leave, not by its 45 s session expiring.
        assert moved_in < DEFAULT_SESSION_S / 3, f"partitions moved after {moved_in:.1f}s"
        for m, old, new in zip(survivors, assignments, after):
            # uniform is sticky: survivors keep what they had.
            assert old <= new, f"{m.name}: {sorted(old)} -> {sorted(new)}"
        assert set().union(*after) - set().union(*assignments[:2]) == assignments[2]
        assert sorted(len(a) for a in after) == [3, 3]

        second = values(6000, start=6000)
        produce_spread(kbroker, topic, second, 6)
        want = set(second)

        def since_leave():
            out = collections.Counter()
            for m, n in zip(survivors, before):
                with m.lock:
                    out.update(v for _, _, v in m.records[n:])
            return out

        wait_until(lambda: set(since_leave()) >= want or any(m.exc for m in survivors), 60,
                   lambda: f"{len(want)} records after the leave: "
                           f"{len(set(since_leave()) & want)} read; "
                           + "; ".join(m.describe() for m in survivors))
        time.sleep(0.5)  # a duplicate would arrive now
        got = since_leave()
        assert set(got) == want, \
            f"{len(set(got) - want)} records of before the leave re-read (commits ignored?)"
        dups = [v for v, c in got.items() if c > 1]
        assert not dups, f"{len(dups)} records read twice, e.g. {dups[:3]}"
        for m in survivors:
            m.request_commit()
        assert committed_offsets(kbroker, group, topic, range(6)) == \
            high_watermarks(kbroker, topic, 6)
    finally:
        stop_all(members)


# --- 3. server-side assignors ---------------------------------------------------------
def two_topic_group(broker, assignor, n_members=2):
    """`n_members` members subscribed to two 3-partition topics with
    group.remote.assignor=`assignor`; returns (topics, members, assignments by
    member) once the assignment is complete and settled."""
    topics = [create_topic(broker, f"k848-{assignor}-{x}", partitions=3) for x in "ab"]
    group = f"k848-shape-{assignor}"
    members = [Kip848Member(broker, group, topics, f"{assignor}{i}",
                            **{"group.remote.assignor": assignor}) for i in range(n_members)]
    everything = {(t, p) for t in topics for p in range(3)}

    def complete():
        a = [m.tps_snapshot() for m in members]
        return (all(a) and sum(len(x) for x in a) == len(everything)
                and set().union(*a) == everything)

    for m in members:
        m.start()
    deadline = time.monotonic() + 40
    while True:
        wait_until(complete, max(0.1, deadline - time.monotonic()),
                   lambda: "complete assignment: " + "; ".join(
                       f"{m.name}={sorted(m.tps_snapshot())} {m.errors[:2]}" for m in members))
        before = [m.tps_snapshot() for m in members]
        time.sleep(1.5)
        if before == [m.tps_snapshot() for m in members]:
            return group, topics, members, before
        assert time.monotonic() < deadline, "assignment kept changing"


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_kip848_remote_assignor_shapes(kbroker, assignor):
    members = []
    try:
        group, (ta, tb), members, assigned = two_topic_group(kbroker, assignor)
        desc = describe(kbroker, group)
        assert desc.partition_assignor == assignor
        assert desc.type == ConsumerGroupType.CONSUMER
        ids = {m.member_id: (m, a) for m, a in zip(members, assigned)}
        assert set(ids) == {d.member_id for d in desc.members}, \
            (sorted(ids), [d.member_id for d in desc.members])
        if assignor == "range":
            # Per topic, contiguous ranges over the members sorted by member
            # id, the first P mod M getting one more: 2+1 of each topic.
            first, second = (ids[k][1] for k in sorted(ids))
            assert first == {(ta, 0), (ta, 1), (tb, 0), (tb, 1)}, sorted(first)
            assert second == {(ta, 2), (tb, 2)}, sorted(second)
        else:
            # uniform balances over all subscribed partitions: 3 + 3.
            assert sorted(len(a) for a in assigned) == [3, 3], assigned
    finally:
        stop_all(members)


# --- 4. classic -> consumer (and back) for an empty group --------------------------------
def test_kip848_resumes_empty_classic_group_offsets(kbroker):
    """A classic group commits, all its members leave (Empty); KIP-848
    consumers with the same group id convert the group and start from the
    classic commits. When they leave in turn, classic consumers convert it
    back and start from the KIP-848 commits."""
    topic = create_topic(kbroker, "k848-upgrade", partitions=3)
    group = "k848-upgrade"
    per_part = {0: 100, 1: 200, 2: 300}
    classic = [ConfluentMember(kbroker, group, topic, f"classic{i}") for i in range(2)]
    kip = []
    back = []
    try:
        for m in classic:
            m.start()
        ca = wait_assignment_complete(classic, 3, timeout=30)
        produce_spread_uneven(kbroker, topic, per_part, tag="old")
        consume_all_exactly_once(kbroker, topic, classic, ca, sum(per_part.values()), 3)
        for m in classic:
            m.request_commit()
        stop_all(classic)  # LeaveGroup: the classic group is Empty, with offsets
        g = wait_empty(kbroker, group)
        assert g.type == ConsumerGroupType.CLASSIC
        assert committed_offsets(kbroker, group, topic, range(3)) == per_part

        kip = [Kip848Member(kbroker, group, topic, f"kip{i}") for i in range(2)]
        for m in kip:
            m.start()
        ka = wait_assignment_complete(kip, 3, timeout=30)
        # Produced once the assignment is settled, so no partition changes
        # hands with an uncommitted tail; the members' positions come from
        # the committed offsets (auto.offset.reset=earliest would re-read
        # the old records if the classic commits were lost).
        new = produce_spread_uneven(kbroker, topic, {p: 50 for p in range(3)}, tag="new")
        got = read_until(kip, set(new), 30)
        assert sorted(got) == sorted(new), \
            f"KIP-848 members did not resume at the classic commits: read " \
            f"{len(set(got) - set(new))} old records, {len(got)} in all"
        by_part = collections.defaultdict(list)
        for m in kip:
            for p, o, v in m.records:
                by_part[p].append(o)
        for p, n in per_part.items():
            assert sorted(by_part[p]) == list(range(n, n + 50)), \
                f"partition {p} read from {min(by_part[p], default=None)}, wanted {n}"
        lg = listing(kbroker)[group]
        assert lg.type == ConsumerGroupType.CONSUMER, vars(lg)
        assert describe(kbroker, group).type == ConsumerGroupType.CONSUMER
        assert ka and not any(m.errors for m in kip), [m.describe() for m in kip]
        for m in kip:
            m.request_commit()
        hw = high_watermarks(kbroker, topic, 3)
        assert committed_offsets(kbroker, group, topic, range(3)) == hw

        # ...and back: the empty consumer group becomes classic again.
        stop_all(kip)
        wait_empty(kbroker, group)
        back = [ConfluentMember(kbroker, group, topic, "classic-again")]
        back[0].start()
        wait_assignment_complete(back, 3, timeout=30, settle=0.5)
        newer = produce_spread_uneven(kbroker, topic, {p: 20 for p in range(3)}, tag="newer")
        got = read_until(back, set(newer), 30)
        assert sorted(got) == sorted(newer), \
            f"classic member did not resume at the KIP-848 commits ({len(got)} records)"
        assert listing(kbroker)[group].type == ConsumerGroupType.CLASSIC
    finally:
        stop_all(classic + kip + back)


# --- 4b. online migration of a non-empty group ---------------------------------------------
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky", "kafka-python"])
def test_kip848_online_upgrade_and_downgrade_of_a_busy_group(kbroker, strategy):
    """Kafka 4's mixed upgrade: two classic consumers (eager `range`, or
    `cooperative-sticky`, which gives partitions up incrementally) share a
    topic; a KIP-848 consumer joins the same group id, which turns the
    group into a consumer group with the classic members inside it (they
    get coordinator-computed assignments through JoinGroup/SyncGroup). The
    classic members are replaced one by one by KIP-848 members; then the
    KIP-848 members leave, the group turns classic again, and the last
    classic member owns everything. The classic members are librdkafka
    (eager `range` or `cooperative-sticky`) or kafka-python consumers.
    Members commit after each batch (kafka-python's at the end): no record
    is lost, and at every stable point each partition has exactly one
    owner."""
    topic = create_topic(kbroker, f"k848-mixed-{strategy}", partitions=6)
    group = f"k848-mixed-{strategy}"
    if strategy == "kafka-python":
        # kafka-python's default assignors (range, roundrobin), eager; it
        # commits on request only.
        classic = [KafkaPythonMember(kbroker, group, topic, f"classic{i}") for i in range(2)]
    else:
        classic = [ConfluentMember(kbroker, group, topic, f"classic{i}", commit_each_batch=True,
                                   **{"partition.assignment.strategy": strategy})
                   for i in range(2)]
    kip = []
    produced = []

    def batch(tag, n=300):
        vals = produce_spread_uneven(kbroker, topic, {p: n for p in range(6)}, tag=tag)
        produced.extend(vals)
        return vals

    def everyone():
        return classic + kip

    try:
        for m in classic:
            m.start()
        wait_assignment_complete(classic, 6, timeout=30)
        read_until(classic, set(batch("classic")), 30)
        assert listing(kbroker)[group].type == ConsumerGroupType.CLASSIC

        # Upgrade: a KIP-848 member joins the busy classic group.
        kip.append(Kip848Member(kbroker, group, topic, "kip0", commit_each_batch=True))
        kip[0].start()
        three = wait_assignment_complete(everyone(), 6, timeout=40)
        assert sorted(len(a) for a in three) == [2, 2, 2], three  # uniform over 3
        assert listing(kbroker)[group].type == ConsumerGroupType.CONSUMER
        d = describe(kbroker, group)
        assert d.type == ConsumerGroupType.CONSUMER and len(d.members) == 3, vars(d)
        read_until(everyone(), set(batch("mixed")), 30)

        # Rolling replacement: a classic member leaves, a KIP-848 one joins.
        classic[0].stop()  # LeaveGroup, served inside the consumer group
        live = [classic[1], kip[0]]
        wait_assignment_complete(live, 6, timeout=30)
        kip.append(Kip848Member(kbroker, group, topic, "kip1", commit_each_batch=True))
        kip[1].start()
        live.append(kip[1])
        wait_assignment_complete(live, 6, timeout=40)
        read_until(live, set(batch("rolled")), 30)

        # Downgrade: the KIP-848 members leave; the classic one remains.
        stop_all(kip)
        wait_assignment_complete([classic[1]], 6, timeout=40)
        wait_until(lambda: listing(kbroker)[group].type == ConsumerGroupType.CLASSIC, 15,
                   lambda: f"group type {listing(kbroker)[group].type}")
        read_until([classic[1]], set(batch("downgraded")), 30)

        seen = collections.Counter(v for m in everyone() for _, _, v in m.records)
        missing = set(produced) - set(seen)
        assert not missing, f"{len(missing)} records never read, e.g. {sorted(missing)[:3]}"
        for m in everyone():
            assert not m.exc, m.describe()
        # Committed after each batch: the last commits reach the ends.
        if strategy == "kafka-python":
            classic[1].request_commit()
        hw = high_watermarks(kbroker, topic, 6)
        wait_until(lambda: committed_offsets(kbroker, group, topic, range(6)) == hw, 15,
                   lambda: f"commits {committed_offsets(kbroker, group, topic, range(6))} "
                           f"reach {hw}")
    finally:
        stop_all(classic + kip)


def produce_spread_uneven(broker, topic, counts, tag):
    """Produce counts[p] records to each partition p; return the values."""
    msgs = [dict(value=b"%s-%d-%05d" % (tag.encode(), p, i), partition=p)
            for p, n in counts.items() for i in range(n)]
    produce(broker, topic, msgs, flush_timeout=60)
    return [m["value"] for m in msgs]


def read_until(members, want, timeout):
    """Wait until the members together read every value in `want`; return
    every value they read (with repeats)."""

    def got():
        out = []
        for m in members:
            with m.lock:
                out.extend(v for _, _, v in m.records)
        return out

    wait_until(lambda: set(got()) >= want or any(m.exc for m in members), timeout,
               lambda: f"{len(want)} values: {len(set(got()) & want)} read; "
                       + "; ".join(m.describe() for m in members))
    for m in members:
        assert m.exc is None, f"{m.name} failed: {m.exc!r}"
    time.sleep(0.5)  # anything extra would arrive now
    return got()


# --- 5. admin ------------------------------------------------------------------------------
def test_kip848_admin_list_and_describe(kbroker):
    topic = create_topic(kbroker, "k848-admin", partitions=4)
    group = "k848-admin"
    members = [Kip848Member(kbroker, group, topic, f"adm{i}") for i in range(2)]
    try:
        for m in members:
            m.start()
        assignments = wait_assignment_complete(members, 4, timeout=40)
        produce_spread(kbroker, topic, values(400), 4)
        hw = consume_all_exactly_once(kbroker, topic, members, assignments, 400, 4)
        for m in members:
            m.request_commit()

        g = listing(kbroker)[group]
        assert g.type == ConsumerGroupType.CONSUMER, vars(g)
        assert g.state == ConsumerGroupState.STABLE, vars(g)
        assert not g.is_simple_consumer_group
        assert group in listing(kbroker, types={ConsumerGroupType.CONSUMER})
        assert group not in listing(kbroker, types={ConsumerGroupType.CLASSIC})
        assert group in listing(kbroker, states={ConsumerGroupState.STABLE})
        assert group not in listing(kbroker, states={ConsumerGroupState.EMPTY})

        d = describe(kbroker, group)  # ConsumerGroupDescribe
        assert d.group_id == group
        assert d.type == ConsumerGroupType.CONSUMER
        assert d.state == ConsumerGroupState.STABLE
        assert d.partition_assignor == "uniform"  # the broker's default
        assert not d.is_simple_consumer_group
        by_client = {mm.client_id: mm for mm in d.members}
        assert set(by_client) == {"adm0", "adm1"}
        for m, own in zip(members, assignments):
            md = by_client[m.name]
            assert md.member_id == m.member_id
            assert md.host
            assert {(tp.topic, tp.partition) for tp in md.assignment.topic_partitions} == \
                {(topic, p) for p in own}
            assert md.target_assignment is not None
            assert {(tp.topic, tp.partition)
                    for tp in md.target_assignment.topic_partitions} == \
                {(topic, p) for p in own}

        offs = admin(kbroker).list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=10)[group].result(timeout=20)
        assert {tp.partition: tp.offset for tp in offs.topic_partitions
                if tp.topic == topic} == hw

        # A group with members cannot be deleted.
        with pytest.raises(KafkaException) as ei:
            admin(kbroker).delete_consumer_groups([group], request_timeout=10)[group] \
                .result(timeout=20)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value

        stop_all(members)
        wait_empty(kbroker, group)
        d = describe(kbroker, group)
        assert d.state == ConsumerGroupState.EMPTY and not d.members
        assert d.type == ConsumerGroupType.CONSUMER
        admin(kbroker).delete_consumer_groups([group], request_timeout=10)[group] \
            .result(timeout=20)
        assert group not in listing(kbroker)
        assert all(o < 0 for o in committed_offsets(kbroker, group, topic, range(4)).values())
    finally:
        stop_all(members)


# --- 6. SIGKILLed member ----------------------------------------------------------------


SESSION_MS = 6000


def test_kip848_sigkilled_member_fenced_after_session_timeout(start_broker, tmp_path):
    b = start_broker(overrides={**KIP848, "group.consumer.session.timeout.ms": SESSION_MS})
    topic = create_topic(b, "k848-kill", partitions=6)
    group = "k848-kill"
    child = ChildConsumer(tmp_path, b, group, topic, {"group.protocol": "consumer"})
    survivor = Kip848Member(b, group, topic, "survivor", commit_each_batch=True)
    try:
        wait_until(lambda: child.snapshot()[0], 30, "the child consumer's first assignment")
        survivor.start()

        def split():
            c, s = child.snapshot()[0], survivor.snapshot()[0]
            return c and s and not (c & s) and (c | s) == set(range(6))

        wait_until(split, 30, lambda: f"a split: child={child.snapshot()} "
                                      f"{survivor.describe()}")
        assert len(child.snapshot()[0]) == 3
        first = values(6000)
        produce_spread(b, topic, first, 6)
        wait_until(lambda: child.snapshot()[1] >= 300, 30,
                   lambda: f"the child to consume: {child.snapshot()}")
        child_assignment = child.snapshot()[0]
        child.kill()
        killed_at = time.monotonic()
        child_vals = {v.encode() for v in child.values}
        assert child_vals, "the child consumed nothing before the kill"
        # The dead member is still in the group until its session expires.
        time.sleep(SESSION_MS / 1000 / 2)
        assert survivor.snapshot()[0] == set(range(6)) - child_assignment, \
            f"partitions moved before the session timeout: {survivor.describe()}"
        assert len(describe(b, group).members) == 2
        wait_until(lambda: survivor.snapshot()[0] == set(range(6)), SESSION_MS / 1000 + 15,
                   lambda: f"the survivor to own all partitions: {survivor.describe()}")
        moved_after = time.monotonic() - killed_at
        assert moved_after >= SESSION_MS / 1000 - 1.5, f"fenced after {moved_after:.1f}s"
        d = describe(b, group)
        assert [m.client_id for m in d.members] == ["survivor"]

        second = values(6000, start=6000)
        produce_spread(b, topic, second, 6)
        want = set(first) | set(second)

        wait_survivor_consumed(survivor, child_vals, want)
        # The survivor started the child's partitions from the child's
        # commits: re-reads are limited to the child's uncommitted tail.
        with survivor.lock:
            redelivered = [v for p, _, v in survivor.records
                           if p in child_assignment and v in child_vals]
        assert len(redelivered) <= 50 * 3, \
            f"{len(redelivered)} of the child's records re-read (its commits were ignored?)"
        assert moved_after < SESSION_MS / 1000 + 15
    finally:
        child.kill()
        survivor.stop()


# --- regex subscription (server side) ---------------------------------------------------
def test_kip848_regex_subscription_picks_up_new_topics(kbroker):
    """librdkafka sends a `^`-prefixed subscription to the broker as the
    member's SubscribedTopicRegex: the coordinator resolves it against the
    topic image, including topics created after the member joined."""
    ta = create_topic(kbroker, "k848re-a", partitions=2)
    create_topic(kbroker, "k848-other", partitions=2)  # does not match
    members = [Kip848Member(kbroker, "k848-regex", ["^k848re-.*"], f"re{i}") for i in range(2)]

    def owned():
        return [m.tps_snapshot() for m in members]

    def covers(want):
        a = owned()
        return all(a) and sum(len(x) for x in a) == len(want) and set().union(*a) == want

    try:
        for m in members:
            m.start()
        want = {(ta, p) for p in range(2)}
        wait_until(lambda: covers(want), 30, lambda: f"{sorted(want)} split: {owned()}")
        tb = create_topic(kbroker, "k848re-b", partitions=4)
        want |= {(tb, p) for p in range(4)}
        wait_until(lambda: covers(want), 30,
                   lambda: f"the new topic assigned: {owned()}")
        assert sorted(len(a) for a in owned()) == [3, 3], owned()
        produce(kbroker, tb, [dict(value=b"x%d" % i, partition=i % 4) for i in range(400)])
        produce(kbroker, "k848-other", [dict(value=b"nope", partition=0)])
        wait_until(lambda: sum(m.per_topic[tb] for m in members) >= 400, 30,
                   lambda: f"400 records of {tb}: {[dict(m.per_topic) for m in members]}")
        time.sleep(0.5)
        assert sum(m.per_topic[tb] for m in members) == 400
        assert not any(m.per_topic["k848-other"] for m in members)
        d = describe(kbroker, "k848-regex")
        assert {mm.client_id for mm in d.members} == {"re0", "re1"}
    finally:
        stop_all(members)


# --- broker restart -------------------------------------------------------------------------
def test_kip848_group_survives_broker_restart(kbroker):
    """The group lives in __consumer_offsets: after a broker restart
    (SIGTERM) the running members keep their ids, epochs' lineage and
    partitions (no fencing, no lost partitions) and go on consuming; after a
    SIGKILL of the broker with the group Empty, its offsets and type are
    still there."""
    topic = create_topic(kbroker, "k848-restart", partitions=4)
    group = "k848-restart"
    members = [Kip848Member(kbroker, group, topic, f"r{i}") for i in range(2)]
    late = None
    try:
        for m in members:
            m.start()
        assignments = wait_assignment_complete(members, 4, timeout=40)
        produce_spread(kbroker, topic, values(2000), 4)
        consume_all_exactly_once(kbroker, topic, members, assignments, 2000, 4)
        for m in members:
            m.request_commit()
        ids = [m.member_id for m in members]
        before = describe(kbroker, group)

        kbroker.restart()
        produce_spread(kbroker, topic, values(2000, start=2000), 4)
        consume_all_exactly_once(kbroker, topic, members, assignments, 4000, 4, timeout=60)
        assert [m.member_id for m in members] == ids
        assert not any(m.lost_calls for m in members), \
            "members were fenced by the restart: " + "; ".join(m.describe() for m in members)
        # A fresh AdminClient: the cached one's connection died with the old
        # process, and once (in a full-suite run) its describe timed out
        # while librdkafka reconnected; the group's state is what is tested.
        kbroker._admin_client = None
        after = describe(kbroker, group)
        assert {mm.member_id for mm in after.members} == {mm.member_id for mm in before.members}
        assert after.state == ConsumerGroupState.STABLE
        for m in members:
            m.request_commit(timeout=30)
        hw = high_watermarks(kbroker, topic, 4)
        assert committed_offsets(kbroker, group, topic, range(4)) == hw

        stop_all(members)
        wait_empty(kbroker, group)
        kbroker.kill()
        kbroker.start()
        g = wait_until(lambda: listing(kbroker).get(group), 30, "the group listed again")
        assert g.type == ConsumerGroupType.CONSUMER and g.state == ConsumerGroupState.EMPTY, \
            vars(g)
        assert committed_offsets(kbroker, group, topic, range(4)) == hw
        late = Kip848Member(kbroker, group, topic, "late")
        late.start()
        wait_assignment_complete([late], 4, timeout=30, settle=0.5)
        vals = values(200, start=4000)
        produce_spread(kbroker, topic, vals, 4)
        got = read_until([late], set(vals), 30)
        assert sorted(got) == sorted(vals), f"resumed wrongly: {len(got)} records"
    finally:
        stop_all(members + [late])


# --- static membership --------------------------------------------------------------------
def test_kip848_static_member_rejoins_without_rebalance(start_broker):
    """A static member (group.instance.id) that closes leaves with epoch -2
    and keeps its partitions for the session timeout; its replacement with
    the same instance id gets them back and the other member is not
    touched."""
    b = start_broker(overrides={**KIP848, "group.consumer.session.timeout.ms": 15000})
    topic = create_topic(b, "k848-static", partitions=4)
    group = "k848-static"
    x = Kip848Member(b, group, topic, "x", **{"group.instance.id": "inst-x"})
    y = Kip848Member(b, group, topic, "y", **{"group.instance.id": "inst-y"})
    y2 = None
    try:
        x.start()
        y.start()
        x_assign, y_assign = wait_assignment_complete([x, y], 4, timeout=30)
        x_calls, x_revokes = x.snapshot()[2], x.revoke_calls
        y_id = y.member_id
        y.stop()
        closed_at = time.monotonic()
        # Still a member, still owning its partitions, until the session ends.
        d = describe(b, group)
        held = {mm.group_instance_id: {tp.partition for tp in mm.assignment.topic_partitions}
                for mm in d.members}
        assert held == {"inst-x": x_assign, "inst-y": y_assign}, held
        y2 = Kip848Member(b, group, topic, "y2", **{"group.instance.id": "inst-y"})
        y2.start()
        wait_until(lambda: y2.snapshot()[0], 15, lambda: f"y2's assignment: {y2.describe()}")
        assert time.monotonic() - closed_at < 15, "rejoin took longer than the session timeout"
        assert y2.snapshot()[0] == y_assign
        assert y2.member_id != y_id
        time.sleep(2 * HEARTBEAT_MS / 1000 + 0.5)  # a rebalance would reach x by now
        assert x.snapshot()[0] == x_assign and x.snapshot()[2] == x_calls and \
            x.revoke_calls == x_revokes, f"x was rebalanced: {x.describe()}"
        d = describe(b, group)
        assert sorted((mm.group_instance_id, mm.client_id) for mm in d.members) == \
            [("inst-x", "x"), ("inst-y", "y2")]
    finally:
        stop_all([x, y, y2])
