-- Products sort by name in code-point order (`COLLATE "C"`), whatever the database's
-- collation, so both stores list them the same way; this index serves that order.
CREATE INDEX products_name_c_live ON products ((name COLLATE "C"), id) WHERE deleted_at IS NULL;
-- Admin listings filtered by status, newest first.
CREATE INDEX orders_status_created ON orders (status, created_at, id);
