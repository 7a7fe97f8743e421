"""The Redis GEO index of open cases, per category: where duplicate search starts.

Redis may lose it at any time; PostgreSQL is the truth. Every candidate found here is
confirmed against `case_`, an entry for a case that is no longer open is dropped, and a
missing `ready` marker (Redis flushed or restarted) triggers a rebuild from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

PREFIX = "intake:geo:"
READY = "intake:geo:ready"
# Redis GEO covers latitudes up to about ±85.05 (Web Mercator); no city lies beyond.
MAX_GEO_LAT = 85.0


# The READY check and the search in one command (a pipeline of two cost intake more CPU):
# nil when the index is not known to be complete, else the members nearest first.
_SEARCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('GEOSEARCH', KEYS[2], 'FROMLONLAT', ARGV[1], ARGV[2],
                  'BYRADIUS', ARGV[3], 'm', 'ASC', 'COUNT', ARGV[4])
"""


def _key(category_code: str) -> str:
    return PREFIX + "cat:" + category_code


def indexable(lon: float | None, lat: float | None) -> bool:
    return lon is not None and lat is not None and abs(lat) <= MAX_GEO_LAT


class OpenCaseIndex:
    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool, horizon_hours: int) -> None:
        self._redis = redis
        self._pool = pool
        self._horizon = timedelta(hours=horizon_hours)
        self._rebuilding = asyncio.Lock()
        self._search = redis.register_script(_SEARCH)
        self.rebuilds = 0

    async def add(self, case_id: UUID, category_code: str, lon: float, lat: float) -> None:
        if indexable(lon, lat):
            await self._redis.geoadd(_key(category_code), (lon, lat, str(case_id)))

    async def remove(self, case_id: UUID, category_code: str) -> None:
        await self._redis.zrem(_key(category_code), str(case_id))

    async def search(
        self, category_code: str, lon: float, lat: float, radius_m: float
    ) -> list[UUID]:
        """Ids of indexed cases of the category within radius_m, nearest first."""
        if not indexable(lon, lat):
            return []
        keys, args = [READY, _key(category_code)], [lon, lat, radius_m, 50]
        members = await self._search(keys=keys, args=args)
        if members is None:  # no READY marker: Redis lost the index
            await self.rebuild()
            members = await self._search(keys=keys, args=args) or []
        return [UUID(m.decode() if isinstance(m, bytes) else m) for m in members]

    async def search_many(
        self, searches: Sequence[tuple[str, float, float, float]]
    ) -> list[list[UUID]]:
        """`search` for each (category_code, lon, lat, radius_m), in one round trip."""
        wanted = [n for n, (_, lon, lat, _) in enumerate(searches) if indexable(lon, lat)]
        found: list[list[UUID]] = [[] for _ in searches]
        if not wanted:
            return found
        for attempt in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for n in wanted:
                    code, lon, lat, radius_m = searches[n]
                    await self._search(  # queued: the pipeline sends it with the rest
                        keys=[READY, _key(code)], args=[lon, lat, radius_m, 50], client=pipe
                    )
                replies = await pipe.execute()
            if all(reply is not None for reply in replies) or attempt == 1:
                break
            await self.rebuild()  # no READY marker: Redis lost the index
        for n, members in zip(wanted, replies, strict=True):
            found[n] = [UUID(m.decode() if isinstance(m, bytes) else m) for m in members or []]
        return found

    async def update(
        self,
        additions: Sequence[tuple[UUID, str, float, float]],
        removals: Sequence[tuple[UUID, str]],
    ) -> None:
        """Add new cases (id, category, lon, lat) and drop stale entries: one round trip."""
        additions = [a for a in additions if indexable(a[2], a[3])]
        if not additions and not removals:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for case_id, code, lon, lat in additions:
                pipe.geoadd(_key(code), (lon, lat, str(case_id)))
            for case_id, code in removals:
                pipe.zrem(_key(code), str(case_id))
            await pipe.execute()

    async def rebuild(self) -> int:
        """Put every recent open case with a point and a category back into Redis.

        Adds only, never clears: a case created meanwhile has added itself, and a stale
        entry is harmless (confirmed against PostgreSQL, then dropped)."""
        async with self._rebuilding:
            if await self._redis.exists(READY):
                return 0  # another caller rebuilt it while this one waited
            since = datetime.now().astimezone() - self._horizon
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT case_id, category_code, lon, lat FROM case_"
                    " WHERE open AND lon IS NOT NULL AND category_code IS NOT NULL"
                    " AND reported_at >= $1",
                    since,
                )
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    if indexable(row["lon"], row["lat"]):
                        pipe.geoadd(
                            _key(row["category_code"]),
                            (row["lon"], row["lat"], str(row["case_id"])),
                        )
                pipe.set(READY, b"1")
                await pipe.execute()
            self.rebuilds += 1
            log.info("rebuilt the open-case geo index from PostgreSQL: %d cases", len(rows))
            return len(rows)
