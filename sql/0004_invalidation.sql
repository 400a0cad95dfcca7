-- Cross-instance cache invalidation: changes that cached state depends on are announced
-- with NOTIFY from the writing transaction, so every instance's listener (LISTEN on these
-- channels) evicts what it caches. NOTIFY is delivered only if the transaction commits.
--
-- Payload: JSON {"id": <uuid>, "v": <new version>, "ts": <seconds since the epoch>}. `ts`
-- is taken as late as the database allows: the users trigger is a constraint trigger
-- deferred to commit, so its clock reading is the commit's, give or take the commit's own
-- work. The listener observes `now - ts` as bulkhead_cache_invalidation_lag_seconds.
--
-- NOTIFY takes a database-wide lock while its transaction commits; only changes that
-- matter notify: any change to a users row (status, role, deletion, password, email,
-- name: the cache holds the served body, and a token epoch column when there is one), a
-- refresh-token family's revocation, and catalogue changes of products. Stock-only
-- changes of products (every order takes and returns stock) do not notify.

CREATE FUNCTION bulkhead_notify_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bulkhead_users', json_build_object(
        'id', NEW.id,
        'v', NEW.version,
        'ts', extract(epoch FROM clock_timestamp()))::text);
    RETURN NULL;
END
$$;

-- Deferred to commit: the timestamp is the commit's, and a transaction that writes the
-- same user twice announces each version.
CREATE CONSTRAINT TRIGGER users_notify
    AFTER UPDATE ON users
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION bulkhead_notify_user();

-- One notification per revoked family and statement (a family's rows are revoked by one
-- UPDATE), not one per token row.
CREATE FUNCTION bulkhead_notify_families() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT DISTINCT n.family_id, n.user_id
        FROM new_rows n JOIN old_rows o ON o.token_hash = n.token_hash
        WHERE o.revoked_at IS NULL AND n.revoked_at IS NOT NULL
    LOOP
        PERFORM pg_notify('bulkhead_token_families', json_build_object(
            'id', f.family_id,
            'user_id', f.user_id,
            'ts', extract(epoch FROM clock_timestamp()))::text);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER refresh_tokens_notify
    AFTER UPDATE ON refresh_tokens
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION bulkhead_notify_families();

CREATE FUNCTION bulkhead_notify_product() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bulkhead_products', json_build_object(
        'id', NEW.id,
        'v', NEW.version,
        'ts', extract(epoch FROM clock_timestamp()))::text);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER products_notify_insert
    AFTER INSERT ON products
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    EXECUTE FUNCTION bulkhead_notify_product();

CREATE CONSTRAINT TRIGGER products_notify_update
    AFTER UPDATE ON products
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN ((OLD.sku, OLD.name, OLD.description, OLD.price_cents, OLD.currency, OLD.deleted_at)
          IS DISTINCT FROM
          (NEW.sku, NEW.name, NEW.description, NEW.price_cents, NEW.currency, NEW.deleted_at))
    EXECUTE FUNCTION bulkhead_notify_product();
