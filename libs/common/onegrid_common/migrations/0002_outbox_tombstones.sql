-- A tombstone (deletion on a compacted topic) is an outbox row with a NULL payload.
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;
