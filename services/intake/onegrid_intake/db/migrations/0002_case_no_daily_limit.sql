-- A case number holds six digits of daily sequence: the counter cannot pass 999999. The
-- check fails the statement that would take number 1,000,000, so nothing of it commits.
ALTER TABLE case_no_counter
    ADD CONSTRAINT case_no_counter_daily_limit CHECK (last_sequence <= 999999);
