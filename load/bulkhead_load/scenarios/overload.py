"""Scenario 5: open-loop overload of a database read (the product list, behind the
db_read bulkhead; the cache-hit route is faster than any generator sharing the machine
can drive it, which measures the generator, not the service). Since the product cache
serves the product list too, s5 runs on a server of its own with the product cache off
(`cache.products.enabled = false`), so the list is a database read again; the run's
server is back afterwards.

Pinned (the default with 2 or more CPUs): the server and Postgres get the first half of
the CPUs and the generators the rest, the stand-in for a generator on another machine.
What the service sustains is measured again on its share (closed loop, `s5_base`), and
the open-loop rate is a multiple of that. Unpinned, the multiple is of scenario 2, and
on a small machine the generator cannot send it."""

import os
import time

from ..config import PRODUCTS_PATH, log
from ..generators import oha, pct, split_latencies
from ..pinning import Pinned, cpu_list
from ..results import OverloadResult
from ..sampling import Sampler, rejected_by_reason, scrape, server_quantiles, \
    status_classes, status_kb
from . import scenario
from .basic import server


@scenario("s5_overload")
def overload(run):
    server(run, "s5-product-cache-off", cache=False)
    try:
        measure_overload(run)
    finally:
        server(run, "after-s5")


def measure_overload(run):
    st, srv, path = run.st, run.srv, PRODUCTS_PATH
    if not st.pin:
        s2 = run.results.get("s2_products_cache_off")
        if s2 is None:
            s2 = run.measure("s2_products", f"GET {path} (first page, anonymous)",
                             ["mode=get", f"path={path}"], count_status=True)
        run.add(open_loop(st, srv, s2.rps, path, "scenario 2", None))
        return
    pg_cpus = st.gen_cpus if st.postgres_with == "generator" else None
    pin = Pinned(srv.pid, st.server_cpus, pg_cpus)
    with pin:
        base = run.measure(
            "s5_base",
            f"GET {path} on the server's CPUs {cpu_list(st.server_cpus)} "
            f"(what it sustains there; closed loop)",
            ["mode=get", f"path={path}"], count_status=True, cpus=st.gen_cpus,
            connections=st.base_connections)
        ok = base.status_counts or {}
        base_rps = sum(v for k, v in ok.items() if k.startswith("2")) / base.wrk.duration_s
        result = open_loop(st, srv, base_rps, path, "s5_base", st.gen_cpus)
    result.pinning = {"server_cpus": cpu_list(st.server_cpus),
                      "generator_cpus": cpu_list(st.gen_cpus), "postgres": pin.postgres}
    run.add(base, extra=True)
    run.add(result)


def open_loop(st, srv, base_rps, path, base_name, cpus):
    rate = max(100, int(round(base_rps * st.overload_factor)))
    log(f"s5_overload: open loop at {rate} req/s ({st.overload_factor}x {base_name}) "
        f"on {path} for {st.duration} s"
        + (f", generator on CPUs {cpu_list(cpus)}" if cpus else ""))
    label = "s5_overload"
    before = scrape(srv.port)
    time.sleep(1)
    with Sampler(srv.pid) as s:
        summary, db = oha(st, srv.port, rate, st.duration, path, label, cpus)
    # Let the server drain what it still holds before reading "after" memory.
    time.sleep(2)
    rss_settled_kb = status_kb(srv.pid, "VmRSS")
    after = scrape(srv.port)
    per_status, admitted, rejected, other = split_latencies(db)
    os.remove(db)  # a few hundred MB of rows; the summary is kept
    total = sum(v.count for v in per_status.values())
    errors = summary.get("errorDistribution") or {}
    # What oha managed to send: on a small machine the generator itself may not keep up
    # with the offered rate; requests it could not send in time are counted from when
    # they were due (latency correction), those never sent are not counted.
    sent = total + sum(errors.values())
    sample = s.sample()
    # The sampler's wall time includes oha writing its rows after the load stopped.
    sample.server_cpu_cores = round(s.cpu / st.duration, 2)
    result = OverloadResult(
        name="s5_overload",
        title=f"overload: GET {path}, open loop at {st.overload_factor}x {base_name}'s rate",
        generator=f"oha -q {rate} --latency-correction (open loop), "
                  f"{st.overload_connections} connections, anonymous"
                  + (f", on CPUs {cpu_list(cpus)}" if cpus else ""),
        base=base_name, base_rps=round(base_rps, 1), offered_rps=rate,
        duration_s=st.duration, requests=total, sent=sent,
        sent_rps=round(sent / st.duration, 1),
        admitted=len(admitted), admitted_rps=round(len(admitted) / st.duration, 1),
        admitted_p50_ms=pct(admitted, 50), admitted_p99_ms=pct(admitted, 99),
        admitted_p999_ms=pct(admitted, 99.9),
        rejected=len(rejected), rejected_p50_ms=pct(rejected, 50),
        rejected_p99_ms=pct(rejected, 99),
        other_statuses=other, client_errors=errors, per_status=per_status,
        p50_ms=pct(admitted + rejected, 50), p99_ms=pct(admitted + rejected, 99),
        p999_ms=pct(admitted + rejected, 99.9),
        status_counts={k: v.count for k, v in per_status.items()},
        server_status_classes=status_classes(before, after),
        rss_settled_mb=round(rss_settled_kb / 1024, 1),
        server_side_latency=server_quantiles(before, after, path),
        server_side_latency_2xx=server_quantiles(before, after, path, status="2xx"),
        server_side_latency_5xx=server_quantiles(before, after, path, status="5xx"),
        db_read_queue_wait=server_quantiles(
            before, after, "db_read", metric="bulkhead_bulkhead_queue_wait_seconds",
            label="bulkhead"),
        db_read_rejected=rejected_by_reason(before, after),
        sample=sample,
        cpu_us_per_request=round(s.cpu / total * 1e6, 1) if total else None)
    log(f"  offered {rate}/s: admitted {result.admitted_rps}/s p99 "
        f"{result.admitted_p99_ms} ms; rejected {len(rejected)} p99 "
        f"{result.rejected_p99_ms} ms; client errors {sum(errors.values()) if errors else 0}")
    return result
