"""s6_fleet (opt-in): 3 release instances on the run's database behind nginx (configured
from ops/nginx/fleet.conf), with a redis-server of the run's own on a free port.

(a) Global limit accuracy: one user at 5x its quota through nginx (spread round robin
    over the instances), admitted against what one GCRA limiter of that quota admits for
    the same send times; the same with local limits only (the control: about 3x).
(b) Invalidation lag: 1,000 user status changes through nginx, one at a time, and every
    instance's `bulkhead_cache_invalidation_lag_seconds` histogram around them.
(c) Scenario 1 through nginx, Redis-global limits against local limits (quota never
    binding), in interleaved rounds (ABBA), medians, CPU per request of the instances,
    nginx and Redis.
"""

import json
import time
import uuid

from ..client import Client
from ..config import ADMIN_EMAIL, ADMIN_PASSWORD, HOST, ME_PATH, log
from ..generators import summarize_wrk, wrk
from ..invalidation_lag import buckets, quantile
from ..sampling import gauge, scrape, status_classes
from ..seed import login
from ..services import CpuGroup, Fleet, gcra_admitted, paced, start_redis
from . import scenario

INSTANCES = 3
NEVER_BINDS = "1000000000"
# A short window, so the burst (= quota) is spent within seconds and the measured
# stretch is mostly the sustained rate: per instance the local control gets 5/3 of the
# rate and spends its burst in 3 s, then admits the rate, 3x in all.
ACCURACY_QUOTA, ACCURACY_WINDOW_S, ACCURACY_FACTOR = 60, 2, 5
LAG_CHANGES, LAG_USERS = 1000, 10


def fleet_env(redis, tag, quota=NEVER_BINDS, window_s=60):
    """One worker per instance (3 instances share the 2 cores with nginx and wrk), and
    small database pools: two fleets run at once on a Postgres of 100 connections that
    other work shares, and what is measured here are cache hits and single writes. The
    read queue's deadline is long so that filling the caches never sheds (a 503 makes
    nginx take the instance out: see `warm`)."""
    env = {"BULKHEAD__SERVER__WORKERS": "1",
           "BULKHEAD__DATABASE__READ_POOL_SIZE": "4",
           "BULKHEAD__DATABASE__WRITE_POOL_SIZE": "2",
           "BULKHEAD__BULKHEADS__DB_READ__MAX_CONCURRENT": "4",
           "BULKHEAD__BULKHEADS__DB_READ__QUEUE_TIMEOUT_MS": "2000",
           "BULKHEAD__BULKHEADS__DB_WRITE__MAX_CONCURRENT": "2",
           "BULKHEAD__RATE_LIMITS__USER__QUOTA": str(quota),
           "BULKHEAD__RATE_LIMITS__USER__WINDOW_SECS": str(window_s)}
    if redis:
        env["BULKHEAD__REDIS__URL"] = f"redis://{HOST}:{redis.port}"
        env["BULKHEAD__REDIS__KEY_PREFIX"] = f"load-{tag}"  # fleets never share keys
    return env


def wait_global(fleet, deadline_s=15):
    """Until every instance decides globally and sees the whole fleet (heartbeats)."""
    end = time.time() + deadline_s
    while time.time() < end:
        if all(gauge(s.port, "bulkhead_ratelimit_global") == 1
               and gauge(s.port, "bulkhead_ratelimit_fleet_size") == len(fleet.instances)
               for s in fleet.instances):
            return True
        time.sleep(0.2)
    log(f"fleet {fleet.tag}: not global with the whole fleet after {deadline_s} s")
    return False


def accuracy(st, run, redis, duration):
    tag = "acc-global" if redis else "acc-local"
    fleet = Fleet(st, tag, INSTANCES,
                  fleet_env(redis, tag, ACCURACY_QUOTA, ACCURACY_WINDOW_S))
    try:
        is_global = wait_global(fleet) if redis else False
        token = run.users[-1][2]  # seen by no instance of this fleet yet
        before = [scrape(s.port) for s in fleet.instances]
        rate = ACCURACY_FACTOR * ACCURACY_QUOTA / ACCURACY_WINDOW_S
        log(f"s6_fleet (a) {tag}: one user at {rate:.0f} req/s ({ACCURACY_FACTOR}x "
            f"{ACCURACY_QUOTA}/{ACCURACY_WINDOW_S} s) for {duration} s through nginx")
        rows = paced(fleet.port, ME_PATH, {"Authorization": f"Bearer {token}"}, rate,
                     duration)
        per_instance = [status_classes(b, scrape(s.port))
                        for b, s in zip(before, fleet.instances)]
    finally:
        fleet.stop()
    statuses = {}
    for _, status in rows:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    admitted = statuses.get("200", 0)
    reference = gcra_admitted([t for t, _ in rows], ACCURACY_QUOTA, ACCURACY_WINDOW_S)
    out = {"fleet": tag, "global_at_start": is_global, "sent": len(rows),
           "rate_per_s": rate, "duration_s": duration, "statuses": statuses,
           "admitted": admitted, "one_gcra_admits": reference,
           "ratio": round(admitted / reference, 3) if reference else None,
           "per_instance_status_classes": per_instance}
    log(f"  admitted {admitted} of {len(rows)}; one GCRA limiter admits {reference}: "
        f"{out['ratio']}x; per instance {per_instance}")
    return out


def invalidation_lag(st, fleet, changes):
    client = Client(fleet.port)
    admin = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    auth = {"Authorization": f"Bearer {admin}"}
    users = []
    for i in range(LAG_USERS):
        _, _, body = client.retrying("POST", "/api/v1/users", {
            "email": f"lag-{i}-{uuid.uuid4().hex[:8]}@load.bulkhead.test", "name": "Lag",
            "password": "load-password-1"})
        users.append([json.loads(body)["id"], "active"])
    before = [buckets(s.port, "user") for s in fleet.instances]
    log(f"s6_fleet (b): {changes} user status changes through nginx, one at a time")
    t0 = time.time()
    for i in range(changes):
        u = users[i % len(users)]
        to = "deactivated" if u[1] == "active" else "active"
        client.retrying("POST", f"/api/v1/users/{u[0]}/status", {"status": to}, auth,
                        ok=(200,))
        u[1] = to
    elapsed = time.time() - t0
    time.sleep(1.0)
    merged = {}
    for b0, s in zip(before, fleet.instances):
        base = dict(b0)
        for le, c in buckets(s.port, "user"):
            merged[le] = merged.get(le, 0.0) + c - base.get(le, 0.0)
    diff = sorted(merged.items())
    total = diff[-1][1] if diff else 0
    out = {"changes": changes, "changes_per_s": round(changes / elapsed, 1),
           "evictions_observed": int(total),
           "p50_ms": round(quantile(diff, 0.5) * 1000, 2) if total else None,
           "p99_ms": round(quantile(diff, 0.99) * 1000, 2) if total else None,
           "max_bucket_le_ms": (next(le for le, c in diff if c >= total) * 1000
                                if total else None),
           "buckets_le_ms": {f"{le * 1000:g}": int(c) for le, c in diff if c}}
    log(f"  {out}")
    return out


def warm(st, fleet, args):
    """Fills every instance's caches (every seeded user), unmeasured: each instance
    directly with a few connections, then briefly through nginx. Not through nginx
    first: fleet.conf's `proxy_next_upstream ... http_503` with nginx's default
    `max_fails=1 fail_timeout=10s` takes an instance out for 10 s on one 503 `overloaded`
    (as cache misses shed under 64 connections), and with all three out nginx answers
    502 to everything."""
    for srv in fleet.instances:
        wrk(st, srv.port, max(st.warmup, 3), args, connections=8)
    wrk(st, fleet.port, 2, args)


def s1_pass(st, run, fleet, redis, label):
    args = ["mode=me", f"path={ME_PATH}", f"tokens={run.tokens_file}"]
    with CpuGroup(fleet.instance_pids) as inst, CpuGroup(fleet.nginx_pids) as ngx, \
            CpuGroup(lambda: [redis.pid] if redis else []) as red:
        w = wrk(st, fleet.port, st.duration, args, label=label)
    s = summarize_wrk(w)
    n = s.requests or 1
    row = {"fleet": fleet.tag, "rps": s.rps, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
           "non_2xx": s.non_2xx_3xx, "socket_errors": s.socket_errors,
           "instances_cpu_us_per_req": round(inst.cpu / n * 1e6, 1),
           "nginx_cpu_us_per_req": round(ngx.cpu / n * 1e6, 1),
           "redis_cpu_us_per_req": round(red.cpu / n * 1e6, 1)}
    log(f"  {label}: {row}")
    return row


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def throughput(st, run, redis):
    glob = Fleet(st, "s1-global", INSTANCES, fleet_env(redis, "s1-global"))
    local = Fleet(st, "s1-local", INSTANCES, fleet_env(None, "s1-local"))
    try:
        wait_global(glob)
        lag = invalidation_lag(st, glob, LAG_CHANGES)
        args = ["mode=me", f"path={ME_PATH}", f"tokens={run.tokens_file}"]
        for f in (glob, local):
            warm(st, f, args)
        rows = {"global": [], "local": []}
        for r in range(1, st.rounds + 1):
            order = [("global", glob, redis), ("local", local, None)]
            if r % 2 == 0:
                order.reverse()  # ABBA
            for name, f, red in order:
                rows[name].append(s1_pass(st, run, f, red, f"s6_s1_{name}_r{r}"))
    finally:
        glob.stop()
        local.stop()
    return lag, rows


def summary(rows):
    return {k: median([r[k] for r in rows]) for k in (
        "rps", "p99_ms", "instances_cpu_us_per_req", "nginx_cpu_us_per_req",
        "redis_cpu_us_per_req")}


def markdown(acc, lag, rows, st):
    g, lo = summary(rows["global"]), summary(rows["local"])
    pairs = [round(a["rps"] / b["rps"], 3) for a, b in zip(rows["global"], rows["local"])]
    lines = [
        f"(a) One user at {ACCURACY_FACTOR}x its quota ({ACCURACY_QUOTA} per "
        f"{ACCURACY_WINDOW_S} s, GCRA) through nginx over {INSTANCES} instances, against "
        "one GCRA limiter fed the same send times:", "",
        "| limits | sent | admitted | one GCRA admits | ratio | 429 | other |",
        "|---|---|---|---|---|---|---|"]
    for a in acc:
        other = {k: v for k, v in a["statuses"].items() if k not in ("200", "429")}
        lines.append(f"| {a['fleet']} | {a['sent']} | {a['admitted']} | "
                     f"{a['one_gcra_admits']} | {a['ratio']} | "
                     f"{a['statuses'].get('429', 0)} | {other or 'none'} |")
    lines += ["", f"(b) Invalidation lag, {lag['changes']} status changes through nginx "
              f"({lag['evictions_observed']} evictions over the instances): p50 "
              f"{lag['p50_ms']} ms, p99 {lag['p99_ms']} ms (interpolated in the histogram's "
              f"buckets), all within {lag['max_bucket_le_ms']} ms.", "",
              f"(c) Scenario 1 through nginx ({st.rounds} rounds ABBA, {st.duration} s "
              f"each, wrk {st.connections} connections), medians:", "",
              "| limits | req/s | p99 ms | instances CPU µs/req | nginx CPU µs/req "
              "| Redis CPU µs/req |", "|---|---|---|---|---|---|"]
    for name, m in (("Redis-global", g), ("local", lo)):
        lines.append(f"| {name} | {m['rps']:,.0f} | {m['p99_ms']:.2f} | "
                     f"{m['instances_cpu_us_per_req']} | {m['nginx_cpu_us_per_req']} | "
                     f"{m['redis_cpu_us_per_req']} |")
    lines += ["", f"Global / local req/s: {round(g['rps'] / lo['rps'], 3)} (median over "
              f"median; per round {pairs}; target >= 0.9)."]
    return lines


@scenario("s6_fleet", opt_in=True, needs=("nginx", "redis-server"))
def fleet(run):
    st = run.st
    redis = start_redis(st)
    try:
        duration = 5 if st.quick else 15
        acc = [accuracy(st, run, redis, duration), accuracy(st, run, None, duration)]
        lag, rows = throughput(st, run, redis)
    finally:
        redis.stop()
    data = {"accuracy": acc, "invalidation_lag": lag, "s1_rounds": rows,
            "s1_global": summary(rows["global"]), "s1_local": summary(rows["local"])}
    run.report.studies["s6_fleet"] = {"markdown": markdown(acc, lag, rows, st),
                                      "data": data}
