"""`odradek groups describe`: per-partition consumer lag, checked against
what confluent-kafka itself reports for the same group.

For every row the CLI prints, CURRENT-OFFSET must equal the group's
committed offset (`Consumer.committed`), LOG-END-OFFSET the partition's
high watermark (`Consumer.get_watermark_offsets`), and LAG their
difference; a partition the group has not committed shows "-" (null in
--json). Rows are the partitions the group committed or has assigned to a
member, as in `kafka-consumer-groups.sh --describe`.

An unknown group is an error (exit 1, "does not exist"), as
kafka-consumer-groups.sh reports "Consumer group 'G' does not exist."; an
unreachable bootstrap server is an error naming the address.

The 3-node case places partition leaders on three different nodes and
bootstraps the CLI from one of them, so ListOffsets must reach each leader.
"""

import json
import os
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic

import clients
from cluster import cluster_factory, produce_acked  # noqa: F401
from conftest import broker_binary, free_port
from group_helpers import wait_until

FAST = {"group.initial.rebalance.delay.ms": 0, "offsets.topic.num.partitions": 4}
TOPIC = "lag-data"
COUNTS = {0: 30, 1: 20, 2: 10}
CLI_TIMEOUT_MS = 20000


def run_cli(bootstrap, group, *extra, check=None):
    """`odradek groups describe`; returns the CompletedProcess (text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
    cmd = [broker_binary(), "groups", "describe", "--bootstrap-server", bootstrap,
           "--group", group, "--timeout", str(CLI_TIMEOUT_MS), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=CLI_TIMEOUT_MS / 1000 + 30)
    if check is not None:
        assert (r.returncode == 0) == check, (
            f"{' '.join(cmd)} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def table_rows(stdout):
    """The table as [{column: cell}] (no cell holds a space here)."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert lines, "no table printed"
    header = lines[0].split()
    assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                      "CONSUMER-ID", "HOST", "CLIENT-ID"], lines[0]
    rows = [dict(zip(header, ln.split())) for ln in lines[1:]]
    assert all(len(r) == len(header) for r in rows), stdout
    return rows


def describe_text(bootstrap, group):
    r = run_cli(bootstrap, group, check=True)
    return table_rows(r.stdout), r.stderr


def describe_json(bootstrap, group):
    r = run_cli(bootstrap, group, "--json", check=True)
    return json.loads(r.stdout), r.stderr


def python_view(bootstrap, group, topic, partitions):
    """{partition: (committed or None, high watermark)} from confluent-kafka."""
    c = Consumer(clients.ck_conf(_Bootstrap(bootstrap),
                                 **{"group.id": group, "enable.auto.commit": False}))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
        out = {}
        for tp in tps:
            assert tp.error is None, tp.error
            high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=20,
                                           cached=False)[1]
            out[tp.partition] = (tp.offset if tp.offset >= 0 else None, high)
        return out
    finally:
        c.close()


class _Bootstrap:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap


def assert_rows_match(text_rows, json_rows, group, view, owner=None):
    """Text and JSON rows agree with each other and with `view`, partition
    by partition, in partition order; `owner` = (consumer id, client id) or
    None for no owner."""
    assert [int(r["PARTITION"]) for r in text_rows] == sorted(view), text_rows
    assert [r["partition"] for r in json_rows] == sorted(view), json_rows
    for t, j in zip(text_rows, json_rows):
        committed, high = view[j["partition"]]
        lag = None if committed is None else high - committed
        assert (j["group"], j["topic"]) == (group, TOPIC)
        assert (j["current_offset"], j["log_end_offset"], j["lag"]) == (committed, high, lag), j
        dash = lambda v: "-" if v is None else str(v)  # noqa: E731
        assert (t["GROUP"], t["TOPIC"]) == (group, TOPIC)
        assert (t["CURRENT-OFFSET"], t["LOG-END-OFFSET"], t["LAG"]) == \
            (dash(committed), dash(high), dash(lag)), t
        if owner is None:
            assert (j["consumer_id"], j["host"], j["client_id"]) == (None, None, None), j
            assert (t["CONSUMER-ID"], t["HOST"], t["CLIENT-ID"]) == ("-", "-", "-"), t
        else:
            assert (j["consumer_id"], j["client_id"]) == owner, j
            assert j["host"], j
            assert (t["CONSUMER-ID"], t["HOST"], t["CLIENT-ID"]) == \
                (owner[0], j["host"], owner[1]), t


def produce_counts(target, counts, tag="v"):
    clients.produce(target, TOPIC, [dict(value=f"{tag}{p}-{i}".encode(), partition=p)
                                    for p, n in counts.items() for i in range(n)])


def read_records(consumer, total, timeout=45):
    """Poll until `total` records arrived; returns {partition: count}."""
    counts, errors = {}, []

    def enough():
        for m in consumer.consume(num_messages=500, timeout=0.2):
            if m.error() is None:
                counts[m.partition()] = counts.get(m.partition(), 0) + 1
            elif m.error().code() != KafkaError._PARTITION_EOF:
                errors.append(m.error())
        return sum(counts.values()) >= total

    wait_until(enough, timeout, lambda: f"{total} records, got {counts}; errors {errors[:3]}",
               interval=0)
    return counts


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_describe_matches_confluent_kafka(start_broker, protocol):
    overrides = dict(FAST)
    if protocol == "consumer":
        overrides["group.consumer.heartbeat.interval.ms"] = 1000
    broker = start_broker(overrides=overrides)
    clients.create_topic(broker, TOPIC, partitions=3)
    produce_counts(broker, COUNTS)
    group = f"lag-{protocol}"
    conf = {"group.id": group, "client.id": "lag-e2e", "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    member = Consumer(clients.ck_conf(broker, **conf))
    try:
        member.subscribe([TOPIC])
        assert read_records(member, sum(COUNTS.values())) == COUNTS
        # Part of it committed: p0 in the middle, p1 at its end, p2 never.
        member.commit(offsets=[TopicPartition(TOPIC, 0, 12), TopicPartition(TOPIC, 1, 20)],
                      asynchronous=False)
        produce_counts(broker, {1: 5}, tag="late")  # p1 lags again

        view = python_view(broker.bootstrap, group, TOPIC, range(3))
        assert view == {0: (12, 30), 1: (20, 25), 2: (None, 10)}, view
        member_id = member.memberid()
        assert member_id
        text_rows, text_err = describe_text(broker.bootstrap, group)
        json_rows, _ = describe_json(broker.bootstrap, group)
        # The member owns all three partitions, committed or not.
        assert_rows_match(text_rows, json_rows, group, view, owner=(member_id, "lag-e2e"))
        assert "no active members" not in text_err
    finally:
        member.close()

    # No members: only the committed partitions, no owners, Kafka's note.
    def empty():
        r = run_cli(broker.bootstrap, group, "--json", check=True)
        return r if "has no active members" in r.stderr else None

    r = wait_until(empty, 30, f"{group} without members")
    view = python_view(broker.bootstrap, group, TOPIC, range(2))
    assert view == {0: (12, 30), 1: (20, 25)}, view
    text_rows, _ = describe_text(broker.bootstrap, group)
    assert_rows_match(text_rows, json.loads(r.stdout), group, view)


def test_unknown_group_and_unreachable_bootstrap(start_broker):
    broker = start_broker(overrides=FAST)
    for extra in ((), ("--json",)):
        r = run_cli(broker.bootstrap, "no-such-group", *extra, check=False)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert r.stdout == ""
        assert "consumer group 'no-such-group' does not exist" in r.stderr, r.stderr

    port = free_port()  # nothing listens there
    r = run_cli(f"127.0.0.1:{port}", "g", check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert f"cannot reach any bootstrap server (127.0.0.1:{port}" in r.stderr, r.stderr
    assert "--bootstrap-server" in r.stderr

    r = run_cli("no-port-here", "g", check=False)
    assert r.returncode != 0 and "HOST:PORT" in r.stderr, r.stderr


@pytest.mark.timeout(180)
def test_lag_on_a_cluster_asks_each_partition_leader(cluster_factory):
    c = cluster_factory(3)
    # Leader of partition p is node p+1 (the first replica is preferred).
    fs = c.admin().create_topics(
        [NewTopic(TOPIC, num_partitions=3,
                  replica_assignment=[[1, 2, 3], [2, 3, 1], [3, 1, 2]])],
        operation_timeout=20, request_timeout=25)
    fs[TOPIC].result(timeout=30)
    c.wait_topic(TOPIC, 3, 3)
    for p in range(3):
        c.wait_partition(TOPIC, p, lambda v, p=p: v["leader"] == p + 1, 30,
                         f"{TOPIC}[{p}] led by node {p + 1}")
    everyone = c.bootstrap_of(*c.running())
    produce_acked(everyone, TOPIC, [dict(value=f"v{p}-{i}".encode(), partition=p)
                                    for p, n in COUNTS.items() for i in range(n)])

    # A standalone (non-member) commit: a group with offsets and no members.
    group = "lag-cluster"
    committer = Consumer(clients.ck_conf(everyone, **{"group.id": group,
                                                      "enable.auto.commit": False}))
    try:
        committer.commit(offsets=[TopicPartition(TOPIC, 0, 5), TopicPartition(TOPIC, 1, 20),
                                  TopicPartition(TOPIC, 2, 1)], asynchronous=False)
    finally:
        committer.close()
    view = python_view(everyone.bootstrap, group, TOPIC, range(3))
    assert view == {0: (5, 30), 1: (20, 20), 2: (1, 10)}, view

    # Bootstrapped from node 1 only: nodes 2 and 3 lead partitions 1 and 2.
    only_1 = c.bootstrap_of(1).bootstrap
    text_rows, _ = describe_text(only_1, group)
    json_rows, err = describe_json(only_1, group)
    assert "warning" not in err, err
    assert_rows_match(text_rows, json_rows, group, view)
