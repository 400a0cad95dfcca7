"""What the gateway scenarios (scenarios/gateway.py, scenarios/gateway_failing.py) start
and read: a Bulkhead with `[[gateway.routes]]` from a configuration file, upstreams that
hang (accept, never answer) or refuse, the thread and fd counts of a process from /proc
over a run; and the pure pieces (the gateway TOML, sums over /metrics text, when the
circuit opened), which load/tests/test_harness.py checks offline."""

import json
import os
import selectors
import socket
import threading
import time

from .client import Client, free_port, wait_until
from .config import HOST, RELEASE, log
from .procs import Server, bulkhead_env

IDENTITY_SECRET = "load-gateway-identity-secret-0123456789"

# ---------------------------------------------------------------------------------------
# Pure functions


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for what the scenarios write
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def gateway_toml(routes, upstream=None, circuit=None):
    """The `[gateway]` part of a configuration file: the identity secret, one
    `[[gateway.routes]]` per dict of `routes`, and the keys of `[gateway.upstream]` and
    `[gateway.upstream.circuit]` given (the rest keep their defaults)."""
    lines = ["[gateway]", f"identity_secret = {toml_value(IDENTITY_SECRET)}", ""]
    for route in routes:
        lines.append("[[gateway.routes]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in route.items()]
        lines.append("")
    for table, keys in (("[gateway.upstream]", upstream), ("[gateway.upstream.circuit]",
                                                           circuit)):
        if keys:
            lines.append(table)
            lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
            lines.append("")
    return "\n".join(lines)


def metric_sum(text, name, **labels):
    """The sum of the series of `name` in Prometheus text `text` whose labels include
    every `labels` pair (0.0 when none does)."""
    total = 0.0
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        series, value = line.rsplit(" ", 1)
        if all(w in series for w in want):
            total += float(value)
    return total


def first_open(samples):
    """From [(seconds since the failure began, route requests so far, circuit open)]:
    (seconds, requests) at the first sample with the circuit open, or (None, None)."""
    for t, requests, is_open in samples:
        if is_open:
            return t, requests
    return None, None


def ratio(a, b, digits=2):
    return round(a / b, digits) if a and b else None


# ---------------------------------------------------------------------------------------
# Servers


def start_gateway(st, tag, toml_text, extra=None):
    """A release Bulkhead on the run's database whose configuration file holds
    `toml_text` (its gateway routes), with the harness's environment on top."""
    path = os.path.join(st.out, f"{tag}.toml")
    with open(path, "w") as f:
        f.write(toml_text)
    port = free_port()
    srv = Server(f"bulkhead ({tag})", [os.path.join(RELEASE, "bulkhead"), "--config", path,
                                       "serve"], bulkhead_env(st, port, False, extra), port,
                 os.path.join(st.out, f"bulkhead-{tag}.log"))
    wait_until(port, srv.proc, "/ready", f"bulkhead ({tag})")
    log(f"bulkhead ({tag}) ready on {port}, pid {srv.pid}")
    return srv


def metrics_text(port):
    _, _, body = Client(port).request("GET", "/metrics", timeout=5)
    return body.decode()


class Hang:
    """An upstream that accepts connections, reads what comes and never answers; a
    connection closes when its peer does. At most `max_open` are kept (the oldest is
    closed beyond that)."""

    def __init__(self, max_open=4096):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(1024)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.max_open, self.open, self.accepted = max_open, [], 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _close(self, conn):
        self.sel.unregister(conn)
        self.open.remove(conn)
        conn.close()

    def _run(self):
        while not self.stopping.is_set():
            for key, _ in self.sel.select(timeout=0.1):
                if key.fileobj is self.sock:
                    try:
                        conn, _ = self.sock.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    self.accepted += 1
                    self.open.append(conn)
                    self.sel.register(conn, selectors.EVENT_READ)
                    if len(self.open) > self.max_open:
                        self._close(self.open[0])
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._close(key.fileobj)

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        for conn in list(self.open):
            self._close(conn)
        self.sel.close()
        self.sock.close()


def refused_port():
    """A port nothing listens on: connections to it are refused."""
    return free_port()


# ---------------------------------------------------------------------------------------
# A process's threads and open fds over a run


def threads_and_fds(pid):
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


class ProcWatch:
    """Samples the threads and open fds of `pid` every `interval` s into the current
    phase (`phase(name)` switches): per phase the min, max and last of each."""

    def __init__(self, pid, interval=0.2):
        self.pid, self.interval = pid, interval
        self.phases = {}  # name -> [min_t, max_t, last_t, min_fd, max_fd, last_fd]
        self.current = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def phase(self, name):
        self.current = name

    def _sample(self):
        try:
            t, fd = threads_and_fds(self.pid)
        except OSError:
            return
        row = self.phases.get(self.current)
        if row is None:
            self.phases[self.current] = [t, t, t, fd, fd, fd]
        else:
            row[:] = [min(row[0], t), max(row[1], t), t, min(row[3], fd), max(row[4], fd),
                      fd]

    def _run(self):
        while not self.stopping.wait(self.interval):
            self._sample()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)
        self._sample()
        return False

    def summary(self):
        return {name: {"threads_min": r[0], "threads_max": r[1], "threads_last": r[2],
                       "fds_min": r[3], "fds_max": r[4], "fds_last": r[5]}
                for name, r in self.phases.items()}


class CircuitWatch:
    """Polls /metrics every `interval` s from `start()`: (seconds since, requests of
    `route` so far, its circuit open) rows, bounded by `max_rows`."""

    def __init__(self, port, route, interval=0.05, max_rows=4000):
        self.port, self.route, self.interval, self.max_rows = port, route, interval, max_rows
        self.rows = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        client = Client(self.port)
        while not self.stopping.is_set() and len(self.rows) < self.max_rows:
            try:
                _, _, body = client.request("GET", "/metrics", timeout=5)
            except OSError:
                break
            text = body.decode()
            self.rows.append((time.time() - self.t0,
                              metric_sum(text, "bulkhead_gateway_requests_total",
                                         route=self.route) - self.base,
                              metric_sum(text, "bulkhead_circuit_state", circuit=self.route,
                                         state="open") == 1.0))
            self.stopping.wait(self.interval)

    def start(self):
        self.base = metric_sum(metrics_text(self.port), "bulkhead_gateway_requests_total",
                               route=self.route)
        self.t0 = time.time()
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
