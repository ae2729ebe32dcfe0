-- Money is BIGINT minor units everywhere; times are BIGINT milliseconds since the epoch.

CREATE TABLE merchants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Credentials are stored as SHA-256 hashes only; the clear value is shown once at creation.
CREATE TABLE merchant_credentials (
    lookup_hash TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    merchant_id TEXT NOT NULL REFERENCES merchants (id)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orders (
    number              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    merchant_id         TEXT NOT NULL REFERENCES merchants (id),
    reference           TEXT NOT NULL,
    currency            TEXT NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    surcharge           BIGINT NOT NULL CHECK (surcharge >= 0),
    capture_mode        TEXT NOT NULL,
    card_brand          TEXT NOT NULL,
    card_last4          TEXT NOT NULL,
    processor_reference TEXT,
    capture_partial     BOOLEAN NOT NULL,
    capture_multiple    BOOLEAN NOT NULL,
    failure             TEXT,
    captured_amount     BIGINT NOT NULL CHECK (captured_amount >= 0),
    released_amount     BIGINT NOT NULL CHECK (released_amount >= 0),
    refunded_amount     BIGINT NOT NULL CHECK (refunded_amount >= 0),
    closure             TEXT,
    capture_count       BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    metadata            TEXT NOT NULL,
    CONSTRAINT orders_reference_unique UNIQUE (merchant_id, reference),
    -- The core's invariants, once more where the data lives.
    CHECK (refunded_amount <= captured_amount),
    CHECK (processor_reference IS NOT NULL OR captured_amount = 0),
    CHECK (captured_amount + released_amount <= amount + surcharge)
);
CREATE INDEX orders_by_merchant ON orders (merchant_id, number);
CREATE INDEX orders_expiring ON orders (expires_at) WHERE closure IS NULL AND processor_reference IS NOT NULL;

CREATE TABLE captures (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    order_id        TEXT NOT NULL REFERENCES orders (id),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    reference       TEXT,
    is_final        BOOLEAN NOT NULL,
    invoice_id      TEXT,
    description     TEXT,
    reason          TEXT,
    has_shipping    BOOLEAN NOT NULL,
    carrier         TEXT,
    shipping_method TEXT,
    tracking_code   TEXT,
    metadata        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    settles_at      BIGINT,
    UNIQUE (order_id, reference)
);
CREATE INDEX captures_by_order ON captures (order_id);
CREATE INDEX captures_by_reference ON captures (reference);

CREATE TABLE refunds (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    amount     BIGINT NOT NULL CHECK (amount > 0),
    reference  TEXT,
    reason     TEXT,
    metadata   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (order_id, reference)
);
CREATE INDEX refunds_by_order ON refunds (order_id);

CREATE TABLE ledger (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id  TEXT NOT NULL REFERENCES orders (id),
    kind      TEXT NOT NULL CHECK (kind IN ('authorize', 'capture', 'release', 'refund')),
    amount    BIGINT NOT NULL CHECK (amount > 0),
    source_id TEXT,
    at        BIGINT NOT NULL
);
CREATE INDEX ledger_by_order ON ledger (order_id);
CREATE FUNCTION authcap_ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END;
$$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
FOR EACH ROW EXECUTE FUNCTION authcap_ledger_is_append_only();

-- A key is claimed (row inserted, response NULL) before its request runs, in the same
-- transaction as the effect, so a duplicate on any node waits for the outcome instead of
-- executing again.
CREATE TABLE idempotency (
    merchant_id  TEXT NOT NULL,
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER,
    content_type TEXT,
    body         BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, scope, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
