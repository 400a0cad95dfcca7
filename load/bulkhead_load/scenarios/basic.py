"""Scenarios 2-4: closed loop on the seeded data."""

from ..config import ME_PATH, PRODUCTS_PATH
from . import scenario


@scenario("s2_products")
def products(run):
    # Statuses counted exactly: a database read behind a bulkhead may shed (503) under
    # 64 closed-loop connections, which the contract allows and a 5xx class cannot tell
    # from a failure.
    run.add(run.measure("s2_products", f"GET {PRODUCTS_PATH} (first page, anonymous)",
                        ["mode=get", f"path={PRODUCTS_PATH}"], count_status=True))


@scenario("s3_orders")
def orders(run):
    run.add(run.measure(
        "s3_orders", "POST /api/v1/orders, fresh Idempotency-Key each",
        ["mode=orders", f"tokens={run.tokens_file}", f"products={run.products_file}"],
        count_status=True))


@scenario("s4_mix")
def mix(run):
    m = run.st.mix
    run.add(run.measure(
        "s4_mix",
        f"mix: {m[0]} % GET {ME_PATH.removeprefix('/api/v1')}, {m[1]} % GET products, "
        f"{m[2]} % POST orders",
        ["mode=mix", f"mix={m[0]},{m[1]},{m[2]}", f"tokens={run.tokens_file}",
         f"products={run.products_file}"], count_status=True))
