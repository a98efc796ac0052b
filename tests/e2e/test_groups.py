"""Classic consumer groups through real clients (issue 4, Tests section).

Each test starts its own broker. Group members are threads (or, for the
SIGKILL test, a child process), each with its own client; see
group_helpers.py. Unless a test is about it, the broker runs with
group.initial.rebalance.delay.ms=0 so groups form without the 3 s wait.
"""

import collections
import threading
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, KafkaError, KafkaException,
                             TopicPartition)

from clients import admin, ck_conf, create_topic, produce, watermarks
from group_helpers import (ChildConsumer, wait_survivor_consumed, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID,
                           INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID,
                           ConfluentMember, KafkaPythonMember, RawGroupClient,
                           fresh_committed, stop_all, wait_assignment_complete, wait_until)

# 10 offsets partitions instead of 50: a faster first FindCoordinator. The
# restart test keeps Kafka's default 50.
FAST = {"group.initial.rebalance.delay.ms": 0, "offsets.topic.num.partitions": 10}


@pytest.fixture
def gbroker(start_broker):
    return start_broker(overrides=FAST)


def values(n, start=0):
    return [b"v%06d" % i for i in range(start, start + n)]


def produce_spread(broker, topic, vals, partitions):
    """Produce `vals` round-robin over `partitions` partitions."""
    return produce(broker, topic, [dict(value=v, partition=i % partitions)
                                   for i, v in enumerate(vals)], flush_timeout=90)


def consume_all_exactly_once(broker, topic, members, assignments, total, partitions,
                             timeout=90):
    """Wait until the members consumed `total` records together; check every
    record exactly once and that each member only read its own partitions."""

    def describe():
        return (f"{total} records consumed; got "
                f"{sum(m.count() for m in members)}:\n  "
                + "\n  ".join(m.describe() for m in members))

    wait_until(lambda: sum(m.count() for m in members) >= total or
               any(m.exc for m in members), timeout, describe, interval=0.1)
    for m in members:
        assert m.exc is None, f"{m.name} failed: {m.exc!r}"
    time.sleep(0.5)  # anything extra (a duplicate) would arrive now
    seen = collections.Counter()
    for m, own in zip(members, assignments):
        with m.lock:
            recs = list(m.records)
            final = m.assignment
        assert final == own, f"{m.name}: assignment changed {sorted(own)} -> {sorted(final)}"
        foreign = {p for p, _, _ in recs} - own
        assert not foreign, f"{m.name} read partitions {sorted(foreign)} not assigned to it"
        seen.update((p, o) for p, o, _ in recs)
    dups = [k for k, c in seen.items() if c > 1]
    assert not dups, f"{len(dups)} records read more than once, e.g. {dups[:5]}"
    hw = {p: watermarks(broker, topic, p)[1] for p in range(partitions)}
    missing = [(p, o) for p in range(partitions) for o in range(hw[p]) if (p, o) not in seen]
    assert not missing, f"{len(missing)} records never read, e.g. {missing[:5]}"
    assert len(seen) == total
    return hw


# --- 1. librdkafka assignors ---------------------------------------------------
@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_librdkafka_group_splits_partitions_exactly_once(gbroker, strategy):
    topic = create_topic(gbroker, f"grp-{strategy}", partitions=6)
    group = f"g-{strategy}"
    members = [ConfluentMember(gbroker, group, topic, f"c{i}",
                               **{"partition.assignment.strategy": strategy})
               for i in range(3)]
    try:
        for m in members:
            m.start()
        assignments = wait_assignment_complete(members, 6)
        vals = values(30_000)
        produce_spread(gbroker, topic, vals, 6)
        hw = consume_all_exactly_once(gbroker, topic, members, assignments, 30_000, 6)
        consumed_vals = {v for m in members for _, _, v in m.records}
        assert consumed_vals == set(vals)
        for m in members:
            m.request_commit()
        committed = fresh_committed(gbroker, group, topic, range(6))
        assert {p: o for p, (o, _) in committed.items()} == hw
    finally:
        stop_all(members)


# --- 2. kafka-python -------------------------------------------------------------
def test_kafka_python_group_splits_partitions_exactly_once(gbroker):
    topic = create_topic(gbroker, "grp-kp", partitions=6)
    group = "g-kp"
    members = [KafkaPythonMember(gbroker, group, topic, f"kp{i}") for i in range(3)]
    try:
        for m in members:
            m.start()
        assignments = wait_assignment_complete(members, 6)
        vals = values(30_000)
        produce_spread(gbroker, topic, vals, 6)
        hw = consume_all_exactly_once(gbroker, topic, members, assignments, 30_000, 6)
        assert {v for m in members for _, _, v in m.records} == set(vals)
        for m in members:
            m.request_commit()
        committed = fresh_committed(gbroker, group, topic, range(6))
        assert {p: o for p, (o, _) in committed.items()} == hw
    finally:
        stop_all(members)


# --- 3. SIGKILLed member ---------------------------------------------------------
def test_sigkilled_member_partitions_move_and_nothing_is_lost(gbroker, tmp_path):
    topic = create_topic(gbroker, "grp-kill", partitions=6)
    group = "g-kill"
    child = ChildConsumer(tmp_path, gbroker, group, topic,
                          {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    survivor = ConfluentMember(gbroker, group, topic, "survivor", commit_each_batch=True)
    try:
        wait_until(lambda: child.snapshot()[0], 30, "the child consumer's first assignment")
        survivor.start()

        def split():
            c, s = child.snapshot()[0], survivor.snapshot()[0]
            return c and s and not (c & s) and (c | s) == set(range(6))

        wait_until(split, 30, lambda: f"a split: child={child.snapshot()} "
                                      f"{survivor.describe()}")
        first = values(6000)
        produce_spread(gbroker, topic, first, 6)
        wait_until(lambda: child.snapshot()[1] >= 300, 30,
                   lambda: f"the child to consume: {child.snapshot()}")
        child_assignment = child.snapshot()[0]
        killed_at = time.monotonic()
        child.kill()
        child_vals = {v.encode() for v in child.values}
        assert child_vals, "the child consumed nothing before the kill"
        # session.timeout.ms=6000: the coordinator expires the member, the
        # survivor rejoins and takes everything.
        wait_until(lambda: survivor.snapshot()[0] == set(range(6)), 6 + 15,
                   lambda: f"the survivor to own all partitions: {survivor.describe()}")
        moved_after = time.monotonic() - killed_at
        second = values(6000, start=6000)
        produce_spread(gbroker, topic, second, 6)
        want = set(first) | set(second)

        wait_survivor_consumed(survivor, child_vals, want)
        second_set = set(second)
        with survivor.lock:
            after_kill = {v for p, _, v in survivor.records if v in second_set}
        assert after_kill == second_set, "records produced after the kill"
        # The survivor started the child's partitions from the child's
        # commits: re-reads are limited to the child's uncommitted tail.
        with survivor.lock:
            redelivered = [v for p, _, v in survivor.records
                           if p in child_assignment and v in child_vals]
        assert len(redelivered) <= 50 * 3, \
            f"{len(redelivered)} of the child's records re-read (its commits were ignored?)"
        assert moved_after < 6 + 15
    finally:
        child.kill()
        survivor.stop()


# --- 4. committed offsets survive consumer and broker restarts ------------------
def group_consume(broker, group, topic, count, timeout=40, **conf):
    """Subscribe in `group`, read `count` records, close without committing."""
    c = Consumer(ck_conf(broker, **{"group.id": group, "auto.offset.reset": "earliest",
                                    "enable.auto.commit": False, "session.timeout.ms": 6000,
                                    **conf}))
    out = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(out) < count:
            assert time.monotonic() < deadline, \
                f"group_consume({group}): {len(out)} of {count} records in {timeout}s"
            for m in c.consume(num_messages=500, timeout=0.2):
                if m.error() is None:
                    out.append((m.partition(), m.offset(), m.value()))
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consume: {m.error()}")
        time.sleep(0.3)
        for m in c.consume(num_messages=500, timeout=0.2):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.value()))
    finally:
        c.close()
    return out


def test_committed_offsets_survive_consumer_and_broker_restarts(start_broker):
    b = start_broker(overrides={"group.initial.rebalance.delay.ms": 0})
    topic = create_topic(b, "grp-resume", partitions=3)
    group = "g-resume"
    produce_spread(b, topic, values(300), 3)
    n = {0: 40, 1: 55, 2: 70}

    # A member reads everything, then commits N (with metadata) on each partition.
    c = Consumer(ck_conf(b, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 300:
            assert time.monotonic() < deadline, f"first member read {got} of 300"
            got += sum(1 for m in c.consume(500, timeout=0.2) if m.error() is None)
        res = c.commit(offsets=[TopicPartition(topic, p, o, metadata=f"meta-p{p}")
                                for p, o in n.items()], asynchronous=False)
        assert all(tp.error is None for tp in res), res
    finally:
        c.close()

    want = {p: (o, f"meta-p{p}") for p, o in n.items()}

    def check_resume():
        recs = group_consume(b, group, topic, sum(100 - o for o in n.values()))
        by_part = collections.defaultdict(list)
        for p, o, _ in recs:
            by_part[p].append(o)
        for p, o in n.items():
            assert sorted(by_part[p]) == list(range(o, 100)), \
                f"partition {p}: resumed at {min(by_part[p], default=None)}, wanted {o}"

    assert fresh_committed(b, group, topic, n) == want
    check_resume()  # does not commit: the committed offsets stay at N

    # kafka-python reads the same offsets and metadata.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    def kp_committed():
        kc = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group,
                           enable_auto_commit=False, request_timeout_ms=15000)
        try:
            out = {}
            for p in n:
                om = kc.committed(KTP(topic, p), metadata=True, timeout_ms=20000)
                out[p] = (om.offset, om.metadata)
            return out
        finally:
            kc.close(autocommit=False)

    # confluent-kafka-python sends its metadata with the C string's NUL
    # (py_to_c_parts: metadata_size = strlen + 1), and reads it back as a C
    # string; kafka-python shows the bytes the broker returned, NUL included.
    def with_nul(d):
        return {p: (o, m + "\x00" if m.startswith("meta-") else m) for p, (o, m) in d.items()}

    assert kp_committed() == with_nul(want)

    b.restart()  # SIGTERM
    assert fresh_committed(b, group, topic, n, timeout=30) == want
    assert kp_committed() == with_nul(want)
    check_resume()

    # A standalone (non-member) kafka-python commit to the Empty group, with
    # metadata, also survives.
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False,
                       request_timeout_ms=15000)
    try:
        kc.assign([KTP(topic, 2)])
        kc.commit({KTP(topic, 2): OffsetAndMetadata(80, "kp-meta", -1)}, timeout_ms=20000)
    finally:
        kc.close(autocommit=False)
    n[2] = 80
    want[2] = (80, "kp-meta")
    assert fresh_committed(b, group, topic, n) == want

    b.kill()  # SIGKILL: no clean shutdown
    b.start()
    assert fresh_committed(b, group, topic, n, timeout=30) == want
    assert kp_committed() == with_nul(want)
    check_resume()


# --- 5. publish-subscribe ------------------------------------------------------
def test_two_groups_each_read_everything(gbroker):
    topic = create_topic(gbroker, "grp-pubsub", partitions=4)
    a = [ConfluentMember(gbroker, "g-pub-a", topic, "a0")]
    bm = [ConfluentMember(gbroker, "g-pub-b", topic, f"b{i}") for i in range(2)]
    try:
        for m in a + bm:
            m.start()
        a_assign = wait_assignment_complete(a, 4)
        b_assign = wait_assignment_complete(bm, 4)
        vals = values(4000)
        produce_spread(gbroker, topic, vals, 4)
        consume_all_exactly_once(gbroker, topic, a, a_assign, 4000, 4)
        consume_all_exactly_once(gbroker, topic, bm, b_assign, 4000, 4)
        for members in (a, bm):
            assert sorted(v for m in members for _, _, v in m.records) == vals
    finally:
        stop_all(a + bm)


# --- 6. static membership --------------------------------------------------------
def test_static_member_restart_within_session_timeout_no_rebalance(gbroker):
    topic = create_topic(gbroker, "grp-static", partitions=4)
    group = "g-static"
    static = {"session.timeout.ms": 15000}
    x = ConfluentMember(gbroker, group, topic, "x", **static, **{"group.instance.id": "inst-x"})
    y = ConfluentMember(gbroker, group, topic, "y", **static, **{"group.instance.id": "inst-y"})
    y2 = None
    try:
        x.start()
        wait_assignment_complete([x], 4, settle=0.5)
        y.start()
        x_assign, y_assign = wait_assignment_complete([x, y], 4)
        x_calls = x.snapshot()[2]
        y.stop()  # close(): a static member sends no LeaveGroup
        closed_at = time.monotonic()
        y2 = ConfluentMember(gbroker, group, topic, "y2", **static,
                             **{"group.instance.id": "inst-y"})
        y2.start()
        wait_until(lambda: y2.snapshot()[0], 15, lambda: f"y2's assignment: {y2.describe()}")
        assert time.monotonic() - closed_at < 15, "rejoin took longer than the session timeout"
        assert y2.snapshot()[0] == y_assign
        time.sleep(3)  # a rebalance (if any) would reach x by now
        assert x.snapshot()[0] == x_assign and y2.snapshot()[0] == y_assign
        assert x.snapshot()[2] == x_calls, f"x was rebalanced: {x.describe()}"
        # Both still consume.
        vals = values(400)
        produce_spread(gbroker, topic, vals, 4)
        wait_until(lambda: x.count() + y2.count() >= 400, 30,
                   lambda: f"400 records: {x.describe()} / {y2.describe()}")
        assert x.snapshot()[2] == x_calls
    finally:
        stop_all([x, y, y2])


# --- 7. admin APIs ------------------------------------------------------------------
def test_admin_list_describe_delete_groups(gbroker):
    from confluent_kafka import ConsumerGroupTopicPartitions
    from kafka.admin import KafkaAdminClient
    from kafka import TopicPartition as KTP

    topic = create_topic(gbroker, "grp-admin", partitions=4)
    group = "g-admin"
    members = [ConfluentMember(gbroker, group, topic, f"adm{i}",
                               **{"partition.assignment.strategy": "range"}) for i in range(2)]
    a = admin(gbroker)
    kadmin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap, request_timeout_ms=15000)
    try:
        for m in members:
            m.start()
        assignments = wait_assignment_complete(members, 4)
        produce_spread(gbroker, topic, values(400), 4)
        hw = consume_all_exactly_once(gbroker, topic, members, assignments, 400, 4)
        for m in members:
            m.request_commit()

        def listing():
            res = a.list_consumer_groups(request_timeout=10).result(timeout=20)
            assert not res.errors, res.errors
            return {g.group_id: g for g in res.valid}

        g = listing()[group]
        assert g.state == ConsumerGroupState.STABLE
        assert not g.is_simple_consumer_group
        stable_only = a.list_consumer_groups(
            request_timeout=10, states={ConsumerGroupState.STABLE}).result(timeout=20)
        assert group in {x.group_id for x in stable_only.valid}
        empty_only = a.list_consumer_groups(
            request_timeout=10, states={ConsumerGroupState.EMPTY}).result(timeout=20)
        assert group not in {x.group_id for x in empty_only.valid}

        desc = a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert not desc.is_simple_consumer_group
        by_client = {mm.client_id: mm for mm in desc.members}
        assert set(by_client) == {"adm0", "adm1"}
        for m, own in zip(members, assignments):
            tps = by_client[m.name].assignment.topic_partitions
            assert {(tp.topic, tp.partition) for tp in tps} == {(topic, p) for p in own}
            assert by_client[m.name].member_id

        offs = a.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=10)[group].result(timeout=20)
        assert {tp.partition: tp.offset for tp in offs.topic_partitions
                if tp.topic == topic} == hw

        # kafka-python's admin client sees the same.
        kp_groups = {gd["group_id"]: gd for gd in kadmin.list_groups()}
        assert group in kp_groups, kp_groups
        kp_offs = kadmin.list_group_offsets({group: None})[group]
        assert {tp.partition: om.offset for tp, om in kp_offs.items()
                if tp.topic == topic} == hw

        # OffsetDelete: refused while a member is subscribed to the topic.
        od = kadmin.delete_group_offsets(group, [KTP(topic, 0)])
        assert od[KTP(topic, 0)].__name__ == "GroupSubscribedToTopicError", od

        # A group with members cannot be deleted.
        with pytest.raises(KafkaException) as ei:
            a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value

        stop_all(members)  # close(): LeaveGroup
        wait_until(lambda: listing()[group].state == ConsumerGroupState.EMPTY, 15,
                   lambda: f"group Empty after the members left: {listing().get(group)}")
        # Empty now: OffsetDelete removes partition 0's offset only.
        od = kadmin.delete_group_offsets(group, [KTP(topic, 0)])
        assert od[KTP(topic, 0)].__name__ == "NoError", od
        left = fresh_committed(gbroker, group, topic, range(4))
        assert left[0][0] < 0 and {p: o for p, (o, _) in left.items() if p} == \
            {p: o for p, o in hw.items() if p}, left
        a.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=20)
        assert group not in listing()
        gone = fresh_committed(gbroker, group, topic, range(4))
        assert all(o < 0 for o, _ in gone.values()), f"offsets survived deletion: {gone}"
        # Deleting again: the group no longer exists.
        res = dict(kadmin.delete_groups([group]))
        assert "GroupIdNotFound" in str(res[group]), res  # GROUP_ID_NOT_FOUND
    finally:
        stop_all(members)
        kadmin.close()


# --- 8. bad input -------------------------------------------------------------------
def test_raw_group_requests_errors(gbroker):
    """Errors a real client would not provoke, through hand-made requests."""
    topic = create_topic(gbroker, "grp-raw", partitions=1)
    group = "g-raw"
    c = RawGroupClient(gbroker)
    try:
        c.find_coordinator(group)
        assert c.join_group("")["error"] == INVALID_GROUP_ID
        assert c.join_group(group, member_id="no-such-member")["error"] == UNKNOWN_MEMBER_ID
        # below group.min.session.timeout.ms (6000)
        assert c.join_group(group, session_timeout=1000)["error"] == INVALID_SESSION_TIMEOUT

        # KIP-394: the first JoinGroup (v4+) only hands out a member id.
        first = c.join_group(group)
        assert first["error"] == MEMBER_ID_REQUIRED and first["member_id"]
        mid = first["member_id"]
        joined = c.join_group(group, member_id=mid)
        assert joined["error"] == 0, joined
        assert joined["leader"] == mid and joined["member_id"] == mid
        gen = joined["generation"]
        assert [m[0] for m in joined["members"]] == [mid]
        err, _ = c.sync_group(group, gen, mid, [(mid, b"")])
        assert err == 0

        # Another protocol type cannot join a non-empty consumer group.
        assert c.join_group(group, protocol_type="connect")["error"] == \
            INCONSISTENT_GROUP_PROTOCOL

        assert c.heartbeat(group, gen, mid) == 0
        assert c.heartbeat(group, gen + 1, mid) == ILLEGAL_GENERATION
        assert c.heartbeat(group, gen, "no-such-member") == UNKNOWN_MEMBER_ID

        assert c.offset_commit(group, gen + 1, mid, topic, {0: 5}) == {0: ILLEGAL_GENERATION}
        assert c.offset_commit(group, gen, "no-such-member", topic, {0: 5}) == \
            {0: UNKNOWN_MEMBER_ID}
        assert fresh_committed(gbroker, group, topic, [0])[0][0] < 0  # nothing stored
        assert c.offset_commit(group, gen, mid, topic, {0: 7}) == {0: 0}
        assert fresh_committed(gbroker, group, topic, [0])[0][0] == 7
    finally:
        c.close()


# --- group.initial.rebalance.delay.ms ------------------------------------------------
def test_initial_rebalance_delay_forms_one_generation(start_broker):
    """Default delay (3 s): members joining an empty group within the delay
    all land in the first generation, so each is assigned exactly once."""
    b = start_broker(overrides={"offsets.topic.num.partitions": 10})
    topic = create_topic(b, "grp-delay", partitions=6)
    members = [ConfluentMember(b, "g-delay", topic, f"d{i}") for i in range(3)]
    try:
        t0 = time.monotonic()
        for m in members:
            m.start()
            time.sleep(0.3)
        wait_assignment_complete(members, 6, timeout=30, settle=1.0)
        took = time.monotonic() - t0
        assert all(m.snapshot()[2] == 1 for m in members), \
            "more than one rebalance: " + "; ".join(m.describe() for m in members)
        assert took >= 2.5, f"group formed after {took:.1f}s, before the 3 s initial delay"
    finally:
        stop_all(members)


# --- rebalances while consuming, with commit after processing ----------------------
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_members_join_and_leave_mid_stream_nothing_lost(gbroker, strategy):
    """A member joins and another leaves while records flow; with commits
    after every processed batch every record is read at least once, re-reads
    stay small, and the final committed offsets are the high watermarks."""
    topic = create_topic(gbroker, f"grp-churn-{strategy}", partitions=6)
    group = f"g-churn-{strategy}"
    conf = {"partition.assignment.strategy": strategy}
    members = [ConfluentMember(gbroker, group, topic, f"m{i}", commit_each_batch=True, **conf)
               for i in range(2)]
    stop_producing = threading.Event()
    produced = []
    prod_error = []

    def producer():
        try:
            i = 0
            while not stop_producing.is_set() and i < 20_000:
                batch = values(500, start=i)
                produce_spread(gbroker, topic, batch, 6)
                produced.extend(batch)
                i += 500
                time.sleep(0.1)
        except BaseException as e:
            prod_error.append(e)

    pt = threading.Thread(target=producer, daemon=True)
    late = None
    try:
        for m in members:
            m.start()
        wait_assignment_complete(members, 6)
        pt.start()
        time.sleep(1.5)
        late = ConfluentMember(gbroker, group, topic, "late", commit_each_batch=True, **conf)
        late.start()
        wait_assignment_complete(members + [late], 6)
        time.sleep(1.0)
        members[0].stop()  # LeaveGroup mid-stream
        wait_assignment_complete([members[1], late], 6)
        time.sleep(1.0)
        stop_producing.set()
        pt.join(60)
        assert not pt.is_alive() and not prod_error, prod_error
        everyone = members + [late]
        want = set(produced)

        def got():
            out = set()
            for m in everyone:
                with m.lock:
                    out.update(v for _, _, v in m.records)
            return out

        wait_until(lambda: got() >= want, 60,
                   lambda: f"{len(want)} values: {len(got() & want)} read; "
                           + "; ".join(m.describe() for m in everyone))
        total = sum(m.count() for m in everyone)
        assert total - len(want) <= 3 * 1000 * 2, f"{total - len(want)} re-reads"
        hw = {p: watermarks(gbroker, topic, p)[1] for p in range(6)}
        # Every partition's last batch was committed by its current owner.
        wait_until(lambda: {p: o for p, (o, _) in
                            fresh_committed(gbroker, group, topic, range(6)).items()} == hw,
                   20, lambda: f"committed == {hw}: "
                               f"{fresh_committed(gbroker, group, topic, range(6))}",
                   interval=0.5)
    finally:
        stop_producing.set()
        stop_all(members + [late])
