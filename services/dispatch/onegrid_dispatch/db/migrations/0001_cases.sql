-- The case aggregate: its full state as JSON (`data`, the domain's Case) plus the columns
-- that queries filter on. Every change locks the row (SELECT ... FOR UPDATE) first.
CREATE TABLE case_ (
    case_id        uuid PRIMARY KEY,
    case_no        text NOT NULL UNIQUE,
    state          text NOT NULL,
    category_code  text,
    grid_code      text,
    grid_path      text NOT NULL DEFAULT '',      -- 'city/district/.../grid' for prefix filters
    tier           text,
    lead_unit      text,
    units          text[] NOT NULL DEFAULT '{}',  -- every unit that held a task: who may see it
    supervised     boolean NOT NULL DEFAULT false,
    near_boundary  boolean NOT NULL DEFAULT false,
    operator_queue text,
    resolution_due_at timestamptz,
    resolved_at    timestamptz,                   -- resolution met (handled or closed)
    next_timer_at  timestamptz,                   -- durable timer: the next warning/breach/default
    report         jsonb NOT NULL,                -- the first CaseReported (description, place)
    data           jsonb NOT NULL,
    version        integer NOT NULL DEFAULT 1,
    reported_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_timer_idx ON case_ (next_timer_at) WHERE next_timer_at IS NOT NULL;
CREATE INDEX case_list_idx ON case_ (reported_at DESC, case_id DESC);
CREATE INDEX case_state_idx ON case_ (state);
CREATE INDEX case_units_idx ON case_ USING gin (units);
CREATE INDEX case_grid_path_idx ON case_ (grid_path text_pattern_ops);
CREATE INDEX case_queue_idx ON case_ (operator_queue) WHERE operator_queue IS NOT NULL;

-- Tasks, one row each, for the workbench and for routing replies to their case.
CREATE TABLE task (
    task_id       uuid PRIMARY KEY,
    case_id       uuid NOT NULL REFERENCES case_ (case_id),
    unit_code     text NOT NULL,
    role          text NOT NULL,
    state         text NOT NULL,
    attempt       integer NOT NULL,
    assignee_staff_id text,
    assigned_at   timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_unit_idx ON task (unit_code, state, assigned_at);
CREATE INDEX task_case_idx ON task (case_id);

-- Deadlines of each case as they stand (response, resolution).
CREATE TABLE deadline (
    case_id   uuid NOT NULL REFERENCES case_ (case_id),
    kind      text NOT NULL,
    started_at timestamptz NOT NULL,
    warn_at   timestamptz NOT NULL,
    due_at    timestamptz NOT NULL,
    met_at    timestamptz,
    paused_at timestamptz,
    warning_emitted boolean NOT NULL,
    breach_emitted  boolean NOT NULL,
    basis     text NOT NULL,
    PRIMARY KEY (case_id, kind)
);

-- Every transition and message of a case, in order: who, why, when, under which trace.
CREATE TABLE timeline (
    id         bigserial PRIMARY KEY,
    case_id    uuid NOT NULL,
    event_id   text NOT NULL UNIQUE,
    type       text NOT NULL,
    at         timestamptz NOT NULL,
    actor      jsonb,
    reason     text,
    trace_id   text,
    payload    jsonb NOT NULL
);
CREATE INDEX timeline_case_idx ON timeline (case_id, id);

-- Cases waiting for an operator, and why.
CREATE TABLE operator_queue (
    case_id   uuid PRIMARY KEY REFERENCES case_ (case_id),
    reason    text NOT NULL,
    detail    text,
    queued_at timestamptz NOT NULL
);

-- Replies refused because the unit does not hold the task (logged, never applied).
CREATE TABLE refused_reply (
    id          bigserial PRIMARY KEY,
    message_id  text NOT NULL,
    case_id     uuid,
    task_id     uuid,
    unit_code   text NOT NULL,
    type        text NOT NULL,
    error       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
