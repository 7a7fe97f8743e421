"""One intake runtime for the whole intake test session: starting it joins two consumer
groups (several seconds on tansu), so the API and Kafka tests share it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from asgi_lifespan import LifespanManager

from onegrid_common.auth import mint_token
from onegrid_common.service import Runtime, build_app
from onegrid_common.settings import Settings
from onegrid_intake.main import make_service
from onegrid_intake.settings import IntakeSettings

CALLER_LIMIT = 20


@dataclass
class IntakeUnderTest:
    client: httpx.AsyncClient
    runtime: Runtime
    settings: Settings
    city: Any  # the demo city (onegrid_registry.seed.demo_city.DemoCity)

    def token(self, subject: str, *roles: str) -> dict[str, str]:
        token = mint_token(subject, roles, settings=self.settings.security)
        return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def intake(settings: Settings, demo_registry: Any) -> AsyncIterator[IntakeUnderTest]:
    service = make_service(
        settings=IntakeSettings(reporter_rate_limit=CALLER_LIMIT, channel_rate_limit=1_000_000)
    )
    app = build_app(service, settings)
    async with (
        LifespanManager(app, startup_timeout=90, shutdown_timeout=30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake"
        ) as client,
    ):
        yield IntakeUnderTest(client, app.state.runtime, settings, demo_registry)
