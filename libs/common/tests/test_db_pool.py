"""A pooled connection goes back to the pool without a reset round trip, unless it was
marked as holding session state; then the session is reset (locks released)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from onegrid_common import db, metrics
from onegrid_common.settings import DatabaseSettings
from onegrid_common.testing.helpers import migrate_schema, pool_for, unique

pytestmark = pytest.mark.integration

_LOCK = 7_700_001


@pytest_asyncio.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    schema = unique("pool")
    await migrate_schema(pg_dsn, schema, "CREATE TABLE note (text text)")
    pool = await pool_for(pg_dsn, schema)
    try:
        yield pool
    finally:
        await pool.close()


async def _statements_on_release(pool: asyncpg.Pool, mark: bool) -> list[str]:
    seen: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: seen.append(record.query))
        async with conn.transaction():
            await conn.execute("SELECT 1")
        if mark:
            db.mark_session_state(conn)
        await asyncio.sleep(0.05)  # query loggers are called soon after, not inline
        seen.clear()
    await asyncio.sleep(0.05)
    return seen


async def _lock_is_free(dsn: str) -> bool:
    other = await asyncpg.connect(dsn)
    try:
        free: bool = await other.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK)
        if free:
            await other.execute("SELECT pg_advisory_unlock($1)", _LOCK)
        return free
    finally:
        await other.close()


async def test_a_connection_that_only_ran_transactions_returns_without_a_reset(
    pool: asyncpg.Pool,
) -> None:
    assert await _statements_on_release(pool, mark=False) == []
    marked = await _statements_on_release(pool, mark=True)
    assert any("pg_advisory_unlock_all" in q for q in marked), marked
    # The mark lasts one use: the next plain use returns without a reset again.
    assert await _statements_on_release(pool, mark=False) == []


async def test_a_marked_session_lock_is_released_when_the_connection_returns(
    pool: asyncpg.Pool, pg_dsn: str
) -> None:
    async with pool.acquire() as conn:
        db.mark_session_state(conn)
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        assert not await _lock_is_free(pg_dsn)
    assert await _lock_is_free(pg_dsn)


async def test_a_transaction_left_open_is_rolled_back_on_release(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO note VALUES ('never committed')")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM note") == 0


def _counted(service: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value("onegrid_db_statements_total", {"service": service})
        or 0.0
    )


@pytest.mark.parametrize("count", [True, False])
async def test_statements_are_counted_on_metrics_only_when_asked(pg_dsn: str, count: bool) -> None:
    schema = unique("pool")
    await migrate_schema(pg_dsn, schema)
    settings = DatabaseSettings(
        dsn=pg_dsn, pool_min_size=1, pool_max_size=1, count_statements=count
    )
    pool = await db.create_pool(settings, schema, service=f"counted-{schema}")
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
            await conn.executemany("SELECT $1::int", [(1,), (2,)])  # one round trip
        await asyncio.sleep(0.05)  # query loggers are called soon after, not inline
        assert _counted(f"counted-{schema}") == (2 if count else 0)
        # A dedicated connection (the outbox relay's) counts under its service too.
        conn = await db.connect(settings, schema, service=f"counted-{schema}")
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
        await asyncio.sleep(0.05)
        assert _counted(f"counted-{schema}") == (3 if count else 0)
    finally:
        await pool.close()


async def test_hooks_run_once_each_after_the_transaction_commits(pool: asyncpg.Pool) -> None:
    ran: list[tuple[str, int]] = []

    async def hook(name: str, conn: asyncpg.Connection) -> None:
        # What the hook sees is committed: another session counts the row.
        ran.append((name, await pool.fetchval("SELECT count(*) FROM note")))

    async def first(conn: db.Connection) -> None:
        await hook("first", conn)

    async def second(conn: db.Connection) -> None:
        await hook("second", conn)

    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("INSERT INTO note VALUES ('一')")
            assert db.run_after_commit(conn, first)
            assert db.run_after_commit(conn, second)
            assert db.run_after_commit(conn, first)  # asked twice, runs once
            assert ran == []
        assert ran == [("first", 1), ("second", 1)]
        async with conn.transaction():
            await conn.execute("SELECT 1")
        assert ran == [("first", 1), ("second", 1)]  # gone once run


async def test_a_plain_asyncpg_connection_cannot_run_hooks(pg_dsn: str) -> None:
    async def hook(_conn: db.Connection) -> None:
        raise AssertionError("never runs")

    conn = await asyncpg.connect(pg_dsn)
    try:
        assert not db.run_after_commit(conn, hook)
    finally:
        await conn.close()


async def test_an_event_set_after_commit_is_set_once_the_transaction_has_ended(
    pool: asyncpg.Pool, pg_dsn: str
) -> None:
    event = asyncio.Event()
    async with pool.acquire() as conn:
        async with conn.transaction():
            db.set_after_commit(conn, event)
            db.set_after_commit(conn, event)  # asked twice: still one wake
            await conn.execute("SELECT 1")
            assert not event.is_set()
        assert event.is_set()
        event.clear()
        async with conn.transaction():
            await conn.execute("SELECT 1")
        assert not event.is_set()  # the hook ran once and is gone
    plain = await asyncpg.connect(pg_dsn)
    try:
        db.set_after_commit(plain, event)  # cannot wait for the commit: set now
        assert event.is_set()
    finally:
        await plain.close()
