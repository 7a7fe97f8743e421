"""PostgreSQL access: one asyncpg pool per service, pinned to the service's own schema.

Each service owns exactly one schema (DESIGN §5); the pool's `search_path` makes every
unqualified name in that service's SQL refer to its own tables, so no service can read
another's by accident.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from onegrid_common import metrics
from onegrid_common.settings import DatabaseSettings

_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def schema_for(service: str) -> str:
    """The schema a service owns: its name with "_" for "-" (adapter-urban → adapter_urban)."""
    schema = service.replace("-", "_")
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"{service!r} does not make a valid schema name")
    return schema


def quote_ident(name: str) -> str:
    if not _SCHEMA_NAME.match(name):
        raise ValueError(f"{name!r} is not a safe SQL identifier")
    return f'"{name}"'


CommitHook = Callable[["Connection"], Awaitable[None]]


class Connection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that knows its service schema and can run hooks after the
    transaction it is in commits (the outbox uses one to wake its relay without a NOTIFY
    inside the business transaction: PostgreSQL serialises the commits of every
    transaction that notified, fsync included, which capped a service at ~190 commits/s).
    """

    __slots__ = ("_after_commit", "_session_state", "onegrid_schema")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.onegrid_schema: str | None = None
        self._after_commit: list[CommitHook] = []
        self._session_state = False

    def mark_session_state(self) -> None:
        """Say this connection now holds session state (a session advisory lock, LISTEN,
        SET): the pool's full reset then runs when it is released."""
        self._session_state = True

    def get_reset_query(self) -> str:
        # asyncpg's pool resets every connection it takes back (unlock all advisory locks,
        # CLOSE ALL, UNLISTEN *, RESET ALL): a round trip of its own, 3,800 of 53,700
        # statements in a bench run. Our transactions leave nothing in the session, so the
        # reset runs only after `mark_session_state`; an open transaction is rolled back
        # either way.
        if not self._session_state:
            return ""
        self._session_state = False
        reset: str = super().get_reset_query()
        return reset

    def run_after_commit(self, hook: CommitHook) -> None:
        """Run `hook(conn)` once the current transaction has ended (on rollback too: hooks
        must be harmless then); a hook asked for twice runs once."""
        if hook not in self._after_commit:
            self._after_commit.append(hook)

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109 (asyncpg signature)
        result: str = await super().execute(query, *args, timeout=timeout)
        # asyncpg's Transaction commits and rolls back through execute().
        if self._after_commit and not self.is_in_transaction():
            hooks, self._after_commit = self._after_commit, []
            for hook in hooks:
                await hook(self)
        return result


def run_after_commit(conn: asyncpg.Connection, hook: CommitHook) -> bool:
    """Run `hook(conn)` once the transaction `conn` is in has ended (see `Connection`).
    False when `conn` is a plain asyncpg connection, which cannot: the caller acts now."""
    # A pool hands out a proxy; the method reaches the underlying Connection.
    run = getattr(conn, "run_after_commit", None)
    if run is None:
        return False
    run(hook)
    return True


@dataclass(frozen=True)
class _SetEvent:
    # Equal for the same event, so one transaction's several requests set it once.
    event: asyncio.Event

    async def __call__(self, _conn: Connection) -> None:
        self.event.set()


def set_after_commit(conn: asyncpg.Connection, event: asyncio.Event) -> None:
    """Set `event` once the transaction `conn` is in has ended (now, on a plain asyncpg
    connection). For waking a worker that reads what the transaction writes: woken before
    the commit, it finds none of the rows and sleeps its whole interval."""
    if not run_after_commit(conn, _SetEvent(event)):
        event.set()


def mark_session_state(conn: asyncpg.Connection) -> None:
    """Before taking a session advisory lock, LISTEN or SET on a pooled connection: the
    pool then resets the session when the connection comes back (see `Connection`)."""
    # A pool hands out a proxy; the method reaches the underlying Connection. Connections
    # of plain asyncpg keep asyncpg's reset on every release anyway.
    mark = getattr(conn, "mark_session_state", None)
    if mark is not None:
        mark()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, encoded with orjson (fast, RFC 3339 datetimes).
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )
    await conn.set_type_codec(
        "json",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def create_pool(
    settings: DatabaseSettings, schema: str, *, service: str | None = None, **overrides: Any
) -> asyncpg.Pool:
    """A pool whose connections see `schema` first, then `public` (for extensions).
    With `settings.count_statements` every statement counts on /metrics under `service`."""
    quote_ident(schema)
    statements = metrics.DB_STATEMENTS.labels(service=service or schema)

    async def init(conn: Connection) -> None:
        conn.onegrid_schema = schema
        await _init_connection(conn)
        if settings.count_statements:
            conn.add_query_logger(lambda _query: statements.inc())

    pool = await asyncpg.create_pool(
        dsn=settings.dsn,
        min_size=overrides.pop("min_size", settings.pool_min_size),
        max_size=overrides.pop("max_size", settings.pool_max_size),
        command_timeout=settings.command_timeout_s,
        server_settings={
            "search_path": f"{schema},public",
            "application_name": f"onegrid-{schema}",
        },
        init=init,
        connection_class=Connection,
        **overrides,
    )
    assert pool is not None
    return pool


async def connect(
    settings: DatabaseSettings, schema: str, *, service: str | None = None
) -> asyncpg.Connection:
    """A single dedicated connection (for LISTEN and session advisory locks); its
    statements count under `service` as a pool's do."""
    quote_ident(schema)
    conn: Connection = await asyncpg.connect(
        dsn=settings.dsn,
        server_settings={
            "search_path": f"{schema},public",
            "application_name": f"onegrid-{schema}",
        },
        connection_class=Connection,
    )
    conn.onegrid_schema = schema
    await _init_connection(conn)
    if settings.count_statements:
        statements = metrics.DB_STATEMENTS.labels(service=service or schema)
        conn.add_query_logger(lambda _query: statements.inc())
    return conn


async def ping(pool: asyncpg.Pool) -> None:
    """Readiness check: raises when the database does not answer."""
    async with pool.acquire(timeout=2.0) as conn:
        await conn.fetchval("SELECT 1")
