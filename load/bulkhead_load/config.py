"""Paths, fixed credentials, targets, and the command line turned into `Settings`."""

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOAD = os.path.join(ROOT, "load")
LUA = os.path.join(LOAD, "lua", "bulkhead.lua")
RELEASE = os.path.join(ROOT, "target", "release")

HOST = "127.0.0.1"  # all traffic stays on this machine
# One database per run: two runs on one machine (say, in two worktrees) must not drop
# each other's database.
DB_NAME = f"bulkhead_load_{os.getpid()}"
JWT_SECRET = "load-harness-secret-load-harness-secret-0123"
ADMIN_EMAIL = "admin@load.bulkhead.test"
ADMIN_PASSWORD = "load-admin-password-1"
USER_PASSWORD = "load-password-1"
ME_PATH = "/api/v1/users/me"
PRODUCTS_PATH = "/api/v1/products"

# The targets (DESIGN.md "Performance", issue 14 and the overload contract). Checked,
# reported, never fatal: a run that misses them still writes its report.
TARGET_RPS_SHARE = 0.75
TARGET_P99_RATIO = 2.0
TARGET_OVERLOAD_ADMITTED_P99_MS = 50.0
TARGET_REJECTED_P99_MS = 10.0  # "answered within milliseconds"
TARGET_MEMORY_FLAT_MB = 16.0  # RSS growth over the overload scenario still called flat
TARGET_MEMORY_100K_MB = 200.0


def log(msg):
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Settings:
    """Everything a run is configured with, resolved from the command line once."""

    quick: bool
    duration: int
    rounds: int
    warmup: int
    connections: int
    threads: int
    workers: int
    users: int
    products: int
    mix: list
    overload_factor: float
    overload_connections: int
    base_connections: int
    pin: bool
    postgres_with: str
    server_cpus: set
    gen_cpus: set
    memory: bool
    with_memory: bool
    memory_users: int
    access_log: bool
    access_log_both: bool
    perf: bool
    skip_build: bool
    only: list  # registered scenarios to run after the head-to-head (empty: all)
    server_env: dict = field(default_factory=dict)  # --server-env KEY=VALUE
    b_env: dict = field(default_factory=dict)  # --b-env KEY=VALUE (scenario ab)
    b_binary: str = ""  # --b-binary PATH (scenario ab; default: the release build)
    ab_workload: str = "me"  # --ab-workload (scenario ab)
    accept_encoding: str = ""  # --accept-encoding (every wrk request; empty: none)
    seed_concurrency: int = 16
    memory_fill_timeout: int = 240
    # Resolved when the run starts.
    out: str = ""
    wrk: str = ""
    oha: str = ""
    db_url: str = ""
    services: dict = field(default_factory=dict)  # nginx, redis-server, ... -> path


def parser():
    ap = argparse.ArgumentParser(
        prog="load/run",
        description="Bulkhead load harness: one command, one report (load/README.md).",
        epilog="load/run install-tools installs wrk and oha first, and nginx, "
               "redis-server, nats-server and nats-py for the opt-in scenarios (a run "
               "names what is missing and stops).")
    ap.add_argument("command", nargs="?", default="run", choices=("run", "install-tools"),
                    help="run (default) or install-tools: install wrk, nginx, "
                         "redis-server, nats-server (apt-get), oha (cargo install) and "
                         "nats-py (pip) when missing, then exit")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 3 s scenarios, 1 s warm-up, 200 users, no access-log "
                         "comparison")
    ap.add_argument("--memory", action="store_true",
                    help="only the memory check: 100,000 cached users, then RSS")
    ap.add_argument("--with-memory", action="store_true",
                    help="the full run, then the memory check")
    ap.add_argument("--duration", type=int, help="seconds per scenario (default 20)")
    ap.add_argument("--rounds", type=int,
                    help="interleaved rounds of floor, inline axum, lean axum and scenario "
                         "1, each reported by its median round (default 3; 1 with --quick)")
    ap.add_argument("--warmup", type=int, help="warm-up seconds before each (default 5)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, help="wrk threads (default: cores)")
    ap.add_argument("--workers", type=int, help="server workers (default: cores)")
    ap.add_argument("--users", type=int, help="users to seed (default 1000)")
    ap.add_argument("--products", type=int, default=200)
    ap.add_argument("--mix", default="70,20,10",
                    help="scenario 4: percent GET /users/me, GET products, POST orders")
    ap.add_argument("--overload-factor", type=float, default=3.0)
    ap.add_argument("--overload-connections", type=int, default=256)
    ap.add_argument("--base-connections", type=int, default=16,
                    help="connections of the closed loop that measures what the pinned "
                         "service sustains (s5_base); more than the db_read slots measures "
                         "its queue instead (default 16)")
    ap.add_argument("--postgres-with", choices=("server", "generator"), default="server",
                    help="pinned overload: Postgres shares the server's CPUs (default) or "
                         "the generator's")
    ap.add_argument("--no-pin", action="store_true",
                    help="overload without CPU pinning (default: server and Postgres on "
                         "the first half of the CPUs, the generator on the rest)")
    ap.add_argument("--memory-users", type=int, default=100_000)
    ap.add_argument("--access-log", choices=("on", "off"), default="off",
                    help="access log of the server the scenarios run on (default off; the "
                         "other setting is always measured on scenario 1 for comparison)")
    ap.add_argument("--access-log-both", action="store_true",
                    help="compare access log on/off in --quick too")
    ap.add_argument("--perf", action="store_true",
                    help="profile the server with perf over an extra pass of scenario 1")
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for Bulkhead (configuration overrides, e.g. "
                         "BULKHEAD__BULKHEADS__DB_READ__MAX_CONCURRENT=4); repeatable")
    ap.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE",
                    help="scenario ab: environment of server B on top of A's (e.g. "
                         "BULKHEAD__LOG__LEVEL=off); repeatable")
    ap.add_argument("--b-binary", default="", metavar="PATH",
                    help="scenario ab: server B's binary (default: the release build, "
                         "as A): an earlier build kept aside, for a before/after")
    ap.add_argument("--ab-workload", choices=("me", "orders", "products"), default="me",
                    help="scenario ab: what A and B are loaded with (default me: "
                         "scenario 1)")
    ap.add_argument("--accept-encoding", default="", metavar="VALUE",
                    help="every wrk request sends Accept-Encoding: VALUE (e.g. gzip, as "
                         "Go's and Python's HTTP clients do unasked; default: none, as "
                         "wrk). oha, the open-loop generator, always sends one")
    ap.add_argument("--only", default="", metavar="NAME,...",
                    help="after the head-to-head, run only these registered scenarios "
                         "(names as in the report, e.g. s2_products,s3_orders; "
                         "default: all but the opt-in ones). The opt-in scenarios "
                         "s6_fleet, s7_events and reload start servers of their own and "
                         "run only when named; named alone, without the head-to-head")
    ap.add_argument("--skip-build", action="store_true")
    return ap


def env_pairs(option, pairs):
    """KEY=VALUE arguments as a dict; exits naming the option when one is not."""
    env = {}
    for kv in pairs:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            sys.exit(f"{option} takes KEY=VALUE, not {kv!r}")
        env[key] = value
    return env


def settings(args):
    """`Settings` from parsed arguments; exits naming the option that is wrong."""
    server_env = env_pairs("--server-env", args.server_env)
    b_env = env_pairs("--b-env", args.b_env)
    if args.b_binary and not os.access(args.b_binary, os.X_OK):
        sys.exit(f"--b-binary {args.b_binary} is not an executable file")
    cores = os.cpu_count() or 1
    try:
        mix = [int(x) for x in args.mix.split(",")]
    except ValueError:
        mix = []
    if len(mix) != 3 or sum(mix) != 100:
        sys.exit("--mix needs three percentages adding up to 100")
    return Settings(
        quick=args.quick,
        duration=args.duration or (3 if args.quick else 20),
        rounds=max(1, args.rounds or (1 if args.quick else 3)),
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 5),
        connections=args.connections,
        threads=args.threads or cores,
        workers=args.workers or cores,
        users=args.users or (200 if args.quick else 1000),
        products=args.products,
        mix=mix,
        overload_factor=args.overload_factor,
        overload_connections=args.overload_connections,
        base_connections=args.base_connections,
        pin=cores >= 2 and not args.no_pin,
        postgres_with=args.postgres_with,
        server_cpus=set(range(max(1, cores // 2))),
        gen_cpus=set(range(max(1, cores // 2), cores)),
        memory=args.memory,
        with_memory=args.with_memory,
        memory_users=args.memory_users,
        access_log=args.access_log == "on",
        access_log_both=args.access_log_both,
        perf=args.perf,
        skip_build=args.skip_build,
        only=[n for n in args.only.split(",") if n],
        server_env=server_env,
        b_env=b_env,
        b_binary=os.path.abspath(args.b_binary) if args.b_binary else "",
        ab_workload=args.ab_workload,
        accept_encoding=args.accept_encoding,
    )
