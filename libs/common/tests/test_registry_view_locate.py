import pytest

from onegrid_common.registry_view.locate import GridIndex, boundary_level
from onegrid_contracts.registry import (
    Grid,
    GridKind,
    GridLevel,
    Polygon,
    grid_level_of,
    grid_parent_of,
)


def cell(code: str, west: float, south: float, east: float, north: float) -> Grid:
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    return Grid(
        code=code,
        name=f"网格{code}",
        level=grid_level_of(code),
        parent_code=grid_parent_of(code),
        kind=GridKind.BASE,
        geometry=Polygon(coordinates=[ring]),
    )


def upper(code: str) -> Grid:
    return Grid(
        code=code, name=f"单元{code}", level=grid_level_of(code), parent_code=grid_parent_of(code)
    )


# Two communities of one street in 西陵区 side by side, and a grid of 伍家岗区 to the east.
#   lat 30.710 +--------+--------+--------+
#              | 001002 | 002002 |        |
#   lat 30.705 +--------+--------+ 420503 |
#              | 001001 | 002001 | ...001 |
#   lat 30.700 +--------+--------+--------+
#          111.300  111.310  111.320  111.330
GRIDS = [
    upper("420500"),
    upper("420502"),
    upper("420502001"),
    upper("420502001001"),
    upper("420502001002"),
    upper("420503"),
    upper("420503001"),
    upper("420503001001"),
    cell("420502001001001", 111.30, 30.700, 111.31, 30.705),
    cell("420502001001002", 111.30, 30.705, 111.31, 30.710),
    cell("420502001002001", 111.31, 30.700, 111.32, 30.705),
    cell("420502001002002", 111.31, 30.705, 111.32, 30.710),
    cell("420503001001001", 111.32, 30.700, 111.33, 30.710),
]


@pytest.fixture(scope="module")
def index() -> GridIndex:
    return GridIndex(GRIDS)


def test_a_point_inside_a_grid_gets_the_grid_and_its_path_to_the_city(index: GridIndex) -> None:
    location = index.locate(111.303, 30.702)
    assert location is not None
    assert location.grid.code == "420502001001001"
    assert [g.code for g in location.path] == [
        "420500",
        "420502",
        "420502001",
        "420502001001",
        "420502001001001",
    ]
    assert [g.level for g in location.path] == list(GridLevel)


def test_a_point_outside_every_grid_gets_none(index: GridIndex) -> None:
    assert index.locate(111.35, 30.702) is None
    assert index.locate(111.305, 30.72) is None


def test_a_point_on_a_shared_edge_goes_to_the_smaller_code(index: GridIndex) -> None:
    on_edge = index.locate(111.31, 30.702)
    assert on_edge is not None
    assert on_edge.grid.code == "420502001001001"
    corner = index.locate(111.31, 30.705)
    assert corner is not None
    assert corner.grid.code == "420502001001001"


def test_a_point_on_the_outer_boundary_is_inside(index: GridIndex) -> None:
    location = index.locate(111.30, 30.703)
    assert location is not None
    assert location.grid.code == "420502001001001"


def test_near_boundary_names_the_neighbour_and_the_boundary_level(index: GridIndex) -> None:
    # 111.3095 is ~48 m west of the community boundary at 111.31 and ~276 m from 30.705.
    location = index.locate(111.3095, 30.7025, near_m=60)
    assert location is not None
    assert location.near_boundary
    assert [n.grid.code for n in location.neighbours] == ["420502001002001"]
    assert location.neighbours[0].distance_m == pytest.approx(47.8, abs=1.0)
    assert location.boundary_level is GridLevel.COMMUNITY


def test_a_point_well_inside_is_not_near_a_boundary(index: GridIndex) -> None:
    location = index.locate(111.305, 30.7025, near_m=60)
    assert location is not None
    assert not location.near_boundary
    assert location.boundary_level is None


def test_the_outer_city_edge_is_not_a_boundary_between_grids(index: GridIndex) -> None:
    location = index.locate(111.3002, 30.7025, near_m=60)
    assert location is not None
    assert not location.near_boundary


def test_the_highest_boundary_level_nearby_wins(index: GridIndex) -> None:
    # Near the corner of 002001, 002002 (same community) and 伍家岗区's grid.
    location = index.locate(111.3198, 30.7048, near_m=60)
    assert location is not None
    assert {n.grid.code for n in location.neighbours} == {"420502001002002", "420503001001001"}
    assert location.boundary_level is GridLevel.DISTRICT


def test_boundary_level_compares_code_prefixes() -> None:
    assert boundary_level("420502001001001", "420502001001002") is GridLevel.GRID
    assert boundary_level("420502001001001", "420502001002001") is GridLevel.COMMUNITY
    assert boundary_level("420502001001001", "420502002001001") is GridLevel.STREET
    assert boundary_level("420502001001001", "420503001001001") is GridLevel.DISTRICT


def test_inactive_grids_are_not_located() -> None:
    retired = GRIDS[8].model_copy(update={"active": False})
    index = GridIndex([*GRIDS[:8], retired, *GRIDS[9:]])
    assert index.locate(111.303, 30.702) is None
    assert len(index) == 4


def test_coordinates_outside_wgs84_are_refused(index: GridIndex) -> None:
    with pytest.raises(ValueError, match="WGS84"):
        index.locate(200.0, 30.7)
