"""Writing the demo city into the registry's tables and outbox (`onegrid seed demo-city`).

Idempotent: entities already stored with identical JSON are skipped, so a second run
changes nothing and publishes nothing. Runs in one transaction: all of it or none.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from importlib.resources import files

from onegrid_common import db, migrations
from onegrid_common.settings import DatabaseSettings
from onegrid_contracts.registry import RegistryEntity
from onegrid_registry.db import store
from onegrid_registry.seed.demo_city import DemoCity, build_demo_city

SCHEMA = "registry"


def demo_entities(city: DemoCity) -> list[RegistryEntity]:
    """Every entity of the city, references first."""
    return [
        *city.calendars,
        *city.grids,
        *city.buildings,
        *city.units,
        *city.staff,
        *city.categories,
        *city.routes,
    ]


async def migrate(settings: DatabaseSettings, schema: str = SCHEMA) -> list[str]:
    conn = await db.connect(settings, "public")
    try:
        folder = files("onegrid_registry.db") / "migrations"
        return await migrations.migrate(conn, schema, [("registry", folder)])
    finally:
        await conn.close()


async def seed_demo_city(
    settings: DatabaseSettings, *, seed: int = 1, schema: str = SCHEMA
) -> dict[str, int]:
    """Migrate, then write the demo city of `seed`. Returns the changed entities per topic
    (all zero when the registry already holds exactly this city)."""
    await migrate(settings, schema)
    city = await asyncio.to_thread(build_demo_city, seed)
    entities = demo_entities(city)
    conn = await db.connect(settings, schema)
    try:
        async with conn.transaction():
            for spec in store.SPECS:
                await store.lock(conn, spec)
            changed = await store.write(conn, entities)
    finally:
        await conn.close()
    counts = Counter(entity.topic for entity in changed)
    return {spec.model.topic: counts.get(spec.model.topic, 0) for spec in store.SPECS}
