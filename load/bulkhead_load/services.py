"""What the opt-in scenarios start of their own (each registered for cleanup, so it is
stopped on any exit): a fleet of Bulkhead instances behind nginx, a redis-server and a
nats-server on free ports; and the pure pieces they measure with (the nginx
configuration made from ops/nginx/fleet.conf, a reference GCRA, a paced client, CPU of a
group of processes)."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from .client import free_port, wait_until
from .config import HOST, RELEASE, ROOT, log
from .procs import CLEANUP, Server, bulkhead_env
from .sampling import cpu_seconds

FLEET_CONF = os.path.join(ROOT, "ops", "nginx", "fleet.conf")

# ---------------------------------------------------------------------------------------
# Pure functions (load/tests/test_harness.py checks them offline)


def nginx_conf(template, upstream_ports, listen_port, tmp, workers="auto"):
    """A whole nginx.conf for local processes from `template` (ops/nginx/fleet.conf, the
    file docker-compose mounts): its upstream `server host:port;` lines become one line
    per local instance (with the template's parameters), its `listen PORT;` listens on 127.0.0.1:`listen_port`, the rest
    (keep-alive, headers, proxy_next_upstream) is kept as it is. Around it a main context
    of our own: in the foreground, every file under `tmp`, no access log."""
    out, servers, listens = [], 0, 0
    for line in template.splitlines():
        m = re.match(r"^(\s*)server\s+[^\s;{]+:\d+(\s+[^;]*)?;\s*$", line)
        if m:
            if not servers:
                params = m.group(2) or ""
                out += [f"{m.group(1)}server {HOST}:{p}{params};" for p in upstream_ports]
            servers += 1
            continue
        m = re.match(r"^(\s*)listen\s+\d+;\s*$", line)
        if m:
            out.append(f"{m.group(1)}listen {HOST}:{listen_port};")
            listens += 1
            continue
        out.append(line)
    if not servers or listens != 1:
        raise ValueError("the template needs upstream `server host:port;` lines and one "
                         "`listen PORT;`")
    body = "\n".join(("    " + line) if line.strip() else "" for line in out)
    temps = "\n".join(f"    {kind}_temp_path {tmp}/{kind};"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"daemon off;\nworker_processes {workers};\npid {tmp}/nginx.pid;\n"
            f"error_log {tmp}/error.log warn;\n"
            "events {\n    worker_connections 4096;\n}\n"
            f"http {{\n    access_log off;\n{temps}\n{body}\n}}\n")


def gcra_admitted(times, quota, window_s, burst=None):
    """How many of the requests at `times` (seconds) one GCRA limiter admits: the
    service's algorithm (actors/src/ratelimit/algo.rs): emission interval T = window /
    quota, tolerance tau = T * burst (burst defaults to the quota); a request at `now`
    passes iff max(TAT, now) + T - now <= tau, and then TAT = max(TAT, now) + T."""
    t_int = window_s / quota
    tau = t_int * (burst or quota)
    tat, admitted = float("-inf"), 0
    for now in sorted(times):
        start = max(tat, now)
        if start + t_int - now <= tau + 1e-9:
            admitted += 1
            tat = start + t_int
    return admitted


def percentile(values, q):
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(-(-q * len(values) // 100)) - 1))
    return values[k]


# ---------------------------------------------------------------------------------------
# A paced client: requests at a fixed rate (open loop as far as its connections allow)


def paced(port, path, headers, rate, duration, connections=8, timeout=5.0):
    """GET `path` at `rate` per second for `duration` seconds over `connections`
    keep-alive connections; returns [(sent_s, status)] with times from the start. A
    request is sent when due, or at once when its connection is late (then its own
    time is what counts: the reference limiter is fed the times requests were sent)."""
    n = int(rate * duration)
    out, lock, state = [], threading.Lock(), {"next": 0}
    t0 = time.monotonic() + 0.05

    def worker():
        conn = None
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= n:
                break
            wait = t0 + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            sent = time.monotonic() - t0
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
                conn.request("GET", path, headers=headers)
                res = conn.getresponse()
                res.read()
                status = res.status
            except (OSError, http.client.HTTPException):
                status = 0
                if conn:
                    conn.close()
                conn = None
            with lock:
                out.append((sent, status))
        if conn:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 60)
    return sorted(out)


# ---------------------------------------------------------------------------------------
# Processes


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class CpuGroup:
    """CPU seconds (user + system) of a group of processes over a `with` block; `pids`
    is called at entry and exit so short-lived workers are not missed."""

    def __init__(self, pids):
        self.pids = pids

    def _total(self):
        total = {}
        for pid in self.pids():
            try:
                total[pid] = cpu_seconds(pid)
            except OSError:
                pass
        return total

    def __enter__(self):
        self.start, self.t0 = self._total(), time.time()
        return self

    def __exit__(self, *exc):
        end = self._total()
        self.wall = time.time() - self.t0
        self.cpu = sum(v - self.start.get(pid, 0.0) for pid, v in end.items())
        return False


def scratch(st, name):
    path = os.path.join(st.out, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.chmod(path, 0o777)  # nginx's workers run as nobody
    return path


class External:
    """A server started from `argv` (redis-server, nats-server, nginx), restartable with
    the same arguments (NATS keeps its JetStream store in its directory)."""

    def __init__(self, st, name, argv, port):
        self.st, self.name, self.argv, self.port = st, name, argv, port
        self.start()

    def start(self):
        self.log = open(os.path.join(self.st.out, f"{self.name}.log"), "ab")
        self.proc = CLEANUP.add(self.name, subprocess.Popen(
            self.argv, stdout=self.log, stderr=self.log, cwd=self.st.out))
        self.pid = self.proc.pid
        deadline = time.time() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} "
                                   f"(see {self.name}.log)")
            try:
                with socket.create_connection((HOST, self.port), 0.5):
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"{self.name} not listening on {self.port} in 20 s")
                time.sleep(0.05)
        log(f"{self.name} on {self.port}, pid {self.pid}")

    def stop(self):
        CLEANUP.stop(self.proc)
        self.log.close()


def start_redis(st, tag="redis"):
    port = free_port()
    argv = [st.services["redis-server"], "--port", str(port), "--bind", HOST,
            "--save", "", "--appendonly", "no", "--dir", scratch(st, tag)]
    return External(st, tag, argv, port)


def start_nats(st, tag="nats"):
    port = free_port()
    argv = [st.services["nats-server"], "-js", "-a", HOST, "-p", str(port),
            "-sd", scratch(st, tag)]
    return External(st, tag, argv, port)


class Fleet:
    """`n` release instances of Bulkhead on the run's database behind nginx configured
    from ops/nginx/fleet.conf. `env`: configuration for every instance on top of the
    harness's (procs.bulkhead_env)."""

    def __init__(self, st, tag, n, env):
        self.tag, self.instances = tag, []
        for i in range(1, n + 1):
            port = free_port()
            srv = Server(f"bulkhead ({tag}-{i})", [os.path.join(RELEASE, "bulkhead"),
                                                    "serve"],
                         bulkhead_env(st, port, False, env), port,
                         os.path.join(st.out, f"bulkhead-{tag}-{i}.log"))
            self.instances.append(srv)
        for srv in self.instances:
            wait_until(srv.port, srv.proc, "/ready", srv.name)
        tmp = scratch(st, f"nginx-{tag}")
        self.port = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(FLEET_CONF) as f:
            text = nginx_conf(f.read(), [s.port for s in self.instances], self.port, tmp)
        with open(conf, "w") as f:
            f.write(text)
        self.nginx = External(st, f"nginx-{tag}", [st.services["nginx"], "-c", conf,
                                                    "-p", tmp, "-e", f"{tmp}/error.log"],
                              self.port)
        log(f"fleet {tag}: instances on {[s.port for s in self.instances]}, nginx on "
            f"{self.port}")

    def instance_pids(self):
        return [s.pid for s in self.instances]

    def nginx_pids(self):
        return [self.nginx.pid] + children(self.nginx.pid)

    def stop(self):
        self.nginx.stop()
        for s in self.instances:
            s.stop()
