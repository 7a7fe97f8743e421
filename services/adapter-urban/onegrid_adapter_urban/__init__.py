"""onegrid adapter-urban service."""
