"""onegrid adapter-police service."""
