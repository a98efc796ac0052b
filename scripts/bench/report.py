#!/usr/bin/env python3
"""Render a bench-results/<timestamp>/ directory as markdown tables.

  scripts/bench/report.py bench-results/20250101-120000 > summary.md

Reads machine.json, broker.json and scenarios/NN-name.json (loadgen's last
JSON line plus the fields scripts/bench.sh adds: scenario, desc, exit_code,
broker_cpu_s, target). Any of them may be missing.
"""
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(d, path):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def fnum(v, digits=None):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if digits is None:
        a = abs(v)
        digits = 0 if a >= 100 else (1 if a >= 10 else (2 if a >= 1 else 3))
    return "{:,.{}f}".format(v, digits)


def check(val, op, want):
    if val is None:
        return None
    return {">=": val >= want, ">": val > want, "<=": val <= want, "<": val < want}[op]


def verdict(ok):
    return {True: "yes", False: "**no**", None: "–"}[ok]


def machine_table(m):
    out = []
    out.append("Run %s, git %s. " % (m.get("timestamp", "?"), m.get("git_rev", "?")))
    out.append("")
    out.append("Machine: %s × %s, %s GiB RAM, kernel %s; data dir on %s (%s). "
               "CPU busy before the run: %s%% (load average %s).%s" % (
                   m.get("nproc", "?"), m.get("cpu_model", "?"), m.get("mem_gib", "?"),
                   m.get("kernel", "?"), m.get("data_fs_type", "?"), m.get("data_fs_dev", "?"),
                   m.get("cpu_busy_pct_before", "?"), m.get("loadavg", "?"),
                   " **Quick mode** (10× fewer records)." if m.get("quick") else ""))
    out.append("")
    if "dd_mib" not in m:
        out.append("Machine limits not measured in this run (--no-limits).")
        return out
    out.append("| Limit | Result | How |")
    out.append("|---|---|---|")
    ip = m.get("iperf3_gbit_s")
    if ip is not None:
        out.append("| Loopback TCP, 1 stream | %s Gbit/s (%s GB/s) | iperf3 -t %s on 127.0.0.1 |" % (
            fnum(ip, 1), fnum(ip / 8, 2), m.get("iperf3_secs", "?")))
    else:
        out.append("| Loopback TCP, 1 stream | %s | iperf3 |" % m.get("iperf3_error", "not measured"))
    mib = m.get("dd_mib", "?")
    for key, label, how in (
        ("disk_direct_write_mb_s", "Disk sequential write, O_DIRECT (the device)",
         "dd bs=1M count=%s oflag=direct conv=fdatasync" % mib),
        ("disk_seq_write_mb_s", "Disk sequential write through the page cache, then fdatasync",
         "dd bs=1M count=%s conv=fdatasync" % mib),
        ("page_cache_write_mb_s", "Page-cache write (no fsync), first write", "dd bs=1M count=%s" % mib),
        ("page_cache_rewrite_mb_s", "Page-cache write (no fsync), into pages just freed",
         "the same dd again right after rm"),
        ("page_cache_read_mb_s", "Page-cache read", "dd of=/dev/null bs=1M count=%s (cached file)" % mib),
    ):
        v = m.get(key)
        out.append("| %s | %s | %s |" % (label, (fnum(v) + " MB/s") if v is not None else "not measured", how))
    v = m.get("dsync_4k_avg_ms")
    out.append("| fdatasync latency, 4 KiB appends | %s | dd bs=4k count=%s oflag=dsync |" % (
        ("%s ms/op avg" % fnum(v, 3)) if v is not None else "not measured", m.get("dsync_count", "?")))
    f = m.get("fsync")
    if f:
        out.append("| fdatasync latency, 4 KiB appends | p50 %s ms, p99 %s ms, max %s ms | write()+fdatasync() ×%s (probe.py) |" % (
            fnum(f["p50_ms"], 3), fnum(f["p99_ms"], 3), fnum(f["max_ms"], 3), f["count"]))
    return out


def broker_table(b):
    out = ["| Measure | Result | Target | Met? |", "|---|---|---|---|"]
    if b.get("error"):
        out = ["**%s**" % b["error"], ""] + out
    s = b.get("startup_ms")
    out.append("| Startup to accepting connections (empty data dir) | %s | < 100 ms | %s |" % (
        (fnum(s, 1) + " ms") if s is not None else "–", verdict(check(s, "<", 100))))
    r = b.get("idle_rss_mb")
    out.append("| Idle RSS after startup | %s | < 30 MB | %s |" % (
        (fnum(r, 1) + " MB") if r is not None else "–", verdict(check(r, "<", 30))))
    if b.get("rss_end_mb") is not None:
        out.append("| RSS after all scenarios (peak VmHWM) | %s MB (%s MB) | – | – |" % (
            fnum(b["rss_end_mb"], 1), fnum(b.get("hwm_end_mb"), 1)))
    return out


def row(s):
    cmd = s.get("cmd")
    name = s.get("scenario", "?")
    desc = s.get("desc", "")
    status = s.get("status", "failed")
    if s.get("exit_code", 0) not in (0, None) and status == "ok":
        status = "exit %s" % s["exit_code"]
    if cmd == "e2e":
        rps, mbps, lat = s.get("achieved_rate"), None, s.get("e2e_latency_ms")
    elif cmd == "consume":
        rps, mbps, lat = s.get("records_per_sec"), s.get("mb_per_sec"), None
    else:
        rps, mbps, lat = s.get("records_per_sec"), s.get("mb_per_sec"), s.get("latency_ms")
    lat = lat or {}
    ts = s.get("target") or []
    if isinstance(ts, dict):
        ts = [ts]
    if ts:
        oks = [check(get(s, t["metric"]), t["op"], t["value"]) for t in ts]
        ok = None if None in oks else all(oks)
        if status != "ok":
            ok = None if status == "skipped" else False
        tl = "; ".join(t.get("label", "") for t in ts)
    else:
        ok, tl = None, ""
    return "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        name, desc, fnum(rps), fnum(mbps), fnum(lat.get("p50"), 3), fnum(lat.get("p99"), 3),
        fnum(lat.get("p999"), 3), fnum(s.get("broker_cpu_s"), 2), tl, verdict(ok), status)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    out = []
    m = load(os.path.join(d, "machine.json"))
    if m:
        out.append("### Machine limits")
        out.append("")
        out += machine_table(m)
        out.append("")
    b = load(os.path.join(d, "broker.json"))
    if b:
        out.append("### Broker startup and memory")
        out.append("")
        out += broker_table(b)
        out.append("")
    files = sorted(glob.glob(os.path.join(d, "scenarios", "*.json")))
    if files:
        out.append("### Scenarios")
        out.append("")
        out.append("Latency columns: produce = send → delivery report; e2e = produce → consume; "
                   "consume has none (records/s and MB/s are the steady rate from the first record). "
                   "MB = 10^6 bytes of record values. Broker CPU = broker user+system CPU seconds during the scenario.")
        out.append("")
        out.append("| Scenario | Workload | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | broker CPU s | Target | Met? | Status |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        by = {}
        for f in files:
            s = load(f) or {"scenario": os.path.basename(f)[3:-5], "status": "unreadable"}
            by[s.get("scenario")] = s
            out.append(row(s))
        f1 = by.get("flush1-prod1")
        f8 = by.get("flush1-prod8")
        if f1 and f8 and f1.get("records_per_sec") and f8.get("records_per_sec"):
            out.append("")
            out.append("Group commit (flush.messages=1): %s producers reach %s× the records/s of 1 producer "
                       "(%s vs %s records/s)." % (
                           f8.get("producers", "?"),
                           fnum(f8["records_per_sec"] / f1["records_per_sec"], 2),
                           fnum(f8["records_per_sec"]), fnum(f1["records_per_sec"])))
    print("\n".join(out))


if __name__ == "__main__":
    main()
