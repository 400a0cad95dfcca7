"""Scenarios 2-4: closed loop on the seeded data; s2 and s3 beside their pgbench
baselines (pgbench.py), in interleaved rounds."""

from .. import pgbench
from ..config import ME_PATH, PRODUCTS_PATH, log
from ..procs import start_bulkhead
from ..results import PgbenchRatio
from . import measure, scenario

# pgbench's TPC-B-like scale beside s3: at scale 1, 64 clients serialize on one branch
# row and the baseline flatters us.
TPCB_SCALE = 64


def median(results, key):
    return sorted(results, key=key)[len(results) // 2]


def ratio(run, scenario_result, bench, note=""):
    run.report.pgbench_ratios.append(PgbenchRatio(
        scenario=scenario_result.name,
        pgbench=bench.mode if bench.mode.endswith("-sql") else f"{bench.mode} -s {bench.scale}",
        scenario_rps=round(scenario_result.rps, 1), pgbench_tps=round(bench.tps, 1),
        ratio=round(scenario_result.rps / bench.tps, 3) if bench.tps else 0.0,
        note=note))


def server(run, tag, cache=True):
    """Bulkhead on the run's database (tokens stay valid), replacing `run.srv`: one
    server at a time, so that pgbench's 64 clients and a server's pools fit in
    Postgres's max_connections (100 here) together with nothing else."""
    run.srv.stop()
    extra = {} if cache else {"BULKHEAD__CACHE__PRODUCTS__ENABLED": "false"}
    run.srv = start_bulkhead(run.st, access_log=run.st.access_log, tag=tag, extra=extra)
    return run.srv


def pgbench_alone(run, db, mode, beside):
    """A pgbench run with no Bulkhead server holding connections."""
    run.srv.stop()
    return db.run(run.st, mode, run.st.connections, beside)


@scenario("s2_products")
def products(run):
    """The first product page, anonymous, from the product cache (the default) and with
    it off (a server restarted on the same database), beside pgbench select-only and the
    list's own query (list-sql), each once per round; the medians are the headline.
    Statuses counted exactly: a database read behind a bulkhead may shed (503) under 64
    closed-loop connections, which the contract allows and a 5xx class cannot tell from a
    failure."""
    st = run.st
    args = ["mode=get", f"path={PRODUCTS_PATH}"]
    title = f"GET {PRODUCTS_PATH} (first page, anonymous)"
    on_runs, off_runs, benches, own = [], [], [], []
    with (pgbench.Database(1, bulkhead_schema=True) if pgbench.available()
          else _NoPgbench()) as db:
        for r in range(1, st.rounds + 1):
            tag = f" (round {r} of {st.rounds})" if st.rounds > 1 else ""
            if db:
                benches.append(pgbench_alone(run, db, "select-only", "s2_products"))
                own.append(pgbench_alone(run, db, "list-sql", "s2_products_cache_off"))
            on = server(run, f"product-cache-on-r{r}")
            on_runs.append(measure(st, on, f"s2_products_r{r}", title + tag, args,
                                   count_status=True))
            off = server(run, f"product-cache-off-r{r}", cache=False)
            off_runs.append(measure(st, off, f"s2_products_cache_off_r{r}",
                                    title + ", product cache off" + tag, args,
                                    count_status=True))
    server(run, "after-s2")
    head = median(on_runs, lambda x: x.rps)
    head.name, head.title = "s2_products", title
    run.add(head)
    off_head = median(off_runs, lambda x: x.rps)
    off_head.name = "s2_products_cache_off"
    run.add(off_head, extra=True)
    for extra in [x for x in on_runs + off_runs if x is not head and x is not off_head]:
        run.add(extra, extra=True)
    if benches:
        bench = median(benches, lambda x: x.tps)
        run.report.pgbench += benches + own
        ratio(run, head, bench, f"product cache on, median of {len(on_runs)}")
        ratio(run, off_head, bench, f"product cache off, median of {len(off_runs)}")
        ratio(run, off_head, median(own, lambda x: x.tps),
              f"product cache off, median of {len(off_runs)}; the list's own query "
              "(load/pgbench/list.sql)")


class _NoPgbench:
    def __enter__(self):
        log("pgbench is not installed (apt-get install postgresql-client): no baseline")
        return None

    def __exit__(self, *exc):
        return False


@scenario("s3_orders")
def orders(run):
    """Orders beside pgbench's TPC-B-like transaction at scale 64 and beside the order's
    own statements (order-sql: the database alone doing the order's work), once each per
    round."""
    st = run.st
    args = ["mode=orders", f"tokens={run.tokens_file}", f"products={run.products_file}"]
    title = "POST /api/v1/orders, fresh Idempotency-Key each"
    runs, benches, own = [], [], []
    with (pgbench.Database(TPCB_SCALE, bulkhead_schema=True) if pgbench.available()
          else _NoPgbench()) as db:
        for r in range(1, st.rounds + 1):
            tag = f" (round {r} of {st.rounds})" if st.rounds > 1 else ""
            if db:
                benches.append(pgbench_alone(run, db, "tpcb-like", "s3_orders"))
                own.append(pgbench_alone(run, db, "order-sql", "s3_orders"))
                server(run, f"s3-r{r}")
            runs.append(run.measure(f"s3_orders_r{r}", title + tag, args,
                                    count_status=True))
    head = median(runs, lambda x: x.rps)
    head.name, head.title = "s3_orders", title
    run.add(head)
    for extra in [x for x in runs if x is not head]:
        run.add(extra, extra=True)
    if benches:
        run.report.pgbench += benches + own
        ratio(run, head, median(benches, lambda x: x.tps), f"median of {len(runs)}")
        ratio(run, head, median(own, lambda x: x.tps),
              f"median of {len(runs)}; the order's own SQL (load/pgbench/order.sql)")


@scenario("s4_mix")
def mix(run):
    m = run.st.mix
    run.add(run.measure(
        "s4_mix",
        f"mix: {m[0]} % GET {ME_PATH.removeprefix('/api/v1')}, {m[1]} % GET products, "
        f"{m[2]} % POST orders",
        ["mode=mix", f"mix={m[0]},{m[1]},{m[2]}", f"tokens={run.tokens_file}",
         f"products={run.products_file}"], count_status=True))
