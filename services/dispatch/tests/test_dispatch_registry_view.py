"""The RegistryView adapter answers dispatch's questions as the static registry does, on the
demo city published to the registry topics."""

from __future__ import annotations

import pytest

from onegrid_common.registry_view import RegistryView
from onegrid_common.settings import Settings
from onegrid_contracts.catalogue import registry_topics_read_by
from onegrid_contracts.registry import GridLevel
from onegrid_dispatch.registry import RegistryViewAdapter, StaticRegistry
from onegrid_registry.seed.demo_city import DemoCity

pytestmark = pytest.mark.integration


async def test_view_adapter_routes_like_the_static_registry(
    demo_registry: DemoCity, settings: Settings
) -> None:
    city = demo_registry
    static = StaticRegistry(
        units=city.units,
        categories=city.categories,
        routes=city.routes,
        staff=city.staff,
        grids=city.grids,
        calendar_years=city.calendars,
    )
    # The topics dispatch itself follows: its ACLs grant no others.
    view = await RegistryView.start(settings.kafka, topics=registry_topics_read_by("dispatch"))
    try:
        adapter = RegistryViewAdapter(view)
        grids = city.at_level(GridLevel.GRID)[:: max(1, len(city.at_level(GridLevel.GRID)) // 5)]
        routed = 0
        for grid in grids:
            assert adapter.grid_path(grid.code)[-1] == grid.code
            assert adapter.verifier(grid.code) == static.verifier(grid.code)
            for category in city.categories:
                info = adapter.category(category.code)
                assert info == static.category(category.code)
                if info is None:
                    continue
                route = adapter.route(category.code, grid.code, info.priority)
                assert route == static.route(category.code, grid.code, info.priority)
                if route is not None:
                    routed += 1
                    mode = adapter.integration_mode(route.lead_unit)
                    assert mode in ("workbench", "adapter")
        assert routed > 0
        staff_codes = {s.code for s in city.staff}
        headed = [u for u in city.units if u.head_staff_code in staff_codes]
        assert headed
        for unit in headed:
            assert adapter.unit_head(unit.code) == unit.head_staff_code
    finally:
        await view.stop()
