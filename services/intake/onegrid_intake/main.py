"""The intake service: reports from every channel become cases (DESIGN §2)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files

from onegrid_common import metrics
from onegrid_common.consumer import Subscription
from onegrid_common.group_commit import GroupCommit
from onegrid_common.pii import PiiCipher, parse_keys
from onegrid_common.rate_limits import HitCounter
from onegrid_common.registry_view.service_view import close_service_view, open_service_view
from onegrid_common.service import Runtime, ServiceDefinition
from onegrid_intake import api
from onegrid_intake.domain.ports import Registry
from onegrid_intake.geo import OpenCaseIndex
from onegrid_intake.handlers.consumers import subscriptions
from onegrid_intake.intake import Intake
from onegrid_intake.registry import RegistryViewAdapter
from onegrid_intake.settings import IntakeSettings

RegistryFactory = Callable[[Runtime], Awaitable[Registry]]


async def registry_view(rt: Runtime) -> Registry:
    """The shared registry read model, caught up from the registry topics, kept current."""
    return RegistryViewAdapter(await open_service_view(rt, "intake"))


def reporter_key(rt: Runtime) -> bytes:
    # Reporter references are keyed hashes: stable per person, useless without the secret.
    spec = rt.settings.security.pii_keys.get_secret_value()
    first = next(iter(parse_keys(spec).values()))
    return hashlib.sha256(b"onegrid.intake.reporter-id:" + first).digest()


def make_service(
    registry_factory: RegistryFactory | None = None, settings: IntakeSettings | None = None
) -> ServiceDefinition:
    """The service definition; tests may pass a registry and settings of their own."""
    settings = settings or IntakeSettings()
    factory = registry_factory or registry_view

    async def start(rt: Runtime) -> None:
        assert rt.redis is not None
        registry = await factory(rt)
        index = OpenCaseIndex(rt.redis, rt.db, settings.geo_rebuild_horizon_hours)
        # Redis may have lost the index while intake was down: rebuild from PostgreSQL.
        await rt.redis.delete("intake:geo:ready")
        await index.rebuild()
        rt.state["settings"] = settings
        rt.state["registry"] = registry
        rt.state["index"] = index
        intake = Intake(
            registry=registry,
            cipher=PiiCipher.from_settings(rt.settings.security),
            reporter_key=reporter_key(rt),
            index=index,
            city_code=rt.settings.city_code,
            timezone=rt.settings.city_timezone,
            min_confidence=settings.min_category_confidence,
        )
        rt.state["intake"] = intake
        batch_size = metrics.GROUP_COMMIT_BATCH.labels("intake", "reports")
        reports = GroupCommit(
            functools.partial(intake.accept_many, rt.db),
            name="intake:reports",
            max_batch=settings.batch_max,
            writers=settings.batch_writers,
            on_batch=batch_size.observe,
        )
        reports.start()
        rt.state["reports"] = reports
        hits = HitCounter(rt.redis, settings.rate_window_s, name="intake:rate-limits")
        hits.start()
        rt.state["hits"] = hits

    async def stop(rt: Runtime) -> None:
        # Requests still waiting are written before the pool closes.
        for writer in ("reports", "hits"):
            started = rt.state.pop(writer, None)
            if started is not None:
                await started.close()
        await close_service_view(rt)

    def subscribe(rt: Runtime) -> Sequence[Subscription]:
        return subscriptions(rt.state["intake"], rt.state["index"])

    return ServiceDefinition(
        name="intake",
        migrations=files("onegrid_intake.db") / "migrations",
        routers=[api.router],
        direct_routes=[api.SUBMIT_REPORT],
        subscriptions=subscribe,
        on_startup=[start],
        on_shutdown=[stop],
        uses_redis=True,
        max_body_bytes=settings.max_body_bytes,
        description="Reports from every channel become cases: located, categorised, "
        "de-duplicated, PII encrypted; CaseReported on cases.events.v1.",
    )


SERVICE = make_service()
