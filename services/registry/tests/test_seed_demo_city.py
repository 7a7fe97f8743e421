"""Invariants of the demo city: counts, determinism, a clean tiling, consistent references."""

from collections import Counter, defaultdict
from datetime import date

import pytest
import shapely

from onegrid_common.registry_view.geometry import LocalProjection, to_shape
from onegrid_common.registry_view.locate import GridIndex
from onegrid_common.registry_view.routing import Router
from onegrid_contracts.cases import Tier
from onegrid_contracts.registry import (
    CalendarSource,
    FixedUnit,
    Grid,
    GridKind,
    GridLevel,
    IntegrationMode,
    LimitUnit,
    Priority,
    StaffRole,
    UnitKind,
)
from onegrid_registry.domain.validation import validate_grid_import
from onegrid_registry.seed.demo_city import DemoCity, build_demo_city


@pytest.fixture(scope="module")
def city() -> DemoCity:
    return build_demo_city(seed=1)


def test_the_city_has_the_scale_of_yichang_centre(city: DemoCity) -> None:
    counts = Counter(g.level for g in city.grids)
    assert counts == {
        GridLevel.CITY: 1,
        GridLevel.DISTRICT: 5,
        GridLevel.STREET: 20,
        GridLevel.COMMUNITY: 121,
        GridLevel.GRID: 1110,
    }
    base = [g for g in city.at_level(GridLevel.GRID) if g.kind is GridKind.BASE]
    assert 280 <= sum(g.households for g in base) / len(base) <= 320
    assert {g.code for g in city.at_level(GridLevel.DISTRICT)} == {
        "420502",
        "420503",
        "420504",
        "420505",
        "420506",
    }


def test_the_city_lies_at_yichang(city: DemoCity) -> None:
    assert city.grids[0].geometry is not None
    west, south, east, north = to_shape(city.grids[0].geometry).bounds
    assert 111.0 < west < 111.3 < east < 111.6
    assert 30.5 < south < 30.7 < north < 30.9


def test_the_same_seed_gives_the_same_city_and_another_seed_a_different_one(city: DemoCity) -> None:
    again = build_demo_city(seed=1)
    assert again == city
    other = build_demo_city(seed=2)
    assert [g.geometry for g in other.grids] != [g.geometry for g in city.grids]
    assert [s.name for s in other.staff] != [s.name for s in city.staff]


def test_children_tile_their_parent_without_overlap_or_gap(city: DemoCity) -> None:
    projection = LocalProjection(111.34, 30.70)
    shapes = {g.code: projection.project(to_shape(g.geometry)) for g in city.grids if g.geometry}
    children: dict[str, list[str]] = defaultdict(list)
    for grid in city.grids:
        if grid.parent_code is not None:
            children[grid.parent_code].append(grid.code)
    for parent, codes in children.items():
        parts = [shapes[c] for c in codes]
        assert sum(p.area for p in parts) == pytest.approx(shapes[parent].area, rel=1e-6), parent
        assert shapely.union_all(parts).symmetric_difference(shapes[parent]).area < 1.0, parent


def test_the_whole_city_passes_the_import_validation(city: DemoCity) -> None:
    assert validate_grid_import(city.grids, {}, overlap_tolerance_m2=0.0) == []


def test_every_point_of_the_city_is_in_exactly_one_grid(city: DemoCity) -> None:
    index = GridIndex(city.grids)
    for building in city.buildings[::7]:
        location = index.locate(*building.point.coordinates)
        assert location is not None
        assert location.grid.code == building.grid_code
        assert [g.level for g in location.path] == list(GridLevel)


def test_dedicated_grids_of_every_kind_are_among_the_grids(city: DemoCity) -> None:
    kinds = Counter(g.kind for g in city.at_level(GridLevel.GRID))
    assert set(kinds) == set(GridKind)
    assert kinds[GridKind.INDUSTRIAL_PARK] == 1
    park = next(g for g in city.grids if g.kind is GridKind.INDUSTRIAL_PARK)
    assert park.code.startswith("420505")  # 猇亭区


def test_every_grid_has_a_full_team(city: DemoCity) -> None:
    roles: dict[str, Counter[StaffRole]] = defaultdict(Counter)
    for person in city.staff:
        for code in person.grid_codes:
            roles[code][person.role] += 1
    for grid in city.at_level(GridLevel.GRID):
        team = roles[grid.code]
        assert team[StaffRole.GRID_HEAD] == 1
        assert team[StaffRole.GRID_INSTRUCTOR] == 1
        assert team[StaffRole.FULL_TIME_WORKER] == 1
        assert 1 <= team[StaffRole.PART_TIME_WORKER] <= 3
        assert team[StaffRole.INFORMATION_OFFICER] == 1
    assert len({s.code for s in city.staff}) == len(city.staff)
    assert len({s.phone for s in city.staff}) == len(city.staff)
    assert all(2 <= len(s.name) <= 3 for s in city.staff)


def test_units_cover_departments_streets_communities_and_grids(city: DemoCity) -> None:
    kinds = Counter(u.kind for u in city.units)
    assert kinds == {
        UnitKind.DEPARTMENT: 9,
        UnitKind.STREET_OFFICE: 20,
        UnitKind.COMMUNITY_OFFICE: 121,
        UnitKind.GRID: 1110,
    }
    modes = {u.code: u.integration_mode for u in city.units if u.kind is UnitKind.DEPARTMENT}
    assert {c for c, m in modes.items() if m is IntegrationMode.ADAPTER} == {
        "urban",
        "police",
        "civil",
        "housing",  # through adapter-webhook
    }
    assert len({u.code for u in city.units}) == len(city.units)


def test_every_reference_names_an_existing_entity(city: DemoCity) -> None:
    grid_codes = {g.code for g in city.grids}
    unit_codes = {u.code for u in city.units}
    staff_codes = {s.code for s in city.staff}
    assert all(g.parent_code in grid_codes for g in city.grids if g.parent_code)
    assert all(b.grid_code in grid_codes for b in city.buildings)
    assert all(set(u.jurisdiction) <= grid_codes for u in city.units)
    assert all(u.head_staff_code in staff_codes for u in city.units)
    assert all(set(s.grid_codes) <= grid_codes and s.unit_code in unit_codes for s in city.staff)
    category_codes = {c.code for c in city.categories}
    for rule in city.routes:
        assert rule.category_code in category_codes
        for selector in [rule.lead, *rule.assisting]:
            if isinstance(selector, FixedUnit):
                assert selector.unit_code in unit_codes


def test_the_taxonomy_covers_the_required_majors_with_realistic_limits(city: DemoCity) -> None:
    assert len(city.categories) >= 40
    majors = {c.major_name_zh for c in city.categories}
    assert majors >= {
        "市容环境",
        "街面秩序",
        "宣传广告",
        "施工管理",
        "突发事件",
        "公用设施",
        "道路交通",
        "园林绿化",
        "矛盾纠纷",
        "治安隐患",
        "安全生产与消防隐患",
        "特殊人群服务",
    }
    by_name = {c.name_zh: c for c in city.categories}
    for service in ("低保申请", "临时救助", "高龄补贴申领", "残疾人补贴申领"):
        assert by_name[service].requires_id_number
    for category in city.categories:
        assert category.keywords
        if category.priority is Priority.URGENT:
            assert category.response_limit.unit is LimitUnit.MINUTES
            assert category.response_limit.amount <= 30


def test_every_category_routes_in_every_district_and_grid_kind(city: DemoCity) -> None:
    router = Router(city.routes, city.units)
    grids: dict[tuple[str, GridKind], Grid] = {}
    for grid in city.at_level(GridLevel.GRID):
        grids.setdefault((grid.code[:6], grid.kind), grid)
    tiers: Counter[Tier] = Counter()
    for category in city.categories:
        for grid in grids.values():
            for severity in Priority:
                decision = router.route(category.code, grid, severity)
                tiers[decision.tier] += 1
    assert set(tiers) == set(Tier)


def test_routes_a_market_fire_hazard_to_the_fire_department(city: DemoCity) -> None:
    router = Router(city.routes, city.units)
    market: Grid = next(g for g in city.grids if g.kind is GridKind.MARKET)
    decision = router.route("safety.fire_hazard", market, Priority.HIGH)
    assert decision.lead_unit_code == "fire"
    assert decision.assisting_unit_codes == (f"community-{market.code[:12]}",)


def test_calendar_years_are_seeded_from_the_package(city: DemoCity) -> None:
    years = {c.year: c for c in city.calendars}
    assert min(years) == 2004
    assert max(years) == 2026
    assert all(c.source is CalendarSource.SEEDED for c in city.calendars)
    assert date(2026, 10, 1) in years[2026].holidays
    assert years[2025].workdays  # adjusted working days exist every year
