-- The first page of the public product list as Bulkhead reads it (`list_statement` in
-- src/store/postgres/products.rs) with the product cache off, for pgbench: GET
-- /api/v1/products with no filter, the default sort (-created_at) and the default page
-- of 20 (21 rows asked, the extra one says whether there is a next page). Run by the load
-- harness beside s2's cache-off server on a database of Bulkhead's schema with 200
-- products (`Database(bulkhead_schema=True)` in load/bulkhead_load/pgbench.py), so
-- s2 cache off / list-sql is the share of its own database's speed the service delivers
-- on an uncached read, where select-only (one row by primary key) is not the same work.
-- Keep it in step with `list_statement`.
\set lim 21
SELECT id, sku, name, description, price_cents, currency, stock, version, created_at,
       updated_at FROM products
 WHERE deleted_at IS NULL
 ORDER BY created_at DESC, id DESC
 LIMIT :lim;
