"""The whole case flow in one process: intake, dispatch, adapter-urban with the 数字城管
simulator, notification and scoring, on the session's broker, PostgreSQL and Redis, with
the demo city published to the registry topics. One TracerProvider records every span."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from onegrid_adapter_urban.main import UrbanSettings
from onegrid_adapter_urban.main import build as build_urban
from onegrid_common.adapters import DeliveryPolicy
from onegrid_common.auth import mint_token
from onegrid_common.http import ObservabilityMiddleware
from onegrid_common.localstack import free_port
from onegrid_common.service import ServiceDefinition, build_app
from onegrid_common.settings import Settings
from onegrid_common.simulators.urban import UrbanSim
from onegrid_common.testing.helpers import create_topic, eventually, with_own_groups
from onegrid_contracts.catalogue import unit_replies_topic, unit_tasks_topic
from onegrid_dispatch.main import make_service as make_dispatch
from onegrid_dispatch.settings import DispatchSettings
from onegrid_intake.main import make_service as make_intake

# Quick polls, but a retry budget (1+2+4+8 = 15 s) and call timeout a loaded 2-core CI
# machine never runs out of: nothing in the flow should fail delivery.
log = logging.getLogger(__name__)

URBAN_POLICY = DeliveryPolicy(
    max_attempts=5,
    backoff_base_s=1.0,
    backoff_cap_s=10.0,
    breaker_failures=5,
    breaker_reset_s=2.0,
    call_timeout_s=10.0,
    poll_interval_s=0.3,
    idle_interval_s=0.1,
)


class ShiftedClock:
    """Real time plus an offset a test can move forward (deadlines fire without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def flow_span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter on the process's global TracerProvider (installed if needed):
    the runtime, the relay and the adapters all trace through the global provider."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@contextlib.asynccontextmanager
async def serve(app: FastAPI, name: str) -> AsyncIterator[str]:
    """`app` on uvicorn on a free port in this loop; its base URL. Stopping is bounded:
    requests get 5 s to finish, the whole stop 60 s, so a service that does not stop
    cannot hang the session (seen once or twice in ~10 runs: the cause is reported)."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(
            lambda: server.started or task.done(), timeout_s=60, what=f"{name} started"
        )
        if task.done():
            await task
            raise RuntimeError(f"{name} stopped while starting")
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=60)
        except TimeoutError:
            log.error("%s did not stop within 60 s; cancelled", name)
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@dataclass
class CaseFlow:
    settings: Settings
    city: Any
    spans: InMemorySpanExporter
    clock: ShiftedClock
    sim: UrbanSim
    urls: dict[str, str] = field(default_factory=dict)  # service name → base URL

    def headers(self, subject: str, *roles: str, grids: tuple[str, ...] = ()) -> dict[str, str]:
        token = mint_token(subject, roles, settings=self.settings.security, grid_codes=grids)
        return {"Authorization": f"Bearer {token}"}

    def client(self, service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.urls[service], timeout=10.0)


def _optional_service(module: str, **options: Any) -> ServiceDefinition | None:
    """A service still being written may not import yet: the flow runs without it."""
    try:
        make = importlib.import_module(module).make_service
    except (ImportError, AttributeError):
        return None
    service: ServiceDefinition = make(**options)
    return service


def _notification_config(urls: dict[str, str]) -> Any:
    """Notification sending to the SMS and push gateway simulators, at any hour."""
    from onegrid_notification.config import NotificationSettings

    return NotificationSettings(
        sms_url=urls["sms-gateway"],
        push_url=urls["push-gateway"],
        smtp_port=free_port(),  # no mail server: e-mails fail fast, and are retried
        quiet_start=None,
        poll_interval_s=0.2,
        backoff_base_s=0.5,
        backoff_max_s=2.0,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def case_flow(settings: Settings, demo_registry: Any) -> AsyncIterator[CaseFlow]:
    spans = flow_span_exporter()
    clock = ShiftedClock()
    sim = UrbanSim(progress_after_s=0.3, complete_after_s=0.8)
    sim_app: FastAPI = sim.app()
    # The department system's side of the call, so the trace shows it received the header.
    sim_app.add_middleware(ObservabilityMiddleware, service="urban-system")
    # Own consumer groups, starting at the end of every topic: earlier tests of the session
    # left thousands of events on the shared topics, which are not this flow's to replay.
    settings = with_own_groups(settings, f"flow-{uuid.uuid4().hex[:6]}", start_at_end=True)
    flow = CaseFlow(settings, demo_registry, spans, clock, sim)
    for topic in (unit_tasks_topic("urban"), unit_replies_topic("urban")):
        # Before the consumers start: a pattern subscription only sees existing topics.
        with contextlib.suppress(TopicAlreadyExistsError):
            await create_topic(settings.kafka.bootstrap_servers, topic)
    async with contextlib.AsyncExitStack() as stack:
        flow.urls["urban-system"] = await stack.enter_async_context(serve(sim_app, "urban-system"))
        with contextlib.suppress(ImportError):
            from onegrid_notification.simulators import push, sms

            for name, gateway in (
                ("sms-gateway", sms.SmsGatewaySim()),
                ("push-gateway", push.PushGatewaySim()),
            ):
                flow.urls[name] = await stack.enter_async_context(serve(gateway.app(), name))
        # Started in this order; dispatch after notification, whose URL it is given (a
        # case's timeline includes its notifications).
        services: dict[str, Callable[[], ServiceDefinition | None]] = {
            "notification": lambda: (
                _optional_service(
                    "onegrid_notification.main", config=_notification_config(flow.urls)
                )
                if "sms-gateway" in flow.urls
                else None
            ),
            "scoring": lambda: _optional_service("onegrid_scoring.main"),
            "intake": make_intake,
            "dispatch": lambda: make_dispatch(
                clock=clock,
                timer_interval_s=0.2,
                settings=DispatchSettings(notification_url=flow.urls.get("notification")),
            ),
            "adapter-urban": lambda: build_urban(
                UrbanSettings(unit_code="urban", base_url=flow.urls["urban-system"]),
                URBAN_POLICY,
            ),
        }
        for name, make in services.items():
            service = make()
            if service is None:
                continue
            app = build_app(service, settings)
            app.state.runtime.lag_interval_s = 0.5
            flow.urls[name] = await stack.enter_async_context(serve(app, name))
        yield flow
