"""Root conftest: loads onegrid's pytest plugin (real broker, PostgreSQL, Redis fixtures)."""

pytest_plugins = ["onegrid_common.testing.plugin"]
