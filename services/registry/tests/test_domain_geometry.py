import pytest
import shapely

from onegrid_common.registry_view.geometry import LocalProjection, polygon_model, to_shape
from onegrid_contracts.registry import MultiPolygon, Point, Polygon

SQUARE = [(111.30, 30.70), (111.31, 30.70), (111.31, 30.71), (111.30, 30.71), (111.30, 30.70)]
HOLE = [(111.304, 30.704), (111.306, 30.704), (111.306, 30.706), (111.304, 30.704)]


def test_polygons_with_holes_round_trip_through_shapely() -> None:
    model = Polygon(coordinates=[SQUARE, HOLE])
    shape = to_shape(model)
    assert isinstance(shape, shapely.Polygon)
    assert len(shape.interiors) == 1
    assert polygon_model(shape) == model


def test_multipolygons_and_points_convert() -> None:
    model = MultiPolygon(coordinates=[[SQUARE]])
    assert isinstance(to_shape(model), shapely.MultiPolygon)
    assert polygon_model(to_shape(model)) == model
    assert to_shape(Point(coordinates=(111.3, 30.7))).equals(shapely.Point(111.3, 30.7))
    with pytest.raises(TypeError, match="not a polygon"):
        polygon_model(shapely.Point(1, 1))


def test_the_local_projection_measures_metres() -> None:
    projection = LocalProjection(111.305, 30.705)
    square = projection.project(to_shape(Polygon(coordinates=[SQUARE])))
    # 0.01° of longitude at 30.7°N is ~957 m, 0.01° of latitude ~1,106 m.
    assert square.area == pytest.approx(957.3 * 1105.7, rel=0.002)
    assert projection.to_metres(111.305, 30.705) == (0.0, 0.0)
