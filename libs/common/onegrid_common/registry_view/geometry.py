"""GeoJSON ↔ shapely, and a local metric projection for areas and distances.

A city spans a few tens of kilometres, so an equirectangular projection centred on it is
accurate to well under 1% — enough for overlap tolerances and "near a boundary" in metres,
without a projection library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from onegrid_contracts.registry import MultiPolygon, Point, Polygon

METRES_PER_DEGREE_LAT = 110_574.0
METRES_PER_DEGREE_LON_EQUATOR = 111_320.0


def to_shape(geometry: Polygon | MultiPolygon | Point) -> BaseGeometry:
    """The shapely geometry of a GeoJSON model (in lon/lat degrees)."""
    if isinstance(geometry, Point):
        return shapely.Point(geometry.coordinates)
    if isinstance(geometry, Polygon):
        return shapely.Polygon(geometry.coordinates[0], geometry.coordinates[1:])
    return shapely.MultiPolygon(
        [shapely.Polygon(polygon[0], polygon[1:]) for polygon in geometry.coordinates]
    )


def polygon_model(shape: BaseGeometry, precision: int = 7) -> Polygon | MultiPolygon:
    """The GeoJSON model of a shapely (Multi)Polygon in lon/lat, rounded to `precision` digits."""

    def ring(coords: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(round(float(x), precision), round(float(y), precision)) for x, y in coords]

    if isinstance(shape, shapely.Polygon):
        rings = [ring(shape.exterior.coords), *(ring(hole.coords) for hole in shape.interiors)]
        return Polygon(coordinates=rings)
    if isinstance(shape, shapely.MultiPolygon):
        return MultiPolygon(
            coordinates=[
                [ring(part.exterior.coords), *(ring(hole.coords) for hole in part.interiors)]
                for part in shape.geoms
            ]
        )
    raise TypeError(f"not a polygon: {shape.geom_type}")


@dataclass(frozen=True)
class LocalProjection:
    """Equirectangular projection to metres around (lon0, lat0)."""

    lon0: float
    lat0: float

    @property
    def x_scale(self) -> float:
        return METRES_PER_DEGREE_LON_EQUATOR * math.cos(math.radians(self.lat0))

    def to_metres(self, lon: float, lat: float) -> tuple[float, float]:
        return ((lon - self.lon0) * self.x_scale, (lat - self.lat0) * METRES_PER_DEGREE_LAT)

    def project(self, shape: BaseGeometry) -> BaseGeometry:
        scale = np.array([self.x_scale, METRES_PER_DEGREE_LAT])
        origin = np.array([self.lon0, self.lat0])
        projected: BaseGeometry = shapely.transform(shape, lambda xy: (xy - origin) * scale)
        return projected

    @classmethod
    def around(cls, shapes: list[BaseGeometry]) -> LocalProjection:
        if not shapes:
            return cls(0.0, 0.0)
        minx, miny, maxx, maxy = shapely.total_bounds(np.array(shapes, dtype=object))
        return cls((minx + maxx) / 2, (miny + maxy) / 2)
