-- One row per (dedup_key, recipient, channel): the unique key is the exactly-once guard.
-- A row is the durable send queue entry too: the sender claims due rows with
-- FOR UPDATE SKIP LOCKED and marks them "sending" before calling the provider.
CREATE TABLE notification (
    id uuid PRIMARY KEY,
    request_id uuid NOT NULL,
    dedup_key text NOT NULL,
    recipient_key text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('sms', 'email', 'webhook', 'app_push')),
    recipient jsonb NOT NULL,             -- the Recipient; a reporter's phone stays sealed
    fallback text[] NOT NULL DEFAULT '{}', -- channels still to try, in order
    template_id text NOT NULL,
    template_version int NOT NULL,
    variables jsonb NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    sms_parts int,
    urgency text NOT NULL CHECK (urgency IN ('normal', 'urgent')),
    case_id uuid,
    case_no text,
    requested_by text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'deferred', 'sending', 'delivered', 'failed')),
    attempts int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    deferred_until timestamptz,
    claimed_at timestamptz,
    provider_message_id text,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),  -- orders rows of one batch
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (dedup_key, recipient_key, channel)
);
CREATE INDEX notification_due ON notification (next_attempt_at)
    WHERE status IN ('pending', 'deferred', 'sending');
CREATE INDEX notification_case ON notification (case_id, created_at, id);
CREATE INDEX notification_recipient ON notification (recipient_key, created_at, id);

CREATE TABLE notification_attempt (
    notification_id uuid NOT NULL REFERENCES notification (id),
    n int NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    result text CHECK (result IN ('delivered', 'retry', 'failed', 'interrupted')),
    error text,
    provider_message_id text,
    PRIMARY KEY (notification_id, n)
);

-- Notifications that spent their retry budget (or could never be sent): kept for operators.
CREATE TABLE dead_letter (
    notification_id uuid PRIMARY KEY REFERENCES notification (id),
    recipient_key text NOT NULL,
    channel text NOT NULL,
    error text NOT NULL,
    attempts int NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE preference (
    recipient_key text PRIMARY KEY,
    channels text[] NOT NULL DEFAULT '{}',
    email text,
    webhook_url text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The case read model: its parties, from cases.events.v1.
CREATE TABLE case_party (
    case_id uuid PRIMARY KEY,
    case_no text NOT NULL,
    grid_code text
);
CREATE TABLE case_reporter (
    case_id uuid NOT NULL REFERENCES case_party (case_id),
    reporter_id text NOT NULL,
    reporter jsonb NOT NULL,               -- ReporterRef: masked phone and sealed phone only
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (case_id, reporter_id)
);
CREATE TABLE case_task (
    case_id uuid NOT NULL REFERENCES case_party (case_id),
    task_id uuid NOT NULL,
    unit_code text NOT NULL,
    open boolean NOT NULL,
    PRIMARY KEY (case_id, task_id)
);
