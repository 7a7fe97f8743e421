"""The dispatch service: `SERVICE` for `onegrid run dispatch`; `make_service` for tests
(inject the registry read model, the clock, the timer tick and consumer group names)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.resources import files

from onegrid_common.consumer import Subscription
from onegrid_common.registry_view.service_view import close_service_view, open_service_view
from onegrid_common.service import Runtime, ServiceDefinition
from onegrid_contracts.cases import CaseReported
from onegrid_contracts.catalogue import CASES_EVENTS
from onegrid_dispatch import api, handlers, timers
from onegrid_dispatch.api import operations
from onegrid_dispatch.domain.ports import Clock, Registry, SystemClock
from onegrid_dispatch.registry import RegistryViewAdapter, StaticRegistry
from onegrid_dispatch.settings import DispatchSettings, settings_of
from onegrid_dispatch.workflow import Workflow


async def default_registry(rt: Runtime) -> Registry:
    """A JSON file of registry entities when configured (development without a registry
    service), else the shared read model caught up from the registry topics."""
    path = settings_of(rt).registry_file
    if path:
        return StaticRegistry.from_file(path)
    return RegistryViewAdapter(await open_service_view(rt, "dispatch"))


def make_service(
    *,
    registry: Callable[[], Registry] | None = None,
    clock: Clock | None = None,
    timer_interval_s: float = 1.0,
    run_timers: bool = True,
    max_refusals: int = 3,
    settings: DispatchSettings | None = None,
) -> ServiceDefinition:
    config = settings or DispatchSettings()

    async def start(rt: Runtime) -> None:
        rt.state["settings"] = config
        source = registry() if registry is not None else await default_registry(rt)
        rt.state["workflow"] = Workflow(
            registry=source,
            clock=clock or SystemClock(),
            max_refusals=max_refusals,
            near_boundary_m=config.near_boundary_m,
        )
        rt.state["timer_interval_s"] = timer_interval_s

    def subscriptions(rt: Runtime) -> Sequence[Subscription]:
        workflow = timers.workflow_of(rt)
        reply = handlers.on_reply(workflow)
        # Lanes: each transaction touches only its own case's rows (keyed by case id), so
        # cases are applied concurrently instead of one slow round trip after another.
        return [
            Subscription(
                name="cases",
                topics=(CASES_EVENTS,),
                handlers={CaseReported.ce_type: handlers.on_case_reported(workflow)},
                lanes=config.consumer_lanes,
            ),
            Subscription(
                name="replies",
                pattern=handlers.REPLIES_PATTERN,
                handlers={t.ce_type: reply for t in handlers.REPLY_TYPES},
                lanes=config.consumer_lanes,
            ),
        ]

    return ServiceDefinition(
        name="dispatch",
        migrations=files("onegrid_dispatch.db") / "migrations",
        routers=[api.router, operations.router],
        subscriptions=subscriptions,
        background=[timers.run] if run_timers else [],
        on_startup=[start],
        on_shutdown=[close_service_view],
        description="The case and its tasks: register, route, deadlines, escalate, verify, "
        "close, evaluate.",
    )


SERVICE = make_service()
