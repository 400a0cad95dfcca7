"""s7_events (opt-in): order creation with events off and on, a nats-server -js of the
run's own on a free port.

- Throughput: two servers on the run's database, started alike (a generous write-queue
  deadline, so 503 shedding does not decide the comparison), one with
  `events.nats_url`; scenario 3's load (wrk, `POST /orders`) in interleaved ABBA rounds;
  orders/s and CPU µs per order (the server's, and every Postgres process's on the
  machine), medians. Nothing else runs on the machine's side of the harness meanwhile
  (the subscriber below would take CPU from the events-on rounds only).
- Publish lag, in a pass of its own under the same load: a JetStream subscriber (nats-py,
  an ordered consumer of new messages) timestamps each `order.placed` on receipt. Upper
  bound: the CloudEvent's `time` (written in the transaction, before the commit) to
  receipt. Lower bound: a probe order's 201 (after the commit) to its event's receipt.
- NATS outage: nats-server stopped for ~15 s while orders keep coming, then started
  again (same port, same store); the outbox's growth (`pg_total_relation_size` per row)
  and how long the relay takes to drain it.
"""

import asyncio
import datetime
import json
import os
import subprocess
import threading
import time
import uuid

from ..client import Client
from ..config import DB_NAME, ME_PATH, log
from ..generators import wrk
from ..procs import psql, start_bulkhead
from ..sampling import gauge
from ..services import CpuGroup, percentile, start_nats
from . import measure, scenario

SUBJECT = "bulkhead.order.placed"
RECEIVED_LIMIT = 1_000_000  # events kept by the subscriber (bounded)
OUTAGE_S = 15
PROBE_INTERVAL_S = 0.1


def parse_time(text):
    """Seconds since the epoch of an RFC 3339 UTC time with up to nanoseconds
    (`2026-12-03T15:00:00.123456789Z`), which datetime.fromisoformat does not take."""
    text = text.removesuffix("Z").removesuffix("+00:00")
    base, _, frac = text.partition(".")
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def postgres_pids():
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "postgres":
                        pids.append(int(p))
            except OSError:
                pass
    return pids


class Subscriber(threading.Thread):
    """A JetStream ordered consumer of new `order.placed` events in a thread of its own:
    for each event, by its subject (the order id), the receipt time and the lag from its
    `time`."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.recv = url, {}
        self.ready, self.done = threading.Event(), threading.Event()
        self.error = None

    def run(self):
        try:
            asyncio.run(self.main())
        except Exception as e:  # reported by the scenario, never silent
            self.error = repr(e)
            self.ready.set()

    async def main(self):
        import nats
        from nats.js.api import DeliverPolicy

        nc = await nats.connect(self.url, connect_timeout=5)

        async def on_event(msg):
            now = time.time()
            ev = json.loads(msg.data)
            if len(self.recv) < RECEIVED_LIMIT:
                self.recv[ev["subject"]] = (now, now - parse_time(ev["time"]))

        js = nc.jetstream()
        deadline = time.time() + 20
        while True:  # the service creates the stream when it starts; wait for it
            try:
                sub = await js.subscribe(SUBJECT, cb=on_event, ordered_consumer=True,
                                         deliver_policy=DeliverPolicy.NEW)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self.ready.set()
        while not self.done.is_set():
            await asyncio.sleep(0.1)
        await sub.unsubscribe()
        await nc.close()


def probe_orders(port, token, product, stop, out):
    """One order every PROBE_INTERVAL_S until `stop`: (order id, time its 201 arrived)."""
    client = Client(port)
    auth = {"Authorization": f"Bearer {token}", "Idempotency-Key": ""}
    while not stop.is_set():
        auth["Idempotency-Key"] = f"probe-{uuid.uuid4()}"
        status, _, body = client.request("POST", "/api/v1/orders", {
            "items": [{"product_id": product, "quantity": 1}]}, auth, timeout=10)
        if status == 201:
            out.append((json.loads(body)["id"], time.time()))
        stop.wait(PROBE_INTERVAL_S)


def orders_args(run):
    return ["mode=orders", f"tokens={run.tokens_file}", f"products={run.products_file}"]


def one_round(run, srv, name):
    with CpuGroup(postgres_pids) as pg:
        r = measure(run.st, srv, name, f"POST /api/v1/orders, {name}", orders_args(run),
                    count_status=True)
    orders = (r.status_counts or {}).get("201", 0)
    return {"orders_per_s": round(orders / r.wrk.duration_s, 1), "orders": orders,
            "statuses": r.status_counts, "p99_ms": r.p99_ms,
            "server_cpu_us_per_order": round(r.sample.server_cpu_s / orders * 1e6, 1)
            if orders else None,
            "postgres_cpu_us_per_order": round(pg.cpu / orders * 1e6, 1) if orders else None}


def lag_pass(run, on, natsd):
    sub = Subscriber(f"nats://127.0.0.1:{natsd.port}")
    sub.start()
    sub.ready.wait(30)
    if sub.error or not sub.ready.is_set():
        raise RuntimeError(f"s7_events: JetStream subscriber failed: {sub.error}")
    stop, probes = threading.Event(), []
    prober = threading.Thread(target=probe_orders, args=(
        on.port, run.users[0][2], open(run.products_file).readline().strip(), stop,
        probes), daemon=True)
    prober.start()
    log("s7_events: publish lag under the same load (subscriber and probe orders)")
    measure(run.st, on, "s7_lag_pass", "orders, events on, with the subscriber",
            orders_args(run), count_status=True, warmup=0)
    stop.set()
    prober.join(15)
    time.sleep(2)  # the last events
    sub.done.set()
    sub.join(15)
    upper = [lag * 1000 for _, lag in sub.recv.values()]
    lower = [(sub.recv[oid][0] - t) * 1000 for oid, t in probes if oid in sub.recv]
    out = {"events_received": len(upper), "probes": len(probes),
           "probes_received": len(lower),
           "upper_p50_ms": rnd(percentile(upper, 50)),
           "upper_p99_ms": rnd(percentile(upper, 99)),
           "upper_max_ms": rnd(max(upper) if upper else None),
           "lower_p50_ms": rnd(percentile(lower, 50)),
           "lower_p99_ms": rnd(percentile(lower, 99))}
    log(f"  {out}")
    return out


def rnd(x):
    return None if x is None else round(x, 2)


def outbox_figures(tries=5):
    """(bytes of the outbox with its indexes and TOAST, rows)."""
    for attempt in range(tries):
        try:
            size, rows = psql("SELECT pg_total_relation_size('outbox'), count(*) "
                              "FROM outbox", db=DB_NAME).strip().split("|")
            return int(size), int(rows)
        except subprocess.CalledProcessError as e:
            log(f"  psql: {e.stderr.strip()}")
            if attempt == tries - 1:
                raise
            time.sleep(1)


def outage(run, on, natsd):
    st = run.st
    size0, rows0 = outbox_figures()
    log(f"s7_events: NATS stopped for {OUTAGE_S} s under the orders load")
    natsd.stop()
    t_stop = time.time()
    w = wrk(st, on.port, OUTAGE_S, orders_args(run), count_status=True, label="s7_outage")
    written = w["status"].get("201", w["status"].get(201, 0))
    size1, rows1 = outbox_figures()
    pending = gauge(on.port, "bulkhead_outbox_pending")
    published0 = gauge(on.port, "bulkhead_outbox_published_total")
    natsd.start()
    t_restart = time.time()
    first, drained = None, None
    while time.time() - t_restart < 180:
        if first is None and gauge(on.port, "bulkhead_outbox_published_total") > published0:
            first = time.time() - t_restart
        if gauge(on.port, "bulkhead_outbox_pending") == 0:
            drained = time.time() - t_restart
            break
        time.sleep(0.1)
    drained_rows = rows1 - rows0
    per_row = round((size1 - size0) / drained_rows) if drained_rows > 0 else None
    rate = drained_rows / (t_restart - t_stop)
    out = {"outage_s": round(t_restart - t_stop, 1), "orders_during": written,
           "outbox_rows_before": rows0, "outbox_rows_after": rows1,
           "pending_gauge_at_restart": pending,
           "outbox_bytes_before": size0, "outbox_bytes_after": size1,
           "bytes_per_row_growth": per_row,
           "bytes_per_row_total": round(size1 / rows1) if rows1 else None,
           "rows_per_s_during": round(rate, 1),
           "first_publish_after_restart_s": rnd(first),
           "drained_after_restart_s": rnd(drained),
           "drain_rows_per_s": round(drained_rows / (drained - (first or 0)), 1)
           if drained and drained > (first or 0) else None,
           "hour_extrapolated_mb": round(rate * 3600 * per_row / 2**20) if per_row else None}
    log(f"  {out}")
    return out


def markdown(off, on, lag, out, st):
    def med(rows, k):
        xs = sorted(r[k] for r in rows if r[k] is not None)
        return xs[len(xs) // 2] if xs else None

    lines = [f"Orders (`POST /api/v1/orders`, wrk {st.connections} connections, "
             f"{st.rounds} rounds ABBA of {st.duration} s), medians:", "",
             "| events | orders/s | p99 ms | server CPU µs/order | Postgres CPU µs/order |",
             "|---|---|---|---|---|"]
    for name, rows in (("off", off), ("on", on)):
        lines.append(f"| {name} | {med(rows, 'orders_per_s')} | {med(rows, 'p99_ms')} | "
                     f"{med(rows, 'server_cpu_us_per_order')} | "
                     f"{med(rows, 'postgres_cpu_us_per_order')} |")
    ratio = round(med(on, "orders_per_s") / med(off, "orders_per_s"), 3)
    pairs = [round(a["orders_per_s"] / b["orders_per_s"], 3) for a, b in zip(on, off)]
    lines += ["", f"On / off orders/s: {ratio} (per round {pairs}; target: events cost "
              "<= 15 %, i.e. >= 0.85).", "",
              f"Publish lag ({lag['events_received']} events received by a JetStream "
              f"subscriber): CloudEvent `time` to receipt (upper bound) p50 "
              f"{lag['upper_p50_ms']} ms, p99 {lag['upper_p99_ms']} ms; a probe order's "
              f"201 to receipt (lower bound, {lag['probes_received']} probes) p50 "
              f"{lag['lower_p50_ms']} ms, p99 {lag['lower_p99_ms']} ms.", "",
              f"NATS outage of {out['outage_s']} s under load: {out['outbox_rows_after']} "
              f"rows waiting ({out['rows_per_s_during']} rows/s), "
              f"{out['bytes_per_row_growth']} bytes per row (table + indexes + TOAST "
              f"growth; {out['bytes_per_row_total']} over the whole table); first publish "
              f"{out['first_publish_after_restart_s']} s after NATS was back, outbox empty "
              f"after {out['drained_after_restart_s']} s ({out['drain_rows_per_s']} rows/s "
              f"once publishing). An hour's outage at this rate: about "
              f"{out['hour_extrapolated_mb']} MB of outbox."]
    return lines


@scenario("s7_events", opt_in=True, needs=("nats-server",))
def events(run):
    st = run.st
    try:
        import nats  # noqa: F401
    except ImportError:
        raise SystemExit("s7_events needs the Python module nats (pip install nats-py, or "
                         "load/run install-tools)")
    natsd = start_nats(st)
    # Started alike: a write-queue deadline long enough that 503 shedding does not
    # decide the comparison; read pools of 4 (orders write through the write pool), so
    # two servers fit Postgres's 100 connections beside other work.
    alike = {"BULKHEAD__BULKHEADS__DB_WRITE__QUEUE_TIMEOUT_MS": "5000",
             "BULKHEAD__DATABASE__READ_POOL_SIZE": "4",
             "BULKHEAD__BULKHEADS__DB_READ__MAX_CONCURRENT": "4"}
    off = start_bulkhead(st, False, "events-off", alike)
    on = start_bulkhead(st, False, "events-on", {
        **alike, "BULKHEAD__EVENTS__NATS_URL": f"nats://127.0.0.1:{natsd.port}"})
    try:
        for srv in (off, on):  # user caches warm, unmeasured
            wrk(st, srv.port, max(st.warmup, 2),
                ["mode=me", f"path={ME_PATH}", f"tokens={run.tokens_file}"])
        rows = {"off": [], "on": []}
        srv_of = {"off": off, "on": on}
        for r in range(1, st.rounds + 1):
            order = ("off", "on") if r % 2 else ("on", "off")  # ABBA
            for name in order:
                rows[name].append(one_round(run, srv_of[name], f"s7_{name}_r{r}"))
                log(f"  {name} r{r}: {rows[name][-1]}")
        lag = lag_pass(run, on, natsd)
        out = outage(run, on, natsd)
    finally:
        off.stop()
        on.stop()
        natsd.stop()
    run.report.studies["s7_events"] = {
        "markdown": markdown(rows["off"], rows["on"], lag, out, st),
        "data": {"rounds": rows, "lag": lag, "outage": out}}
