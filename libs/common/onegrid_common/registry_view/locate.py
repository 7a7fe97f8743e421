"""Locate: point → grid, its path up to the city, and the grids whose boundary is near.

The index holds the active grids of level grid (the leaves that tile the city), projected to
metres around the city, in an STRtree of prepared polygons: a query is a bounding-box search
followed by an exact `covers` test on the few candidates. A point on a shared edge belongs
to the grid with the smaller code, so every point has at most one answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely

from onegrid_common.registry_view.codes import path_codes
from onegrid_common.registry_view.geometry import METRES_PER_DEGREE_LAT, LocalProjection, to_shape
from onegrid_contracts.registry import Grid, GridLevel

# Higher levels first: a boundary between districts is also one between streets, etc.
_BOUNDARY_LEVELS = (GridLevel.DISTRICT, GridLevel.STREET, GridLevel.COMMUNITY, GridLevel.GRID)
_LEVEL_RANK = {level: rank for rank, level in enumerate(_BOUNDARY_LEVELS)}
_PREFIXES = ((GridLevel.DISTRICT, 6), (GridLevel.STREET, 9), (GridLevel.COMMUNITY, 12))


def boundary_level(code_a: str, code_b: str) -> GridLevel:
    """The highest level at which two grids part: DISTRICT if they lie in different districts,
    STREET if in different streets of one district, ... GRID if in the same community."""
    # Codes are prefixes of their children: district 6 digits, street 9, community 12.
    for level, length in (
        (GridLevel.DISTRICT, 6),
        (GridLevel.STREET, 9),
        (GridLevel.COMMUNITY, 12),
    ):
        if code_a[:length] != code_b[:length]:
            return level
    return GridLevel.GRID


@dataclass(frozen=True)
class Neighbour:
    grid: Grid
    distance_m: float
    boundary_level: GridLevel


@dataclass(frozen=True)
class Location:
    grid: Grid
    path: tuple[Grid, ...]  # city first, the grid last; levels the registry lacks are skipped
    neighbours: tuple[Neighbour, ...]  # other grids within the asked distance, nearest first

    @property
    def near_boundary(self) -> bool:
        return bool(self.neighbours)

    @property
    def boundary_level(self) -> GridLevel | None:
        """The highest level of boundary nearby (DISTRICT outranks STREET ...), or None."""
        if not self.neighbours:
            return None
        return min((n.boundary_level for n in self.neighbours), key=_LEVEL_RANK.__getitem__)


class GridIndex:
    """An in-memory spatial index of a registry's grids. Immutable: rebuild on change."""

    def __init__(self, grids: Iterable[Grid]) -> None:
        self._by_code: dict[str, Grid] = {}
        leaves: list[Grid] = []
        for grid in grids:
            self._by_code[grid.code] = grid
            if grid.level is GridLevel.GRID and grid.active and grid.geometry is not None:
                leaves.append(grid)
        leaves.sort(key=lambda g: g.code)
        self._leaves = leaves
        shapes = [to_shape(g.geometry) for g in leaves if g.geometry is not None]
        self.projection = LocalProjection.around(shapes)
        self._shapes = np.array([self.projection.project(s) for s in shapes], dtype=object)
        shapely.prepare(self._shapes)
        self._tree = shapely.STRtree(self._shapes)
        # GEOS builds a prepared polygon's search structures on first use; build them all now
        # so that early queries after a (re)build don't pay for it (p99 400 µs → 70 µs).
        probe = shapely.points((0.0, 0.0))
        shapely.intersects(self._shapes, probe)
        shapely.dwithin(self._shapes, probe, 1.0)
        self._paths = [self.path(leaf.code) for leaf in leaves]
        self._origin = (self.projection.lon0, self.projection.lat0)
        self._scale = (self.projection.x_scale, METRES_PER_DEGREE_LAT)

    def __len__(self) -> int:
        return len(self._leaves)

    def grid(self, code: str) -> Grid | None:
        return self._by_code.get(code)

    def path(self, code: str) -> tuple[Grid, ...]:
        """The known grids from the city down to `code`."""
        return tuple(self._by_code[c] for c in path_codes(code) if c in self._by_code)

    def _xy(self, lon: float, lat: float) -> tuple[float, float]:
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise ValueError(f"({lon}, {lat}) is outside WGS84 bounds (lon ±180, lat ±90)")
        return (lon - self._origin[0]) * self._scale[0], (lat - self._origin[1]) * self._scale[1]

    def _point(self, lon: float, lat: float) -> shapely.Point:
        point: shapely.Point = shapely.points(self._xy(lon, lat))
        return point

    def locate(self, lon: float, lat: float, near_m: float = 0.0) -> Location | None:
        """The grid covering (lon, lat) with its path, or None when outside every grid.
        With near_m > 0, also the other grids within near_m metres."""
        x, y = self._xy(lon, lat)
        point = shapely.points((x, y))
        candidates = self._tree.query(point)
        if len(candidates) == 0:
            return None
        # intersects_xy on prepared polygons: exact, boundary included, no Point per test.
        hits = candidates[shapely.intersects_xy(self._shapes[candidates], x, y)]
        if len(hits) == 0:
            return None
        index = int(hits.min())  # leaves are sorted by code: the smaller code wins an edge
        grid = self._leaves[index]
        neighbours = self._neighbours(point, near_m, exclude=grid.code) if near_m > 0 else ()
        return Location(grid=grid, path=self._paths[index], neighbours=neighbours)

    def neighbours(self, lon: float, lat: float, within_m: float) -> tuple[Neighbour, ...]:
        """Every grid within `within_m` metres of (lon, lat), the covering one included."""
        return self._neighbours(self._point(lon, lat), within_m, exclude=None)

    def _neighbours(
        self, point: shapely.Point, within_m: float, exclude: str | None
    ) -> tuple[Neighbour, ...]:
        indices = self._tree.query(point, predicate="dwithin", distance=within_m)
        if len(indices) == 0:
            return ()
        distances = shapely.distance(self._shapes[indices], point)
        found: list[Neighbour] = []
        for index, distance in zip(indices, distances, strict=True):
            other = self._leaves[int(index)]
            if other.code == exclude:
                continue
            level = boundary_level(exclude, other.code) if exclude else GridLevel.GRID
            found.append(Neighbour(other, round(float(distance), 2), level))
        found.sort(key=lambda n: (n.distance_m, n.grid.code))
        return tuple(found)
