"""`adapter_service`: a whole adapter service from a department client factory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.resources import files

from fastapi import APIRouter, HTTPException, Request

from onegrid_common.adapters.engine import AdapterEngine, AdapterUnit, DeliveryPolicy
from onegrid_common.service import Runtime, ServiceDefinition

UnitsFactory = Callable[[Runtime], Sequence[AdapterUnit]]
_STATE_KEY = "adapter_engine"


def adapter_service(
    name: str,
    units: UnitsFactory,
    *,
    policy: DeliveryPolicy | None = None,
    routers: Sequence[APIRouter] = (),
    description: str = "",
) -> ServiceDefinition:
    """The ServiceDefinition of an adapter called `name` (e.g. "adapter-urban").

    `units(runtime)` is called at startup (settings are read then, not at import) and
    returns the units served with their department clients. `policy` defaults to the
    `ONEGRID_ADAPTER_*` environment. The service consumes each unit's tasks topic, keeps
    the SDK's delivery tables in its own schema, and replies through its outbox.
    """

    async def start(rt: Runtime) -> None:
        rt.state[_STATE_KEY] = AdapterEngine(
            service=name, units=units(rt), policy=policy or DeliveryPolicy(), pool=rt.db
        )

    async def run_adapter(rt: Runtime) -> None:
        await engine_of(rt).run()

    async def stop(rt: Runtime) -> None:
        engine = rt.state.get(_STATE_KEY)
        if isinstance(engine, AdapterEngine):
            for worker in engine.workers.values():
                await worker.client.aclose()

    return ServiceDefinition(
        name=name,
        migrations=files("onegrid_common.adapters") / "migrations",
        routers=routers,
        subscriptions=lambda rt: [engine_of(rt).subscription()],
        background=[run_adapter],
        on_startup=[start],
        on_shutdown=[stop],
        description=description or f"{name}: the department adapter",
    )


def engine_of(rt: Runtime) -> AdapterEngine:
    engine = rt.state.get(_STATE_KEY)
    if not isinstance(engine, AdapterEngine):
        raise RuntimeError(f"{rt.service.name}: the adapter engine is not started")
    return engine


async def request_engine(request: Request) -> AdapterEngine:
    """FastAPI dependency: the adapter engine of the running service (for callback routes)."""
    runtime = getattr(request.app.state, "runtime", None)
    if not isinstance(runtime, Runtime) or _STATE_KEY not in runtime.state:
        raise HTTPException(503, "the adapter is starting")
    return engine_of(runtime)
