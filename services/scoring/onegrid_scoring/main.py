"""The scoring service: `SERVICE` for `onegrid run scoring`; `make_service` for tests
(inject the clock, the grid directory and the check-in locator)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from zoneinfo import ZoneInfo

from onegrid_common.consumer import Subscription
from onegrid_common.registry_view import RegistryView
from onegrid_common.registry_view.service_view import close_service_view, open_service_view
from onegrid_common.service import Runtime, ServiceDefinition
from onegrid_common.settings import Settings
from onegrid_contracts.catalogue import CASES_EVENTS
from onegrid_contracts.registry import GridLevel
from onegrid_scoring import api, handlers
from onegrid_scoring.scorer import GridDirectory, Scorer
from onegrid_scoring.settings import ScoringSettings

# Returns the grid directory and the check-in locator (grid codes near a point).
RegistryFactory = Callable[[Runtime], Awaitable[tuple[GridDirectory, api.Locator | None]]]


class ViewDirectory:
    """The shared registry read model as scoring's GridDirectory and check-in locator."""

    def __init__(self, view: RegistryView, near_m: float = 50.0) -> None:
        self.view = view
        self.near_m = near_m

    def households(self) -> Mapping[str, int]:
        return {g.code: g.households for g in self.view.grids() if g.level is GridLevel.GRID}

    def locate(self, lon: float, lat: float) -> set[str] | None:
        """Grids at the point or within `near_m` (GPS is not exact); None if the registry
        knows no grids yet (then nothing is checked)."""
        if not self.view.grids():
            return None
        found = self.view.locate(lon, lat, near_m=self.near_m)
        if found is None:
            return set()
        return {found.grid.code, *(n.grid.code for n in found.neighbours)}


async def registry_view(rt: Runtime) -> tuple[GridDirectory, api.Locator | None]:
    directory = ViewDirectory(await open_service_view(rt, "scoring"))
    return directory, directory.locate


def make_scorer(
    shared: Settings, settings: ScoringSettings, clock: Callable[[], datetime]
) -> Scorer:
    return Scorer(
        tz=ZoneInfo(shared.city_timezone),
        rules=settings.rules(),
        weights=settings.all_weights(),
        clock=clock,
        freeze_grace=timedelta(seconds=settings.freeze_grace_s),
        pass_spacing=settings.pass_spacing,
    )


def make_service(
    *,
    registry: RegistryFactory | None = registry_view,
    settings: ScoringSettings | None = None,
    clock: Callable[[], datetime] | None = None,
    group_name: str = "cases",
    topic: str = CASES_EVENTS,
) -> ServiceDefinition:
    config = settings or ScoringSettings()
    now = clock or (lambda: datetime.now(UTC))

    async def start(rt: Runtime) -> None:
        rt.state["scorer"] = make_scorer(rt.settings, config, now)
        rt.state["settings"] = config
        if registry is not None:
            directory, locate = await registry(rt)
            rt.state["directory"], rt.state["locate"] = directory, locate

    async def stop(rt: Runtime) -> None:
        await close_service_view(rt)

    async def score(rt: Runtime) -> None:
        scorer: Scorer = rt.state["scorer"]
        await scorer.run(
            rt.db,
            rt.redis,
            tick_s=config.tick_s,
            refresh=timedelta(seconds=config.refresh_s),
            directory=rt.state.get("directory"),
            households_every=timedelta(seconds=config.households_sync_s),
        )

    def subscriptions(rt: Runtime) -> Sequence[Subscription]:
        return handlers.subscriptions(rt.state["scorer"], name=group_name, topic=topic)

    return ServiceDefinition(
        name="scoring",
        migrations=files("onegrid_scoring.db") / "migrations",
        routers=[api.router],
        subscriptions=subscriptions,
        background=[score],
        on_startup=[start],
        on_shutdown=[stop],
        uses_redis=True,
        description="KPIs of units, grid workers and grids; period snapshots; rankings.",
    )


SERVICE = make_service()
