"""A served service keeps its start-up heap out of the garbage collector's scans."""

from __future__ import annotations

import gc

import pytest
from asgi_lifespan import LifespanManager

from onegrid_common.service import ServiceDefinition, build_app
from onegrid_common.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("freeze_heap", [True, False])
async def test_a_served_service_freezes_what_is_alive_once_started(
    settings: Settings, freeze_heap: bool
) -> None:
    app = build_app(ServiceDefinition(name="heap-probe"), settings, freeze_heap=freeze_heap)
    assert gc.get_freeze_count() == 0
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        frozen = gc.get_freeze_count()
    assert (frozen > 0) is freeze_heap
    assert gc.get_freeze_count() == 0  # stopped: nothing stays frozen
