-- Tracing and the merged timeline (docs/architecture.md §4).
-- The traceparent of the case's own trace (dispatch's span of the first report): later
-- work on the case (operator actions, callbacks, timers) runs as its child and links to
-- whatever triggered it, so one case is one trace.
ALTER TABLE case_ ADD COLUMN traceparent text;
-- The span that wrote each lifecycle event (trace_id was there already).
ALTER TABLE timeline ADD COLUMN span_id text;

-- Every task message dispatch sent to an adapter unit (out) and every reply it got (in),
-- for the case timeline: replies carry the department's own reference and status.
CREATE TABLE task_message (
    id         bigserial PRIMARY KEY,
    case_id    uuid NOT NULL,
    message_id text NOT NULL UNIQUE,
    direction  text NOT NULL CHECK (direction IN ('out', 'in')),
    topic      text NOT NULL,
    type       text NOT NULL,
    unit_code  text NOT NULL,
    task_id    uuid,
    at         timestamptz NOT NULL,
    trace_id   text,
    span_id    text,
    payload    jsonb NOT NULL
);
CREATE INDEX task_message_case_idx ON task_message (case_id, id);
