#!/usr/bin/env python3
"""Consumer-group benchmarks (issue 4, Performance section).

  .venv/bin/python scripts/bench_groups.py [--bin target/release/odradek]
                                           [--runs 5] [--commit-seconds 10]

(a) Rebalance: a 10-member group on a 22-partition topic is stable; an 11th
    member subscribes. Measured from that subscribe() call until all 11
    members report the final assignment (2 partitions each, disjoint,
    covering all 22) -- the time of the last assignment change of any
    member, checked to hold for a further settle period. Median (min-max)
    of --runs runs, a fresh group each run; the new member subscribes at a
    random point (0-5 s) after the group settled. Scenarios:
      - classic, confluent-kafka defaults (range assignor, eager; session
        45 s, heartbeat 3 s), broker group.initial.rebalance.delay.ms 3000
        (default) and 0;
      - KIP-848 (group.protocol=consumer, server-side uniform assignor),
        broker group.consumer.heartbeat.interval.ms 5000 (default) and 1000;
      - the online upgrade (--only migration): the 10 are classic, the 11th
        is KIP-848, which converts the group with the classic members
        inside it.
(b) Offset commits per second: one group member commits one partition's
    offset (explicit offsets, increasing) in a loop for --commit-seconds,
    synchronously (one at a time) and asynchronously (up to 1000 in flight,
    then drained), for a classic and a KIP-848 member.

Starts one release broker per scenario on a free 127.0.0.1 port with a
temporary log directory and stops it afterwards. Prints a markdown table.
Every wait is bounded.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 22
MEMBERS = 10


# --- broker ----------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary, overrides):
        self.dir = Path(tempfile.mkdtemp(prefix="odradek-bench-groups-"))
        self.port = free_port()
        cmd = [binary, "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
               "--override", f"log.dirs={self.dir / 'data'}"]
        for k, v in overrides.items():
            cmd += ["--override", f"{k}={v}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
        self.log = open(self.dir / "broker.log", "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, cwd=self.dir, env=env)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"broker exited ({self.proc.returncode}); log in {self.dir}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("broker did not start within 20 s")
                time.sleep(0.05)
        self.bootstrap = f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def create_topic(bootstrap, name, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)[name].result(30)
    deadline = time.monotonic() + 20
    while len(a.list_topics(name, timeout=10).topics[name].partitions) != partitions:
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {name} not visible")
        time.sleep(0.1)


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s: {what() if callable(what) else what}")
        time.sleep(0.02)


# --- (a) rebalance time --------------------------------------------------------------------
class Member(threading.Thread):
    """A subscribed consumer that publishes its assignment and when it last
    changed (monotonic seconds)."""

    def __init__(self, conf, topic):
        super().__init__(daemon=True)
        self.conf, self.topic = conf, topic
        self.lock = threading.Lock()
        self.assignment = frozenset()
        self.changed_at = None
        self.subscribed_at = None
        self.stop_event = threading.Event()
        self.exc = None

    def run(self):
        c = None
        try:
            c = Consumer(self.conf)
            self.subscribed_at = time.monotonic()
            c.subscribe([self.topic])
            while not self.stop_event.is_set():
                c.poll(0.02)
                a = frozenset(tp.partition for tp in c.assignment())
                with self.lock:
                    if a != self.assignment:
                        self.assignment = a
                        self.changed_at = time.monotonic()
        except BaseException as e:
            self.exc = e
        finally:
            if c is not None:
                c.close()

    def state(self):
        with self.lock:
            return self.assignment, self.changed_at


def balanced(members):
    a = [m.state()[0] for m in members]
    per = PARTITIONS // len(members)
    extra = PARTITIONS % len(members)
    sizes = sorted((len(x) for x in a), reverse=True)
    want = [per + 1] * extra + [per] * (len(members) - extra)
    union = set().union(*a)
    return sizes == want and union == set(range(PARTITIONS))


def wait_stable(members, timeout, settle=1.5):
    """Wait for the balanced assignment, unchanged for `settle` s; return the
    time of the last change."""
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            if m.exc:
                raise m.exc
        wait_until(lambda: balanced(members), max(0.1, deadline - time.monotonic()),
                   lambda: [sorted(m.state()[0]) for m in members])
        before = [m.state() for m in members]
        time.sleep(settle)
        if before == [m.state() for m in members] and balanced(members):
            return max(t for _, t in before)
        if time.monotonic() > deadline:
            raise TimeoutError("assignment kept changing")


def stop_members(members):
    for m in members:
        m.stop_event.set()
    for m in members:
        m.join(60)


def rebalance_runs(binary, runs, broker_overrides, client_conf, label, joiner_conf=None):
    """The joining member uses `joiner_conf` on top of `client_conf` (e.g. a
    KIP-848 consumer joining a classic group: the online upgrade)."""
    b = Broker(binary, broker_overrides)
    times = []
    rng = random.Random(label)
    try:
        topic = "bench-rebalance"
        create_topic(b.bootstrap, topic, PARTITIONS)
        for run in range(runs):
            group = f"bench-{label}-{run}"
            conf = {"bootstrap.servers": b.bootstrap, "group.id": group,
                    "enable.auto.commit": False, "auto.offset.reset": "latest", **client_conf}
            members = [Member(conf, topic) for _ in range(MEMBERS)]
            try:
                for m in members:
                    m.start()
                wait_stable(members, 120)
                # Join at a random point of the members' heartbeat cycles
                # (else the settle period above fixes the phase).
                time.sleep(rng.uniform(0, 5))
                new = Member({**conf, **(joiner_conf or {})}, topic)
                new.start()
                members.append(new)
                last = wait_stable(members, 120)
                times.append(last - new.subscribed_at)
                print(f"  {label} run {run + 1}: {times[-1]:.2f} s", file=sys.stderr)
            finally:
                stop_members(members)
    finally:
        b.stop()
    return times


# --- (b) offset commits per second ------------------------------------------------------------
def commit_rates(binary, seconds, group_protocol):
    b = Broker(binary, {"group.initial.rebalance.delay.ms": 0})
    try:
        topic = "bench-commits"
        create_topic(b.bootstrap, topic, 1)
        p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
        for i in range(10_000):
            p.produce(topic, value=b"x", partition=0)
            if i % 1000 == 0:
                p.poll(0)
        assert p.flush(30) == 0
        del p
        done, errors, counting = [0], [], [False]

        def on_commit(err, parts):
            if counting[0]:
                done[0] += 1
                if err is not None:
                    errors.append(err)

        # confluent-kafka takes the commit callback from the config only.
        c = Consumer({"bootstrap.servers": b.bootstrap,
                      "group.id": f"bench-commit-{group_protocol}",
                      "enable.auto.commit": False, "group.protocol": group_protocol,
                      "on_commit": on_commit})
        try:
            c.subscribe([topic])
            wait_until(lambda: c.poll(0.05) is not None or c.assignment(), 60,
                       "an assignment")
            # sync: one request at a time
            appended0 = offsets_log_end(c)
            n, t0 = 0, time.monotonic()
            while time.monotonic() - t0 < seconds:
                n += 1
                c.commit(offsets=[TopicPartition(topic, 0, 1 + n % 10_000)], asynchronous=False)
            sync_rate = n / (time.monotonic() - t0)
            appended1 = offsets_log_end(c)
            end = time.monotonic() + 1  # serve the sync commits' callbacks before counting
            while time.monotonic() < end:
                c.poll(0.05)
            # async: up to 1000 outstanding, then drained
            counting[0] = True
            sent, t0 = 0, time.monotonic()
            while time.monotonic() - t0 < seconds:
                if sent - done[0] < 1000:
                    sent += 1
                    c.commit(offsets=[TopicPartition(topic, 0, 1 + sent % 10_000)],
                             asynchronous=True)
                    if sent % 100 == 0:
                        c.poll(0)
                else:
                    c.poll(0.001)
            deadline = time.monotonic() + 60
            while done[0] < sent and time.monotonic() < deadline:
                c.poll(0.01)
            async_rate = done[0] / (time.monotonic() - t0)
            appended2 = offsets_log_end(c)
            # Each commit of one partition appends one offset record: a check
            # that every commit reached the broker's log.
            print(f"  {group_protocol}: sync {n} commits, {appended1 - appended0} records "
                  f"appended to __consumer_offsets; async {done[0]} commits, "
                  f"{appended2 - appended1} records appended", file=sys.stderr)
            if errors or done[0] < sent:
                print(f"  {group_protocol} async commits: {sent} sent, {done[0]} done, "
                      f"{len(errors)} errors, e.g. {errors[:1]}", file=sys.stderr)
        finally:
            c.close()
    finally:
        b.stop()
    return sync_rate, async_rate


def offsets_log_end(consumer):
    """Sum of __consumer_offsets' high watermarks."""
    md = consumer.list_topics("__consumer_offsets", timeout=10)
    parts = md.topics["__consumer_offsets"].partitions
    return sum(consumer.get_watermark_offsets(TopicPartition("__consumer_offsets", p),
                                              timeout=10)[1] for p in parts)


def git_describe():
    r = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


def fmt(times):
    return (f"{statistics.median(times):.2f} s ({min(times):.2f}-{max(times):.2f})"
            if times else "n/a")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "odradek"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--commit-seconds", type=float, default=10)
    ap.add_argument("--only", choices=["rebalance", "migration", "commits"])
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"{binary} not found: cargo build --release -p odradek")

    scenarios = [
        ("classic, range (librdkafka defaults), initial delay 3000 ms", "classic-d3000",
         {}, {}),
        ("classic, range (librdkafka defaults), initial delay 0", "classic-d0",
         {"group.initial.rebalance.delay.ms": 0}, {}),
        ("KIP-848, uniform, heartbeat interval 5000 ms (default)", "kip848-hb5000",
         {}, {"group.protocol": "consumer"}),
        ("KIP-848, uniform, heartbeat interval 1000 ms", "kip848-hb1000",
         {"group.consumer.heartbeat.interval.ms": 1000}, {"group.protocol": "consumer"}),
    ]
    migration = [
        ("classic range group, the joiner is KIP-848 (online upgrade), heartbeat interval "
         "1000 ms", "upgrade-hb1000",
         {"group.consumer.heartbeat.interval.ms": 1000}, {}, {"group.protocol": "consumer"}),
    ]
    scenarios = [s + (None,) for s in scenarios] + migration
    if args.only == "migration":
        scenarios = migration
    rows = []
    if args.only == "commits":
        scenarios = []
    for title, label, overrides, conf, joiner in scenarios:
        print(f"rebalance: {title}", file=sys.stderr)
        rows.append((title, rebalance_runs(binary, args.runs, overrides, conf, label, joiner)))
    commits = []
    for proto in ("classic", "consumer") if args.only in (None, "commits") else ():
        print(f"commits: {proto}", file=sys.stderr)
        commits.append((proto, commit_rates(binary, args.commit_seconds, proto)))

    print(f"\nodradek {git_describe()}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at the end; client and broker on the same machine.")
    if rows:
        print_rebalance(rows, args)
    if commits:
        print_commits(commits, args)


def print_rebalance(rows, args):
    print(f"\n10-member group on a {PARTITIONS}-partition topic, one member joins: time from "
          f"its subscribe() to all 11 holding the final assignment; median (min-max) of "
          f"{args.runs} runs.\n")
    print("| group | stabilise after join |")
    print("|---|---|")
    for title, times in rows:
        print(f"| {title} | {fmt(times)} |")


def print_commits(commits, args):
    print(f"\nOffset commits, one member, one partition per commit, "
          f"{args.commit_seconds:g} s each.\n")
    print("| group protocol | sync commits/s | async commits/s (≤1000 in flight) |")
    print("|---|---|---|")
    for proto, (s, a) in commits:
        name = "classic" if proto == "classic" else "KIP-848 (consumer)"
        print(f"| {name} | {s:,.0f} | {a:,.0f} |")


if __name__ == "__main__":
    main()
