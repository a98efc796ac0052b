"""Network partitions and the min.insync.replicas floor.

The partition tests run the cluster behind `faultproxy.FaultProxy`: every
node advertises the proxy's port for its client listener and is listed in
controller.quorum.voters under another proxy port, so the proxy sees (and
can cut) all traffic between nodes, both replication (followers fetching)
and the controller quorum, while the test's own clients still reach every
node. Raw Produce requests go straight to one node's own port, to ask
exactly that node whether it acknowledges a write.
"""

import time

import pytest
from confluent_kafka import KafkaError

import clients
from faultproxy import CLIENT
from cluster import (NOT_ENOUGH_REPLICAS, AckingProducer, assert_acked_exactly_once,  # noqa: F401
                     cluster_factory, produce_acked, raw_produce, read_all)


@pytest.mark.timeout(180)
def test_isolated_leader_stops_acking_and_truncates_after_heal(cluster_factory):
    c = cluster_factory(3, proxied=True)
    topic = c.create_topic("split", partitions=1, rf=3, config={"min.insync.replicas": 2})
    with AckingProducer(c.bootstrap, topic, [0], rate=200) as prod:
        prod.wait_acks(100, timeout=30, what="acknowledgements before the partition")
        old = c.leader(topic, 0)
        majority = [i for i in c.nodes if i != old]

        # The old leader loses the other nodes (black hole) and, through the
        # proxy, the clients too (connections reset): a client that can
        # still reach it gets its stale metadata ("I lead, epoch 0") and
        # keeps sending it writes that time out, as with Kafka; and
        # librdkafka keeps asking a black-holed broker for metadata for
        # socket.timeout.ms. The raw requests below go to its own port,
        # around the proxy.
        c.proxy.partition({old}, majority)
        c.proxy.block(CLIENT, old, both_ways=False, mode="reset")
        isolated_at = time.monotonic()
        new = c.wait_new_leader(topic, 0, {old}, timeout=30, nodes=majority)
        elected_after = time.monotonic() - isolated_at

        # The isolated leader (which cannot know it was replaced) must not
        # acknowledge an acks=all write: no follower can fetch from it.
        view_old = c.partition(topic, 0, old)
        err, base = raw_produce(c.nodes[old].port, topic, 0, [b"isolated-write"], acks=-1,
                                timeout_ms=3000)
        assert err != 0, (f"isolated leader node{old} acknowledged an acks=all write "
                          f"at offset {base}")
        print(f"isolated node{old} (sees {view_old}) answered acks=all with error {err} "
              f"(None: no answer)")
        v = c.partition(topic, 0, majority[0])
        assert old not in v["isr"], f"isolated node{old} still in the majority's ISR: {v}"
        # The majority side takes acks=all writes (2 in sync, min 2).
        err, base = raw_produce(c.nodes[new].port, topic, 0, [b"majority-write"], acks=-1)
        assert err == 0, f"new leader node{new} refused an acks=all write: error {err}"
        prod.wait_acks(100, timeout=30,
                       what=f"acknowledgements from new leader node{new} while node{old} "
                            f"is isolated")
        print(f"node{new} elected {elected_after:.2f}s after isolating node{old}")

        c.proxy.heal()
        c.wait_ready(timeout=30)
        v = c.wait_isr(topic, 0, set(c.nodes), timeout=45)
        assert v["leader"] == new, f"leadership moved again after the heal: {v}"
        view_old = c.partition(topic, 0, old)
        assert view_old["leader"] == new, f"node{old} still thinks it leads: {view_old}"
        prod.wait_acks(100, timeout=30, what="acknowledgements after the heal")
    assert prod.flush_left == 0 and not prod.errors, \
        f"{prod.flush_left} unreported, errors {prod.errors[:5]}"

    logs = assert_acked_exactly_once(c, topic, [0], prod.acked)
    values = [v for _, v in logs[0]]
    assert b"isolated-write" not in values, \
        "the write only the isolated leader took survived: it was never acknowledged " \
        "and the old leader should have truncated it"
    assert b"majority-write" in values
    c.assert_replicas_identical(topic, 0)


@pytest.mark.timeout(150)
def test_below_min_isr_refuses_acks_all_and_recovers(cluster_factory):
    # Both followers cut off from the leader's replication traffic only
    # (the controller quorum stays whole): the leader shrinks the ISR to
    # itself after replica.lag.time.max.ms.
    c = cluster_factory(3, proxied=True, overrides={"replica.lag.time.max.ms": 3000})
    topic = c.create_topic("minisr", partitions=1, rf=3, config={"min.insync.replicas": 2})
    produce_acked(c, topic, [dict(value=f"full-{i}".encode()) for i in range(10)])
    leader = c.leader(topic, 0)
    followers = [i for i in c.nodes if i != leader]

    for f in followers:
        c.proxy.block(f, leader, kinds=("data",))
    c.wait_isr(topic, 0, {leader}, timeout=30)

    err, _ = raw_produce(c.nodes[leader].port, topic, 0, [b"refused"], acks=-1)
    assert err == NOT_ENOUGH_REPLICAS, \
        f"acks=all with ISR {{{leader}}} < min.insync.replicas 2: error {err}, want 19"
    # librdkafka: retries off, so the broker's error is the delivery error.
    err = clients.produce_one_expect_error(c, topic, b"refused-too", acks="all", retries=0,
                                           **{"enable.idempotence": False,
                                              "message.timeout.ms": 10000}, timeout=20)
    assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, \
        f"librdkafka acks=all below min ISR: {err}"
    # acks=1 still works.
    below = produce_acked(c, topic, [dict(value=f"acks1-{i}".encode()) for i in range(10)],
                          acks=1)
    assert len(below) == 10

    c.proxy.heal()
    c.wait_isr(topic, 0, set(c.nodes), timeout=45)
    after = produce_acked(c, topic, [dict(value=f"healed-{i}".encode()) for i in range(10)])
    assert len(after) == 10
    got = [v for _, v in read_all(c, topic, [0])[0]]
    want = ([f"full-{i}".encode() for i in range(10)] + [f"acks1-{i}".encode() for i in range(10)]
            + [f"healed-{i}".encode() for i in range(10)])
    assert got == want
    c.assert_replicas_identical(topic, 0)


@pytest.mark.timeout(150)
def test_dead_follower_below_min_isr_then_returns(cluster_factory):
    # No proxy: min.insync.replicas=3 on RF=3, so one SIGKILLed follower
    # (fenced after the session timeout, dropped from the ISR) is enough to
    # go below the floor while the controller quorum keeps its majority.
    c = cluster_factory(3)
    topic = c.create_topic("minisr-kill", partitions=1, rf=3, config={"min.insync.replicas": 3})
    produce_acked(c, topic, [dict(value=f"full-{i}".encode()) for i in range(10)])
    leader = c.leader(topic, 0)
    follower = next(i for i in c.nodes if i != leader)

    c.kill(follower)
    c.wait_isr(topic, 0, set(c.nodes) - {follower}, timeout=30)
    err, _ = raw_produce(c.nodes[leader].port, topic, 0, [b"refused"], acks=-1)
    assert err == NOT_ENOUGH_REPLICAS, f"acks=all with 2 in sync < 3: error {err}, want 19"
    below = produce_acked(c, topic, [dict(value=f"acks1-{i}".encode()) for i in range(10)],
                          acks=1)
    assert len(below) == 10

    c.restart(follower)
    c.wait_ready()
    c.wait_isr(topic, 0, set(c.nodes), timeout=45)
    after = produce_acked(c, topic, [dict(value=f"back-{i}".encode()) for i in range(10)])
    assert len(after) == 10
    got = [v for _, v in read_all(c, topic, [0])[0]]
    want = ([f"full-{i}".encode() for i in range(10)] + [f"acks1-{i}".encode() for i in range(10)]
            + [f"back-{i}".encode() for i in range(10)])
    assert got == want
    c.assert_replicas_identical(topic, 0)
