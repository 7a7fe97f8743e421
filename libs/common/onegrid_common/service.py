"""The service runner: what every onegrid service is made of, and how it starts and stops.

A service declares a `ServiceDefinition` (its name, migrations, HTTP routers, Kafka
subscriptions, background tasks) in `onegrid_<name>.main.SERVICE`. `Runtime` owns the
process's connections; `build_app` wraps it in the FastAPI app with health, readiness and
metrics; `onegrid run <name>` serves it with uvicorn.

Start order: migrations → database pool → Redis → producer → outbox relay → startup hooks
→ subscribers → background tasks. Stop order is the reverse, so in-flight messages finish
and commit their offsets, then the relay drains the outbox, then the producer flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Request
from faststream.kafka import KafkaBroker

from onegrid_common import db, metrics, migrations, outbox
from onegrid_common.broker import (
    add_subscriber,
    create_broker,
    group_id,
    group_lag,
    start_new_group_at_end,
)
from onegrid_common.consumer import RecordProcessor, Subscription
from onegrid_common.direct_routes import DirectRoute
from onegrid_common.http import create_app
from onegrid_common.logs import setup_logging
from onegrid_common.producer import Producer
from onegrid_common.settings import Settings, get_settings
from onegrid_common.telemetry import setup_telemetry

log = logging.getLogger(__name__)

Hook = Callable[["Runtime"], Awaitable[None]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    migrations: Traversable | None = None
    routers: Sequence[APIRouter] = ()
    # Served before FastAPI's router: a service's hottest endpoint (direct_routes.py).
    direct_routes: Sequence[DirectRoute] = ()
    # Built at start so handlers can close over the runtime (read models, Redis, …).
    subscriptions: Callable[[Runtime], Sequence[Subscription]] | None = None
    background: Sequence[Hook] = ()  # long-running loops (timers); cancelled at stop
    on_startup: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()
    uses_redis: bool = False
    max_body_bytes: int = 1024 * 1024
    description: str = ""

    @property
    def schema(self) -> str:
        return db.schema_for(self.name)


@dataclass
class Runtime:
    """The live resources of one service process."""

    service: ServiceDefinition
    settings: Settings
    pool: asyncpg.Pool | None = None
    redis: aioredis.Redis | None = None
    producer: Producer | None = None
    broker: KafkaBroker | None = None
    relay: outbox.OutboxRelay | None = None
    processors: list[RecordProcessor] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # service-specific objects
    lag_interval_s: float = 5.0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _broker_started: bool = False

    @property
    def db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError(f"{self.service.name}: the database pool is not started")
        return self.pool

    async def migrate(self) -> list[str]:
        components = []
        if self.service.migrations is not None:
            components.append((self.service.name, self.service.migrations))
        conn = await db.connect(self.settings.db, "public")
        try:
            return await migrations.migrate(conn, self.service.schema, components)
        finally:
            await conn.close()

    async def start(self) -> None:
        name = self.service.name
        applied = await self.migrate()
        if applied:
            log.info("%s: applied migrations %s", name, ", ".join(applied))
        self.pool = await db.create_pool(
            self.settings.db, self.service.schema, service=self.service.name
        )
        if self.service.uses_redis:
            self.redis = aioredis.from_url(self.settings.redis.url, decode_responses=False)
        self.producer = Producer(self.settings.kafka, client_id=f"onegrid-{name}-producer")
        await self.producer.start()
        self.relay = outbox.OutboxRelay(
            db=self.settings.db,
            schema=self.service.schema,
            producer=self.producer,
            service=name,
        )
        self._spawn(self.relay.run(), "outbox-relay")
        self._spawn(self._watch_outbox(), "outbox-metrics")
        for hook in self.service.on_startup:
            await hook(self)
        subscriptions = self.service.subscriptions(self) if self.service.subscriptions else ()
        if subscriptions:
            self.broker = create_broker(self.settings.kafka, name)
            for sub in subscriptions:
                processor = RecordProcessor(
                    service=name,
                    subscription=sub,
                    pool=self.pool,
                    producer=self.producer,
                    max_attempts=self.settings.consumer_max_attempts,
                    retry_backoff_s=self.settings.consumer_retry_backoff_s,
                )
                if self.settings.kafka.new_groups_start_at == "end":
                    await start_new_group_at_end(
                        self.settings.kafka,
                        group_id(name, sub.name, self.settings.kafka),
                        topics=sub.topics,
                        pattern=sub.pattern,
                    )
                add_subscriber(self.broker, processor, self.settings.kafka)
                self.processors.append(processor)
            await self.broker.start()
            self._broker_started = True
            self._spawn(self._watch_lag(), "consumer-lag")
        for hook in self.service.background:
            self._spawn(hook(self), getattr(hook, "__name__", "background"))

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: background task %s failed", self.service.name, name)

        self._tasks.append(asyncio.create_task(guarded(), name=f"{self.service.name}:{name}"))

    async def _watch_outbox(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                async with self.db.acquire() as conn:
                    published = self.relay.published_ids if self.relay is not None else []
                    count, age = await outbox.backlog(conn, published=published)
                metrics.OUTBOX_BACKLOG.labels(self.service.name).set(count)
                metrics.OUTBOX_OLDEST_AGE.labels(self.service.name).set(age)
            await asyncio.sleep(5.0)

    async def _watch_lag(self) -> None:
        """Consumer lag per group and partition for /metrics, from the committed offsets."""
        name = self.service.name
        while True:
            for processor in self.processors:
                sub = processor.subscription
                group = group_id(name, sub.name, self.settings.kafka)
                try:
                    lag = await group_lag(
                        self.settings.kafka, group, topics=sub.topics, pattern=sub.pattern
                    )
                except Exception as exc:  # the broker may be away; lag comes back with it
                    log.debug("%s: consumer lag of %s not measured: %s", name, group, exc)
                    continue
                for (topic, partition), value in lag.items():
                    metrics.CONSUMER_LAG.labels(name, group, topic, str(partition)).set(value)
            await asyncio.sleep(self.lag_interval_s)

    async def stop(self) -> None:
        name = self.service.name
        relay_task = None
        for task in self._tasks:
            if task.get_name() == f"{name}:outbox-relay":
                relay_task = task
            else:
                task.cancel()
        if self.broker is not None and self._broker_started:
            await self.broker.stop()  # waits for in-flight batches, commits their offsets
            self._broker_started = False
        for hook in self.service.on_shutdown:
            with contextlib.suppress(Exception):
                await hook(self)
        if self.relay is not None:
            await self.relay.stop()
            if relay_task is not None:
                try:
                    await asyncio.wait_for(relay_task, timeout=15.0)
                except TimeoutError:
                    log.warning("%s: outbox relay did not drain in time", name)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.producer is not None:
            await self.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    # Readiness checks.
    async def check_db(self) -> None:
        await db.ping(self.db)

    async def check_broker(self) -> None:
        if self.producer is None:
            raise RuntimeError("producer not started")
        await self.producer.ping()

    async def check_redis(self) -> None:
        if self.redis is None:
            raise RuntimeError("redis not started")
        await self.redis.ping()


async def current_runtime(request: Request) -> Runtime:
    """FastAPI dependency: the Runtime of the service serving this request."""
    runtime = request.app.state.runtime
    if not isinstance(runtime, Runtime):
        raise RuntimeError("this app was not built by onegrid_common.service.build_app")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(current_runtime)]


def build_app(
    service: ServiceDefinition, settings: Settings | None = None, *, freeze_heap: bool = False
) -> FastAPI:
    """The service's app; with `freeze_heap` (a served process, not a test) everything alive
    once it has started is kept out of the garbage collector's scans (`gc.freeze`): the
    modules, the registry view and the compiled models live as long as the process, and
    every full collection scanning them again was intake's p99 tail (180 → 75 ms)."""
    settings = settings or get_settings()
    runtime = Runtime(service=service, settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if freeze_heap:
                gc.unfreeze()
            await runtime.stop()

    readiness = {"db": runtime.check_db, "broker": runtime.check_broker}
    if service.uses_redis:
        readiness["redis"] = runtime.check_redis
    app = create_app(
        service.name,
        routers=service.routers,
        direct_routes=service.direct_routes,
        readiness=readiness,
        lifespan=lifespan,
        max_body_bytes=service.max_body_bytes,
        description=service.description,
    )
    app.state.runtime = runtime
    return app


def load_service(name: str) -> ServiceDefinition:
    """`onegrid_<name>.main.SERVICE`, e.g. adapter-urban → onegrid_adapter_urban.main."""
    module_name = f"onegrid_{name.replace('-', '_')}.main"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, module_name.rsplit(".", 1)[0]):
            raise LookupError(f"no service named {name!r} (looked for {module_name})") from exc
        raise
    service = getattr(module, "SERVICE", None)
    if not isinstance(service, ServiceDefinition):
        raise LookupError(f"{module_name} has no SERVICE: ServiceDefinition")
    return service


def run(name: str, *, host: str | None = None, port: int = 8000) -> None:
    """Serve a service until SIGTERM/SIGINT; uvicorn runs the lifespan's graceful stop."""
    import uvicorn

    settings = get_settings()
    service = load_service(name)
    setup_logging(name, settings.telemetry)
    setup_telemetry(name, settings.telemetry)
    app = build_app(service, settings, freeze_heap=True)
    uvicorn.run(
        app,
        host=host or settings.http_host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
