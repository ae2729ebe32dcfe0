-- Each merchant's sandbox clock: how far it has been moved ahead of the server's.
ALTER TABLE merchants ADD COLUMN clock_offset_ms INTEGER NOT NULL DEFAULT 0;
