-- One order as Bulkhead places it alone (`place` in src/store/postgres/placing.rs with one
-- job: a lone order, or `database.order_batch_max = 1`), statement for statement, for
-- pgbench: the database work of POST /api/v1/orders with a fresh Idempotency-Key and one
-- item, with no HTTP server in front. Orders that arrive together share a transaction
-- (the order writers), which this script never does: s3 can pass it. Run by the load harness
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
SELECT pg_try_advisory_xact_lock(k.a, k.b)
  FROM unnest(ARRAY[:uid]::int4[], ARRAY[:k]::int4[]) WITH ORDINALITY AS k(a, b, i) ORDER BY k.i;
SELECT k.i, r.request_hash, r.response_status, r.response_body
  FROM unnest(ARRAY[md5(:uid::text)::uuid], ARRAY[:k::text]) WITH ORDINALITY AS k(user_id, key, i)
  CROSS JOIN LATERAL (
      SELECT request_hash, response_status, response_body FROM idempotency_keys
      WHERE user_id = k.user_id AND key = k.key AND created_at >= now() - interval '24 hours'
      LIMIT 1) AS r;
SELECT id, sku, name, price_cents, currency, stock FROM products
 WHERE id = ANY(ARRAY(
         SELECT l.id FROM unnest(ARRAY[md5('p' || :p)::uuid], ARRAY[:uid]::int4[], ARRAY[:k]::int4[]) AS l(id, a, b)
         WHERE l.a IS NULL OR pg_try_advisory_xact_lock(l.a, l.b)))
   AND deleted_at IS NULL
 ORDER BY id FOR UPDATE;
WITH take AS (
    UPDATE products AS p
    SET stock = p.stock - u.q, version = p.version + 1, updated_at = now()
    FROM unnest(ARRAY[md5('p' || :p)::uuid], ARRAY[1::bigint]) AS u(id, q) WHERE p.id = u.id
), placed AS (
    INSERT INTO orders (id, user_id, status, total_cents, currency, version, created_at,
                        updated_at)
    SELECT o.id, o.user_id, 'pending', o.total, o.currency, 1, now(), now()
    FROM unnest(ARRAY[(lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 14, '0')
                       || substr(md5(:k::text || '/' || :uid), 1, 18))::uuid],
                ARRAY[md5(:uid::text)::uuid], ARRAY[100::bigint], ARRAY['EUR'])
         AS o(id, user_id, total, currency)
), items AS (
    INSERT INTO order_items (order_id, position, product_id, sku, name, quantity,
                             unit_price_cents)
    SELECT u.oid, u.pos, u.pid, u.sku, u.name, u.q, u.price
    FROM unnest(ARRAY[(lpad(to_hex((extract(epoch FROM now()) * 1000000)::bigint), 14, '0')
                       || substr(md5(:k::text || '/' || :uid), 1, 18))::uuid],
                ARRAY[0], ARRAY[md5('p' || :p)::uuid], ARRAY['SKU-1'], ARRAY['Product 1'],
                ARRAY[1], ARRAY[100::bigint]) AS u(oid, pos, pid, sku, name, q, price)
), key AS (
    INSERT INTO idempotency_keys
        (user_id, key, request_hash, response_status, response_body, created_at)
    SELECT k.user_id, k.key, k.hash, 201, k.body, now()
    FROM unnest(ARRAY[md5(:uid::text)::uuid], ARRAY[:k::text], ARRAY[sha256(:k::text::bytea)],
                ARRAY[convert_to(repeat('x', 330), 'UTF8')]) AS k(user_id, key, hash, body)
    ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash,
        response_status = EXCLUDED.response_status,
        response_body = EXCLUDED.response_body,
        created_at = EXCLUDED.created_at
)
SELECT 1;
COMMIT;
