"""Dispatch test fixtures: one dispatch runtime per test module, in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from onegrid_common.kafka_admin import ensure_topics
from onegrid_common.service import build_app
from onegrid_common.settings import Settings
from onegrid_common.testing.helpers import with_own_groups
from onegrid_contracts.catalogue import unit_topics
from onegrid_dispatch.domain.ports import ManualClock
from onegrid_dispatch.main import make_service
from onegrid_dispatch.testing import T0, City, Harness, build_registry


@pytest.fixture(scope="module")
async def harness(settings: Settings, kafka_bootstrap: str) -> AsyncIterator[Harness]:
    city = City(uuid.uuid4().hex[:8])
    await ensure_topics(kafka_bootstrap, [*unit_topics(city.urban), *unit_topics(city.police)])
    registry = build_registry(city)
    clock = ManualClock(T0)
    service = make_service(
        registry=lambda: registry,
        clock=clock,
        run_timers=False,
    )
    app = build_app(service, with_own_groups(settings, city.tag))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as client:
            h = Harness(settings, city, client, app.state.runtime)
            await h.producer.start()
            try:
                yield h
            finally:
                await h.producer.stop()
