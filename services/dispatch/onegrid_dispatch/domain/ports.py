"""What the domain needs from outside, as narrow protocols: the registry and a clock.

The registry read model (`onegrid_common.registry_view.RegistryView`) satisfies `Registry`
through `onegrid_dispatch.registry.RegistryViewAdapter`; tests and offline development use
`onegrid_dispatch.registry.StaticRegistry`. The clock is injected so that tests move time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from onegrid_common.working_time import WorkingCalendar
from onegrid_dispatch.domain.case import CategoryLimits, Route

IntegrationMode = Literal["workbench", "adapter"]


@dataclass(frozen=True)
class CategoryInfo:
    code: str
    name_zh: str
    priority: str  # registry Priority value
    limits: CategoryLimits
    requires_id_number: bool = False  # a service request: the lead unit gets the applicant


@dataclass(frozen=True)
class Verifier:
    """The grid worker who checks a case on site, and the unit their task is filed under."""

    staff_code: str
    unit_code: str


class Registry(Protocol):
    def category(self, code: str) -> CategoryInfo | None: ...

    def route(self, category_code: str, grid_code: str, severity: str) -> Route | None: ...

    def integration_mode(self, unit_code: str) -> IntegrationMode | None: ...

    def unit_head(self, unit_code: str) -> str | None: ...

    def verifier(self, grid_code: str) -> Verifier | None: ...

    def grid_path(self, grid_code: str) -> tuple[str, ...]: ...

    def near_boundary(self, lon: float, lat: float, near_m: float) -> bool: ...

    def calendar(self) -> WorkingCalendar: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that tests move by hand; every runtime sharing it sees the same time."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now
