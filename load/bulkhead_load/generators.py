"""The load generators, each run bounded in time: wrk (closed loop, the Lua script in
load/lua) and oha (open loop, every request kept in SQLite)."""

import json
import os
import sqlite3

from .config import HOST, LUA
from .pinning import taskset
from .procs import run_child
from .results import LatencySplit, WrkSummary


def wrk(st, port, duration, args, count_status=False, connections=None, label="",
        cpus=None):
    """One bounded closed-loop wrk run; returns the parsed WRKJSON line. With `cpus`,
    wrk runs on those CPUs only, one thread each."""
    conns = connections or st.connections
    threads = len(cpus) if cpus else st.threads
    argv = [st.wrk, f"-t{threads}", f"-c{conns}", f"-d{duration}s",
            "--timeout", "5s", "-s", LUA, f"http://{HOST}:{port}", "--",
            f"threads={threads}", *args]
    if st.accept_encoding:
        argv.append(f"accept_encoding={st.accept_encoding}")
    if cpus:
        argv = taskset(cpus) + argv
    env = dict(os.environ)
    env["WRK_COUNT_STATUS"] = "1" if count_status else "0"
    res = run_child(argv, timeout=duration + 60, env=env)
    if label:
        with open(os.path.join(st.out, f"wrk-{label}.txt"), "w") as f:
            f.write(" ".join(argv) + "\n\n" + res.stdout + res.stderr)
    for line in res.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"wrk gave no result (rc {res.returncode}): {res.stderr[-500:]}")


def summarize_wrk(w):
    secs = w["duration_us"] / 1e6
    lat = w["latency_us"]
    e = w["errors"]
    status = {str(k): v for k, v in sorted(w["status"].items())}
    return WrkSummary(
        requests=w["requests"],
        duration_s=round(secs, 2),
        rps=round(w["requests"] / secs, 1) if secs else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        p999_ms=lat["p999"] / 1000,
        max_ms=lat["max"] / 1000,
        non_2xx_3xx=e["status"],
        socket_errors={k: e[k] for k in ("connect", "read", "write", "timeout")},
        status_counts=status or None,
    )


def oha(st, port, rate, duration, path, label, cpus=None):
    """Open loop: oha schedules `rate` requests a second whatever the answers do, and
    with --latency-correction a request's latency counts from when it was due, not from
    when a connection was free: the latency a client at that rate would see. Every
    request is kept in a SQLite file so admitted and rejected latencies can be split."""
    db = os.path.join(st.out, f"{label}.sqlite")
    argv = [st.oha, "--no-tui", "-q", str(rate), "-z", f"{duration}s",
            "-c", str(st.overload_connections), "--latency-correction",
            "-t", "5s", "-w", "--db-url", db, "--output-format", "json",
            f"http://{HOST}:{port}{path}"]
    if cpus:
        argv = taskset(cpus) + argv
    # Bounded: -z stops scheduling, -w waits for what is in flight (each at most -t), and
    # writing the per-request rows takes a while on top.
    res = run_child(argv, timeout=duration + 300)
    with open(os.path.join(st.out, f"{label}.json"), "w") as f:
        f.write(res.stdout + res.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"oha failed (rc {res.returncode}): {res.stderr[-800:]}")
    return json.loads(res.stdout), db


def pct(values, p):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return round(values[k], 3)


def split_latencies(db):
    """Per status: count and latency percentiles, from oha's per-request rows; and the
    latencies of admitted (2xx) and rejected (429/503) requests, and counts of others."""
    # `duration` is end - start, start being the time the request was due when
    # --latency-correction is on (oha's RequestResult::duration).
    con = sqlite3.connect(db)
    rows = con.execute("SELECT status, duration FROM oha").fetchall()
    con.close()
    groups = {}
    for status, duration in rows:
        groups.setdefault(int(status), []).append(duration * 1000.0)
    per_status = {
        str(status): LatencySplit(count=len(lat), p50_ms=pct(lat, 50), p99_ms=pct(lat, 99),
                                  p999_ms=pct(lat, 99.9), max_ms=round(max(lat), 3))
        for status, lat in sorted(groups.items())}
    admitted = [x for s, v in groups.items() if 200 <= s < 300 for x in v]
    rejected = [x for s, v in groups.items() if s in (429, 503) for x in v]
    other = {str(s): len(v) for s, v in groups.items()
             if not (200 <= s < 300 or s in (429, 503))}
    return per_status, admitted, rejected, other
