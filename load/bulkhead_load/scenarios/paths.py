"""paths (opt-in): every read path the contract serves, one after another on the run's
server, with what each costs: requests/s, p99 and the server's CPU microseconds per
request. Scenario 1 measures one cached GET and s2-s4 the product list and orders; this
is the survey of the rest (a user's order list, the overview, one product, a filtered
list, the admin's user list), so that no path is slow unnoticed. Before it, each of the
first `ORDER_USERS` users places `ORDERS_PER_USER` orders, so the order lists and the
overview have rows to read, and `BULK_ORDERS` older orders of the other users are
written with SQL and vacuumed, so that the tables have a production's size and plans.
One pass per path, statuses counted: compare a path with /users/me measured in the same
run, and two builds by running the survey with each, in turn."""

import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

from ..client import Client
from ..config import ADMIN_EMAIL, ADMIN_PASSWORD, DB_NAME, ME_PATH, log
from ..procs import psql
from ..seed import login
from . import scenario
from .basic import server

ORDER_USERS = 200
ORDERS_PER_USER = 5
# Orders of the other seeded users, written straight into the tables before the survey,
# so that the order tables are the size of a service that has run for a while: on a
# table of a few pages Postgres scans it whole rather than use an index, and a path
# would be measured on a plan it does not get in production.
BULK_ORDERS = 200_000


def place_orders(run):
    client = Client(run.srv.port)
    with open(run.products_file) as f:
        products = f.read().split()

    def one(i):
        _, _, token = run.users[i // ORDERS_PER_USER]
        client.retrying("POST", "/api/v1/orders",
                        {"items": [{"product_id": products[i % len(products)],
                                    "quantity": 1}]},
                        headers={"Authorization": f"Bearer {token}",
                                 "Idempotency-Key": str(uuid.uuid4())},
                        ok=(201,))

    n = min(ORDER_USERS, len(run.users)) * ORDERS_PER_USER
    with ThreadPoolExecutor(run.st.seed_concurrency) as pool:
        list(pool.map(one, range(n)))
    others = [uid for uid, _, _ in run.users[ORDER_USERS:]]
    if others:
        # Older than every order placed above (the lists are newest first), paid (the
        # admin's pending list reads the placed ones), one item each.
        psql(f"""
            WITH o AS (
                INSERT INTO orders (id, user_id, status, total_cents, currency, version,
                                    created_at, updated_at)
                SELECT gen_random_uuid(), (ARRAY['{"','".join(others)}']::uuid[])[1 + g % {len(others)}],
                       'paid', 100, 'EUR', 1, now() - interval '1 day' - g * interval '1 ms',
                       now() - interval '1 day'
                FROM generate_series(1, {BULK_ORDERS}) AS g
                RETURNING id)
            INSERT INTO order_items (order_id, position, product_id, sku, name, quantity,
                                     unit_price_cents)
            SELECT id, 0, '{products[0]}', 'LOAD-0001', 'Load product 0001', 1, 100 FROM o""",
             db=DB_NAME)
        # Vacuumed as a running database's tables are (statistics, visibility map), and
        # so that autovacuum does not take its turn on them during a measured pass.
        psql("VACUUM ANALYZE orders, order_items", db=DB_NAME)
    return products


@scenario("paths", opt_in=True)
def paths(run):
    st = run.st
    # A standalone run has stopped the seeding server: one of its own, on the same data.
    server(run, "paths")
    try:
        survey_paths(run)
    finally:
        run.srv.stop()


def survey_paths(run):
    st = run.st
    products = place_orders(run)
    # Users with orders only: their lists and overviews read rows.
    order_tokens = os.path.join(st.out, "paths-tokens.txt")
    with open(order_tokens, "w") as f:
        f.write("\n".join(t for _, _, t in run.users[:ORDER_USERS]) + "\n")
    admin = os.path.join(st.out, "paths-admin-token.txt")
    with open(admin, "w") as f:
        f.write(login(Client(run.srv.port), ADMIN_EMAIL, ADMIN_PASSWORD) + "\n")
    as_user = ["mode=me", f"tokens={order_tokens}"]
    as_admin = ["mode=me", f"tokens={admin}"]
    survey = [
        ("GET /users/me (scenario 1's request)", as_user + [f"path={ME_PATH}"]),
        ("GET /orders (the caller's 5)", as_user + ["path=/api/v1/orders"]),
        ("GET /me/overview (user and 5 orders, no parts)",
         as_user + ["path=/api/v1/me/overview"]),
        ("GET /products/{id} (anonymous)",
         ["mode=get", f"path=/api/v1/products/{products[0]}"]),
        ("GET /products?sort=price_cents&min_price_cents=150 (anonymous)",
         ["mode=get", "path=/api/v1/products?sort=price_cents&min_price_cents=150"]),
        ("GET /users?sort=name (admin, first page)",
         as_admin + ["path=/api/v1/users?sort=name"]),
        ("GET /orders?status=pending (admin, everyone's)",
         as_admin + ["path=/api/v1/orders?status=pending"]),
    ]
    rows = []
    for i, (title, args) in enumerate(survey, 1):
        res = run.measure(f"paths_{i}", title, args, count_status=True)
        rows.append({"path": title, "rps": res.rps, "p99_ms": res.p99_ms,
                     "cpu_us_per_req": res.cpu_us_per_request,
                     "statuses": res.status_counts})
    md = [f"One pass of {st.duration} s each, {st.connections} connections, on one "
          f"server; {ORDER_USERS} users with {ORDERS_PER_USER} orders each, "
          f"{BULK_ORDERS:,} older orders of the others:", "",
          "| path | req/s | p99 ms | CPU µs/req | statuses |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['path']} | {r['rps']:,.0f} | {r['p99_ms']:.2f} | "
                  f"{r['cpu_us_per_req']} | {r['statuses'] or '-'} |")
    run.report.studies["paths"] = {"data": rows, "markdown": md}
    log("paths: " + json.dumps([(r["path"], round(r["rps"]), r["cpu_us_per_req"])
                                for r in rows]))
