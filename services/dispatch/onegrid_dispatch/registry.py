"""Registry read models that satisfy `domain.ports.Registry`.

`StaticRegistry` holds registry entities (the contract models of `registry.*` topics) in
memory: tests build it from a few entities, and `onegrid run dispatch` can load it from a
JSON file (ONEGRID_DISPATCH_REGISTRY_FILE) when no registry service is running.
`RegistryViewAdapter` wraps the shared read model caught up from the `registry.*` topics
(the default in production). Routing
follows the registry's rule: the most specific matching rule wins (grid kind > district >
severity floor, then precedence, then code); a covering unit is the active unit of the
tier with the narrowest jurisdiction over the grid.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from onegrid_common.registry_view import GridIndex, RegistryView, RoutingError
from onegrid_common.working_time import (
    WorkingCalendar,
    WorkingTimeUnit,
    YearCalendar,
    seed_years_from_chinese_calendar,
)
from onegrid_contracts.cases import Tier
from onegrid_contracts.registry import (
    PRIORITY_RANK,
    CalendarYear,
    Category,
    CoveringUnit,
    FixedUnit,
    Grid,
    Priority,
    RoutingRule,
    Staff,
    StaffRole,
    Unit,
    UnitKind,
)
from onegrid_dispatch.domain.case import CategoryLimits, Route
from onegrid_dispatch.domain.deadlines import TimeLimit
from onegrid_dispatch.domain.ports import CategoryInfo, IntegrationMode, Verifier

# Who may check a case on site, in order of preference.
_CHECKERS = (StaffRole.FULL_TIME_WORKER, StaffRole.GRID_HEAD, StaffRole.PART_TIME_WORKER)

_KIND_OF_TIER = {
    Tier.GRID: UnitKind.GRID,
    Tier.COMMUNITY: UnitKind.COMMUNITY_OFFICE,
    Tier.STREET: UnitKind.STREET_OFFICE,
    Tier.DEPARTMENT: UnitKind.DEPARTMENT,
}


def grid_path_of(grid_code: str) -> tuple[str, ...]:
    """City, district, street, community, grid codes down to `grid_code` (codes nest)."""
    if len(grid_code) < 6 or not grid_code.isdigit():
        return (grid_code,)
    city = grid_code[:4] + "00"
    path = [city] if city != grid_code[:6] else []
    path += [grid_code[:n] for n in range(6, len(grid_code) + 1, 3)]
    return tuple(path)


def _limit(limit: object) -> TimeLimit:
    amount = getattr(limit, "amount")  # noqa: B009 - registry TimeLimit
    unit = getattr(limit, "unit")  # noqa: B009
    return TimeLimit(int(amount), WorkingTimeUnit(str(unit)))


class StaticRegistry:
    def __init__(
        self,
        *,
        units: Iterable[Unit] = (),
        categories: Iterable[Category] = (),
        routes: Iterable[RoutingRule] = (),
        staff: Iterable[Staff] = (),
        grids: Iterable[Grid] = (),
        calendar_years: Iterable[CalendarYear] = (),
    ) -> None:
        self.units = {u.code: u for u in units}
        self.categories = {c.code: c for c in categories}
        self.routes = list(routes)
        self.staff = list(staff)
        self.grids = {g.code: g for g in grids}
        years = {
            y.year: YearCalendar(y.year, frozenset(y.holidays), frozenset(y.workdays))
            for y in calendar_years
        }
        self._calendar = WorkingCalendar(years or seed_years_from_chinese_calendar())
        self._index: GridIndex | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> StaticRegistry:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            units=[Unit.model_validate(u) for u in data.get("units", [])],
            categories=[Category.model_validate(c) for c in data.get("categories", [])],
            routes=[RoutingRule.model_validate(r) for r in data.get("routes", [])],
            staff=[Staff.model_validate(s) for s in data.get("staff", [])],
            grids=[Grid.model_validate(g) for g in data.get("grids", [])],
            calendar_years=[CalendarYear.model_validate(y) for y in data.get("calendars", [])],
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "units": [u.model_dump(mode="json") for u in self.units.values()],
                "categories": [c.model_dump(mode="json") for c in self.categories.values()],
                "routes": [r.model_dump(mode="json") for r in self.routes],
                "staff": [s.model_dump(mode="json") for s in self.staff],
                "grids": [g.model_dump(mode="json") for g in self.grids.values()],
            },
            ensure_ascii=False,
        )

    # --- ports.Registry -------------------------------------------------------------------

    def category(self, code: str) -> CategoryInfo | None:
        found = self.categories.get(code)
        if found is None or not found.active:
            return None
        limits = CategoryLimits(_limit(found.response_limit), _limit(found.resolution_limit))
        return CategoryInfo(
            found.code,
            found.name_zh,
            found.priority.value,
            limits,
            requires_id_number=found.requires_id_number,
        )

    def grid_path(self, grid_code: str) -> tuple[str, ...]:
        return grid_path_of(grid_code)

    def near_boundary(self, lon: float, lat: float, near_m: float) -> bool:
        if not any(g.geometry is not None for g in self.grids.values()):
            return False
        if self._index is None:
            self._index = GridIndex(self.grids.values())
        found = self._index.locate(lon, lat, near_m=near_m)
        return found is not None and bool(found.neighbours)

    def _covering(self, tier: Tier, grid_code: str) -> str | None:
        path = set(self.grid_path(grid_code))
        best: tuple[int, str] | None = None
        for unit in self.units.values():
            if not unit.active or unit.kind is not _KIND_OF_TIER[tier]:
                continue
            for code in unit.jurisdiction:
                if code in path and (best is None or len(code) > best[0]):
                    best = (len(code), unit.code)
        return best[1] if best else None

    def _resolve(self, selector: FixedUnit | CoveringUnit, grid_code: str) -> str | None:
        if isinstance(selector, FixedUnit):
            unit = self.units.get(selector.unit_code)
            return unit.code if unit is not None and unit.active else None
        return self._covering(selector.tier, grid_code)

    def route(self, category_code: str, grid_code: str, severity: str) -> Route | None:
        path = self.grid_path(grid_code)
        grid = self.grids.get(grid_code)
        rank = PRIORITY_RANK.get(Priority(severity), 1) if severity else 1
        candidates = [
            r
            for r in self.routes
            if r.active
            and r.category_code == category_code
            and (r.district_code is None or r.district_code in path)
            and (r.grid_kind is None or (grid is not None and grid.kind == r.grid_kind))
            and (r.min_severity is None or PRIORITY_RANK[r.min_severity] <= rank)
        ]
        if not candidates:
            return None

        def order(r: RoutingRule) -> tuple[int, int, str]:
            score = (
                (4 if r.grid_kind is not None else 0)
                + (2 if r.district_code is not None else 0)
                + (1 if r.min_severity is not None else 0)
            )
            return (-score, -r.precedence, r.code)

        rule = sorted(candidates, key=order)[0]
        lead = self._resolve(rule.lead, grid_code)
        if lead is None:
            return None
        assisting = [a for s in rule.assisting if (a := self._resolve(s, grid_code)) is not None]
        return Route(
            tier=rule.tier,
            lead_unit=lead,
            assisting_units=tuple(dict.fromkeys(a for a in assisting if a != lead)),
            route_code=rule.code,
        )

    def integration_mode(self, unit_code: str) -> IntegrationMode | None:
        unit = self.units.get(unit_code)
        if unit is None:
            return None
        return "adapter" if unit.integration_mode.value == "adapter" else "workbench"

    def unit_head(self, unit_code: str) -> str | None:
        unit = self.units.get(unit_code)
        return unit.head_staff_code if unit is not None else None

    def verifier(self, grid_code: str) -> Verifier | None:
        checkers = [s for s in self.staff if s.active and s.role in _CHECKERS]
        checkers.sort(key=lambda s: _CHECKERS.index(s.role))
        for person in checkers:
            if grid_code in person.grid_codes:
                unit = person.unit_code or self._covering(Tier.GRID, grid_code)
                if unit is None:
                    unit = self._covering(Tier.COMMUNITY, grid_code)
                if unit is not None:
                    return Verifier(person.code, unit)
        return None

    def calendar(self) -> WorkingCalendar:
        return self._calendar


class RegistryViewAdapter:
    """`ports.Registry` over the shared read model `onegrid_common.registry_view.RegistryView`."""

    def __init__(self, view: RegistryView) -> None:
        self.view = view

    def category(self, code: str) -> CategoryInfo | None:
        found = self.view.category(code)
        if found is None or not found.active:
            return None
        limits = CategoryLimits(_limit(found.response_limit), _limit(found.resolution_limit))
        return CategoryInfo(
            found.code,
            found.name_zh,
            found.priority.value,
            limits,
            requires_id_number=found.requires_id_number,
        )

    def route(self, category_code: str, grid_code: str, severity: str) -> Route | None:
        try:
            decision = self.view.route(category_code, grid_code, Priority(severity))
        except (RoutingError, ValueError):
            return None
        return Route(
            tier=decision.tier,
            lead_unit=decision.lead_unit_code,
            assisting_units=decision.assisting_unit_codes,
            route_code=decision.rule_code,
        )

    def integration_mode(self, unit_code: str) -> IntegrationMode | None:
        unit = self.view.unit(unit_code)
        if unit is None:
            return None
        return "adapter" if unit.integration_mode.value == "adapter" else "workbench"

    def unit_head(self, unit_code: str) -> str | None:
        head = self.view.unit_head(unit_code)
        return head.code if head is not None else None

    def verifier(self, grid_code: str) -> Verifier | None:
        workers = self.view.staff_for_grid(grid_code, _CHECKERS)
        workers.sort(key=lambda s: _CHECKERS.index(s.role))
        for person in workers:
            unit = person.unit_code
            if unit is None:
                covering = self.view.covering_unit(Tier.GRID, grid_code) or (
                    self.view.covering_unit(Tier.COMMUNITY, grid_code)
                )
                unit = covering.code if covering is not None else None
            if unit is not None:
                return Verifier(person.code, unit)
        return None

    def grid_path(self, grid_code: str) -> tuple[str, ...]:
        return tuple(g.code for g in self.view.grid_path(grid_code)) or grid_path_of(grid_code)

    def near_boundary(self, lon: float, lat: float, near_m: float) -> bool:
        found = self.view.locate(lon, lat, near_m=near_m)
        return found is not None and bool(found.neighbours)

    def calendar(self) -> WorkingCalendar:
        return self.view.calendar()
