"""Fixtures for end-to-end tests: a real `odradek serve` process per test.

Each test gets its own broker on a free 127.0.0.1 port with its data under
pytest's tmp_path, so tests cannot see each other's topics. The broker's
stderr goes to a file next to the data; when a test fails, the tail of that
file is attached to the failure report. Every broker a test started is
stopped at teardown, whatever happened.

The binary is $ODRADEK_BIN (scripts/test.sh sets it), else target/debug/odradek.
"""

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20
STOP_TIMEOUT_S = 20


def broker_binary() -> str:
    path = os.environ.get("ODRADEK_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
        path = str(Path(target) / "debug" / "odradek")
    path = os.path.abspath(path)  # the broker runs with its own working directory
    if not os.access(path, os.X_OK):
        pytest.exit(f"broker binary {path} not found: run `cargo build -p odradek` "
                    f"or set ODRADEK_BIN", returncode=2)
    return path


_PICKED_PORTS = set()


def free_port() -> int:
    """A port for a broker to bind later (and again after a restart).

    A port from a `:0` bind lies in the ephemeral range (32768-60999 on
    Linux), where the OS may give it, once released, to an outgoing
    connection before the broker binds it. So pick at random below that
    range, never the same port twice in this run, and check it is free."""
    while True:
        port = random.randrange(20_000, 32_000)
        if port in _PICKED_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PICKED_PORTS.add(port)
        return port


class BrokerError(AssertionError):
    pass


class Broker:
    """One `odradek serve` process bound to 127.0.0.1:`port`, data in `data_dir`.

    `restart()` reuses the port and the data directory, so clients can keep
    their bootstrap address across a restart."""

    def __init__(self, workdir: Path, overrides=None, name="broker", env=None, args=(),
                 set_log_dirs=True):
        self.name = name
        self.env = dict(env or {})
        self.args = list(args)
        self.set_log_dirs = set_log_dirs
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "broker.log"
        self.port = free_port()
        self.overrides = dict(overrides or {})
        self.proc = None
        self.starts = 0
        self._expected_exit = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self):
        cmd = [broker_binary(), "serve", *self.args,
               "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}"]
        if self.set_log_dirs:
            cmd += ["--override", f"log.dirs={self.data_dir}"]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    def start(self, timeout=START_TIMEOUT_S):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ODRADEK_")}
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        env.update(self.env)
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
        log.flush()
        self._expected_exit = False
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, cwd=self.workdir, env=env)
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self._expected_exit = True
                raise BrokerError(f"{self.name} exited with code {code} during start-up\n"
                                  f"{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.name} did not accept connections on {self.bootstrap} "
                                  f"within {timeout}s\n{self.log_tail()}")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_S, sig=signal.SIGTERM) -> int:
        """SIGTERM (or `sig`) and wait; returns the exit code. SIGKILLs and
        fails if it hangs."""
        if self.proc is None:
            return 0
        self._expected_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise BrokerError(f"{self.name} did not exit within {timeout}s of {sig!r}\n"
                                  f"{self.log_tail()}")
        return self.proc.returncode

    def kill(self):
        """SIGKILL: no chance to flush or close anything."""
        self._expected_exit = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout=START_TIMEOUT_S):
        if self.alive():
            self.stop()
        return self.start(timeout)

    def crashed(self):
        """Exit code if the process ended without being told to, else None."""
        if self.proc is None or self._expected_exit:
            return None
        return self.proc.poll()

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- {self.name} log tail ({self.log_path}) ---\n" + "\n".join(tail)


@pytest.fixture
def start_broker(request, tmp_path):
    """Factory: start_broker(overrides={...}) -> running Broker.

    All brokers started through it are stopped at teardown."""
    brokers = []
    request.node._odradek_brokers = brokers

    def start(overrides=None, name=None, start=True, **kw):
        name = name or f"broker{len(brokers)}"
        b = Broker(tmp_path / name, overrides, name, **kw)
        brokers.append(b)
        return b.start() if start else b

    yield start

    problems = []
    for b in brokers:
        # Drop the cached AdminClient (clients.admin) before the broker goes,
        # or its threads keep reconnecting to a dead port for the whole session.
        b._admin_client = None
        code = b.crashed()
        if code is not None:
            problems.append(f"{b.name} exited by itself with code {code}\n{b.log_tail()}")
        try:
            b.stop()
        except BrokerError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def broker(start_broker):
    """A broker with default settings."""
    return start_broker()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("setup", "call"):
        for b in getattr(item, "_odradek_brokers", []):
            report.sections.append((f"odradek {b.name} log (tail)", b.log_tail(60)))
