"""RegistryView: caught up from the registry topics at start, kept current, tombstones delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
import pytest_asyncio
import shapely

from onegrid_common.registry_view import REGISTRY_TOPICS, RegistryView, RoutingError
from onegrid_common.registry_view.geometry import to_shape
from onegrid_common.settings import Settings
from onegrid_common.testing.registry import publish_entities, publish_tombstones
from onegrid_contracts.cases import Tier
from onegrid_contracts.registry import (
    CoveringUnit,
    Grid,
    GridKind,
    GridLevel,
    IntegrationMode,
    Polygon,
    Priority,
    RoutingRule,
    Staff,
    StaffRole,
    Unit,
    UnitKind,
)
from onegrid_registry.seed.demo_city import DemoCity

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def view(demo_registry: DemoCity, settings: Settings) -> AsyncIterator[RegistryView]:
    started = await RegistryView.start(settings.kafka, topics=REGISTRY_TOPICS, timeout_s=60)
    try:
        yield started
    finally:
        await started.stop()


def centre(grid: Grid) -> tuple[float, float]:
    assert grid.geometry is not None
    point = to_shape(grid.geometry).representative_point()
    assert isinstance(point, shapely.Point)
    return point.x, point.y


def first_grid(city: DemoCity, kind: GridKind = GridKind.BASE) -> Grid:
    return next(g for g in city.at_level(GridLevel.GRID) if g.kind is kind)


async def test_start_returns_caught_up_with_the_whole_demo_city(
    view: RegistryView, demo_registry: DemoCity
) -> None:
    assert view.caught_up
    for grid in demo_registry.grids[:: len(demo_registry.grids) // 20]:
        assert view.grid(grid.code) == grid
    assert {u.code for u in demo_registry.units} <= {u.code for u in view.units()}
    assert len(view.categories()) >= len(demo_registry.categories)
    assert {"urban", "police", "civil"} <= {u.code for u in view.adapter_units()}
    assert all(u.integration_mode is IntegrationMode.ADAPTER for u in view.adapter_units())


async def test_locate_finds_the_grid_and_its_path_up_to_the_city(
    view: RegistryView, demo_registry: DemoCity
) -> None:
    grid = demo_registry.at_level(GridLevel.GRID)[500]
    location = view.locate(*centre(grid))
    assert location is not None
    assert location.grid == grid
    assert [g.level for g in location.path] == list(GridLevel)
    assert view.grid_path(grid.code) == location.path
    assert view.locate(100.0, 10.0) is None


async def test_a_case_of_each_tier_is_routed_to_the_unit_of_that_tier(
    view: RegistryView, demo_registry: DemoCity
) -> None:
    grid = first_grid(demo_registry)
    community, street = grid.code[:12], grid.code[:9]
    cases = {
        "environment.exposed_garbage": (Tier.GRID, f"grid-{grid.code}", ()),
        "security.rental_housing": (Tier.COMMUNITY, f"community-{community}", ("police",)),
        "dispute.wage_arrears": (Tier.STREET, f"street-{street}", (f"community-{community}",)),
        "street_order.street_vending": (Tier.DEPARTMENT, "urban", ()),
    }
    for category, (tier, lead, assisting) in cases.items():
        decision = view.route(category, grid.code, Priority.NORMAL)
        assert (decision.tier, decision.lead_unit_code, decision.assisting_unit_codes) == (
            tier,
            lead,
            assisting,
        ), category
    market = first_grid(demo_registry, GridKind.MARKET)
    assert view.route("safety.fire_hazard", market.code, Priority.NORMAL).lead_unit_code == "fire"
    covering = view.covering_unit(Tier.STREET, grid.code)
    assert covering is not None
    assert covering.code == f"street-{street}"
    with pytest.raises(RoutingError, match="unknown grid"):
        view.route("environment.exposed_garbage", "420599001001001", Priority.NORMAL)


async def test_staff_and_unit_heads_are_looked_up_by_grid_and_unit(
    view: RegistryView, demo_registry: DemoCity
) -> None:
    grid = first_grid(demo_registry)
    team = view.staff_for_grid(grid.code)
    assert {s.role for s in team} >= {
        StaffRole.GRID_HEAD,
        StaffRole.GRID_INSTRUCTOR,
        StaffRole.FULL_TIME_WORKER,
        StaffRole.PART_TIME_WORKER,
    }
    heads = view.staff_for_grid(grid.code, roles=[StaffRole.GRID_HEAD])
    assert len(heads) == 1
    assert view.unit_head(f"grid-{grid.code}") == heads[0]
    urban_head = view.unit_head("urban")
    assert urban_head is not None
    assert urban_head.role is StaffRole.UNIT_HEAD


async def test_the_calendar_comes_from_the_calendar_years(view: RegistryView) -> None:
    calendar = view.calendar()
    assert calendar.has_year(2026)
    assert not calendar.is_working_day(date(2026, 10, 1))  # National Day
    assert not calendar.has_year(2031)


# A test city of its own (Beijing's code) so the demo city on the shared topics is untouched.
SQUARE = [(116.30, 39.90), (116.31, 39.90), (116.31, 39.91), (116.30, 39.91), (116.30, 39.90)]


def beijing_grids() -> list[Grid]:
    codes = ["110100", "110101", "110101001", "110101001001"]
    grids = [
        Grid(code=c, name=f"测试{c}", level=lvl, parent_code=p)
        for c, lvl, p in zip(
            codes,
            [GridLevel.CITY, GridLevel.DISTRICT, GridLevel.STREET, GridLevel.COMMUNITY],
            [None, "110100", "110101", "110101001"],
            strict=True,
        )
    ]
    leaf = Grid(
        code="110101001001001",
        name="测试网格",
        level=GridLevel.GRID,
        parent_code="110101001001",
        geometry=Polygon(coordinates=[SQUARE]),
    )
    return [*grids, leaf]


async def test_changes_after_start_are_seen_and_tombstones_delete(
    view: RegistryView, settings: Settings
) -> None:
    grids = beijing_grids()
    leaf = grids[-1]
    team = Unit(
        code="view-test-grid-team",
        name="测试网格服务团队",
        kind=UnitKind.GRID,
        jurisdiction=[leaf.code],
        integration_mode=IntegrationMode.WORKBENCH,
        head_staff_code="VT-0001",
    )
    head = Staff(code="VT-0001", name="测试", role=StaffRole.GRID_HEAD, grid_codes=[leaf.code])
    rule = RoutingRule(
        code="view-test.garbage",
        category_code="environment.exposed_garbage",
        tier=Tier.GRID,
        lead=CoveringUnit(tier=Tier.GRID),
        district_code="110101",
    )
    assert view.locate(116.305, 39.905) is None
    await publish_entities(settings.kafka, [*grids, team, head, rule])
    await view.wait_for_entity(RoutingRule, rule.code, rule)
    location = view.locate(116.305, 39.905)
    assert location is not None
    assert location.grid == leaf
    assert [g.code for g in location.path] == [g.code for g in grids]
    decision = view.route("environment.exposed_garbage", leaf.code, Priority.NORMAL)
    assert (decision.rule_code, decision.lead_unit_code) == (rule.code, team.code)
    assert view.unit_head(team.code) == head

    renamed = team.model_copy(update={"name": "新名称"})
    await publish_entities(settings.kafka, [renamed])
    await view.wait_for_entity(Unit, team.code, renamed)

    await publish_tombstones(
        settings.kafka, [(Grid, leaf.code), (Unit, team.code), (Staff, head.code)]
    )
    await view.wait_for_entity(Staff, head.code, None)
    await view.wait_for_entity(Grid, leaf.code, None)
    assert view.unit(team.code) is None
    assert view.locate(116.305, 39.905) is None
    assert view.staff_for_grid(leaf.code) == []
    with pytest.raises(RoutingError):
        view.route("environment.exposed_garbage", leaf.code, Priority.NORMAL)


async def test_a_second_view_started_later_sees_the_same_state(
    view: RegistryView, settings: Settings
) -> None:
    other = await RegistryView.start(settings.kafka, topics=REGISTRY_TOPICS, timeout_s=60)
    try:
        assert other.counts() == view.counts()
        assert other.grid("110101001001001") is None  # deleted above, if that test ran first
    finally:
        await other.stop()


async def test_a_view_of_some_topics_reads_only_those_and_names_the_one_it_lacks(
    demo_registry: DemoCity, settings: Settings
) -> None:
    # Each service's view follows only the topics its Kafka ACLs grant (the catalogue's
    # readers; scoring's are the grids): starting must not touch the others, and a lookup
    # beyond them says so.
    scoring = await RegistryView.start(settings.kafka, topics=(Grid.topic,), timeout_s=60)
    try:
        assert set(scoring.counts()) == {Grid.topic}
        grid = first_grid(demo_registry)
        located = scoring.locate(*centre(grid))
        assert located is not None
        assert located.grid.code == grid.code
        with pytest.raises(LookupError, match=r"does not follow registry\.units\.v1"):
            scoring.unit("urban")
    finally:
        await scoring.stop()
