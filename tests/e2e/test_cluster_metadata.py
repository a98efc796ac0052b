"""Cluster metadata end to end: any one broker describes the whole cluster,
and clients bootstrapped to one broker reach the leaders on the others.
Also `odradek dev cluster`.

Every client here is real (librdkafka, kafka-python, kcat) except the
per-broker Metadata request, which is sent raw so that it is answered by
exactly the broker under test (a client picks whichever broker it likes).
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from confluent_kafka.admin import AdminClient

import clients
from cluster import cluster_factory, produce_acked  # noqa: F401  (fixture)
from conftest import broker_binary
from group_helpers import wait_until


@pytest.mark.timeout(90)
def test_any_broker_describes_the_whole_cluster(cluster_factory):
    c = cluster_factory(3)
    topic = c.create_topic("md-whole", partitions=3, rf=3)
    want_brokers = {i: ("127.0.0.1", c.client_port(i)) for i in c.nodes}

    views = {i: c.metadata(i, [topic]) for i in c.nodes}
    for i, md in views.items():
        assert md is not None, f"node{i} did not answer Metadata"
        got = {b[0]: (b[1], b[2]) for b in md["brokers"]}
        assert got == want_brokers, f"node{i} lists brokers {got}, want {want_brokers}"
    controllers = {i: md["controller"] for i, md in views.items()}
    assert len(set(controllers.values())) == 1 and set(controllers.values()) <= set(c.nodes), \
        f"controller ids per node: {controllers}"
    cluster_ids = {i: md["cluster_id"] for i, md in views.items()}

    layouts = {}
    for i, md in views.items():
        t = md["topics"][topic]
        assert t["error"] == 0, f"node{i}: topic error {t['error']}"
        parts = {p["index"]: p for p in t["partitions"]}
        assert sorted(parts) == [0, 1, 2], f"node{i}: partitions {sorted(parts)}"
        for idx, p in parts.items():
            assert p["error"] == 0, f"node{i}: {topic}[{idx}] error {p['error']}"
            assert sorted(p["replicas"]) == [1, 2, 3], f"node{i}: {topic}[{idx}] {p}"
            assert p["leader"] in p["replicas"], f"node{i}: {topic}[{idx}] {p}"
            assert sorted(p["isr"]) == [1, 2, 3], f"node{i}: {topic}[{idx}] {p}"
        layouts[i] = {idx: (p["leader"], p["replicas"]) for idx, p in parts.items()}
    assert layouts[1] == layouts[2] == layouts[3], f"nodes disagree on the layout: {layouts}"
    leaders = {idx: lr[0] for idx, lr in layouts[1].items()}
    assert sorted(leaders.values()) == [1, 2, 3], \
        f"3 partitions on 3 brokers should have one leader each: {leaders}"

    # DescribeCluster through librdkafka's admin client, bootstrapped to one broker.
    controller = controllers[1]
    for i in c.nodes:
        a = AdminClient(clients.ck_conf(c.bootstrap_of(i)))
        d = a.describe_cluster(request_timeout=15).result(timeout=20)
        assert sorted(n.id for n in d.nodes) == [1, 2, 3], f"via node{i}: {d.nodes}"
        assert d.controller is not None and d.controller.id == controller, \
            f"via node{i}: controller {d.controller}, Metadata says {controller}"
        assert d.cluster_id in cluster_ids.values(), f"via node{i}: cluster id {d.cluster_id}"

    # kcat -L bootstrapped to one broker lists all three and the layout.
    for i in c.nodes:
        out = clients.kcat(c.bootstrap_of(i), "-L", "-J", "-t", topic, timeout=30).stdout
        md = json.loads(out)
        assert sorted(b["id"] for b in md["brokers"]) == [1, 2, 3], f"kcat via node{i}: {md}"
        t = [t for t in md["topics"] if t["topic"] == topic][0]
        got = {p["partition"]: p["leader"] for p in t["partitions"]}
        assert got == leaders, f"kcat via node{i}: leaders {got}, want {leaders}"
        for p in t["partitions"]:
            assert sorted(r["id"] for r in p["replicas"]) == [1, 2, 3], f"kcat: {p}"
            assert sorted(r["id"] for r in p["isrs"]) == [1, 2, 3], f"kcat: {p}"

    # One cluster, one id (checked last so that the checks above still run).
    assert len(set(cluster_ids.values())) == 1, \
        f"the nodes of one cluster report different cluster ids in Metadata: {cluster_ids}"


@pytest.mark.timeout(90)
def test_clients_bootstrapped_to_one_broker_produce_to_every_leader(cluster_factory):
    c = cluster_factory(3)
    topic = c.create_topic("md-produce", partitions=3, rf=3)
    leaders = {p: c.leader(topic, p) for p in range(3)}
    entry = 1
    assert any(l != entry for l in leaders.values()), f"all leaders on node{entry}: {leaders}"

    # librdkafka, bootstrapped to node 1 only, acks=all.
    ck = produce_acked(c.bootstrap_of(entry), topic,
                       [dict(value=f"ck-{p}-{i}".encode(), partition=p)
                        for i in range(10) for p in range(3)], acks="all")
    assert sorted({r.partition for r in ck}) == [0, 1, 2]
    # kafka-python, bootstrapped to node 2 only.
    kp = clients.kp_produce(c.bootstrap_of(2), topic,
                            [dict(value=f"kp-{p}-{i}".encode(), partition=p)
                             for i in range(10) for p in range(3)], acks="all")
    assert sorted({r.partition for r in kp}) == [0, 1, 2]
    # kcat, bootstrapped to node 3 only, one message per partition.
    for p in range(3):
        clients.kcat(c.bootstrap_of(3), "-P", "-t", topic, "-p", str(p), "-X", "acks=all",
                     input=f"kcat-{p}\n".encode(), timeout=30)

    want = {p: [f"ck-{p}-{i}" for i in range(10)] + [f"kp-{p}-{i}" for i in range(10)]
            + [f"kcat-{p}"] for p in range(3)}
    # Read back with each client through a broker that leads only some partitions.
    got_ck = clients.consume(c.bootstrap_of(2), topic, partitions=(0, 1, 2), timeout=30)
    got_kp = clients.kp_consume(c.bootstrap_of(3), topic, partitions=(0, 1, 2), count=63,
                                timeout=30)
    for name, recs in (("confluent", got_ck), ("kafka-python", got_kp)):
        by_part = {p: [r.value.decode() for r in sorted(recs, key=lambda r: r.offset)
                       if r.partition == p] for p in range(3)}
        assert by_part == want, f"{name} read {by_part}"
    for p in range(3):
        recs = clients.kcat_consume_json(c.bootstrap_of(1), topic, partition=p, timeout=30)
        assert [r.value.decode() for r in recs] == want[p], f"kcat [{p}]: {recs}"


# --- odradek dev cluster -------------------------------------------------------------
def _free_port_run(n, tries=200):
    """A base port with n consecutive free ports after it."""
    import random
    for _ in range(tries):
        base = random.randrange(20000, 32000 - n)  # below the ephemeral range
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no run of free ports")


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.timeout(90)
def test_dev_cluster_command(tmp_path):
    base = _free_port_run(6)
    d = tmp_path / "dev"
    stderr = open(tmp_path / "dev-cluster.stderr", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
    proc = subprocess.Popen([broker_binary(), "dev", "cluster", "--nodes", "3",
                             "--base-port", str(base), "--dir", str(d)],
                            stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(
        l.decode(errors="replace").rstrip("\n") for l in proc.stdout), daemon=True)
    reader.start()

    def logs():
        out = [f"stdout: {lines}"]
        for n in (1, 2, 3):
            try:
                tail = (d / f"node-{n}.log").read_text(errors="replace").splitlines()[-15:]
                out.append(f"--- node-{n}.log ---\n" + "\n".join(tail))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    try:
        line = wait_until(lambda: next((l for l in lines if l.startswith("bootstrap.servers=")),
                                       None), 20, lambda: f"the bootstrap line; {logs()}")
        bootstrap = line.split("=", 1)[1]
        ports = [base, base + 2, base + 4]
        assert bootstrap == ",".join(f"127.0.0.1:{p}" for p in ports), line

        class B:
            pass

        b = B()
        b.bootstrap = bootstrap
        # Every node answers and the cluster has three brokers.
        a = AdminClient(clients.ck_conf(b))

        def three():
            try:
                return len(a.describe_cluster(request_timeout=5).result(timeout=6).nodes) == 3
            except Exception:
                return False

        wait_until(three, 30, lambda: f"3 brokers in the dev cluster; {logs()}")
        b._admin_client = a
        clients.create_topic(b, "dev-topic", partitions=1, replication_factor=3)
        acked = produce_acked(b, "dev-topic", [dict(value=f"v{i}".encode()) for i in range(20)],
                              acks="all")
        assert [r.offset for r in acked] == list(range(20))
        got = clients.consume(b, "dev-topic", timeout=20)
        assert [r.value for r in got] == [f"v{i}".encode() for i in range(20)]

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(45)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"dev cluster did not exit within 45 s of SIGTERM\n{logs()}")
        took = time.monotonic() - t0
        assert code == 0, f"dev cluster exited {code}\n{logs()}"
        still = [p for p in ports if _port_open(p)]
        assert not still, f"nodes still listening on {still} after the dev cluster exited " \
                          f"({took:.1f} s)\n{logs()}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the command and the nodes it started
        except ProcessLookupError:
            pass
        proc.wait(10)
        stderr.close()
