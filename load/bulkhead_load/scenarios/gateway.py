"""gateway and fairness_gateway (opt-in): Bulkhead in front of an upstream (issues 15, 13).

gateway: one `[[gateway.routes]]` (auth `none`) in front of `bulkhead-floor --delay-us N`
(an upstream answering after N µs of timer wait). Interleaved rounds (ABBA) at 8
connections of (a) the floor called directly and (b) the same path through the gateway;
medians of p50/p99, the p50 ratio (target <= 1.3 with the 1 ms upstream) and CPU µs per
request of the Bulkhead process and of the floor. Once with a 1 ms upstream, once with a
zero-work one (where the ratio shows the gateway's own cost, not a target).

fairness_gateway: a route (auth `required`) whose bulkhead has 4 slots in front of an
upstream answering after 5 ms, so the bulkhead and not the CPU is the bottleneck. A light
user (one connection, own token) alone, and beside a heavy user keeping 64 requests in
flight (own token); rounds ABBA, the light user's p50/p99 medians and the p99 ratio
(target <= 2).
"""

import contextlib
import dataclasses
import os
import threading
import time

from ..config import HOST, log
from ..generators import summarize_wrk, wrk
from ..procs import start_floor
from ..services import CpuGroup
from ..upstreams import gateway_toml, ratio, start_gateway
from .fleet import median
from . import scenario

PREFIX = "/api/v1/gw"
PATH = PREFIX + "/item"
CONNECTIONS = 8
DELAYS_US = (1000, 0)
TARGET_P50_RATIO = 1.3
FAIR_SLOTS, FAIR_DELAY_US, HEAVY, TARGET_FAIR_P99_RATIO = 4, 5000, 64, 2.0


def route(name, upstream_port, auth="none", **more):
    return {"name": name, "prefix": PREFIX, "upstreams": [f"http://{HOST}:{upstream_port}"],
            "auth": auth, **more}


def one_pass(st, port, pids, label, connections=CONNECTIONS):
    """One measured wrk pass of GET PATH on `port`; CPU of each process in `pids`."""
    with contextlib.ExitStack() as stack:
        groups = {k: stack.enter_context(CpuGroup(lambda p=p: [p])) for k, p in pids.items()}
        w = summarize_wrk(wrk(st, port, st.duration, ["mode=get", f"path={PATH}"],
                              connections=connections, label=label))
    n = w.requests or 1
    row = {"rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "non_2xx": w.non_2xx_3xx,
           "socket_errors": sum(w.socket_errors.values()),
           **{f"{k}_cpu_us_per_req": round(g.cpu / n * 1e6, 1) for k, g in groups.items()}}
    log(f"  {label}: {row}")
    return row


def compare(st, delay_us):
    floor = start_floor(st, None, path=PATH, delay_us=delay_us, tag=f"floor-gw-{delay_us}")
    gw = None
    try:
        gw = start_gateway(st, f"gateway-{delay_us}",
                           gateway_toml([route("floor", floor.port)]))
        pids = {"bulkhead": gw.pid, "floor": floor.pid}
        for srv in (floor, gw):
            wrk(st, srv.port, max(st.warmup, 2), ["mode=get", f"path={PATH}"],
                connections=CONNECTIONS)
        rows = {"direct": [], "gateway": []}
        for r in range(1, st.rounds + 1):
            order = [("direct", floor), ("gateway", gw)]
            if r % 2 == 0:
                order.reverse()  # ABBA
            for name, srv in order:
                rows[name].append(one_pass(st, srv.port, pids,
                                           f"gateway_{delay_us}us_{name}_r{r}"))
    finally:
        if gw:
            gw.stop()
        floor.stop()
    return rows


def medians(rows, keys):
    return {k: median([r[k] for r in rows]) for k in keys}


KEYS = ("rps", "p50_ms", "p99_ms", "bulkhead_cpu_us_per_req", "floor_cpu_us_per_req")


def cpu(us):
    """CPU µs per request as the table shows it: one decimal (a median of two rounds is
    their mean, with a float's tail), '-' where the process did no work."""
    return f"{us:.1f}" if us else "-"


@scenario("gateway", opt_in=True)
def gateway(run):
    st = run.st
    data, md = {}, [
        f"GET through one gateway route (auth `none`) against the same GET on the upstream "
        f"directly, {CONNECTIONS} connections, {st.rounds} rounds ABBA of {st.duration} s, "
        "medians; CPU µs per request of each process:", "",
        "| upstream | path | req/s | p50 ms | p99 ms | Bulkhead CPU µs/req | "
        "floor CPU µs/req | non-2xx |", "|---|---|---|---|---|---|---|---|"]
    for delay in DELAYS_US:
        log(f"gateway: upstream answering after {delay} µs")
        rows = compare(st, delay)
        m = {k: medians(v, KEYS) for k, v in rows.items()}
        p50_ratios = [ratio(g["p50_ms"], d["p50_ms"])
                      for d, g in zip(rows["direct"], rows["gateway"])]
        data[f"{delay}us"] = {"rounds": rows, "medians": m,
                              "p50_ratio": ratio(m["gateway"]["p50_ms"],
                                                 m["direct"]["p50_ms"]),
                              "p50_ratio_per_round": p50_ratios,
                              "p99_ratio": ratio(m["gateway"]["p99_ms"],
                                                 m["direct"]["p99_ms"])}
        for name in ("direct", "gateway"):
            x = m[name]
            md.append(f"| {delay} µs | {name} | {x['rps']:,.0f} | {x['p50_ms']:.3f} | "
                      f"{x['p99_ms']:.3f} | {cpu(x['bulkhead_cpu_us_per_req'])} | "
                      f"{cpu(x['floor_cpu_us_per_req'])} | "
                      f"{sum(r['non_2xx'] + r['socket_errors'] for r in rows[name])} |")
    md.append("")
    for delay in DELAYS_US:
        d = data[f"{delay}us"]
        target = (f" (target <= {TARGET_P50_RATIO})" if delay else
                  " (no target: the upstream does no work, the ratio is the gateway's "
                  "own cost)")
        md.append(f"- {delay} µs upstream: gateway/direct p50 {d['p50_ratio']}{target}, "
                  f"per round {d['p50_ratio_per_round']}; p99 ratio {d['p99_ratio']}.")
    log(f"  {data}")
    run.report.studies["gateway"] = {"data": data, "markdown": md}


# ---------------------------------------------------------------------------------------


def token_file(st, name, token):
    path = os.path.join(st.out, f"{name}-token.txt")
    with open(path, "w") as f:
        f.write(token + "\n")
    return path


def light_pass(st, port, light, heavy, label):
    """The light user's wrk pass (1 connection), with the heavy user's 64 connections
    running over it when `heavy` (a token file) is given."""
    one = dataclasses.replace(st, threads=1)
    out = {}

    def heavy_load():
        out["heavy"] = summarize_wrk(wrk(st, port, st.duration + 2,
                                         ["mode=me", f"path={PATH}", f"tokens={heavy}"],
                                         count_status=True, connections=HEAVY,
                                         label=label + "_heavy"))

    loader = None
    if heavy:
        loader = threading.Thread(target=heavy_load, daemon=True)
        loader.start()
        time.sleep(1.0)  # the heavy user's queue is full before measuring
    w = summarize_wrk(wrk(one, port, st.duration, ["mode=me", f"path={PATH}",
                                                   f"tokens={light}"],
                          count_status=True, connections=1, label=label))
    row = {"p50_ms": w.p50_ms, "p99_ms": w.p99_ms, "rps": w.rps,
           "statuses": w.status_counts, "socket_errors": sum(w.socket_errors.values())}
    if loader:
        loader.join(st.duration + 90)
        h = out.get("heavy")
        row["heavy"] = None if h is None else {"rps": h.rps, "p50_ms": h.p50_ms,
                                               "p99_ms": h.p99_ms,
                                               "statuses": h.status_counts}
    log(f"  {label}: {row}")
    return row


@scenario("fairness_gateway", opt_in=True)
def fairness_gateway(run):
    st = run.st
    light = token_file(st, "light", run.users[0][2])
    heavy = token_file(st, "heavy", run.users[1][2])
    floor = start_floor(st, None, path=PATH, delay_us=FAIR_DELAY_US, tag="floor-fair")
    gw = None
    upstream = {"max_concurrent": FAIR_SLOTS, "queue_capacity": 2 * HEAVY,
                "queue_timeout_ms": 2000}
    try:
        gw = start_gateway(st, "gateway-fair", gateway_toml(
            [route("fair", floor.port, auth="required")], upstream))
        wrk(st, gw.port, max(st.warmup, 2), ["mode=me", f"path={PATH}", f"tokens={light}"],
            connections=2)
        rows = {"alone": [], "beside_heavy": []}
        for r in range(1, st.rounds + 1):
            order = [("alone", None), ("beside_heavy", heavy)]
            if r % 2 == 0:
                order.reverse()
            for name, h in order:
                rows[name].append(light_pass(st, gw.port, light, h, f"fair_{name}_r{r}"))
    finally:
        if gw:
            gw.stop()
        floor.stop()
    m = {k: medians(v, ("p50_ms", "p99_ms", "rps")) for k, v in rows.items()}
    per_round = [ratio(b["p99_ms"], a["p99_ms"])
                 for a, b in zip(rows["alone"], rows["beside_heavy"])]
    data = {"slots": FAIR_SLOTS, "upstream_delay_us": FAIR_DELAY_US, "heavy_in_flight": HEAVY,
            "rounds": rows, "medians": m,
            "p99_ratio": ratio(m["beside_heavy"]["p99_ms"], m["alone"]["p99_ms"]),
            "p99_ratio_per_round": per_round}
    heavy_rps = median([r["heavy"]["rps"] for r in rows["beside_heavy"] if r.get("heavy")])
    md = [f"A light user (1 connection) on a gateway route whose bulkhead has {FAIR_SLOTS} "
          f"slots, upstream answering after {FAIR_DELAY_US // 1000} ms, alone and beside a "
          f"heavy user keeping {HEAVY} requests in flight (each with its own token); "
          f"{st.rounds} rounds ABBA of {st.duration} s, medians:", "",
          "| light user | p50 ms | p99 ms | req/s |", "|---|---|---|---|"]
    for name in ("alone", "beside_heavy"):
        x = m[name]
        md.append(f"| {name.replace('_', ' ')} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | "
                  f"{x['rps']:,.0f} |")
    md += ["", f"Light p99 beside heavy / alone: {data['p99_ratio']} (target <= "
           f"{TARGET_FAIR_P99_RATIO}; per round {per_round}). The heavy user got "
           f"{heavy_rps:,.0f} req/s (statuses per round: "
           f"{[r['heavy']['statuses'] for r in rows['beside_heavy'] if r.get('heavy')]})."]
    log(f"  {data}")
    run.report.studies["fairness_gateway"] = {"data": data, "markdown": md}
