"""onegrid notification service."""
