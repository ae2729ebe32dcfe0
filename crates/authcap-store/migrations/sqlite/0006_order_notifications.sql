-- An order's own notification URL (MultiSafepay's payment_options.notification_url): an
-- endpoint that only that order's events reach, made with the order and never listed.
ALTER TABLE webhook_endpoints ADD COLUMN order_id TEXT;
CREATE INDEX webhook_endpoints_of_order ON webhook_endpoints (order_id)
    WHERE order_id IS NOT NULL;
