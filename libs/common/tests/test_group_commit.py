"""Group commit: callers share transactions, each answered only after its commit."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from onegrid_common.group_commit import GroupCommitter
from onegrid_common.testing.helpers import migrate_schema, pool_for, unique

pytestmark = pytest.mark.integration

ROWS_SQL = "CREATE TABLE row_ (n int PRIMARY KEY); CREATE TABLE counter (v int); "
ROWS_SQL += "INSERT INTO counter VALUES (0);"


async def _pool(pg_dsn: str) -> asyncpg.Pool:
    schema = unique("group")
    await migrate_schema(pg_dsn, schema, ROWS_SQL)
    return await pool_for(pg_dsn, schema)


async def insert(conn: asyncpg.Connection, n: int) -> int:
    if n % 10 == 7:
        raise ValueError(f"no sevens: {n}")
    await conn.execute("INSERT INTO row_ (n) VALUES ($1)", n)
    # Every unit takes the same row, like intake's case-number counter.
    value: int = await conn.fetchval("UPDATE counter SET v = v + 1 RETURNING v")
    return value


async def test_concurrent_callers_share_commits_and_a_failing_unit_undoes_only_itself(
    pg_dsn: str,
) -> None:
    pool = await _pool(pg_dsn)
    committer = GroupCommitter(pool, insert, name="test", max_group=32)
    committer.start()
    try:
        answers = await asyncio.gather(
            *(committer.submit(n) for n in range(200)), return_exceptions=True
        )
        rows = {r["n"] for r in await pool.fetch("SELECT n FROM row_")}
        counter = await pool.fetchval("SELECT v FROM counter")
    finally:
        await committer.stop()
        await pool.close()
    failed = [n for n, a in enumerate(answers) if isinstance(a, ValueError)]
    assert failed == [n for n in range(200) if n % 10 == 7]
    assert rows == {n for n in range(200) if n % 10 != 7}
    ok = sorted(a for a in answers if isinstance(a, int))
    assert ok == list(range(1, 181)) == list(range(1, counter + 1))  # no gaps, no repeats
    assert committer.stats.units == 180
    assert committer.stats.groups < 200 / 4  # far fewer commits than callers
    assert committer.stats.largest <= 32


async def test_an_answer_means_committed_and_stop_answers_everything_queued(pg_dsn: str) -> None:
    pool = await _pool(pg_dsn)
    committer = GroupCommitter(pool, insert, name="test")
    committer.start()
    try:
        assert await committer.submit(1) == 1
        # Seen from another connection at once: the caller was answered after the commit.
        assert await pool.fetchval("SELECT count(*) FROM row_ WHERE n = 1") == 1
        queued = [asyncio.create_task(committer.submit(n)) for n in (2, 3, 4, 5, 6, 8, 9)]
        await asyncio.sleep(0)  # queued before the stop
        await committer.stop()
        assert sorted(await asyncio.gather(*queued)) == list(range(2, 9))
        with pytest.raises(RuntimeError, match="not started"):
            await committer.submit(99)
    finally:
        await pool.close()


async def test_a_unit_that_loses_a_deadlock_runs_again_in_a_later_group(pg_dsn: str) -> None:
    pool = await _pool(pg_dsn)
    losses = {5: 1, 6: 5}  # 5 loses once, 6 every time

    async def racing(conn: asyncpg.Connection, n: int) -> int:
        if losses.get(n, 0) > 0:
            losses[n] -= 1
            await conn.execute("INSERT INTO row_ (n) VALUES ($1)", 1000 + n)  # rolled back
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return await insert(conn, n)

    committer = GroupCommitter(pool, racing, name="test", max_attempts=3)
    committer.start()
    try:
        answers = await asyncio.gather(
            *(committer.submit(n) for n in range(1, 7)), return_exceptions=True
        )
        rows = sorted(r["n"] for r in await pool.fetch("SELECT n FROM row_"))
    finally:
        await committer.stop()
        await pool.close()
    assert isinstance(answers[5], asyncpg.DeadlockDetectedError)  # gave up after 3 groups
    assert sorted(a for a in answers if isinstance(a, int)) == [1, 2, 3, 4, 5]
    assert rows == [1, 2, 3, 4, 5]
    assert committer.stats.deferred == 3  # 5 once, 6 twice before giving up
