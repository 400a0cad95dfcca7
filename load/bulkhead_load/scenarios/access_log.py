"""access_log (opt-in): what the access log costs scenario 1, in interleaved rounds.

Two release servers on the seeded database, one with `log.access_log` on and one with it
off (both `log.format = json`, `log.level = warn`, stderr to a file, as in production
behind a log shipper), both up for the whole scenario; only one is loaded at a time.
Rounds ABBA of scenario 1 (`GET /users/me` over the seeded users, 64 connections), each
pass after a 1 s warm-up; the cost is 1 - on/off of requests/s per round and of the
medians, beside CPU µs per request and p99 of each (issue 14's target: at most 5 %).
The full run's A-B-A (`runs.access_log_aba`) is one pair; this is several.
"""

from ..config import log
from ..procs import start_bulkhead
from . import measure, scenario
from .fleet import median

TARGET_PCT = 5.0


def cost_pct(on, off):
    return round((1 - on / off) * 100, 1) if on and off else None


@scenario("access_log", opt_in=True)
def access_log(run):
    st = run.st
    args = ["mode=me", f"path={run.s1_path}", f"tokens={run.tokens_file}"]
    servers = {}
    try:
        for on in (False, True):
            servers[on] = start_bulkhead(st, access_log=on,
                                         tag=f"access-{'on' if on else 'off'}-ab")
        rows = {False: [], True: []}
        for r in range(1, st.rounds + 1):
            order = (False, True) if r % 2 else (True, False)  # ABBA
            for on in order:
                name = f"access_log_{'on' if on else 'off'}_r{r}"
                res = measure(st, servers[on], name, f"GET {run.s1_path}", args, warmup=1)
                rows[on].append({"rps": res.rps, "p99_ms": res.p99_ms,
                                 "cpu_us_per_req": res.cpu_us_per_request,
                                 "non_2xx": res.wrk.non_2xx_3xx})
    finally:
        for srv in servers.values():
            srv.stop()
    m = {on: {k: round(median([x[k] for x in rows[on]]), 2)
              for k in ("rps", "p99_ms", "cpu_us_per_req")}
         for on in rows}
    per_round = [cost_pct(a["rps"], b["rps"]) for a, b in zip(rows[True], rows[False])]
    data = {"rounds": {"on": rows[True], "off": rows[False]},
            "medians": {"on": m[True], "off": m[False]},
            "rps_cost_pct": cost_pct(m[True]["rps"], m[False]["rps"]),
            "rps_cost_pct_per_round": per_round,
            "cpu_us_per_req_added": round(m[True]["cpu_us_per_req"]
                                          - m[False]["cpu_us_per_req"], 1)}
    md = [f"Scenario 1 on two servers, access log on and off, {st.rounds} rounds ABBA of "
          f"{st.duration} s, {st.connections} connections, medians:", "",
          "| access log | req/s | p99 ms | CPU µs/req | non-2xx |", "|---|---|---|---|---|"]
    for on in (False, True):
        x = m[on]
        md.append(f"| {'on' if on else 'off'} | {x['rps']:,.0f} | {x['p99_ms']:.2f} | "
                  f"{x['cpu_us_per_req']} | {sum(r['non_2xx'] for r in rows[on])} |")
    md += ["", f"Cost: {data['rps_cost_pct']} % of requests/s (target <= {TARGET_PCT} %; "
           f"per round {per_round}), {data['cpu_us_per_req_added']} CPU µs per request."]
    log(f"  {data}")
    run.report.studies["access_log"] = {"data": data, "markdown": md}
