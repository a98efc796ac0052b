"""DescribeLogDirs through kafka-python's admin client: the one data
directory, its capacity (KIP-827), and the size of each hosted partition,
which grows with what was produced."""

import pytest
from kafka.admin import KafkaAdminClient

import clients


@pytest.mark.timeout(60)
def test_describe_log_dirs_reports_the_directory_and_partition_sizes(start_broker):
    broker = start_broker()
    clients.create_topic(broker, "dirs", partitions=2)
    clients.produce(broker, "dirs", [{"value": b"x" * 1000, "partition": 0} for _ in range(50)])
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = admin.describe_log_dirs()
    finally:
        admin.close()
    # One entry per broker: {"broker": id, "log_dirs": [result dicts]}.
    assert [r["broker"] for r in result] == [1], result
    entries = result[0]["log_dirs"]
    assert len(entries) == 1, entries
    d = entries[0]
    assert d["error_code"] == 0
    assert str(d["log_dir"]).endswith("data"), d["log_dir"]
    sizes = {(t["name"], p["partition_index"]): p["partition_size"]
             for t in d["topics"] for p in t["partitions"]}
    assert sizes[("dirs", 1)] == 0
    assert sizes[("dirs", 0)] >= 50 * 1000
    if "total_bytes" in d:
        assert d["total_bytes"] > 0 and 0 <= d["usable_bytes"] <= d["total_bytes"]
