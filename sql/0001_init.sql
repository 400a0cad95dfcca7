-- Bulkhead schema v1: users, refresh tokens, products, orders, idempotency keys.
-- Applied by `bulkhead migrate` (and at `serve` start) inside one transaction that holds
-- an advisory lock, so two instances starting at once apply it exactly once.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('user', 'admin')),
    status        text NOT NULL CHECK (status IN ('active', 'deactivated', 'suspended')),
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deleted_at    timestamptz
);
-- Emails are unique among live users; a deleted user's email may be registered again.
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL;
CREATE INDEX users_created_live ON users (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX users_name_live ON users (name, id) WHERE deleted_at IS NULL;

-- Opaque refresh tokens, stored only as SHA-256 hashes. A family is one login's chain of
-- rotations; presenting a rotated member revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE products (
    id          uuid PRIMARY KEY,
    sku         text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock       bigint NOT NULL CHECK (stock >= 0),
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX products_sku_live ON products (sku) WHERE deleted_at IS NULL;
CREATE INDEX products_created_live ON products (created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX products_price_live ON products (price_cents, id) WHERE deleted_at IS NULL;
CREATE INDEX products_name_live ON products (name, id) WHERE deleted_at IS NULL;

CREATE TABLE orders (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    status      text NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled')),
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    currency    text NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX orders_user_created ON orders (user_id, created_at, id);
CREATE INDEX orders_created ON orders (created_at, id);

CREATE TABLE order_items (
    order_id         uuid NOT NULL REFERENCES orders (id),
    position         integer NOT NULL,
    product_id       uuid NOT NULL REFERENCES products (id),
    sku              text NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, position)
);

-- Idempotency keys, scoped per user and kept at least 24 h. A row whose response_status is
-- NULL is a request still in flight.
CREATE TABLE idempotency_keys (
    user_id         uuid NOT NULL REFERENCES users (id),
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    response_status integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
