-- Scoring's own facts: every case event as received (the source of truth for rebuilds),
-- patrol check-ins, grid households from the registry, and the computed scores.

-- Every case event, once (the runtime's inbox drops redeliveries; event_id is the
-- CloudEvents id). seq orders the events as recorded: frozen periods remember the last
-- seq they saw, so a rebuild reads exactly what they read.
CREATE TABLE event (
    seq         bigserial PRIMARY KEY,
    event_id    text NOT NULL UNIQUE,
    case_id     uuid NOT NULL,
    type        text NOT NULL,
    at          timestamptz NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_case ON event (case_id, seq);

-- The time span a case's events and deadlines cover: which periods it can count in.
CREATE TABLE case_span (
    case_id  uuid PRIMARY KEY,
    first_at timestamptz NOT NULL,
    last_at  timestamptz NOT NULL
);
CREATE INDEX case_span_first ON case_span (first_at);
CREATE INDEX case_span_last ON case_span (last_at);

-- 一日双巡: a grid worker's patrol check-in.
CREATE TABLE checkin (
    seq         bigserial PRIMARY KEY,
    checkin_id  uuid NOT NULL UNIQUE,
    staff_code  text NOT NULL,
    grid_code   text NOT NULL,
    lon         double precision NOT NULL,
    lat         double precision NOT NULL,
    at          timestamptz NOT NULL,
    note        text,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkin_at ON checkin (at);

-- Households per grid, copied from the registry read model (for cases per 1,000 households).
CREATE TABLE grid_household (
    grid_code  text PRIMARY KEY,
    households integer NOT NULL CHECK (households >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (kind, period): is it dirty, when computed, is it frozen and at which seqs.
CREATE TABLE period_state (
    kind             text NOT NULL,
    period           text NOT NULL,
    version          bigint NOT NULL DEFAULT 1,   -- +1 for every fact that may change it
    computed_version bigint NOT NULL DEFAULT 0,
    computed_at      timestamptz,
    final            boolean NOT NULL DEFAULT false,
    frozen_at        timestamptz,
    frozen_event_seq   bigint,
    frozen_checkin_seq bigint,
    PRIMARY KEY (kind, period)
);

-- The scores: one row per subject and period. Rows of a final period never change.
CREATE TABLE score (
    kind        text NOT NULL,
    period      text NOT NULL,
    code        text NOT NULL,
    measures    jsonb NOT NULL,      -- name -> decimal string or null
    composite   numeric,
    rank        integer,
    rank_of     integer,
    final       boolean NOT NULL DEFAULT false,
    computed_at timestamptz NOT NULL,
    PRIMARY KEY (kind, period, code)
);

-- Events recorded after the period they concern was frozen: kept, flagged, not applied.
CREATE TABLE late_event (
    event_id    text NOT NULL,
    kind        text NOT NULL,
    period      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, kind, period)
);
