"""pgbench baselines: what Postgres itself serves on this machine, beside the scenario it
bounds, in a database of its own (created and dropped by the harness, never the run's).

- select-only (`pgbench -S`) beside s2 (product list at 64 connections): one indexed
  primary-key read per transaction, the floor of a database read.
- TPC-B-like (the default script) beside s3 (orders) at scale 64 (`-s 64`): at scale 1,
  64 clients serialize on the one `pgbench_branches` row and the baseline flatters us.
- order-sql (`load/pgbench/order.sql`) beside s3: the statements of one Bulkhead order,
  on Bulkhead's schema (its migrations) with 1000 users and 200 products: what the
  database alone does with one order a transaction, as a lone order is placed; the
  service places orders that arrive together in one transaction, so s3 can pass it.
- list-sql (`load/pgbench/list.sql`) beside s2 with the product cache off: the product
  list's own query (first page, 21 rows of 200) on the same schema and seed: the ceiling
  of an uncached list read, which select-only (one row by key) is not.

Each runs with the scenario's client count and duration; the ratio scenario rps / pgbench
tps is in the report (`pgbench_ratios`).

pgbench connects as Bulkhead does: over TCP without TLS (`PGSSLMODE=disable`; Bulkhead's
pool uses `NoTls`). libpq's default `prefer` takes TLS whenever the server offers it,
and on one core's worth of a 2-core VM the encryption cost pgbench 15-50 % of its tps
(measured at 2026-12-04): a baseline that pays for TLS flatters every ratio against it."""

import glob
import os
import re
import shutil
import subprocess

from .config import LOAD, ROOT, log
from .procs import CLEANUP, psql, run_child
from .results import PgbenchResult

DB = f"bulkhead_pgbench_{os.getpid()}"
PG = ["-h", "127.0.0.1", "-U", "postgres"]
# Plain TCP, as Bulkhead connects (module docstring).
PGBENCH_ENV = {**os.environ, "PGSSLMODE": "disable"}
ORDER_SCRIPT = os.path.join(LOAD, "pgbench", "order.sql")
LIST_SCRIPT = os.path.join(LOAD, "pgbench", "list.sql")
# The ids order.sql names: users md5(n), products md5('p' || n).
ORDER_SEED = """
INSERT INTO users (id, email, name, password_hash, role, status, created_at, updated_at)
SELECT md5(i::text)::uuid, 'pgbench-' || i || '@example.com', 'Pgbench User', 'x', 'user',
       'active', now(), now()
FROM generate_series(1, 1000) AS i;
INSERT INTO products (id, sku, name, price_cents, currency, stock, created_at, updated_at)
SELECT md5('p' || i)::uuid, 'SKU-' || i, 'Product ' || i, 100 + i, 'EUR', 1000000000,
       now(), now()
FROM generate_series(1, 200) AS i;
"""


def available():
    return shutil.which("pgbench") is not None


def _drop():
    try:
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        log(f"dropped database {DB}")
    except subprocess.CalledProcessError as e:
        log(f"could not drop {DB}: {e.stderr.strip()}")


class Database:
    """The pgbench database at `scale`, created (and initialised) on entry, dropped on
    exit; also dropped by the run's cleanup should the runner die in between."""

    def __init__(self, scale, bulkhead_schema=False):
        self.scale = scale
        self.bulkhead_schema = bulkhead_schema

    def __enter__(self):
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        psql(f"CREATE DATABASE {DB}")
        CLEANUP.hooks.append(_drop)
        log(f"pgbench -i -s {self.scale} in {DB}")
        out = run_child(["pgbench", *PG, "-i", "-q", "-s", str(self.scale), DB],
                        timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench -i failed: {out.stderr.strip()}")
        if self.bulkhead_schema:
            # Bulkhead's tables beside pgbench's (no name is shared), as its migrations
            # make them, and the rows order.sql and list.sql read.
            for path in sorted(glob.glob(os.path.join(ROOT, "sql", "*.sql"))):
                psql_file(path)
            psql(ORDER_SEED, db=DB)
            log(f"Bulkhead's schema, 1000 users and 200 products in {DB}")
        return self

    def __exit__(self, *exc):
        _drop()
        CLEANUP.hooks.remove(_drop)
        return False

    def run(self, st, mode, clients, beside):
        """One pgbench run of `st.duration` seconds with `clients` clients; `mode` is
        "select-only" (-S), "tpcb-like", "order-sql" (order.sql) or "list-sql" (list.sql);
        the last two need `bulkhead_schema`."""
        args = ["pgbench", *PG, "-n", "-c", str(clients), "-j", str(st.threads),
                "-T", str(st.duration), "-M", "prepared"]
        if mode == "select-only":
            args.append("-S")
        elif mode == "order-sql":
            args += ["-f", ORDER_SCRIPT]
        elif mode == "list-sql":
            args += ["-f", LIST_SCRIPT]
        args.append(DB)
        log(f"pgbench {mode} -s {self.scale}, {clients} clients ({st.duration} s)")
        out = run_child(args, timeout=st.duration + 120, env=PGBENCH_ENV)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed: {out.stderr.strip()}")
        result = PgbenchResult(
            name=f"pgbench_{mode.replace('-', '_')}", mode=mode, scale=self.scale,
            clients=clients, threads=st.threads, duration_s=st.duration,
            tps=parse(out.stdout, r"tps = ([\d.]+)"),
            latency_avg_ms=parse(out.stdout, r"latency average = ([\d.]+) ms"),
            transactions=int(parse(out.stdout, r"transactions actually processed: (\d+)")),
            beside=beside)
        log(f"  {result.tps:.0f} tps, latency avg {result.latency_avg_ms} ms")
        return result


def psql_file(path):
    subprocess.run(["psql", *PG, "-v", "ON_ERROR_STOP=1", "-q", "-d", DB, "-f", path],
                   capture_output=True, text=True, check=True, timeout=600)


def parse(text, pattern):
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"pgbench output without {pattern!r}:\n{text}")
    return float(m.group(1))
