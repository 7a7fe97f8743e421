"""Fixed-window hit counters in Redis, shared by every rate limit (intake's per caller and
channel, notification's per recipient and hour): one command for any number of counters.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from onegrid_common.group_commit import GroupCommit

# Each counter +1; its window starts on its first hit (EXPIRE then); (count, ttl) each.
_COUNT_HITS = """
local out = {}
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  out[#out + 1] = count
  out[#out + 1] = redis.call('TTL', key)
end
return out
"""


async def count_hits(
    redis: aioredis.Redis, keys: Sequence[str], window_s: int
) -> list[tuple[int, int]]:
    """Count one hit on each key; (hits in its window so far, seconds the window has left)."""
    if not keys:
        return []
    results = await redis.eval(_COUNT_HITS, len(keys), *keys, window_s)
    return [(int(results[2 * n]), int(results[2 * n + 1])) for n in range(len(keys))]


class HitCounter:
    """`count_hits` for many concurrent callers: the counts asked for while one command is
    on its way go together in the next (group commit), so a busy service pays about one
    Redis round trip per batch of requests instead of one per request."""

    def __init__(self, redis: aioredis.Redis, window_s: int, *, name: str) -> None:
        self._redis = redis
        self._window_s = window_s
        self._commit: GroupCommit[Sequence[str], list[tuple[int, int]]] = GroupCommit(
            self._count, name=name, max_batch=256
        )

    def start(self) -> None:
        self._commit.start()

    async def close(self) -> None:
        await self._commit.close()

    async def hit(self, keys: Sequence[str]) -> list[tuple[int, int]]:
        """One hit on each key; as `count_hits`."""
        return await self._commit.submit(keys)

    async def _count(
        self, batch: Sequence[Sequence[str]]
    ) -> list[list[tuple[int, int]] | Exception]:
        hits = await count_hits(
            self._redis, [key for keys in batch for key in keys], self._window_s
        )
        answers: list[list[tuple[int, int]] | Exception] = []
        for keys in batch:
            answers.append(hits[: len(keys)])
            del hits[: len(keys)]
        return answers
