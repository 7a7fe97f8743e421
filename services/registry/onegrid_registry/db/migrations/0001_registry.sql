-- The registry's master data. PostgreSQL is the truth; every change also writes an outbox
-- event to the entity's compacted topic (key = code), a deletion a tombstone.
-- `data` is the entity's contract JSON (onegrid_contracts.registry); the other columns are
-- copies of its fields that lists filter on.

-- Deletions are published as tombstones: outbox rows with a NULL payload.
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;

CREATE TABLE grid (
    code         text PRIMARY KEY,
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    level        text NOT NULL,
    parent_code  text,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grid_by_parent ON grid (parent_code, code);
CREATE INDEX grid_by_level ON grid (level, code);

CREATE TABLE building (
    code         text PRIMARY KEY,
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    grid_code    text NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX building_by_grid ON building (grid_code, code);

CREATE TABLE unit (
    code         text PRIMARY KEY,
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    kind         text NOT NULL,
    jurisdiction text[] NOT NULL,
    head_staff_code text,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unit_by_kind ON unit (kind, code);
CREATE INDEX unit_by_jurisdiction ON unit USING gin (jurisdiction);

CREATE TABLE staff (
    code         text PRIMARY KEY,
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    role         text NOT NULL,
    unit_code    text,
    grid_codes   text[] NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_by_unit ON staff (unit_code, code);
CREATE INDEX staff_by_grid ON staff USING gin (grid_codes);

CREATE TABLE category (
    code         text PRIMARY KEY,
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    major_code   text NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX category_by_major ON category (major_code, code);

CREATE TABLE routing_rule (
    code          text PRIMARY KEY,
    id            uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    category_code text NOT NULL,
    unit_codes    text[] NOT NULL,  -- every unit named by code (lead and assisting)
    data          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routing_rule_by_category ON routing_rule (category_code, code);
CREATE INDEX routing_rule_by_unit ON routing_rule USING gin (unit_codes);

CREATE TABLE calendar_year (
    code         text PRIMARY KEY,  -- the year, e.g. '2026' (the topic key)
    id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
