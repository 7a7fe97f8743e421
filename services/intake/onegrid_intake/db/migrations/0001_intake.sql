-- Intake's tables: cases it opened (with what duplicate search needs), every report with
-- its PII encrypted, every reporter of a case, and the gap-free daily case-number counter.

CREATE TABLE case_ (
    case_id uuid PRIMARY KEY,
    case_no text NOT NULL UNIQUE,
    category_code text,
    grid_code text,
    lon double precision,
    lat double precision,
    reported_at timestamptz NOT NULL,
    open boolean NOT NULL DEFAULT true,
    closed_at timestamptz
);
-- Rebuilding the Redis geo index reads the open cases that have a point and a category.
CREATE INDEX case_open_idx ON case_ (category_code, reported_at)
    WHERE open AND lon IS NOT NULL AND category_code IS NOT NULL;

CREATE TABLE report (
    report_id uuid PRIMARY KEY,
    idempotency_scope text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint text NOT NULL,
    case_id uuid NOT NULL REFERENCES case_ (case_id),
    case_no text NOT NULL,
    duplicate_of uuid,
    channel text NOT NULL,
    submitted_by text,             -- the JWT subject; null for gateway messages
    gateway text,                  -- the gateway of a channel report
    reporter_id text NOT NULL,
    -- PII: "v1.<key id>.<nonce>.<ciphertext>" (AES-256-GCM, bound to this report's id)
    name_encrypted text,
    phone_encrypted text,
    id_number_encrypted text,
    pii_key_id text,
    category_code text,
    category_confidence double precision,
    grid_code text,
    grid_path text[] NOT NULL DEFAULT '{}',
    review_reasons text[] NOT NULL DEFAULT '{}',
    report jsonb NOT NULL,         -- the report as accepted, reporter masked: never PII
    received_at timestamptz NOT NULL,
    UNIQUE (idempotency_scope, idempotency_key)
);
CREATE INDEX report_case_idx ON report (case_id);

-- 一事一档: every person who reported a case, for notification and evaluation.
CREATE TABLE case_reporter (
    case_id uuid NOT NULL REFERENCES case_ (case_id),
    reporter_id text NOT NULL,
    first_report_id uuid NOT NULL,
    last_report_id uuid NOT NULL,
    reports integer NOT NULL DEFAULT 1,
    anonymous boolean NOT NULL,
    phone_encrypted text,          -- bound to first_report_id
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (case_id, reporter_id)
);

-- One row per day; incremented in the transaction that creates the case, so a rollback
-- gives its number back and the daily sequence has no gaps.
CREATE TABLE case_no_counter (
    day date PRIMARY KEY,
    last_sequence integer NOT NULL
);
