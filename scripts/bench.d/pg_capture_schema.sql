-- The tables of pg_capture.sql (../shared/bench/README.md): the raw PostgreSQL ceiling.
DROP TABLE IF EXISTS idempotency, captures, orders;
CREATE TABLE orders (id bigint PRIMARY KEY, authorized bigint, captured bigint, currency text,
                     status text, version int);
CREATE TABLE captures (id bigserial PRIMARY KEY, order_id bigint REFERENCES orders, amount bigint,
                       created_at timestamptz DEFAULT now());
CREATE TABLE idempotency (key text PRIMARY KEY, capture_id bigint, response text);
INSERT INTO orders SELECT n, 1000000000000, 0, 'EUR', 'authorized', 0 FROM generate_series(1, 100000) n;
VACUUM ANALYZE;
