"""gateway_failing (opt-in): a healthy route beside a failing one (issue 15).

One Bulkhead with two routes: `healthy` in front of `bulkhead-floor --delay-us 1000`
(4 connections) and `failing` (32 connections, `timeout_ms` 1000, `retries` 2) in front
of an upstream that (a) hangs: accepts and never answers, or (b) refuses connections. A
fresh server per failure kind, three phases of it: the healthy route alone (the
baseline), beside the failing route, alone again (recovery). Reported: the healthy
route's p99 per phase, the Bulkhead process's threads and open fds per phase (from /proc:
they must not pile up, and come back), the time and requests until the failing route's
circuit opens (its `bulkhead_circuit_state`), and the retry amplification from
`bulkhead_gateway_*`: upstream attempts per request that got past the circuit, retries,
retries refused by the budget.
"""

import threading

from ..config import HOST, log
from ..generators import summarize_wrk, wrk
from ..procs import start_floor
from ..upstreams import (CircuitWatch, Hang, ProcWatch, first_open, gateway_toml,
                         metric_sum, metrics_text, ratio, refused_port, start_gateway)
from . import scenario

HEALTHY, FAILING = 4, 32
FAILING_TIMEOUT_MS, FAILING_RETRIES = 1000, 2
RECOVERY_S = 5


def routes(healthy_port, failing_port):
    return [{"name": "healthy", "prefix": "/api/v1/healthy",
             "upstreams": [f"http://{HOST}:{healthy_port}"], "auth": "none"},
            {"name": "failing", "prefix": "/api/v1/failing",
             "upstreams": [f"http://{HOST}:{failing_port}"], "auth": "none",
             "timeout_ms": FAILING_TIMEOUT_MS, "retries": FAILING_RETRIES}]


def healthy_pass(st, port, duration, label):
    w = summarize_wrk(wrk(st, port, duration, ["mode=get", "path=/api/v1/healthy/item"],
                          count_status=True, connections=HEALTHY, label=label))
    return {"rps": w.rps, "p50_ms": w.p50_ms, "p99_ms": w.p99_ms,
            "statuses": w.status_counts, "socket_errors": sum(w.socket_errors.values())}


def gateway_counts(text, route):
    def c(name, **labels):
        return metric_sum(text, name, route=route, **labels)
    return {"requests": c("bulkhead_gateway_requests_total"),
            "circuit_refused": c("bulkhead_gateway_requests_total",
                                 outcome="dependency_unavailable"),
            "overloaded": c("bulkhead_gateway_requests_total", outcome="overloaded"),
            "attempts": c("bulkhead_gateway_attempts_total"),
            "retries": c("bulkhead_gateway_retries_total"),
            "retries_refused": c("bulkhead_gateway_retries_refused_total"),
            "opened": metric_sum(text, "bulkhead_circuit_transitions_total",
                                 circuit=route, to="open")}


def amplification(before, after):
    """Deltas of `gateway_counts`, and upstream attempts per request that got past the
    circuit and the bulkhead."""
    d = {k: int(after[k] - before[k]) for k in after}
    passed = d["requests"] - d["circuit_refused"] - d["overloaded"]
    d["attempts_per_passed_request"] = ratio(d["attempts"], passed)
    return d


def one_kind(st, kind, healthy_port):
    hang = Hang() if kind == "hang" else None
    failing_port = hang.port if hang else refused_port()
    gw = None
    try:
        gw = start_gateway(st, f"gateway-{kind}", gateway_toml(routes(healthy_port,
                                                                      failing_port)))
        wrk(st, gw.port, max(st.warmup, 2), ["mode=get", "path=/api/v1/healthy/item"],
            connections=HEALTHY)
        out = {}
        with ProcWatch(gw.pid) as watch:
            watch.phase("baseline")
            out["baseline"] = healthy_pass(st, gw.port, st.duration, f"failing_{kind}_base")
            before = gateway_counts(metrics_text(gw.port), "failing")
            circuit = CircuitWatch(gw.port, "failing")
            watch.phase("failing")
            failing = {}

            def failing_load():
                failing["wrk"] = summarize_wrk(wrk(
                    st, gw.port, st.duration + 1, ["mode=get", "path=/api/v1/failing/item"],
                    count_status=True, connections=FAILING, label=f"failing_{kind}_load"))

            loader = threading.Thread(target=failing_load, daemon=True)
            circuit.start()
            loader.start()
            out["beside_failing"] = healthy_pass(st, gw.port, st.duration,
                                                 f"failing_{kind}_healthy")
            loader.join(st.duration + 90)
            circuit.stop()
            after = gateway_counts(metrics_text(gw.port), "failing")
            watch.phase("recovery")
            out["recovery"] = healthy_pass(st, gw.port, RECOVERY_S, f"failing_{kind}_rec")
        f = failing.get("wrk")
        t_open, n_open = first_open(circuit.rows)
        out.update({
            "proc": watch.summary(),
            "failing_route": {"statuses": f.status_counts if f else None,
                              "rps": f.rps if f else None,
                              "socket_errors": sum(f.socket_errors.values()) if f else None},
            "circuit_open_after_s": None if t_open is None else round(t_open, 2),
            "circuit_open_after_requests": None if n_open is None else int(n_open),
            "gateway": amplification(before, after),
            "upstream_connections_accepted": hang.accepted if hang else None})
    finally:
        if gw:
            gw.stop()
        if hang:
            hang.stop()
    log(f"  gateway_failing {kind}: {out}")
    return out


@scenario("gateway_failing", opt_in=True)
def gateway_failing(run):
    st = run.st
    floor = start_floor(st, None, path="/api/v1/healthy/item", delay_us=1000,
                        tag="floor-failing")
    try:
        data = {kind: one_kind(st, kind, floor.port) for kind in ("hang", "refuse")}
    finally:
        floor.stop()
    md = [f"A healthy route ({HEALTHY} connections, upstream answering after 1 ms) beside a "
          f"failing route ({FAILING} connections, `timeout_ms` {FAILING_TIMEOUT_MS}, "
          f"`retries` {FAILING_RETRIES}) on one Bulkhead; {st.duration} s per phase "
          f"(recovery {RECOVERY_S} s), a fresh server per failure kind:", "",
          "| failing upstream | healthy p99 alone | beside failing | recovery | "
          "threads (alone / failing max / recovery last) | fds (same) | circuit open "
          "after | failing route statuses |", "|---|---|---|---|---|---|---|---|"]
    for kind, d in data.items():
        p = d["proc"]
        md.append(
            f"| {kind} | {d['baseline']['p99_ms']:.2f} ms | "
            f"{d['beside_failing']['p99_ms']:.2f} ms | {d['recovery']['p99_ms']:.2f} ms | "
            f"{p['baseline']['threads_max']} / {p['failing']['threads_max']} / "
            f"{p['recovery']['threads_last']} | {p['baseline']['fds_max']} / "
            f"{p['failing']['fds_max']} / {p['recovery']['fds_last']} | "
            f"{d['circuit_open_after_s']} s, {d['circuit_open_after_requests']} requests | "
            f"{d['failing_route']['statuses']} |")
    md += ["", "Retry amplification on the failing route over its phase (from "
           "`bulkhead_gateway_*`):", "",
           "| failing upstream | requests | refused by the open circuit | attempts | "
           "attempts per request past the circuit | retries | retries refused by the "
           "budget | circuit openings |", "|---|---|---|---|---|---|---|---|"]
    for kind, d in data.items():
        g = d["gateway"]
        md.append(f"| {kind} | {g['requests']} | {g['circuit_refused']} | {g['attempts']} | "
                  f"{g['attempts_per_passed_request']} | {g['retries']} | "
                  f"{g['retries_refused']} | {g['opened']} |")
    md += ["", "Healthy route's non-2xx per phase: " + "; ".join(
        f"{kind} {ph}: { {k: v for k, v in (d[ph]['statuses'] or {}).items() if k != '200'} }"
        for kind, d in data.items() for ph in ("baseline", "beside_failing", "recovery"))
        + "."]
    run.report.studies["gateway_failing"] = {"data": data, "markdown": md}
