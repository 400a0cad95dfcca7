"""The runs: the full run (seed, head-to-head rounds, access-log A-B-A, the registered
scenarios) and the memory check."""

import os
import shutil
import signal
import subprocess
import time

from .client import Client
from .config import ADMIN_EMAIL, ADMIN_PASSWORD, DB_NAME, ME_PATH, log
from .generators import wrk
from .procs import CLEANUP, fresh_database, psql, start_baseline, start_bulkhead, \
    start_floor
from .results import AccessLogCost, BodyMatch, LuaCountCost, MemoryResult, \
    Round, RoundFigures
from .sampling import scrape, status_kb
from .scenarios import Run, measure, run_registered, standalone
from .seed import login, mint_token, seed_products, seed_users

# The axum baselines of the head-to-head: report name, binary, row title.
BASELINES = (
    ("inline_axum", "bulkhead-inline-axum",
     "inline axum + governor + moka + jsonwebtoken + deadpool-postgres"),
    ("lean_axum", "bulkhead-lean-axum",
     "lean axum: jsonwebtoken + governor + moka, JSON per request"),
)


def on_off(v):
    return "on" if v else "off"


def probe_scenario1(st, srv, token):
    """GET /users/me is the scenario-1 route; should it answer otherwise, fall back to
    the cheapest authenticated GET and say so in the report."""
    status, hdrs, body = Client(srv.port).request(
        "GET", ME_PATH, headers={"Authorization": f"Bearer {token}"})
    if status == 200:
        path = os.path.join(st.out, "users-me-body.json")
        with open(path, "wb") as f:
            f.write(body)
        etag = hdrs.get("ETag") or hdrs.get("etag")
        return ME_PATH, path, None, {"bytes": len(body), "etag": etag}
    fallback = "/api/v1/orders?limit=1"
    note = (f"GET {ME_PATH} answered {status} on this commit: scenario 1 ran against the "
            f"authenticated GET {fallback} instead (a database read, not a cache hit), and "
            "the floor served a representative user body. Not the headline figure.")
    log(note)
    return fallback, None, note, None


def profile(st, srv, args, label):
    """perf record of the server over an extra, unmeasured pass of a scenario (sampling
    costs CPU, so the measured pass runs without it). Flat profile: the release build has
    no frame pointers, and DWARF unwinding at this rate would cost more than it shows."""
    perf = shutil.which("perf")
    if not perf:
        log("--perf: perf is not installed (apt-get install linux-perf); skipped")
        return None
    data = os.path.join(st.out, f"perf-{label}.data")
    rec = subprocess.Popen([perf, "record", "-F", "999", "-p", str(srv.pid), "-o", data,
                            "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    CLEANUP.add("perf record", rec)
    try:
        wrk(st, srv.port, st.duration, args)
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=60)

    def report(sort, limit):
        return subprocess.run([perf, "report", "-i", data, "--no-children", "--sort", sort,
                               "--stdio", "--percent-limit", limit],
                              capture_output=True, text=True, timeout=300).stdout

    def rows(out):
        # perf pads its columns to the longest symbol: keep "percent dso symbol".
        return [" ".join(line.split()).removesuffix(" - -") for line in out.splitlines()
                if line.strip() and not line.startswith("#")]

    by_symbol, by_dso = report("dso,symbol", "0.7"), report("dso", "1")
    with open(os.path.join(st.out, f"perf-{label}.txt"), "w") as f:
        f.write(by_dso + "\n" + by_symbol)
    os.remove(data)
    return "\n".join(["by binary:"] + rows(by_dso) + ["", "by symbol:"]
                     + rows(by_symbol)[:40])


def seed(st, srv):
    client = Client(srv.port)
    t0 = time.time()
    admin_token = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    users = seed_users(client, st.users, st.seed_concurrency)
    tokens_file = os.path.join(st.out, "tokens.txt")
    with open(tokens_file, "w") as f:
        f.write("\n".join(t for _, _, t in users) + "\n")
    products = seed_products(client, admin_token, st.products, st.seed_concurrency,
                             stock=1_000_000_000)
    products_file = os.path.join(st.out, "products.txt")
    with open(products_file, "w") as f:
        f.write("\n".join(products) + "\n")
    log(f"seeded {len(users)} users (register + login) and {len(products)} products "
        f"in {time.time() - t0:.1f} s")
    return users, tokens_file, products_file


def head_to_head(run, body_file):
    """The floor (same path, same request bytes: the tokens are sent and ignored), the
    axum baselines (the same route written directly with axum on the same database with
    the same tokens) and scenario 1, each with the same load and warm-up, in interleaved
    rounds: on a shared 2-core VM one system measured once can be 30 % off a minute
    later. Each is reported by its median round; every round is kept."""
    st, report = run.st, run.report
    token = run.users[0][2]
    me_args = ["mode=me", f"path={run.s1_path}", f"tokens={run.tokens_file}"]
    base_args = ["mode=me", f"path={ME_PATH}", f"tokens={run.tokens_file}"]
    n = len(run.users)
    floor_srv = start_floor(st, body_file)
    contenders = [("floor", floor_srv, f"bulkhead-floor GET {ME_PATH}", base_args)]
    bulkhead_body = open(body_file, "rb").read() if body_file else None
    for name, binary, title in BASELINES:
        srv, body = start_baseline(st, binary, token)
        if bulkhead_body is not None:
            report.baseline_bodies[name] = BodyMatch(
                bytes=len(body), bulkhead_bytes=len(bulkhead_body),
                same_as_bulkhead=body == bulkhead_body)
            if body != bulkhead_body:
                log(f"{name} body differs from Bulkhead's: {body[:200]!r} vs "
                    f"{bulkhead_body[:200]!r}")
        wrk(st, srv.port, max(st.warmup, 2), base_args)  # fill its cache
        contenders.append((name, srv, f"{title} GET {ME_PATH}, {n} users, cache hits",
                           base_args))
    contenders.append(("s1_users_me", run.srv, f"GET {run.s1_path}, {n} users, cache hits",
                       me_args))

    runs = {name: [] for name, *_ in contenders}
    for r in range(1, st.rounds + 1):
        tag = f" (round {r} of {st.rounds})" if st.rounds > 1 else ""
        for name, srv, title, args in contenders:
            runs[name].append(measure(st, srv, f"{name}_r{r}", title + tag, args))
    report.rounds = [
        Round(round=i + 1, figures={k: RoundFigures(v[i].rps, v[i].p99_ms,
                                                    v[i].cpu_us_per_request)
                                    for k, v in runs.items()})
        for i in range(st.rounds)]

    medians = {}
    for name, _, title, _ in contenders:
        chosen = sorted(runs[name], key=lambda x: x.rps)[len(runs[name]) // 2]
        chosen.name, chosen.title, chosen.rounds = name, title, st.rounds
        medians[name] = chosen
    if not st.quick:
        counted = measure(st, floor_srv, "floor_counted",
                          "bulkhead-floor, statuses counted in Lua", base_args,
                          count_status=True, warmup=0)
        report.lua_count_cost = LuaCountCost(
            without_rps=medians["floor"].rps, with_rps=counted.rps,
            cost_pct=round((1 - counted.rps / medians["floor"].rps) * 100, 1))
    for _, srv, _, _ in contenders[:-1]:
        srv.stop()
    report.floor = medians["floor"]
    report.baselines = [medians[name] for name, *_ in BASELINES]
    run.add(medians["s1_users_me"])


def access_log_aba(run):
    """Scenario 1 on a server started with the other access-log setting on the same
    database (same users, tokens still valid), then back to the headline setting and
    scenario 1 once more: A-B-A, so that a difference between A and B larger than
    between the two A's is the access log, not the machine."""
    st, report = run.st, run.report
    head = st.access_log
    me_args = ["mode=me", f"path={run.s1_path}", f"tokens={run.tokens_file}"]
    run.srv.stop()
    other = start_bulkhead(st, access_log=not head, tag=f"access-{on_off(not head)}")
    wrk(st, other.port, max(st.warmup, 2), me_args)
    s1_other = measure(st, other, f"s1_access_log_{on_off(not head)}",
                       f"GET {run.s1_path}, access log {on_off(not head)}", me_args)
    run.add(s1_other, extra=True)
    other.stop()
    run.srv = start_bulkhead(st, access_log=head, tag=f"access-{on_off(head)}-2")
    wrk(st, run.srv.port, max(st.warmup, 2), me_args)
    s1_again = run.measure("s1_repeat", f"GET {run.s1_path}, access log {on_off(head)}, "
                           "once more", me_args, warmup=0)
    run.add(s1_again, extra=True)
    s1 = report.scenario("s1_users_me")
    on = [s1, s1_again] if head else [s1_other]
    off = [s1_other] if head else [s1, s1_again]

    def mean(xs, key):
        return round(sum(key(x) for x in xs) / len(xs), 2)

    report.access_log_cost = AccessLogCost(
        on_rps=mean(on, lambda x: x.rps), off_rps=mean(off, lambda x: x.rps),
        on_p99_ms=mean(on, lambda x: x.p99_ms), off_p99_ms=mean(off, lambda x: x.p99_ms),
        on_cpu_us_per_request=mean(on, lambda x: x.cpu_us_per_request),
        off_cpu_us_per_request=mean(off, lambda x: x.cpu_us_per_request),
        on_runs=len(on), off_runs=len(off),
        rps_cost_pct=round((1 - mean(on, lambda x: x.rps) / mean(off, lambda x: x.rps))
                           * 100, 1))


def full_run(st, report):
    st.db_url = fresh_database()
    srv = start_bulkhead(st, access_log=st.access_log,
                         tag=f"access-{on_off(st.access_log)}")
    users, tokens_file, products_file = seed(st, srv)
    s1_path, body_file, report.scenario1_note, report.users_me = probe_scenario1(
        st, srv, users[0][2])
    run = Run(st=st, srv=srv, report=report, users=users, tokens_file=tokens_file,
              products_file=products_file, s1_path=s1_path)
    me_args = ["mode=me", f"path={s1_path}", f"tokens={tokens_file}"]
    if standalone(st.only):
        # The opt-in scenarios start their own servers on the seeded database; the seeding
        # server would only hold Postgres connections they need.
        log(f"only opt-in scenarios ({', '.join(st.only)}): no head-to-head")
        run.srv.stop()
    else:
        # Cache warm-up before anything is measured: every user once at least.
        wrk(st, srv.port, max(st.warmup, 2), me_args)
        head_to_head(run, body_file)
        if st.perf:
            log("s1_users_me again under perf record (not measured)")
            report.perf_s1 = profile(st, run.srv, me_args, "s1")
        if not st.quick or st.access_log_both:
            access_log_aba(run)
    run_registered(run, st.only)
    run.srv.stop()


def memory_run(st):
    """100,000 users in the cache, then the server's RSS.

    Users are inserted with SQL (one generate_series INSERT; every row gets the argon2
    hash of the bootstrap admin's password, a real hash of the configured cost) and
    their tokens are minted with the run's JWT secret, because registering and logging
    in 100,000 users through the API would spend minutes hashing passwords, which is not
    what is measured. The cache is then filled the way production fills it: one
    authenticated GET per user, each a miss that loads the user from Postgres."""
    n = st.memory_users
    st.db_url = fresh_database()
    # The default capacity is 100,000 in all shards together, and each shard evicts on
    # its own once it holds its share: with exactly 100,000 users hashed over the shards
    # some shard is always full first, and the cache settles a few thousand short. A
    # capacity with 25 % headroom lets all 100,000 users be cached at once, which is what
    # is to be measured (entries, not capacity, take memory).
    capacity = max(100_000, n * 5 // 4)
    srv = start_bulkhead(st, access_log=False, tag="memory",
                         extra={"BULKHEAD__CACHE__USERS__CAPACITY": str(capacity)})
    client = Client(srv.port)
    login(client, ADMIN_EMAIL, ADMIN_PASSWORD)  # the admin row exists now
    t0 = time.time()
    psql(f"""INSERT INTO users (id, email, name, password_hash, role, status, version,
                                created_at, updated_at)
             SELECT gen_random_uuid(), 'mem-' || i || '@load.bulkhead.test',
                    'Memory User ' || i,
                    (SELECT password_hash FROM users WHERE email = '{ADMIN_EMAIL}'),
                    'user', 'active', 1, now(), now()
             FROM generate_series(1, {n}) AS i""", db=DB_NAME)
    ids = psql("SELECT id FROM users WHERE email LIKE 'mem-%' ORDER BY id",
               db=DB_NAME).split()
    tokens_file = os.path.join(st.out, "memory-tokens.txt")
    with open(tokens_file, "w") as f:
        for uid in ids:
            f.write(mint_token(uid) + "\n")
    log(f"inserted {len(ids)} users and minted their tokens in {time.time() - t0:.1f} s")
    status, _, _ = client.request(
        "GET", ME_PATH, headers={"Authorization": f"Bearer {mint_token(ids[0])}"})
    if status != 200:
        log(f"GET {ME_PATH} answered {status}; filling the cache through "
            "/api/v1/orders?limit=1 instead (authentication loads the user either way)")
        path = "/api/v1/orders?limit=1"
    else:
        path = ME_PATH
    rss_idle = status_kb(srv.pid, "VmRSS")

    # wrk threads walk the token list from evenly spaced offsets; each round starts where
    # the last one stopped, until the server's own gauge says every user is cached.
    t0 = time.time()
    offset, entries = 0, 0.0
    while time.time() - t0 < st.memory_fill_timeout:
        w = wrk(st, srv.port, 10, ["mode=me", f"path={path}", f"tokens={tokens_file}",
                                   f"offset={offset}"])
        offset += w["requests"] // st.threads
        entries = scrape(srv.port).get("cache_entries", 0.0)
        log(f"  cache entries {int(entries)} after {w['requests']} more requests "
            f"({w['requests'] / (w['duration_us'] / 1e6):.0f} req/s)")
        if entries >= n:  # n users, plus the admin who logged in
            break
    fill_s = round(time.time() - t0, 1)
    time.sleep(1)
    result = MemoryResult(
        users=n, cache_entries=entries, cache_capacity=capacity, fill_s=fill_s,
        rss_idle_mb=round(rss_idle / 1024, 1),
        rss_mb=round(status_kb(srv.pid, "VmRSS") / 1024, 1),
        hwm_mb=round(status_kb(srv.pid, "VmHWM") / 1024, 1), path=path)
    log(f"memory: {result}")
    srv.stop()
    return result
