-- The case's trace: the span that asked for a notification (the consumed case event or
-- request) is stored with it, so the send, however much later, runs as its child.
ALTER TABLE notification ADD COLUMN traceparent text;
-- The send span of each attempt (the timeline links a notification to it).
ALTER TABLE notification_attempt ADD COLUMN span_id text;
