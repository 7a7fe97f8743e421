"""onegrid registry service."""
