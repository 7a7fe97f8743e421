"""`onegrid seed demo-city` writes the demo city with its outbox events once; a second run
changes and publishes nothing."""

from __future__ import annotations

import asyncpg
import pytest

from onegrid_common.settings import Settings
from onegrid_common.testing.helpers import unique
from onegrid_registry.db.seed import seed_demo_city
from onegrid_registry.seed.demo_city import build_demo_city

pytestmark = pytest.mark.integration


async def test_seeding_twice_writes_the_city_once(settings: Settings) -> None:
    schema = unique("registry_seed")
    city = build_demo_city(1)
    first = await seed_demo_city(settings.db, seed=1, schema=schema)
    assert first["registry.grids.v1"] == len(city.grids) == 1257
    assert first["registry.staff.v1"] == len(city.staff)
    assert first["registry.routes.v1"] == len(city.routes)
    conn = await asyncpg.connect(settings.db.dsn)
    try:

        async def outbox_rows() -> int:
            return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox"))

        assert await outbox_rows() == sum(first.values())
        second = await seed_demo_city(settings.db, seed=1, schema=schema)
        assert set(second.values()) == {0}
        assert await outbox_rows() == sum(first.values())
        units = await conn.fetchval(f"SELECT count(*) FROM {schema}.unit")
        assert units == len(city.units)
    finally:
        await conn.close()
