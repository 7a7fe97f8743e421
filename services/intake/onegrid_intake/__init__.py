"""onegrid intake service."""
