"""A fault-injecting TCP proxy for the cluster tests: network partitions.

One `FaultProxy` runs an asyncio loop in a background thread and listens on
any number of 127.0.0.1 ports ("routes"). Each route forwards to one target
port and belongs to a destination label, normally a node id: a node's client
listener and its controller listener each get a route, and the node
advertises (advertised.listeners) and is listed in controller.quorum.voters
under the route's port, so every byte other nodes send it, and every byte
clients send it, passes through here.

To tell who opened a connection, the proxy looks at the peer's socket: it
finds the socket's inode in /proc/net/tcp and then the process whose file
descriptors hold that inode (`labels()` maps label -> current pid, asked on
every accept because nodes restart with new pids). A connection from a
process that is not a labelled node is a "client".

Rules are between labels: `isolate(n)` cuts n off from every other node,
`partition({1}, {2, 3})` in general, `block(a, b)` one direction. By
default a cut connection is black-holed, not closed: the proxy keeps
reading and throws the bytes away, so the peers see what a real partition
looks like (requests time out) rather than a fast "connection refused".
Connections opened while cut are accepted and black-holed the same way.
A rule in "reset" mode closes the connections instead, and every new one
at once (a host that answers with RSTs). `heal()` lifts every rule and
closes the black-holed connections (their byte streams lost data, so they
cannot be resumed); the peers reconnect. Clients are never cut unless a
rule names CLIENT.

Stdlib only; linux only (/proc).
"""

import asyncio
import logging
import os
import threading

CLIENT = "client"
LOG = logging.getLogger("faultproxy")


# --- who is on the other end of a loopback connection --------------------------
def _socket_inode(local_port, remote_port):
    """Inode of the 127.0.0.1 socket bound to `local_port` and connected to
    `remote_port` (as seen from the connecting side), or None."""
    want_local = f"{local_port:04X}"
    want_remote = f"{remote_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, remote, inode = parts[1], parts[2], parts[9]
                    if local.rsplit(":", 1)[1] == want_local and \
                            remote.rsplit(":", 1)[1] == want_remote:
                        return inode
        except FileNotFoundError:
            continue
    return None


def _pid_has_inode(pid, inode):
    target = f"socket:[{inode}]"
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") == target:
                return True
        except OSError:
            continue
    return False


def peer_label(peer_port, listen_port, labels):
    """The label whose process owns the connecting socket, else CLIENT."""
    inode = _socket_inode(peer_port, listen_port)
    if inode is None or inode == "0":
        return CLIENT
    for label, pid in labels.items():
        if pid is not None and _pid_has_inode(pid, inode):
            return label
    return CLIENT


# --- the proxy -------------------------------------------------------------------
class _Conn:
    __slots__ = ("route", "src", "dst", "client_w", "upstream_w", "blackholed", "tasks")

    def __init__(self, route, src, client_w):
        self.route = route
        self.src = src
        self.dst = route.label
        self.client_w = client_w
        self.upstream_w = None
        self.blackholed = False
        self.tasks = []

    def close(self):
        for w in (self.client_w, self.upstream_w):
            if w is not None:
                try:
                    w.close()
                except Exception:  # already closed
                    pass
        for t in self.tasks:
            t.cancel()


class Route:
    def __init__(self, name, label, target_port, listen_port, kind):
        self.name = name
        self.label = label
        self.kind = kind
        self.target_port = target_port
        self.listen_port = listen_port
        self.server = None

    def __repr__(self):
        return (f"Route({self.name}: :{self.listen_port} -> :{self.target_port}, "
                f"{self.label}, {self.kind})")


class FaultProxy:
    """See the module docstring. `labels`: callable -> {label: pid or None}."""

    def __init__(self, labels=lambda: {}):
        self._labels = labels
        self.routes = {}
        self._conns = set()
        self._blocked = {}          # (src label, dst label, route kind) -> mode, directed
        self.stats = {"accepted": 0, "blackholed": 0, "reset": 0, "clients": 0}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()

    # -- thread plumbing --
    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self):
        """Stop listening and close every connection."""
        if self._loop.is_closed():
            return

        async def shutdown():
            for r in self.routes.values():
                if r.server is not None:
                    r.server.close()
            for c in list(self._conns):
                c.close()
            self._conns.clear()
            # Closed connections end their tasks; cancel only stragglers
            # (cancelling a start_server callback task makes asyncio log an
            # error on Python 3.11).
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            if tasks:
                _done, pending = await asyncio.wait(tasks, timeout=2)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

        try:
            self._call(shutdown())
        except Exception as e:  # the loop is gone already
            LOG.warning("faultproxy shutdown: %r", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    # -- routes --
    def add_route(self, name, label, target_port, kind="data", listen_port=0):
        """Listen on 127.0.0.1:listen_port (0: any free port) and forward to
        127.0.0.1:target_port; connections arriving here go to `label`.
        `kind` ("data", "controller", ...) lets a rule cut one kind of
        traffic only. Returns the port listened on."""

        async def start():
            route = Route(name, label, target_port, None, kind)
            route.server = await asyncio.start_server(
                lambda r, w: self._accept(route, r, w), "127.0.0.1", listen_port,
                reuse_address=True)
            route.listen_port = route.server.sockets[0].getsockname()[1]
            return route

        route = self._call(start())
        self.routes[name] = route
        return route.listen_port

    # -- rules --
    def _kinds(self, kinds):
        return set(kinds) if kinds is not None else {r.kind for r in self.routes.values()}

    def blocked(self, src, dst, kind):
        """The mode of the rule cutting src -> dst over `kind` routes, or None."""
        return self._blocked.get((src, dst, kind))

    def block(self, src, dst, both_ways=True, kinds=None, mode="blackhole"):
        """Cut connections from `src` to `dst` (and back, by default), of the
        route kinds `kinds` (default: all), black-holing them or (mode
        "reset") closing them. Adds to the rules in force."""
        assert mode in ("blackhole", "reset")
        pairs = {(src, dst, k) for k in self._kinds(kinds)}
        if both_ways:
            pairs |= {(dst, src, k) for k in self._kinds(kinds)}
        self._apply(lambda: self._blocked.update(dict.fromkeys(pairs, mode)))

    def partition(self, *groups, kinds=None, mode="blackhole"):
        """Nodes in different groups cannot reach each other (over routes of
        `kinds`, default all). Replaces every rule in force; clients stay
        connected to everyone unless a group names CLIENT."""
        assert mode in ("blackhole", "reset")
        groups = [set(g) for g in groups]
        pairs = {(a, b, k) for g in groups for h in groups if g is not h
                 for a in g for b in h for k in self._kinds(kinds)}

        def update():
            self._blocked.clear()
            self._blocked.update(dict.fromkeys(pairs, mode))

        self._apply(update)

    def isolate(self, label, others, kinds=None, mode="blackhole"):
        """Cut `label` off from every label in `others` (clients keep
        reaching everyone, including `label`)."""
        self.partition({label}, set(others) - {label}, kinds=kinds, mode=mode)

    def heal(self):
        """Lift every rule; close the black-holed connections."""

        async def update():
            self._blocked.clear()
            for c in [c for c in self._conns if c.blackholed]:
                c.close()
                self._conns.discard(c)

        self._call(update())

    def _apply(self, update):
        """Change the rules in the proxy's loop and black-hole every open
        connection they now forbid."""

        async def run():
            update()
            for c in list(self._conns):
                mode = self.blocked(c.src, c.dst, c.route.kind)
                if mode == "reset":
                    c.close()
                    self._conns.discard(c)
                    self.stats["reset"] += 1
                elif mode == "blackhole" and not c.blackholed:
                    c.blackholed = True
                    self.stats["blackholed"] += 1

        self._call(run())

    def connections(self):
        """[(route name, src, dst, blackholed)] of the open connections."""

        async def snap():
            return [(c.route.name, c.src, c.dst, c.blackholed) for c in self._conns]

        return self._call(snap())

    # -- data path --
    async def _accept(self, route, reader, writer):
        peer_port = writer.get_extra_info("peername")[1]
        src = CLIENT
        try:
            labels = self._labels()
            # The connecting process's fd table is complete before its
            # connect() returns, but be tolerant of a slow /proc.
            for attempt in range(3):
                src = peer_label(peer_port, route.listen_port, labels)
                if src != CLIENT or attempt == 2:
                    break
                await asyncio.sleep(0.002)
        except Exception as e:
            LOG.warning("faultproxy: cannot identify peer of %s: %r", route, e)
        conn = _Conn(route, src, writer)
        self._conns.add(conn)
        self.stats["accepted"] += 1
        if src == CLIENT:
            self.stats["clients"] += 1
        try:
            mode = self.blocked(src, route.label, route.kind)
            if mode == "reset":
                self.stats["reset"] += 1
                return
            if mode == "blackhole":
                conn.blackholed = True
                self.stats["blackholed"] += 1
                await self._discard(reader)
                return
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", route.target_port)
            except OSError:
                return  # target down: the peer sees its connection closed
            conn.upstream_w = up_w
            t1 = asyncio.ensure_future(self._pump(conn, reader, up_w))
            t2 = asyncio.ensure_future(self._pump(conn, up_r, writer))
            conn.tasks = [t1, t2]
            await asyncio.wait([t1, t2], return_when=asyncio.FIRST_COMPLETED)
            # Hold a black-holed connection open until heal() closes it.
            if conn.blackholed:
                await asyncio.wait([t1, t2])
        except asyncio.CancelledError:
            pass
        finally:
            conn.close()
            self._conns.discard(conn)

    @staticmethod
    async def _discard(reader):
        while await reader.read(65536):
            pass

    async def _pump(self, conn, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if conn.blackholed:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not conn.blackholed:
                try:
                    writer.close()
                except Exception:
                    pass

