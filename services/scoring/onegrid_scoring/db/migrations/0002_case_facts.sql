-- Each case's facts, folded as its events are recorded (domain/facts.py), so computing a
-- period reads one row per case instead of loading and folding every event again.
-- facts_seq is the last event folded in, facts_version the fold's version. A row with no
-- facts (recorded before this migration) or another version is folded again from its
-- events when it is next read or recorded; `onegrid scores rebuild` rewrites them all.
ALTER TABLE case_span
    ADD COLUMN facts jsonb,
    ADD COLUMN facts_seq bigint,
    ADD COLUMN facts_version integer;
