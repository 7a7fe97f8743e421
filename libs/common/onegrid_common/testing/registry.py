"""Registry data for other services' integration tests, without running the registry service.

- `demo_registry` (session fixture): the demo city (seed 1) published straight to the
  registry topics of the session broker, once per session; returns the `DemoCity`, so a test
  can pick grids, units and categories from it and start a `RegistryView` that is populated:

      async def test_x(demo_registry: DemoCity, settings: Settings) -> None:
          view = await RegistryView.start(settings.kafka, topics=REGISTRY_TOPICS)
          grid = demo_registry.at_level(GridLevel.GRID)[0]

- `publish_entities(kafka, entities)` / `publish_tombstones(kafka, [(Unit, "code"), ...])`:
  a handful of custom entities (use codes of your own: the topics are shared by the session).
  Wait for them with `view.wait_for_entity(type(entity), entity.key, entity)`.

Records look exactly like the registry service's: keyed by entity code, CloudEvents headers,
JSON body (a tombstone has a null value).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest_asyncio

from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.settings import KafkaSettings, Settings
from onegrid_contracts.envelope import Envelope, build_headers, encode_payload, new_envelope
from onegrid_contracts.registry import RegistryEntity

if TYPE_CHECKING:  # the registry service package depends on onegrid_common, not the reverse
    from onegrid_registry.seed.demo_city import DemoCity

SOURCE = "registry"
DEMO_SEED = 1


def entity_record(entity: RegistryEntity, *, source: str = SOURCE) -> OutgoingRecord:
    envelope = new_envelope(entity, source=source, subject=entity.key)
    return OutgoingRecord(
        topic=entity.topic,
        key=entity.key,
        value=encode_payload(entity),
        headers=build_headers(envelope),
    )


def tombstone_record(
    entity_type: type[RegistryEntity], key: str, *, source: str = SOURCE
) -> OutgoingRecord:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type=entity_type.ce_type,
        source=source,
        time=datetime.now(UTC),
        subject=key,
    )
    return OutgoingRecord(
        topic=entity_type.topic, key=key, value=None, headers=build_headers(envelope)
    )


async def _send(kafka: KafkaSettings, records: list[OutgoingRecord]) -> None:
    producer = Producer(kafka, client_id=f"registry-test-{uuid.uuid4().hex[:8]}", linger_ms=20)
    await producer.start()
    try:
        for start in range(0, len(records), 2000):
            await producer.send_many(records[start : start + 2000])
    finally:
        await producer.stop()


async def publish_entities(kafka: KafkaSettings, entities: Iterable[RegistryEntity]) -> None:
    """Publish entities to their registry topics, in order, and wait for the acks."""
    await _send(kafka, [entity_record(e) for e in entities])


async def publish_tombstones(
    kafka: KafkaSettings, keys: Iterable[tuple[type[RegistryEntity], str]]
) -> None:
    """Delete entities: a null-value record per (entity type, key)."""
    await _send(kafka, [tombstone_record(t, k) for t, k in keys])


def demo_entities(city: DemoCity) -> list[RegistryEntity]:
    """Every entity of a demo city, in an order where references come first."""
    return [
        *city.calendars,
        *city.grids,
        *city.buildings,
        *city.units,
        *city.staff,
        *city.categories,
        *city.routes,
    ]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo_registry(settings: Settings) -> AsyncIterator[DemoCity]:
    """The demo city (seed 1), published once per session to the registry topics."""
    from onegrid_registry.seed.demo_city import build_demo_city

    city = await asyncio.to_thread(build_demo_city, DEMO_SEED)
    await publish_entities(settings.kafka, demo_entities(city))
    yield city
