"""onegrid scoring service."""
