-- One order as Bulkhead places it (`place` in src/store/postgres/orders.rs), statement
-- for statement, for pgbench: the database work of POST /api/v1/orders with a fresh
-- Idempotency-Key and one item, with no HTTP server in front. Run by the load harness
-- beside s3_orders on a database of Bulkhead's schema (`Database(bulkhead_schema=True)` in
-- load/bulkhead_load/pgbench.py):
-- users and products have md5-derived ids, so a random number names one. The order's id
-- is time-ordered, as `Uuid::now_v7` makes it (the transaction's start in microseconds,
-- then random bits): its primary key and its items' grow at the right edge, not at random
-- pages (random ids cost this script 4-16 % of its tps in three interleaved pairs, 2026-12-04).
-- Keep it in step with `place`: the harness's ratio s3_orders / order-sql is how much of
-- its own database's speed the service delivers.
\set uid random(1, 1000)
\set p random(1, 200)
\set k random(1, 2000000000)
BEGIN;
SELECT pg_try_advisory_xact_lock(:uid, :k);
SELECT request_hash, response_status, response_body FROM idempotency_keys
 WHERE user_id = md5(:uid::text)::uuid AND key = :k::text
   AND created_at >= now() - interval '24 hours';
SELECT id, sku, name, price_cents, currency, stock FROM products
 WHERE id = ANY(ARRAY[md5('p' || :p)::uuid]) AND deleted_at IS NULL
   AND (SELECT pg_try_advisory_xact_lock(:uid, :k)) ORDER BY id FOR UPDATE;
WITH take AS (
    UPDATE products AS p
    SET stock = p.stock - u.q, version = p.version + 1, updated_at = now()
    FROM unnest(ARRAY[md5('p' || :p)::uuid], ARRAY[1::bigint]) AS u(id, q) WHERE p.id = u.id
), placed AS (
    INSERT INTO orders (id, user_id, status, total_cents, currency, version, created_at,
                        updated_at)
    VALUES ((lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 14, '0')
            || substr(md5(:k::text || '/' || :uid), 1, 18))::uuid, md5(:uid::text)::uuid, 'pending', 100, 'EUR',
            1, now(), now())
), items AS (
    INSERT INTO order_items (order_id, position, product_id, sku, name, quantity,
                             unit_price_cents)
    SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 14, '0')
            || substr(md5(:k::text || '/' || :uid), 1, 18))::uuid, u.pos, u.pid, u.sku, u.name, u.q, u.price
    FROM unnest(ARRAY[0], ARRAY[md5('p' || :p)::uuid], ARRAY['SKU-1'], ARRAY['Product 1'],
                ARRAY[1], ARRAY[100::bigint]) AS u(pos, pid, sku, name, q, price)
), key AS (
    INSERT INTO idempotency_keys
        (user_id, key, request_hash, response_status, response_body, created_at)
    VALUES (md5(:uid::text)::uuid, :k::text, sha256(:k::text::bytea), 201,
            convert_to(repeat('x', 330), 'UTF8'), now())
    ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash,
        response_status = EXCLUDED.response_status,
        response_body = EXCLUDED.response_body,
        created_at = EXCLUDED.created_at
)
SELECT 1;
COMMIT;
