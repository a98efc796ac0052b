#!/usr/bin/env python3
"""Leader failover benchmark: how long acks=all writes stall when the
partition leader dies.

  .venv/bin/python scripts/bench_failover.py [--bin target/release/odradek]
                                             [--runs 10] [--rate 1000]

Starts a 3-node cluster (combined broker+controller nodes, the harness of
tests/e2e/cluster.py) with the binary from --bin, else $ODRADEK_BIN, else
target/release/odradek if built, else target/debug/odradek. Creates a
topic with 3 partitions, RF=3, min.insync.replicas=2, so that each node is
the preferred leader of one. Then, --runs times:

  0. preferred leaders are restored (ElectLeaders), so each node leads one
     partition, and the partition for this run is picked by --scenario:
     "leader" kills a leader that is not the active controller,
     "leader+controller" the partition leader that is also the active
     controller (a Raft election comes first, then the new controller
     fences the dead broker), "alternate" (default) takes turns;
  1. a librdkafka producer (acks=all, idempotent, linger.ms=1, otherwise
     librdkafka's defaults) writes --rate records/s to that partition for
     --warmup seconds;
  2. the partition's leader is SIGKILLed;
  3. measured: the time from the kill (taken right after the signal was
     sent) to the first delivery report of a record acknowledged with an
     offset greater than the last offset acknowledged before the kill.
     Records keep being produced at the same rate the whole time; delivery
     reports are timestamped when the producer's poll() delivers them
     (polled at least every 1/rate s and at least every millisecond).
     "Acknowledged before the kill" includes the reports delivered in the
     first --grace-ms after it: acknowledgements the old leader sent just
     before it died are already on their way to the client and are read
     only after the kill (a real failover takes far longer: the controller
     must first notice the dead broker). Also recorded per run, as the
     broker-side part of that time: when a survivor's Metadata first names
     a new leader (raw Metadata requests every 10 ms);
  4. the killed node is restarted and the run ends once it is back in the
     ISR, so every run starts from a whole cluster.

Results are reported overall and per scenario.

Prints one JSON object (runs, median_s, worst_s, ...) and a text summary.
A run with no such acknowledgement within --run-timeout counts as a
failure (its time is null) and makes the exit status 1.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def pick_binary(arg):
    if arg:
        return os.path.abspath(arg)
    if os.environ.get("ODRADEK_BIN"):
        return os.path.abspath(os.environ["ODRADEK_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    release = target / "release" / "odradek"
    return str(release if release.exists() else target / "debug" / "odradek")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="odradek binary (default: $ODRADEK_BIN, release, debug)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rate", type=float, default=1000, help="records per second")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of writes before a kill")
    ap.add_argument("--run-timeout", type=float, default=60.0)
    ap.add_argument("--grace-ms", type=float, default=100.0,
                    help="delivery reports this soon after the kill count as pre-kill")
    ap.add_argument("--scenario", choices=("alternate", "leader", "leader+controller"),
                    default="alternate")
    ap.add_argument("--keep", action="store_true", help="keep the data and logs directory")
    ap.add_argument("-X", dest="conf", action="append", default=[],
                    help="extra librdkafka producer setting name=value (repeatable)")
    args = ap.parse_args()

    binary = pick_binary(args.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no odradek binary at {binary}: cargo build --release -p odradek, or --bin")
    os.environ["ODRADEK_BIN"] = binary  # conftest.broker_binary() reads it

    from confluent_kafka import Producer

    import clients
    from cluster import Cluster

    workdir = Path(tempfile.mkdtemp(prefix="odradek-bench-failover-"))
    cluster = Cluster(workdir, 3)
    conf = clients.ck_conf(cluster, **{"acks": "all", "enable.idempotence": True,
                                       "linger.ms": 1, "message.timeout.ms": 120000})
    conf.pop("logger")
    for kv in args.conf:
        k, v = kv.split("=", 1)
        conf[k] = v
    runs, failed = [], 0
    try:
        cluster.start()
        topic = cluster.create_topic("bench-failover", partitions=3, rf=3,
                                     config={"min.insync.replicas": 2})
        for run in range(1, args.runs + 1):
            with_controller = {"leader": False, "leader+controller": True,
                               "alternate": run % 2 == 0}[args.scenario]
            partition = pick_partition(cluster, topic, with_controller)
            r = one_run(cluster, topic, partition, conf, args, Producer)
            r["run"] = run
            runs.append(r)
            if r["failover_s"] is None:
                failed += 1
            shown = "FAILED" if r["failover_s"] is None else f"{r['failover_s'] * 1000:.0f} ms"
            md = r["new_leader_in_metadata_s"]
            print(f"run {run}: killed node{r['killed']}"
                  f"{' (also the active controller)' if r['killed_was_controller'] else ''}"
                  f" -> {shown} (new leader in metadata after "
                  f"{'-' if md is None else f'{md * 1000:.0f} ms'})", file=sys.stderr, flush=True)
            # Back to a whole cluster before the next run.
            cluster.restart(r["killed"])
            cluster.wait_ready(timeout=60)
            for p in range(3):
                cluster.wait_isr(topic, p, set(cluster.nodes), timeout=60)
    finally:
        cluster.shutdown()
        if args.keep:
            print(f"data and logs in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    times = [r["failover_s"] for r in runs if r["failover_s"] is not None]
    summary = {
        "benchmark": "leader failover, acks=all, RF=3, min.insync.replicas=2",
        "binary": binary,
        "runs": runs,
        "completed": len(times),
        "failed": failed,
        "median_s": statistics.median(times) if times else None,
        "worst_s": (max(times) if not failed else None) if times else None,
        "best_s": min(times) if times else None,
        # A killed leader that was also the active controller needs a Raft
        # election before the new controller can fence it: reported apart.
        "by_kill": {
            kind: _stats([r["failover_s"] for r in runs if r["killed_was_controller"] == was],
                         [r["new_leader_in_metadata_s"] for r in runs
                          if r["killed_was_controller"] == was])
            for kind, was in (("leader_only", False), ("leader_and_controller", True))},
        "producer": {k: v for k, v in conf.items() if k != "bootstrap.servers"},
        "rate_per_s": args.rate,
    }
    print(json.dumps(summary, indent=2))
    if times:
        worst = "a failed run" if failed else f"{max(times) * 1000:.0f} ms"
        print(f"leader failover (kill -> first ack past the pre-kill offset): median "
              f"{statistics.median(times) * 1000:.0f} ms, worst {worst}, best "
              f"{min(times) * 1000:.0f} ms over {len(runs)} runs ({failed} failed)")
        for kind, st in summary["by_kill"].items():
            if st["runs"]:
                el = st["new_leader_in_metadata_median_s"]
                print(f"  {kind}: {st['runs']} runs, median {st['median_s'] * 1000:.0f} ms, "
                      f"worst {st['worst_s'] * 1000:.0f} ms (new leader visible in "
                      f"metadata after {'-' if el is None else f'{el * 1000:.0f} ms'}, median)"
                      if st["worst_s"] is not None else f"  {kind}: {st['runs']} runs, some failed")
    else:
        print(f"leader failover: all {len(runs)} runs failed")
    return 1 if failed else 0


def _stats(values, elected=()):
    done = [v for v in values if v is not None]
    el = [v for v in elected if v is not None]
    return {"runs": len(values), "failed": len(values) - len(done),
            "median_s": statistics.median(done) if done else None,
            "worst_s": max(done) if done and len(done) == len(values) else None,
            "new_leader_in_metadata_median_s": statistics.median(el) if el else None}


def pick_partition(cluster, topic, with_controller):
    """Restore the preferred leaders; return a partition led by the active
    controller (with_controller) or by another node."""
    from confluent_kafka import ElectionType, TopicPartition
    tps = [TopicPartition(topic, p) for p in range(3)]
    try:  # errors such as ELECTION_NOT_NEEDED are expected; the wait decides
        cluster.admin().elect_leaders(ElectionType.PREFERRED, tps).result(timeout=30)
    except Exception:
        pass
    for p in range(3):
        cluster.wait_partition(topic, p, lambda v: v["leader"] == v["replicas"][0], 30,
                               f"{topic}[{p}] led by its preferred replica")
    controller = cluster.controller()
    leaders = {p: cluster.leader(topic, p) for p in range(3)}
    for p, leader in leaders.items():
        if (leader == controller) == with_controller:
            return p
    raise SystemExit(f"no partition fits: leaders {leaders}, controller {controller}")


def one_run(cluster, topic, partition, conf, args, Producer):
    acked = []    # (time, offset)
    errors = []

    def on_delivery(err, msg):
        now = time.monotonic()
        if err is None:
            acked.append((now, msg.offset()))
        else:
            errors.append((now, str(err)))

    p = Producer(conf)
    interval = 1.0 / args.rate
    next_send = time.monotonic()
    seq = 0

    def pump(until_cond, deadline):
        """Produce at the rate, polling between records, until until_cond()
        or the deadline; returns whether the condition was met."""
        nonlocal next_send, seq
        while True:
            now = time.monotonic()
            if until_cond():
                return True
            if now > deadline:
                return False
            if now >= next_send:
                try:
                    p.produce(topic, value=b"%d" % seq, partition=partition,
                              on_delivery=on_delivery)
                    seq += 1
                except BufferError:
                    pass
                next_send = max(next_send + interval, now - 1.0)
                p.poll(0)
            else:
                p.poll(min(next_send - now, 0.001))

    start = time.monotonic()
    warm = pump(lambda: time.monotonic() - start >= args.warmup and acked, start + 60)
    if not warm:
        p.flush(5)
        raise SystemExit(f"no acknowledgement within 60 s of warm-up; errors {errors[:3]}")
    victim = cluster.leader(topic, partition)
    controller = cluster.controller()
    node = cluster.nodes[victim]
    node._expected_exit = True
    survivor = next(i for i in cluster.nodes if i != victim)
    elected = {}

    def watch():
        while "t" not in elected and time.monotonic() < killed_at + args.run_timeout:
            v = cluster.partition(topic, partition, survivor)
            if v is not None and v["leader"] not in (victim, -1):
                elected["t"] = time.monotonic()
                return
            time.sleep(0.01)

    p.poll(0)
    node.proc.kill()
    killed_at = time.monotonic()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    grace_end = killed_at + args.grace_ms / 1000
    pump(lambda: False, grace_end)
    pre = [o for t, o in acked if t <= grace_end]
    last_pre = max(pre)
    acked_before = len(pre)

    def past():
        return any(o > last_pre for _, o in acked[acked_before:])

    ok = pump(past, killed_at + args.run_timeout)
    first = min((t for t, o in acked[acked_before:] if o > last_pre), default=None)
    node.proc.wait()
    watcher.join(args.run_timeout)
    left = p.flush(30)
    return {
        "partition": partition,
        "killed": victim,
        "killed_was_controller": victim == controller,
        "new_leader": cluster.leader(topic, partition),
        "last_offset_before_kill": last_pre,
        "acks_in_grace": sum(1 for t, _ in acked if killed_at < t <= grace_end),
        "failover_s": round(first - killed_at, 4) if ok and first is not None else None,
        "new_leader_in_metadata_s": (round(elected["t"] - killed_at, 4)
                                     if "t" in elected else None),
        "delivery_errors": len(errors),
        "first_errors": [e for _, e in errors[:3]],
        "unreported_after_flush": left,
        "records_sent": seq,
    }


if __name__ == "__main__":
    sys.exit(main())
