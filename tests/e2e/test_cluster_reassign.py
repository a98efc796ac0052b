"""Partition reassignment (KIP-455) while a producer writes, on 3 nodes with
RF=2: first a follower moves to the spare broker, then the leader moves off
its broker. Driven by kafka-python's KafkaAdminClient
(AlterPartitionReassignments / ListPartitionReassignments; confluent-kafka
2.16 has no reassignment API).
"""

import time

import pytest
from kafka import TopicPartition as KTP
from kafka.admin import KafkaAdminClient

from cluster import (AckingProducer, assert_acked_exactly_once, cluster_factory,  # noqa: F401
                     )
from group_helpers import wait_until


def _reassign(c, ka, topic, target, timeout=45):
    """Ask for `target` replicas; wait until every node sees exactly them as
    replicas and ISR, with no reassignment pending."""
    tp = KTP(topic, 0)
    res = ka.alter_partition_reassignments({tp: target}, timeout_ms=15000)
    assert res == {tp: None}, f"AlterPartitionReassignments {target}: {res}"
    v = c.wait_partition(topic, 0, lambda p: sorted(p["replicas"]) == sorted(target)
                         and sorted(p["isr"]) == sorted(target) and p["leader"] in target,
                         timeout, f"{topic}[0] reassigned to {target}")
    wait_until(lambda: ka.list_partition_reassignments([tp], timeout_ms=10000) == {}, 15,
               lambda: f"no pending reassignment: "
                       f"{ka.list_partition_reassignments([tp], timeout_ms=10000)}")
    return v


@pytest.mark.timeout(150)
def test_reassignment_moves_replicas_while_producing(cluster_factory):
    c = cluster_factory(3)
    topic = c.create_topic("moving", partitions=1, rf=2, config={"min.insync.replicas": 2})
    old = c.partition(topic, 0, c.running()[0])["replicas"]
    leader, follower = old
    spare = next(i for i in c.nodes if i not in old)
    ka = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=20000)
    try:
        with AckingProducer(c.bootstrap, topic, [0], rate=300) as prod:
            prod.wait_acks(200, timeout=30, what="acknowledgements before the reassignment")

            # 1. The follower moves to the spare broker.
            step1 = [leader, spare]
            t0 = time.monotonic()
            v = _reassign(c, ka, topic, step1)
            print(f"follower node{follower} -> node{spare} in {time.monotonic() - t0:.2f}s: {v}")
            assert v["leader"] == leader, f"leader changed moving a follower: {v}"
            prod.wait_acks(200, timeout=30, what=f"acknowledgements with replicas {step1}")
            # The removed replica's log is deleted.
            gone = c.nodes[follower].partition_dir(topic, 0)
            wait_until(lambda: not gone.exists(), 15,
                       f"node{follower} to delete its removed replica {gone}")

            # 2. The leader moves off its broker: the old follower comes back
            # (from an empty log) and leads.
            step2 = [follower, spare]
            t0 = time.monotonic()
            v = _reassign(c, ka, topic, step2)
            print(f"leader node{leader} -> node{follower} in {time.monotonic() - t0:.2f}s: {v}")
            assert v["leader"] in step2
            prod.wait_acks(200, timeout=30, what=f"acknowledgements with replicas {step2}")
            gone = c.nodes[leader].partition_dir(topic, 0)
            wait_until(lambda: not gone.exists(), 15,
                       f"node{leader} to delete its removed replica {gone}")
    finally:
        ka.close()
    assert prod.flush_left == 0 and not prod.errors, \
        f"{prod.flush_left} unreported, errors {prod.errors[:5]}"
    assert_acked_exactly_once(c, topic, [0], prod.acked)
    c.assert_replicas_identical(topic, 0, replicas=step2)
