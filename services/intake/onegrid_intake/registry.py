"""Registry port implementations: the shared live `RegistryView`, and a fixed snapshot
(tests, tools) built from registry entities with the shared locate index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from onegrid_common.registry_view import GridIndex, RegistryView
from onegrid_contracts.registry import Category, Grid
from onegrid_intake.domain.ports import CategoryRule, GridMatch


def category_rule(category: Category) -> CategoryRule:
    return CategoryRule(
        code=category.code,
        keywords=tuple(category.keywords),
        duplicate_radius_m=category.duplicate_radius_m,
        duplicate_window_hours=category.duplicate_window_hours,
        active=category.active,
        requires_id_number=category.requires_id_number,
    )


class SnapshotRegistry:
    """The registry as of one list of grids and categories."""

    def __init__(self, grids: Iterable[Grid], categories: Iterable[Category]) -> None:
        self._index = GridIndex(grids)
        self._categories = {c.code: category_rule(c) for c in categories}
        self._ordered = tuple(self._categories.values())

    def _match(self, code: str) -> GridMatch:
        return GridMatch(code=code, path=tuple(g.code for g in self._index.path(code)))

    def locate(self, lon: float, lat: float) -> GridMatch | None:
        found = self._index.locate(lon, lat)
        return self._match(found.grid.code) if found is not None else None

    def grid(self, code: str) -> GridMatch | None:
        return self._match(code) if self._index.grid(code) is not None else None

    def category(self, code: str) -> CategoryRule | None:
        return self._categories.get(code)

    def categories(self) -> Sequence[CategoryRule]:
        return self._ordered


class RegistryViewAdapter:
    """The shared `RegistryView` (caught up from the registry topics) as intake's port."""

    def __init__(self, view: RegistryView) -> None:
        self._view = view
        self._rules: dict[str, tuple[Category, CategoryRule]] = {}
        self._all: tuple[tuple[int, ...], tuple[CategoryRule, ...]] = ((), ())

    def locate(self, lon: float, lat: float) -> GridMatch | None:
        found = self._view.locate(lon, lat)
        if found is None:
            return None
        return GridMatch(code=found.grid.code, path=tuple(g.code for g in found.path))

    def grid(self, code: str) -> GridMatch | None:
        if self._view.grid(code) is None:
            return None
        return GridMatch(code=code, path=tuple(g.code for g in self._view.grid_path(code)))

    def _rule(self, category: Category) -> CategoryRule:
        # The view replaces an entity object when it changes: identity tells a stale rule.
        cached = self._rules.get(category.code)
        if cached is None or cached[0] is not category:
            cached = (category, category_rule(category))
            self._rules[category.code] = cached
        return cached[1]

    def category(self, code: str) -> CategoryRule | None:
        category = self._view.category(code)
        return self._rule(category) if category is not None else None

    def categories(self) -> Sequence[CategoryRule]:
        current = self._view.categories()
        ids = tuple(id(c) for c in current)
        if ids != self._all[0]:
            self._all = (ids, tuple(self._rule(c) for c in current))
        return self._all[1]
