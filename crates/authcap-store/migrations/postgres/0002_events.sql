-- Events: what each write did, named by the core, stored in the same transaction as its effect.
CREATE TABLE events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    order_id    TEXT NOT NULL REFERENCES orders (id),
    type        TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount >= 0),
    currency    TEXT NOT NULL,
    subject_id  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_by_merchant ON events (merchant_id, seq);
CREATE INDEX events_by_order ON events (order_id, seq);
CREATE FUNCTION authcap_events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION authcap_events_are_append_only();

-- A pending capture's settlement is written down once, by the sweeper, with its event.
ALTER TABLE captures ADD COLUMN settled_at BIGINT;
UPDATE captures SET settled_at = settles_at
 WHERE settles_at IS NOT NULL AND settles_at <= (extract(epoch FROM now()) * 1000)::BIGINT;
CREATE INDEX captures_to_settle ON captures (settles_at)
 WHERE settles_at IS NOT NULL AND settled_at IS NULL;
