"""Forward-only migrations: applied once, recorded, refused when an applied file changes."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from onegrid_common.migrations import MigrationError, load_migrations, migrate
from onegrid_common.testing.helpers import unique

pytestmark = pytest.mark.integration


def _write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql, encoding="utf-8")


async def test_migrations_apply_once_in_order_into_the_service_schema(
    pg_dsn: str, tmp_path: Path
) -> None:
    _write(tmp_path, "0001_create_grid.sql", "CREATE TABLE grid (code text PRIMARY KEY);")
    _write(tmp_path, "0002_add_name.sql", "ALTER TABLE grid ADD COLUMN name text;")
    schema = unique("mig")
    conn = await asyncpg.connect(pg_dsn)
    try:
        first = await migrate(conn, schema, [("svc", tmp_path)])
        again = await migrate(conn, schema, [("svc", tmp_path)])
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = 'grid'",
            schema,
        )
        runtime_tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
    finally:
        await conn.close()
    assert first == [
        "common/0001_outbox_inbox",
        "common/0002_outbox_tombstones",
        "common/0003_outbox_enqueue_without_notify",
        "svc/0001_create_grid",
        "svc/0002_add_name",
    ]
    assert again == []
    assert {r["column_name"] for r in columns} == {"code", "name"}
    assert {"outbox", "inbox", "schema_migrations", "grid"} <= {
        r["table_name"] for r in runtime_tables
    }


async def test_editing_an_applied_migration_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_create_grid.sql", "CREATE TABLE grid (code text PRIMARY KEY);")
    schema = unique("mig")
    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrate(conn, schema, [("svc", tmp_path)])
        _write(tmp_path, "0001_create_grid.sql", "CREATE TABLE grid (code text, extra int);")
        with pytest.raises(MigrationError, match="was edited"):
            await migrate(conn, schema, [("svc", tmp_path)])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(pg_dsn: str, tmp_path: Path) -> None:
    _write(
        tmp_path,
        "0001_broken.sql",
        "CREATE TABLE half (id int); INSERT INTO no_such_table VALUES (1);",
    )
    schema = unique("mig")
    conn = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, schema, [("svc", tmp_path)])
        half = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.half")
        recorded = await conn.fetchval(
            f"SELECT count(*) FROM {schema}.schema_migrations WHERE component = 'svc'"
        )
    finally:
        await conn.close()
    assert half is None
    assert recorded == 0


def test_a_badly_named_migration_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "create_grid.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations("svc", tmp_path)
