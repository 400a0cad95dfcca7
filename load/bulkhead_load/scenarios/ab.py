"""ab (opt-in): two Bulkhead servers, A and B, on the seeded database, in interleaved
rounds: what a change or a setting buys, measured in one run.

A is the release build with the run's environment. B is the same with `--b-env KEY=VALUE`
on top (a setting: `BULKHEAD__LOG__LEVEL=off`, a pool size) and/or `--b-binary PATH` (an
earlier build kept aside: a before/after of a code change). Both are up for the whole
scenario; only one is loaded at a time, rounds ABBA, each pass after a 1 s warm-up, with
`--ab-workload`: `me` (scenario 1, the default), `orders` (scenario 3's requests) or
`products` (scenario 2's). Reported: requests/s, p99 and CPU µs per request of each by
round and their medians, and B against A (B / A - 1 of requests/s, per round too).
"""

from ..config import PRODUCTS_PATH
from ..procs import start_bulkhead
from . import measure, scenario
from .fleet import median


def workload_args(run):
    kind = run.st.ab_workload
    if kind == "orders":
        return ["mode=orders", f"tokens={run.tokens_file}", f"products={run.products_file}"]
    if kind == "products":
        return ["mode=get", f"path={PRODUCTS_PATH}"]
    return ["mode=me", f"path={run.s1_path}", f"tokens={run.tokens_file}"]


def change_pct(b, a):
    return round((b / a - 1) * 100, 1) if a and b else None


def describe_b(st):
    parts = [f"binary {st.b_binary}"] if st.b_binary else []
    parts += [f"{k}={v}" for k, v in sorted(st.b_env.items())]
    return ", ".join(parts) or "the same as A (an A/A run: the noise)"


@scenario("ab", opt_in=True)
def ab(run):
    st = run.st
    args = workload_args(run)
    servers = {}
    try:
        servers["a"] = start_bulkhead(st, access_log=st.access_log, tag="ab-a")
        servers["b"] = start_bulkhead(st, access_log=st.access_log, tag="ab-b",
                                      extra=st.b_env, binary=st.b_binary or None)
        rows = {"a": [], "b": []}
        for r in range(1, st.rounds + 1):
            order = ("a", "b") if r % 2 else ("b", "a")  # ABBA
            for side in order:
                res = measure(st, servers[side], f"ab_{side}_r{r}",
                              f"{st.ab_workload} on {side.upper()}", args, warmup=1,
                              count_status=True)
                rows[side].append({"rps": res.rps, "p99_ms": res.p99_ms,
                                   "cpu_us_per_req": res.cpu_us_per_request,
                                   "statuses": res.status_counts})
    finally:
        for srv in servers.values():
            srv.stop()
    m = {side: {k: round(median([x[k] for x in rows[side]]), 2)
                for k in ("rps", "p99_ms", "cpu_us_per_req")}
         for side in rows}
    per_round = [change_pct(b["rps"], a["rps"]) for a, b in zip(rows["a"], rows["b"])]
    data = {"workload": st.ab_workload, "b": describe_b(st),
            "rounds": rows, "medians": m,
            "rps_change_pct": change_pct(m["b"]["rps"], m["a"]["rps"]),
            "rps_change_pct_per_round": per_round,
            "cpu_us_per_req_change": round(m["b"]["cpu_us_per_req"]
                                           - m["a"]["cpu_us_per_req"], 1)}
    md = [f"A: the release build; B: {data['b']}. Workload `{st.ab_workload}`, "
          f"{st.rounds} rounds ABBA of {st.duration} s, {st.connections} connections, "
          "medians:", "",
          "| server | req/s | p99 ms | CPU µs/req | statuses |", "|---|---|---|---|---|"]
    for side in ("a", "b"):
        x = m[side]
        statuses = {}
        for row in rows[side]:
            for k, v in (row["statuses"] or {}).items():
                statuses[k] = statuses.get(k, 0) + v
        md.append(f"| {side.upper()} | {x['rps']:,.0f} | {x['p99_ms']:.2f} | "
                  f"{x['cpu_us_per_req']} | {statuses or '-'} |")
    md += ["", f"B against A: {data['rps_change_pct']:+} % requests/s (per round "
           f"{per_round}), {data['cpu_us_per_req_change']:+} CPU µs per request."]
    run.report.studies["ab"] = {"data": data, "markdown": md}
