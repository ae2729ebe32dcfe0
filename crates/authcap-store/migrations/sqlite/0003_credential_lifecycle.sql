-- Credentials can be rotated: each carries the generation it was issued in (derived secrets
-- depend on it) and, once replaced, when it stops working.
ALTER TABLE merchant_credentials ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE merchant_credentials ADD COLUMN expires_at INTEGER;
CREATE INDEX merchant_credentials_by_merchant ON merchant_credentials (merchant_id, kind);
