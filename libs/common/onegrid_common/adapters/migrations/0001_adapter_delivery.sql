-- The adapter SDK's own tables (onegrid_common.adapters): every adapter service has them.

-- One row per task the unit was given: the department's reference once it accepted.
CREATE TABLE adapter_task (
    task_id      uuid PRIMARY KEY,
    unit_code    text NOT NULL,
    case_id      uuid NOT NULL,
    case_no      text NOT NULL,
    external_ref text,
    -- queued: not yet accepted; open: the department works on it; closed: nothing more to ask
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'open', 'closed')),
    delivered_at timestamptz,
    closed_at    timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX adapter_task_external_ref ON adapter_task (unit_code, external_ref)
    WHERE external_ref IS NOT NULL;
CREATE INDEX adapter_task_open ON adapter_task (unit_code) WHERE state = 'open';

-- The delivery queue: every message for the department, delivered in seq order per unit.
-- A message leaves 'pending' only when the department took it (or refused it for good),
-- so nothing is lost while the department is down.
CREATE TABLE adapter_delivery (
    seq              bigserial PRIMARY KEY,
    unit_code        text NOT NULL,
    dedup_key        text NOT NULL UNIQUE,  -- assign:<task>, followup:<id>, cancel:<task>
    kind             text NOT NULL CHECK (kind IN ('assign', 'followup', 'cancel')),
    task_id          uuid NOT NULL,
    case_id          uuid NOT NULL,
    message          jsonb NOT NULL,        -- the canonical message (personal data sealed)
    traceparent      text,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'rejected', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    failure_reported boolean NOT NULL DEFAULT false,
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz
);
CREATE INDEX adapter_delivery_pending ON adapter_delivery (unit_code, seq)
    WHERE status = 'pending';

-- Status changes already turned into replies (polling sees the same status many times).
CREATE TABLE adapter_update (
    unit_code   text NOT NULL,
    task_id     uuid NOT NULL,
    update_id   text NOT NULL,
    kind        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_code, task_id, update_id)
);
