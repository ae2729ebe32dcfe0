-- Money is INTEGER minor units everywhere; times are INTEGER milliseconds since the epoch.

CREATE TABLE merchants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
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
    number              INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    merchant_id         TEXT NOT NULL REFERENCES merchants (id),
    reference           TEXT NOT NULL,
    currency            TEXT NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount > 0),
    surcharge           INTEGER NOT NULL CHECK (surcharge >= 0),
    capture_mode        TEXT NOT NULL,
    card_brand          TEXT NOT NULL,
    card_last4          TEXT NOT NULL,
    processor_reference TEXT,
    capture_partial     INTEGER NOT NULL,
    capture_multiple    INTEGER NOT NULL,
    failure             TEXT,
    captured_amount     INTEGER NOT NULL CHECK (captured_amount >= 0),
    released_amount     INTEGER NOT NULL CHECK (released_amount >= 0),
    refunded_amount     INTEGER NOT NULL CHECK (refunded_amount >= 0),
    closure             TEXT,
    capture_count       INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    metadata            TEXT NOT NULL,
    UNIQUE (merchant_id, reference),
    -- The core's invariants, once more where the data lives.
    CHECK (refunded_amount <= captured_amount),
    CHECK (processor_reference IS NOT NULL OR captured_amount = 0),
    CHECK (captured_amount + released_amount <= amount + surcharge)
);
CREATE INDEX orders_by_merchant ON orders (merchant_id, number);

CREATE TABLE captures (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    reference       TEXT,
    is_final        INTEGER NOT NULL,
    invoice_id      TEXT,
    description     TEXT,
    reason          TEXT,
    has_shipping    INTEGER NOT NULL,
    carrier         TEXT,
    shipping_method TEXT,
    tracking_code   TEXT,
    metadata        TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    settles_at      INTEGER,
    UNIQUE (order_id, reference)
);
CREATE INDEX captures_by_order ON captures (order_id);

CREATE TABLE refunds (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    amount     INTEGER NOT NULL CHECK (amount > 0),
    reference  TEXT,
    reason     TEXT,
    metadata   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (order_id, reference)
);
CREATE INDEX refunds_by_order ON refunds (order_id);

CREATE TABLE ledger (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id  TEXT NOT NULL REFERENCES orders (id),
    kind      TEXT NOT NULL CHECK (kind IN ('authorize', 'capture', 'release', 'refund')),
    amount    INTEGER NOT NULL CHECK (amount > 0),
    source_id TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX ledger_by_order ON ledger (order_id);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;

CREATE TABLE idempotency (
    merchant_id  TEXT NOT NULL,
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    body         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, scope, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
