"""Fixed-window hit counters in Redis, shared by every rate limit (intake's per caller and
channel, notification's per recipient and hour): one command for any number of counters.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

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
