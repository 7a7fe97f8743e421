"""onegrid adapter-civil service."""
