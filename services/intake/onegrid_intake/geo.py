"""The Redis GEO index of open cases, per category: where duplicate search starts.

Redis may lose it at any time; PostgreSQL is the truth. Every candidate found here is
confirmed against `case_`, an entry for a case that is no longer open is dropped, and a
missing `ready` marker (Redis flushed or restarted) triggers a rebuild from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
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
