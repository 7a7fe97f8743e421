-- The runtime's own tables, created in every service schema.

-- Transactional outbox: events written in the business transaction, published by the relay.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    headers     jsonb       NOT NULL,  -- [[name, value], ...] CloudEvents + traceparent
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Sequence ids are not commit order: two transactions can commit in the opposite order of
-- their ids. Per key that would reorder events, so an insert first takes a transaction
-- lock on its key: a later transaction for the same key can only take its id after the
-- earlier one committed. Different keys never wait on each other (except hash collisions).
CREATE FUNCTION outbox_enqueue(p_topic text, p_key text, p_headers jsonb, p_payload bytea)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('outbox:' || p_key, 0));
    INSERT INTO outbox (topic, key, headers, payload)
    VALUES (p_topic, p_key, p_headers, p_payload)
    RETURNING id INTO new_id;
    -- Delivered at commit; identical notifications in one transaction fold into one.
    PERFORM pg_notify('onegrid_outbox', current_schema());
    RETURN new_id;
END $$;

-- Idempotent inbox: a message id recorded in the same transaction as its effect.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    topic        text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX inbox_received_at ON inbox (received_at);
