"""onegrid message contracts: every message shape and topic, in one place."""
