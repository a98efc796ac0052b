#!/usr/bin/env python3
"""Small helpers for scripts/bench.sh (stdlib only).

  probe.py free-port
      Print a TCP port on 127.0.0.1 that is free right now.
  probe.py wait-port PORT TIMEOUT_S
      Wait until 127.0.0.1:PORT accepts a connection; print the wait in ms.
  probe.py wait-listen PORT TIMEOUT_S
      Wait until a socket listens on TCP PORT (read from /proc/net/tcp*,
      without connecting); exit 1 on timeout.
  probe.py launch --port P --timeout S --log FILE --pidfile FILE -- CMD...
      Start CMD (stdout+stderr to FILE), probe 127.0.0.1:P in a tight loop
      (every 0.2 ms) and print the time from spawn to the first accepted
      connection in ms. CMD keeps running after this helper exits; its pid
      is written to the pid file first. Exit 1 if CMD exits or times out.
  probe.py fsync-lat DIR COUNT [BLOCK]
      Append BLOCK-byte (default 4096) writes to a new file in DIR, each
      followed by fdatasync; print JSON with avg/p50/p99/max in ms.
"""
import json
import os
import socket
import subprocess
import sys
import time


def connect_once(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    print(port)


def wait_port(port, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if connect_once(port):
            print("%.1f" % ((time.monotonic() - t0) * 1000))
            return 0
        time.sleep(0.01)
    print("timeout", file=sys.stderr)
    return 1


def listening(port):
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def wait_listen(port, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if listening(port):
            return 0
        time.sleep(0.01)
    print("nothing listens on port %d after %.0f s" % (port, timeout), file=sys.stderr)
    return 1


def launch(argv):
    port = timeout = log = pidfile = None
    i = 0
    while i < len(argv) and argv[i] != "--":
        k = argv[i]
        v = argv[i + 1]
        if k == "--port":
            port = int(v)
        elif k == "--timeout":
            timeout = float(v)
        elif k == "--log":
            log = v
        elif k == "--pidfile":
            pidfile = v
        else:
            raise SystemExit("launch: unknown option %s" % k)
        i += 2
    cmd = argv[i + 1:]
    if not cmd or port is None or timeout is None or log is None or pidfile is None:
        raise SystemExit("launch: need --port --timeout --log --pidfile -- CMD...")
    logf = open(log, "ab")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    with open(pidfile, "w") as f:
        f.write("%d\n" % p.pid)
    while True:
        if connect_once(port):
            print("%.2f" % ((time.monotonic() - t0) * 1000))
            return 0
        rc = p.poll()
        if rc is not None:
            print("process exited with code %d before accepting connections" % rc,
                  file=sys.stderr)
            return 1
        if time.monotonic() - t0 > timeout:
            print("port %d not accepting connections after %.0f s" % (port, timeout),
                  file=sys.stderr)
            return 1
        time.sleep(0.0002)


def fsync_lat(d, count, block):
    path = os.path.join(d, "fsync-probe.%d" % os.getpid())
    buf = b"x" * block
    lat = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(count):
            t = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()

    def q(x):
        return lat[min(len(lat) - 1, int(x * len(lat)))]

    print(json.dumps({
        "count": count, "block": block,
        "avg_ms": sum(lat) / len(lat), "p50_ms": q(0.50), "p99_ms": q(0.99),
        "max_ms": lat[-1],
    }))
    return 0


def main():
    a = sys.argv[1:]
    if not a or a[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if a[0] == "free-port":
        return free_port()
    if a[0] == "wait-port":
        return wait_port(int(a[1]), float(a[2]))
    if a[0] == "wait-listen":
        return wait_listen(int(a[1]), float(a[2]))
    if a[0] == "launch":
        return launch(a[1:])
    if a[0] == "fsync-lat":
        return fsync_lat(a[1], int(a[2]), int(a[3]) if len(a) > 3 else 4096)
    raise SystemExit("unknown command %s" % a[0])


if __name__ == "__main__":
    sys.exit(main() or 0)
