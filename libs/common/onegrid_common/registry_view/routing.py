"""Routing: category + grid + severity → tier, lead unit and assisting units.

One rule set decides every case. Among the active rules of the category that match the
grid's kind, the grid's district and the case's severity, the most specific wins:
a grid-kind rule beats a district rule, a district rule beats a severity-floor rule, which
beats the category's default; `precedence` (higher first) and then the rule code break ties.
Units are chosen by code (FixedUnit) or as the active unit of a tier whose jurisdiction
covers the grid (CoveringUnit); the unit with the narrowest covering jurisdiction wins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from onegrid_common.registry_view.codes import path_codes
from onegrid_contracts.cases import Tier
from onegrid_contracts.registry import (
    PRIORITY_RANK,
    CoveringUnit,
    FixedUnit,
    Grid,
    GridLevel,
    Priority,
    RoutingRule,
    Unit,
)

TIER_ORDER = (Tier.GRID, Tier.COMMUNITY, Tier.STREET, Tier.DEPARTMENT)


def next_tier(tier: Tier) -> Tier | None:
    """One tier up ("nothing goes up unresolved" until the departments); None above them."""
    index = TIER_ORDER.index(tier)
    return TIER_ORDER[index + 1] if index + 1 < len(TIER_ORDER) else None


class RoutingError(LookupError):
    """No rule matches, or a rule names a unit that does not exist or is inactive."""


@dataclass(frozen=True)
class RouteDecision:
    rule_code: str
    tier: Tier
    lead_unit_code: str
    assisting_unit_codes: tuple[str, ...]


def specificity(rule: RoutingRule) -> tuple[int, int]:
    score = (
        (4 if rule.grid_kind is not None else 0)
        + (2 if rule.district_code is not None else 0)
        + (1 if rule.min_severity is not None else 0)
    )
    return score, rule.precedence


class Router:
    """Routing over a snapshot of rules and units. Immutable: rebuild on change."""

    def __init__(self, rules: Iterable[RoutingRule], units: Iterable[Unit]) -> None:
        self._rules: dict[str, list[RoutingRule]] = defaultdict(list)
        for rule in rules:
            if rule.active:
                self._rules[rule.category_code].append(rule)
        for candidates in self._rules.values():
            candidates.sort(key=lambda r: r.code)
            candidates.sort(key=specificity, reverse=True)
        self._units = {unit.code: unit for unit in units}
        # tier → jurisdiction code → active units of that tier holding it
        self._covering: dict[Tier, dict[str, list[Unit]]] = defaultdict(lambda: defaultdict(list))
        for unit in sorted(self._units.values(), key=lambda u: u.code):
            if unit.active:
                for code in unit.jurisdiction:
                    self._covering[unit.kind.tier][code].append(unit)

    def rule_for(self, category_code: str, grid: Grid, severity: Priority) -> RoutingRule:
        """The most specific active rule for this case, or RoutingError."""
        if grid.level is not GridLevel.GRID:
            raise RoutingError(f"cases are routed from a grid-level cell, not {grid.code}")
        district = path_codes(grid.code)[1]
        for rule in self._rules.get(category_code, ()):
            if rule.grid_kind is not None and rule.grid_kind is not grid.kind:
                continue
            if rule.district_code is not None and rule.district_code != district:
                continue
            if (
                rule.min_severity is not None
                and PRIORITY_RANK[severity] < PRIORITY_RANK[rule.min_severity]
            ):
                continue
            return rule
        raise RoutingError(
            f"no active routing rule for category {category_code} in grid {grid.code}"
        )

    def route(self, category_code: str, grid: Grid, severity: Priority) -> RouteDecision:
        rule = self.rule_for(category_code, grid, severity)
        lead = self._resolve(rule.lead, grid, rule.code)
        assisting: list[str] = []
        for selector in rule.assisting:
            code = self._resolve(selector, grid, rule.code)
            if code != lead and code not in assisting:
                assisting.append(code)
        return RouteDecision(rule.code, rule.tier, lead, tuple(assisting))

    def covering_unit(self, tier: Tier, grid_code: str) -> Unit | None:
        """The active unit of `tier` with the narrowest jurisdiction covering the grid."""
        by_code = self._covering.get(tier, {})
        for code in reversed(path_codes(grid_code)):
            units = by_code.get(code)
            if units:
                return units[0]
        return None

    def _resolve(self, selector: FixedUnit | CoveringUnit, grid: Grid, rule_code: str) -> str:
        if isinstance(selector, FixedUnit):
            unit = self._units.get(selector.unit_code)
            if unit is None or not unit.active:
                state = "unknown" if unit is None else "inactive"
                raise RoutingError(f"rule {rule_code} names {state} unit {selector.unit_code}")
            return unit.code
        found = self.covering_unit(selector.tier, grid.code)
        if found is None:
            raise RoutingError(
                f"rule {rule_code}: no active {selector.tier} unit covers grid {grid.code}"
            )
        return found.code
