"""The onegrid command-line program."""
