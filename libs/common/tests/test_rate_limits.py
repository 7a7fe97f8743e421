"""Rate-limit counters against a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from onegrid_common.rate_limits import HitCounter, count_hits

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_each_hit_counts_once_in_a_window_that_starts_on_the_first(
    redis: aioredis.Redis,
) -> None:
    key = f"test:rl:{uuid.uuid4().hex}"
    assert await count_hits(redis, [key], 60) == [(1, 60)]
    ((count, ttl),) = await count_hits(redis, [key], 60)
    assert count == 2
    assert 0 < ttl <= 60


async def test_concurrent_callers_share_a_command_and_each_sees_its_own_counts(
    redis: aioredis.Redis,
) -> None:
    caller, other, channel = (f"test:rl:{uuid.uuid4().hex}" for _ in range(3))
    counter = HitCounter(redis, 60, name="test")
    counter.start()
    try:
        answers = await asyncio.gather(
            *(counter.hit([caller, channel]) for _ in range(5)), counter.hit([other, channel])
        )
    finally:
        await counter.close()
    assert sorted(a[0][0] for a in answers[:5]) == [1, 2, 3, 4, 5]
    assert answers[5][0][0] == 1
    assert sorted(a[1][0] for a in answers) == [1, 2, 3, 4, 5, 6]
    assert all(ttl == 60 for a in answers for _, ttl in a)
