"""process.roles beyond the combined node: a broker-only node joins a
cluster of three combined voters, receives the metadata log as a Raft
learner, hosts and leads replicas, and survives a SIGKILL and restart.
Bad role/voter combinations are refused at start-up with a message that
names the setting.
"""

import os
import subprocess

import pytest

import clients
from cluster import cluster_factory, free_ports, log_prefix, produce_acked  # noqa: F401 (fixture)
from conftest import Broker, broker_binary
from group_helpers import wait_until


class BrokerOnly(Broker):
    def __init__(self, workdir, node_id, voters, overrides):
        super().__init__(workdir, overrides, name=f"node{node_id}")
        self.node_id = node_id
        self.voters = voters

    def command(self):
        return [*super().command(),
                "--override", f"node.id={self.node_id}",
                "--override", "process.roles=broker",
                "--override", f"controller.quorum.voters={self.voters}"]


@pytest.mark.timeout(150)
def test_broker_only_node_hosts_and_leads_replicas(cluster_factory, tmp_path, request):
    cluster = cluster_factory(n=3)
    voters = cluster.nodes[1].voters
    four = BrokerOnly(tmp_path / "node4", 4, voters, dict(cluster.overrides))
    request.node._odradek_brokers.append(four)
    try:
        four.start()
        # Its metadata comes from the quorum: all four brokers, from itself.
        wait_until(lambda: len(clients.admin(four).list_topics(timeout=5).brokers) == 4,
                   timeout=30, what="the broker-only node to see four brokers")
        admin = clients.admin(four)
        from confluent_kafka.admin import NewTopic
        admin.create_topics([NewTopic("roles", 4, 4)])["roles"].result(timeout=30)
        # Explicit partitions: librdkafka's sticky partitioner may put every
        # keyless record into one partition, leaving others empty.
        produce_acked(four, "roles", [{"value": f"v{i}".encode(), "partition": i % 4}
                                      for i in range(400)], timeout=60)
        md = admin.list_topics("roles", timeout=10).topics["roles"]
        assert 4 in {p.leader for p in md.partitions.values()}, "node 4 leads a partition"
        # SIGKILL the broker-only node: writes continue (min.insync=2), and
        # after a restart it catches up as a learner and a follower.
        four.kill()
        produce_acked(cluster, "roles", [{"value": f"w{i}".encode(), "partition": i % 4}
                                         for i in range(400)], timeout=60)
        four.start()
        for p in range(4):
            cluster.wait_isr("roles", p, {1, 2, 3, 4}, timeout=60)
        for p in range(4):
            hw = cluster.assert_replicas_identical("roles", p, replicas=[1, 2, 3])
            assert log_prefix(four.data_dir / f"roles-{p}", hw) == \
                cluster.replica_prefix(1, "roles", p, hw), f"roles[{p}] on node 4"
    finally:
        if four.alive():
            four.stop()


@pytest.mark.parametrize("overrides, names", [
    ({"process.roles": "broker"}, "controller.quorum.voters"),
    ({"node.id": "9", "controller.quorum.voters": "1@127.0.0.1:1"}, "controller.quorum.voters"),
    ({"process.roles": "zookeeper"}, "process.roles"),
])
def test_bad_role_settings_are_refused_with_the_setting_named(tmp_path, overrides, names):
    cmd = [broker_binary(), "serve", "--override", f"log.dirs={tmp_path}",
           "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_ports(1)[0]}"]
    for k, v in overrides.items():
        cmd += ["--override", f"{k}={v}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode != 0
    assert names in done.stderr, done.stderr
