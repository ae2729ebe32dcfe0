-- Events: what each write did, named by the core, stored in the same transaction as its effect.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    order_id   TEXT NOT NULL REFERENCES orders (id),
    type       TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount >= 0),
    currency   TEXT NOT NULL,
    subject_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_merchant ON events (merchant_id, seq);
CREATE INDEX events_by_order ON events (order_id, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- A pending capture's settlement is written down once, by the sweeper, with its event.
ALTER TABLE captures ADD COLUMN settled_at INTEGER;
UPDATE captures SET settled_at = settles_at
 WHERE settles_at IS NOT NULL AND settles_at <= CAST(unixepoch('subsec') * 1000 AS INTEGER);
CREATE INDEX captures_to_settle ON captures (settles_at)
 WHERE settles_at IS NOT NULL AND settled_at IS NULL;
CREATE INDEX orders_to_expire ON orders (expires_at)
 WHERE closure IS NULL AND processor_reference IS NOT NULL;
-- MultiSafepay reads a capture back by its reference (`new_order_id`).
CREATE INDEX captures_by_reference ON captures (reference) WHERE reference IS NOT NULL;
