"""onegrid dispatch service."""
