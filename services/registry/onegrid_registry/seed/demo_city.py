"""The demo city: Yichang's centre (宜昌城区) at its real coordinates, generated deterministically.

Scale from the source documents: "中心城区121个社区划分为1110个网格 ... 每个网格涵盖约300户居民,
构建起市、区、街道、社区、网格'五级'管理体系"; teams are "1+1+1+N" (网格长, 网格指导员,
专职网格员, 兼职网格员). The city rectangle is cut into its five districts roughly where they
lie (夷陵 north, 西陵 and 伍家岗 in the middle, 点军 and 猇亭 south), and each cell is cut
again into rows of cells with jittered edges, so children tile their parent exactly: no
overlaps, no gaps, shared edges bit-identical.

Handling units: every city department is a unit (urban, police and civil run their own
systems and are reached through their native adapters; housing's system through the
generic webhook adapter; the other five use onegrid's workbench until they get an
adapter: switching is an edit of `integration_mode`), every
street office and community office is a workbench unit, and every grid is a unit of kind
grid (its grid head's team), so the grid micro-loop routes like every other tier.

Pure: returns model instances; writing them to the database is the caller's job.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from onegrid_common.registry_view.codes import build_grid_code, building_code
from onegrid_contracts.registry import (
    Building,
    CalendarYear,
    Category,
    Grid,
    GridKind,
    GridLevel,
    IntegrationMode,
    Point,
    Polygon,
    RoutingRule,
    Staff,
    StaffRole,
    Unit,
    UnitKind,
)
from onegrid_registry.seed import names
from onegrid_registry.seed.calendar import calendar_years
from onegrid_registry.seed.taxonomy import categories, routing_rules

CITY_CODE = "420500"
CITY_NAME = "宜昌市"
COMMUNITY_COUNT = 121
GRID_COUNT = 1110

Bounds = tuple[float, float, float, float]  # west, south, east, north (degrees)


@dataclass(frozen=True)
class _DistrictPlan:
    code: str
    name: str
    bounds: Bounds
    streets: tuple[str, ...]


DISTRICTS: tuple[_DistrictPlan, ...] = (
    _DistrictPlan(
        "420502",
        "西陵区",
        (111.22, 30.67, 111.34, 30.74),
        ("西陵街道", "学院街道", "云集街道", "西坝街道", "葛洲坝街道", "夜明珠街道"),
    ),
    _DistrictPlan(
        "420503",
        "伍家岗区",
        (111.34, 30.67, 111.46, 30.74),
        ("大公桥街道", "万寿桥街道", "宝塔河街道", "伍家乡"),
    ),
    _DistrictPlan(
        "420504", "点军区", (111.22, 30.60, 111.34, 30.67), ("点军街道", "桥边镇", "艾家镇")
    ),
    _DistrictPlan(
        "420505", "猇亭区", (111.34, 30.60, 111.46, 30.67), ("古老背街道", "云池街道", "虎牙街道")
    ),
    _DistrictPlan(
        "420506",
        "夷陵区",
        (111.22, 30.74, 111.46, 30.80),
        ("小溪塔街道", "龙泉镇", "鸦鹊岭镇", "分乡镇"),
    ),
)
CITY_BOUNDS: Bounds = (111.22, 30.60, 111.46, 30.80)

# code, name, integration mode, office phone
DEPARTMENTS: tuple[tuple[str, str, IntegrationMode], ...] = (
    ("urban", "宜昌市城市管理执法委员会", IntegrationMode.ADAPTER),
    ("police", "宜昌市公安局", IntegrationMode.ADAPTER),
    ("civil", "宜昌市民政局", IntegrationMode.ADAPTER),
    ("housing", "宜昌市住房和城乡建设局", IntegrationMode.ADAPTER),
    ("emergency", "宜昌市应急管理局", IntegrationMode.WORKBENCH),
    ("market", "宜昌市市场监督管理局", IntegrationMode.WORKBENCH),
    ("health", "宜昌市卫生健康委员会", IntegrationMode.WORKBENCH),
    ("fire", "宜昌市消防救援支队", IntegrationMode.WORKBENCH),
    ("utilities", "宜昌市水电气公共服务中心", IntegrationMode.WORKBENCH),
)


@dataclass(frozen=True)
class DemoCity:
    grids: list[Grid]  # every level, city first, parents before children
    buildings: list[Building] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    staff: list[Staff] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    routes: list[RoutingRule] = field(default_factory=list)
    calendars: list[CalendarYear] = field(default_factory=list)

    def at_level(self, level: GridLevel) -> list[Grid]:
        return [grid for grid in self.grids if grid.level is level]


# --- geometry ---------------------------------------------------------------------------


def _rectangle(bounds: Bounds) -> Polygon:
    west, south, east, north = bounds
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    return Polygon(coordinates=[ring])


def _cuts(start: float, end: float, weights: list[float]) -> list[float]:
    """Edges splitting [start, end] in proportion to weights; the ends are exact."""
    total = sum(weights)
    edges = [start]
    running = 0.0
    for weight in weights[:-1]:
        running += weight
        edges.append(round(start + (end - start) * running / total, 7))
    edges.append(end)
    return edges


def _spread(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` near-equal counts, the remainder given to random parts."""
    counts = [total // parts] * parts
    for index in rng.sample(range(parts), total % parts):
        counts[index] += 1
    return counts


def _tile(bounds: Bounds, count: int, rng: random.Random) -> list[Bounds]:
    """`count` cells tiling the rectangle: rows (north to south) of cells (west to east),
    each edge jittered so the cells look like city blocks rather than a chessboard."""
    west, south, east, north = bounds
    width_m = (east - west) * 111_320 * math.cos(math.radians((south + north) / 2))
    height_m = (north - south) * 110_574
    rows = max(1, min(count, round(math.sqrt(count * height_m / width_m))))
    per_row = _spread(count, rows, rng)
    row_edges = _cuts(north, south, [n * rng.uniform(0.85, 1.15) for n in per_row])
    cells: list[Bounds] = []
    for row, cells_in_row in enumerate(per_row):
        top, bottom = row_edges[row], row_edges[row + 1]
        col_edges = _cuts(west, east, [rng.uniform(0.7, 1.3) for _ in range(cells_in_row)])
        for col in range(cells_in_row):
            cells.append((col_edges[col], bottom, col_edges[col + 1], top))
    return cells


# --- grids ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    code: str
    name: str
    bounds: Bounds


def _community_names(rng: random.Random) -> Iterator[str]:
    words = [a + b for a in names.PLACE_WORDS for b in names.PLACE_ENDINGS]
    rng.shuffle(words)
    return iter(words)


def build_grid_hierarchy(
    seed: int = 1, *, grid_count: int = GRID_COUNT, community_count: int = COMMUNITY_COUNT
) -> list[Grid]:
    """The city's grid hierarchy alone (every level, parents first). Deterministic for a seed."""
    rng = random.Random(seed)
    street_total = sum(len(d.streets) for d in DISTRICTS)
    communities_per_street = _spread(community_count, street_total, rng)
    grids_per_community = _spread(grid_count, community_count, rng)
    community_words = _community_names(rng)

    city = Grid(
        code=CITY_CODE,
        name=CITY_NAME,
        level=GridLevel.CITY,
        geometry=_rectangle(CITY_BOUNDS),
    )
    upper: list[Grid] = []
    leaves: list[Grid] = []
    street_index = community_index = 0
    for district in DISTRICTS:
        district_cells = []
        street_bounds = _tile(district.bounds, len(district.streets), rng)
        for street_no, (street_name, s_bounds) in enumerate(
            zip(district.streets, street_bounds, strict=True), start=1
        ):
            street_code = build_grid_code(district.code, street_no)
            rural = street_name.endswith(("镇", "乡"))
            n_communities = communities_per_street[street_index]
            street_index += 1
            street_children = []
            for community_no, c_bounds in enumerate(_tile(s_bounds, n_communities, rng), start=1):
                community_code = build_grid_code(district.code, street_no, community_no)
                community_name = next(community_words) + ("村" if rural else "社区")
                n_grids = grids_per_community[community_index]
                community_index += 1
                grid_cells = _tile(c_bounds, n_grids, rng)
                community_leaves = [
                    _leaf(
                        _Cell(
                            build_grid_code(district.code, street_no, community_no, grid_no),
                            f"{community_name}第{grid_no}网格",
                            g_bounds,
                        ),
                        community_code,
                        rng,
                    )
                    for grid_no, g_bounds in enumerate(grid_cells, start=1)
                ]
                leaves.extend(community_leaves)
                street_children.append(
                    _upper(
                        _Cell(community_code, community_name, c_bounds),
                        GridLevel.COMMUNITY,
                        street_code,
                        community_leaves,
                    )
                )
            district_cells.append(
                _upper(
                    _Cell(street_code, street_name, s_bounds),
                    GridLevel.STREET,
                    district.code,
                    street_children,
                )
            )
            upper.extend(street_children)
        upper.append(
            _upper(
                _Cell(district.code, district.name, district.bounds),
                GridLevel.DISTRICT,
                CITY_CODE,
                district_cells,
            )
        )
        upper.extend(district_cells)
    leaves = _dedicate(leaves, rng)
    city = city.model_copy(
        update={
            "households": sum(g.households for g in leaves),
            "residents": sum(g.residents for g in leaves),
        }
    )
    order = {GridLevel.DISTRICT: 1, GridLevel.STREET: 2, GridLevel.COMMUNITY: 3}
    upper.sort(key=lambda g: (order[g.level], g.code))
    return [city, *upper, *sorted(leaves, key=lambda g: g.code)]


def _leaf(cell: _Cell, parent: str, rng: random.Random) -> Grid:
    households = rng.randint(240, 360)
    return Grid(
        code=cell.code,
        name=cell.name,
        level=GridLevel.GRID,
        parent_code=parent,
        geometry=_rectangle(cell.bounds),
        households=households,
        residents=round(households * rng.uniform(2.5, 3.1)),
    )


def _upper(cell: _Cell, level: GridLevel, parent: str, children: list[Grid]) -> Grid:
    return Grid(
        code=cell.code,
        name=cell.name,
        level=level,
        parent_code=parent,
        geometry=_rectangle(cell.bounds),
        households=sum(c.households for c in children),
        residents=sum(c.residents for c in children),
    )


def _dedicate(leaves: list[Grid], rng: random.Random) -> list[Grid]:
    """Turn some base grids into dedicated grids (专属网格) named after their institution."""
    by_district: dict[str, list[int]] = {}
    for index, grid in enumerate(leaves):
        by_district.setdefault(grid.code[:6], []).append(index)
    plan: list[tuple[GridKind, str, list[int]]] = [
        (GridKind.INDUSTRIAL_PARK, names.INDUSTRIAL_PARK, by_district["420505"]),
        *((GridKind.SCENIC_AREA, name, by_district[d]) for d, name in names.SCENIC_AREAS),
        *((GridKind.SCHOOL, name, list(range(len(leaves)))) for name in names.SCHOOLS),
        *((GridKind.HOSPITAL, name, list(range(len(leaves)))) for name in names.HOSPITALS),
        *((GridKind.MARKET, name, list(range(len(leaves)))) for name in names.MARKETS),
    ]
    district_of = {d.name: d.code for d in DISTRICTS}
    taken: set[int] = set()
    result = list(leaves)
    for kind, institution, candidates in plan:
        named_district = district_of.get(institution[:3])  # 西陵区实验小学 lies in 西陵区
        if named_district is not None:
            candidates = by_district[named_district]
        index = rng.choice([i for i in candidates if i not in taken])
        taken.add(index)
        grid = leaves[index]
        households = 0 if kind is not GridKind.MARKET else rng.randint(20, 80)
        result[index] = grid.model_copy(
            update={
                "kind": kind,
                "name": f"{institution}专属网格",
                "households": households,
                "residents": round(households * 2.8),
            }
        )
    return result


# --- people, units, buildings -------------------------------------------------------------


class _People:
    """Deterministic staff codes, Chinese names and unique public phones."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sequence = 0

    def next_code(self) -> str:
        self.sequence += 1
        return f"S{self.sequence:07d}"

    def name(self) -> str:
        surnames = names.SURNAMES
        # Favour common surnames: a triangular draw towards the head of the list.
        surname = surnames[int(self.rng.triangular(0, len(surnames), 0))]
        given_count = 1 if self.rng.random() < 0.3 else 2
        given = "".join(self.rng.choices(names.GIVEN_NAME_CHARACTERS, k=given_count))
        return surname + given

    def mobile(self) -> str:
        prefix = self.rng.choice(("133", "135", "137", "139", "150", "152", "158", "177", "186"))
        return f"{prefix}{self.sequence:08d}"

    def person(self, role: StaffRole, grid_codes: list[str], unit_code: str | None) -> Staff:
        code = self.next_code()
        return Staff(
            code=code,
            name=self.name(),
            role=role,
            grid_codes=grid_codes,
            unit_code=unit_code,
            phone=self.mobile(),
        )


def _office_phone(rng: random.Random) -> str:
    return f"0717-6{rng.randint(0, 999_999):06d}"


def build_demo_city(seed: int = 1) -> DemoCity:
    """The whole demo city: grids, buildings, units, staff, taxonomy, routes, calendars."""
    grids = build_grid_hierarchy(seed)
    rng = random.Random(f"people-{seed}")
    people = _People(rng)
    units: list[Unit] = []
    staff: list[Staff] = []

    for code, name, mode in DEPARTMENTS:
        head = people.person(StaffRole.UNIT_HEAD, [], code)
        staff.append(head)
        units.append(
            Unit(
                code=code,
                name=name,
                kind=UnitKind.DEPARTMENT,
                jurisdiction=[CITY_CODE],
                integration_mode=mode,
                head_staff_code=head.code,
                contact_name="指挥中心值班室",
                contact_phone=_office_phone(rng),
            )
        )

    district_names = {d.code: d.name for d in DISTRICTS}
    children: dict[str, list[Grid]] = {}
    for grid in grids:
        if grid.parent_code is not None:
            children.setdefault(grid.parent_code, []).append(grid)

    buildings: list[Building] = []
    for street in (g for g in grids if g.level is GridLevel.STREET):
        street_unit = f"street-{street.code}"
        suffix = "人民政府" if street.name.endswith(("镇", "乡")) else "办事处"
        head = people.person(StaffRole.UNIT_HEAD, [street.code], street_unit)
        staff.append(head)
        units.append(
            Unit(
                code=street_unit,
                name=f"{district_names[street.code[:6]]}{street.name}{suffix}",
                kind=UnitKind.STREET_OFFICE,
                jurisdiction=[street.code],
                integration_mode=IntegrationMode.WORKBENCH,
                head_staff_code=head.code,
                contact_name=head.name,
                contact_phone=_office_phone(rng),
            )
        )
        for community in children[street.code]:
            community_unit = f"community-{community.code}"
            leaves = children[community.code]
            committee = "村民委员会" if community.name.endswith("村") else "居民委员会"
            head = people.person(StaffRole.UNIT_HEAD, [community.code], community_unit)
            officer = people.person(
                StaffRole.INFORMATION_OFFICER, [g.code for g in leaves], community_unit
            )
            staff += [head, officer]
            units.append(
                Unit(
                    code=community_unit,
                    name=f"{community.name}{committee}",
                    kind=UnitKind.COMMUNITY_OFFICE,
                    jurisdiction=[community.code],
                    integration_mode=IntegrationMode.WORKBENCH,
                    head_staff_code=head.code,
                    contact_name=head.name,
                    contact_phone=_office_phone(rng),
                )
            )
            for grid in leaves:
                grid_unit = f"grid-{grid.code}"
                team = [
                    people.person(StaffRole.GRID_HEAD, [grid.code], grid_unit),
                    people.person(StaffRole.GRID_INSTRUCTOR, [grid.code], street_unit),
                    people.person(StaffRole.FULL_TIME_WORKER, [grid.code], grid_unit),
                    *(
                        people.person(StaffRole.PART_TIME_WORKER, [grid.code], grid_unit)
                        for _ in range(rng.randint(1, 3))
                    ),
                ]
                staff += team
                units.append(
                    Unit(
                        code=grid_unit,
                        name=f"{grid.name}服务团队",
                        kind=UnitKind.GRID,
                        jurisdiction=[grid.code],
                        integration_mode=IntegrationMode.WORKBENCH,
                        head_staff_code=team[0].code,
                        contact_name=team[0].name,
                        contact_phone=team[0].phone,
                    )
                )
                address = (
                    f"湖北省宜昌市{district_names[grid.code[:6]]}{street.name}{community.name}"
                )
                buildings += _buildings(grid, address, rng)

    return DemoCity(
        grids=grids,
        buildings=buildings,
        units=units,
        staff=staff,
        categories=categories(),
        routes=routing_rules(),
        calendars=calendar_years(),
    )


def _buildings(grid: Grid, address: str, rng: random.Random) -> list[Building]:
    assert isinstance(grid.geometry, Polygon)  # the demo city's grids are rectangles
    ring = grid.geometry.coordinates[0]
    west, south = ring[0]
    east, north = ring[2]
    count = rng.randint(1, 2) if grid.kind is not GridKind.BASE else rng.randint(2, 4)
    result = []
    for number in range(1, count + 1):
        lon = west + (east - west) * rng.uniform(0.1, 0.9)
        lat = south + (north - south) * rng.uniform(0.1, 0.9)
        # 桃花岭社区第3网格2号楼; 宜昌市第一中学2号楼
        name = grid.name.removesuffix("专属网格") + f"{number}号楼"
        result.append(
            Building(
                code=building_code(grid.code, number),
                grid_code=grid.code,
                name=name,
                address=f"{address}{name.removeprefix(grid.name[: grid.name.find('第')])}"
                if grid.kind is GridKind.BASE
                else f"{address}{name}",
                point=Point(coordinates=(round(lon, 7), round(lat, 7))),
            )
        )
    return result
