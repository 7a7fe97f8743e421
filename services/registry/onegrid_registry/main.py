"""The registry service: the city's master data (DESIGN §2), PostgreSQL as the truth,
published to the compacted `registry.*` topics through the outbox.

It also holds a RegistryView of its own topics, so `GET /v1/locate` answers exactly what
every other service's view computes.
"""

from __future__ import annotations

import contextlib
from importlib.resources import files

from onegrid_common.kafka_admin import ensure_topics
from onegrid_common.registry_view.service_view import close_service_view, open_service_view
from onegrid_common.service import Runtime, ServiceDefinition
from onegrid_contracts.catalogue import static_topics
from onegrid_registry.api import routes

VIEW_TIMEOUT_S = 120.0


async def start_view(rt: Runtime) -> None:
    # The registry owns its topics: make sure they exist before reading them (an unknown
    # topic would be auto-created by the broker with the wrong partition count).
    specs = [spec for spec in static_topics() if spec.name.startswith("registry.")]
    kafka = rt.settings.kafka
    await ensure_topics(kafka.bootstrap_servers, specs, security=kafka)
    await open_service_view(rt, "registry", timeout_s=VIEW_TIMEOUT_S)


async def stop_view(rt: Runtime) -> None:
    with contextlib.suppress(Exception):
        await close_service_view(rt)


SERVICE = ServiceDefinition(
    name="registry",
    migrations=files("onegrid_registry.db") / "migrations",
    routers=[routes.router],
    on_startup=[start_view],
    on_shutdown=[stop_view],
    max_body_bytes=32 * 1024 * 1024,  # a whole city's GeoJSON import
    description="Grids, buildings, units, staff, categories, routing rules and calendars.",
)
