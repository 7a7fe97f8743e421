"""Forward-only SQL migrations, one schema per service, with a version table.

A migration is a file `NNNN_what_it_does.sql` in a package folder. The runtime's own tables
(outbox, inbox) are the `common` component, applied to every service schema before the
service's own files. Applied files are recorded with a checksum: editing an applied file
is refused, because forward-only means a change is a new file. Concurrent starters (several
replicas) serialise on an advisory lock, so each file runs once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

from onegrid_common.db import quote_ident

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(component: str, folder: Traversable) -> list[Migration]:
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if not match:
            raise MigrationError(
                f"{component}: migration file {entry.name!r} must be NNNN_name.sql"
            )
        found.append(
            Migration(component, int(match.group(1)), match.group(2), entry.read_text("utf-8"))
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{component}: two migration files share a version number")
    return found


def common_migrations() -> list[Migration]:
    return load_migrations("common", files("onegrid_common") / "migrations")


async def migrate(
    conn: asyncpg.Connection, schema: str, components: list[tuple[str, Traversable]]
) -> list[str]:
    """Apply what is missing to `schema`; returns the names of the files applied now."""
    plan = common_migrations()
    for component, folder in components:
        plan.extend(load_migrations(component, folder))
    ident = quote_ident(schema)
    applied_now: list[str] = []
    lock_key = f"onegrid-migrate:{schema}"
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", lock_key)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {ident}.schema_migrations (
                    component text NOT NULL,
                    version integer NOT NULL,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version))"""
        )
        rows = await conn.fetch(
            f"SELECT component, version, name, checksum FROM {ident}.schema_migrations"
        )
        done = {(r["component"], r["version"]): r for r in rows}
        for migration in plan:
            key = (migration.component, migration.version)
            if key in done:
                if done[key]["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{schema}: applied migration {migration.component}/"
                        f"{migration.version:04d}_{migration.name}.sql was edited; "
                        "migrations are forward-only, write a new file instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {ident}, public")
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {ident}.schema_migrations (component, version, name, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    migration.component,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(f"{migration.component}/{migration.version:04d}_{migration.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock_key)
    return applied_now
