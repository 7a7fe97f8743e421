"""onegrid common runtime: the mechanisms every service shares."""
