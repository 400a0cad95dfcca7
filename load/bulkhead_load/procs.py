"""Child processes: every one is registered and stopped on any exit of the runner; the
servers under test (Bulkhead, the floor, the axum baselines); the run's database."""

import os
import signal
import subprocess
import sys

from .client import free_port, wait_until
from .config import (ADMIN_EMAIL, ADMIN_PASSWORD, DB_NAME, HOST, JWT_SECRET, ME_PATH,
                     RELEASE, ROOT, log)

PG_ADMIN = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt"]


class Cleanup:
    def __init__(self):
        self.procs = []  # (name, Popen)
        self.db_created = False
        self.done = False
        self.hooks = []  # callables run first on cleanup (restoring CPU affinity)

    def add(self, name, proc):
        self.procs.append((name, proc))
        return proc

    def stop(self, proc, timeout=20):
        """SIGTERM (Bulkhead drains), then SIGKILL if it does not exit in time."""
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def run(self):
        if self.done:
            return
        self.done = True
        for hook in self.hooks:
            hook()
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                log(f"stopping {name} (pid {proc.pid})")
                self.stop(proc)
        if self.db_created:
            drop_database()


CLEANUP = Cleanup()


def run_child(argv, timeout, env=None):
    """subprocess.run for the load generators, registered for cleanup so that a signal
    to the runner stops them too instead of leaving them to run out their duration."""
    proc = CLEANUP.add(os.path.basename(argv[0]), subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"{argv[0]} overran its {timeout} s bound")
    finally:
        CLEANUP.procs = [(n, p) for n, p in CLEANUP.procs if p is not proc]
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def on_signal(signum, _frame):
    log(f"signal {signum}: cleaning up")
    CLEANUP.run()
    sys.exit(128 + signum)


# ---------------------------------------------------------------------------------------
# Postgres


def psql(sql, db="postgres"):
    return subprocess.run(
        PG_ADMIN + ["-d", db, "-c", sql], capture_output=True, text=True, check=True,
        timeout=600,
    ).stdout


def drop_database():
    try:
        psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        log(f"dropped database {DB_NAME}")
    except subprocess.CalledProcessError as e:
        log(f"could not drop {DB_NAME}: {e.stderr.strip()}")


def fresh_database():
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    CLEANUP.db_created = True
    return f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


# ---------------------------------------------------------------------------------------
# Servers


class Server:
    def __init__(self, name, argv, env, port, log_path):
        self.name, self.port = name, port
        self.log_file = open(log_path, "ab")
        self.proc = CLEANUP.add(
            name,
            subprocess.Popen(argv, env=env, stdout=self.log_file, stderr=self.log_file,
                             cwd=ROOT),
        )
        self.pid = self.proc.pid

    @property
    def is_bulkhead(self):
        """Bulkhead serves /metrics; the floor and the baselines do not."""
        return self.name.startswith("bulkhead (")

    def stop(self):
        CLEANUP.stop(self.proc)
        self.log_file.close()


def bulkhead_env(st, port, access_log, extra=None):
    env = dict(os.environ)
    env.pop("RUST_LOG", None)  # log.level must win
    env.update({
        "BULKHEAD__SERVER__BIND": f"{HOST}:{port}",
        "BULKHEAD__SERVER__WORKERS": str(st.workers),
        "DATABASE_URL": st.db_url,
        # The production log shape (the container runs JSON). `warn` keeps everything
        # else quiet; log.access_log enables the access target whatever the level says.
        "BULKHEAD__LOG__FORMAT": "json",
        "BULKHEAD__LOG__LEVEL": "warn",
        "BULKHEAD__LOG__ACCESS_LOG": "true" if access_log else "false",
        "BULKHEAD__AUTH__JWT_SECRET": JWT_SECRET,
        "BULKHEAD__AUTH__BOOTSTRAP_ADMIN_EMAIL": ADMIN_EMAIL,
        "BULKHEAD__AUTH__BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # Tokens must outlive the run.
        "BULKHEAD__AUTH__ACCESS_TTL_SECS": "86400",
        # Cheap password hashing: only seeding hashes (register/login), no scenario
        # does, and the default cost would make seeding 1,000 users take minutes.
        "BULKHEAD__AUTH__ARGON2_MEMORY_KIB": "1024",
        "BULKHEAD__AUTH__ARGON2_ITERATIONS": "1",
        # Limits high enough never to bind: the limiter still runs on every request
        # (its cost is part of the figures), it just never says no. One client IP drives
        # all anonymous load, so its concurrency cap must exceed the connections.
        "BULKHEAD__RATE_LIMITS__USER__QUOTA": "1000000000",
        "BULKHEAD__RATE_LIMITS__IP__QUOTA": "1000000000",
        "BULKHEAD__RATE_LIMITS__LOGIN__QUOTA": "1000000",
        "BULKHEAD__RATE_LIMITS__LIMITER__CONCURRENCY_PER_KEY": "4096",
    })
    env.update(st.server_env)
    env.update(extra or {})
    return env


def start_bulkhead(st, access_log, tag, extra=None, binary=None):
    port = free_port()
    env = bulkhead_env(st, port, access_log, extra)
    srv = Server(f"bulkhead ({tag})", [binary or os.path.join(RELEASE, "bulkhead"), "serve"], env,
                 port, os.path.join(st.out, f"bulkhead-{tag}.log"))
    wait_until(port, srv.proc, "/ready", f"bulkhead ({tag})")
    log(f"bulkhead ({tag}) ready on {port}, pid {srv.pid}, access log "
        f"{'on' if access_log else 'off'}")
    return srv


def start_floor(st, body_file, path=ME_PATH, delay_us=0, tag="floor"):
    """The floor answering GET `path` (after `delay_us` µs of timer wait: an upstream
    doing some work, for the gateway scenarios)."""
    port = free_port()
    argv = [os.path.join(RELEASE, "bulkhead-floor"), "--bind", f"{HOST}:{port}",
            "--workers", str(st.workers), "--path", path]
    if body_file:
        argv += ["--body-file", body_file]
    if delay_us:
        argv += ["--delay-us", str(delay_us)]
    srv = Server("bulkhead-floor", argv, dict(os.environ), port,
                 os.path.join(st.out, f"{tag}.log"))
    wait_until(port, srv.proc, path, "bulkhead-floor", timeout=30)
    return srv


def start_baseline(st, binary, token):
    """An axum baseline (`bulkhead-inline-axum`, `bulkhead-lean-axum`) on the run's
    database, with Bulkhead's JWT secret and the user quota the harness gives Bulkhead
    (runs, never binds). Ready when an authenticated GET of the scenario-1 route answers
    200 (they have no /ready); returns the server and that answer's body."""
    port = free_port()
    argv = [os.path.join(RELEASE, binary), "--bind", f"{HOST}:{port}",
            "--workers", str(st.workers), "--database-url", st.db_url,
            "--jwt-secret", JWT_SECRET, "--user-quota", "1000000000"]
    short = binary.removeprefix("bulkhead-")
    srv = Server(binary, argv, dict(os.environ), port, os.path.join(st.out, f"{short}.log"))
    _, _, body = wait_until(port, srv.proc, ME_PATH, f"{binary} (see {short}.log)",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
    log(f"{binary} ready on {port}, pid {srv.pid}")
    return srv, body
