import json
from typing import Any

from onegrid_contracts.registry import Grid, StaffRole
from onegrid_registry.domain.validation import (
    RowError,
    grid_feature,
    parse_grid_features,
    parse_staff_csv,
    validate_grid_import,
)


def ring(west: float, south: float, east: float, north: float) -> list[list[float]]:
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


def feature(code: str, coordinates: list[list[list[float]]] | None, **props: Any) -> dict[str, Any]:
    geometry = None if coordinates is None else {"type": "Polygon", "coordinates": coordinates}
    return {
        "type": "Feature",
        "properties": {"code": code, "name": f"网格{code}", **props},
        "geometry": geometry,
    }


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def existing_community() -> dict[str, Grid]:
    """420502001001 (a 0.02° × 0.01° community) and everything above it."""
    grids = [
        Grid(code="420500", name="宜昌市", level="city"),
        Grid(code="420502", name="西陵区", level="district", parent_code="420500"),
        Grid(code="420502001", name="西陵街道", level="street", parent_code="420502"),
        Grid.model_validate(
            {
                "code": "420502001001",
                "name": "桃花岭社区",
                "level": "community",
                "parent_code": "420502001",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [ring(111.30, 30.70, 111.32, 30.71)],
                },
            }
        ),
    ]
    return {g.code: g for g in grids}


def parsed(*features: dict[str, Any]) -> list[Grid]:
    grids, errors = parse_grid_features(collection(*features))
    assert errors == []
    return grids


def test_a_clean_batch_has_no_errors_and_derives_level_and_parent_from_the_code() -> None:
    grids = parsed(
        feature("420502001001001", [ring(111.30, 30.70, 111.31, 30.71)], households=300),
        feature("420502001001002", [ring(111.31, 30.70, 111.32, 30.71)], kind="school"),
    )
    assert [g.parent_code for g in grids] == ["420502001001", "420502001001"]
    assert grids[1].kind == "school"
    assert validate_grid_import(grids, existing_community()) == []


def test_parse_reports_each_bad_feature_with_its_row_and_field() -> None:
    grids, errors = parse_grid_features(
        collection(
            feature("420502001001001", [ring(111.30, 30.70, 111.31, 30.71)]),
            feature("420502001001002", [ring(111.31, 30.70, 111.32, 30.71)[:-1]]),
            feature("4205020010010", [ring(111.31, 30.70, 111.32, 30.71)]),
            feature("420502001001003", None),
            {"type": "Feature", "properties": {"code": "420502001001004"}, "geometry": None},
            {"type": "Point"},
        )
    )
    assert [g.code for g in grids] == ["420502001001001"]
    by_row = {e.row: e for e in errors}
    assert by_row[1].field.startswith("geometry")
    assert "closed" in by_row[1].message
    assert by_row[2] == RowError(2, "4205020010010", "code", by_row[2].message)
    assert "needs a geometry" in by_row[3].message
    assert {e.field for e in errors if e.row == 4} >= {"name"}
    assert by_row[5].field == "type"


def test_a_document_that_is_not_a_feature_collection_is_one_file_level_error() -> None:
    grids, errors = parse_grid_features({"type": "Feature"})
    assert grids == []
    assert errors == [RowError(None, None, "type", "expected a GeoJSON FeatureCollection")]


def test_a_self_intersecting_polygon_is_invalid() -> None:
    bow_tie = [[111.30, 30.70], [111.31, 30.71], [111.31, 30.70], [111.30, 30.71], [111.30, 30.70]]
    grids = parsed(feature("420502001001001", [bow_tie]))
    errors = validate_grid_import(grids, existing_community())
    assert [(e.row, e.field) for e in errors] == [(0, "geometry")]
    assert "invalid polygon" in errors[0].message
    assert "Self-intersection" in errors[0].message


def test_codes_repeated_in_the_batch_or_already_registered_are_refused() -> None:
    a = ring(111.30, 30.70, 111.31, 30.705)
    b = ring(111.30, 30.705, 111.31, 30.71)
    grids = parsed(feature("420502001001001", [a]), feature("420502001001001", [b]))
    errors = validate_grid_import(grids, existing_community())
    assert any(e.row == 1 and e.field == "code" and "repeats row 0" in e.message for e in errors)

    registered = existing_community()
    errors = validate_grid_import(parsed(feature("420502001", None)), registered)
    assert [(e.row, e.field, e.message) for e in errors] == [
        (0, "code", "a grid with this code already exists")
    ]


def test_a_registered_code_may_be_replaced_when_asked() -> None:
    registered = existing_community()
    update = registered["420502001"].model_copy(update={"name": "西陵街道办事处辖区"})
    assert validate_grid_import([update], registered, replace_existing=True) == []


def test_a_parent_must_exist_in_the_batch_or_the_registry() -> None:
    grids = parsed(
        feature("420502002001", None, name="新社区"),
        feature("420502002", None, name="新街道"),
        feature("420502009001001", [ring(111.30, 30.70, 111.31, 30.71)]),
    )
    errors = validate_grid_import(grids, existing_community())
    assert [(e.row, e.code, e.field) for e in errors] == [(2, "420502009001001", "parent_code")]
    assert "420502009001" in errors[0].message


def test_overlapping_siblings_are_refused_beyond_the_tolerance() -> None:
    grids = parsed(
        feature("420502001001001", [ring(111.30, 30.70, 111.311, 30.71)]),  # 0.001° too wide
        feature("420502001001002", [ring(111.31, 30.70, 111.32, 30.71)]),
    )
    errors = validate_grid_import(grids, existing_community())
    assert [(e.row, e.field) for e in errors] == [(1, "geometry")]
    assert "overlaps sibling 420502001001001" in errors[0].message
    # ~95 m × 1,106 m ≈ 106,000 m² overlap: within a generous tolerance it passes.
    assert validate_grid_import(grids, existing_community(), overlap_tolerance_m2=200_000) == []


def test_touching_siblings_do_not_overlap() -> None:
    grids = parsed(
        feature("420502001001001", [ring(111.30, 30.70, 111.31, 30.71)]),
        feature("420502001001002", [ring(111.31, 30.70, 111.32, 30.71)]),
    )
    assert validate_grid_import(grids, existing_community(), overlap_tolerance_m2=0.0) == []


def test_a_new_grid_overlapping_a_registered_sibling_is_refused() -> None:
    registered = existing_community()
    first = parsed(feature("420502001001001", [ring(111.30, 30.70, 111.31, 30.71)]))[0]
    registered[first.code] = first
    grids = parsed(feature("420502001001002", [ring(111.305, 30.70, 111.32, 30.71)]))
    errors = validate_grid_import(grids, registered)
    assert [(e.row, e.code, e.field) for e in errors] == [(0, "420502001001002", "geometry")]


def test_a_child_must_lie_inside_its_parent() -> None:
    grids = parsed(feature("420502001001001", [ring(111.31, 30.70, 111.33, 30.71)]))
    errors = validate_grid_import(grids, existing_community())
    assert [(e.row, e.field) for e in errors] == [(0, "geometry")]
    assert "outside the parent 420502001001" in errors[0].message


def test_every_error_of_a_batch_is_reported_at_once() -> None:
    grids = parsed(
        feature("420502001001001", [ring(111.30, 30.70, 111.31, 30.71)]),
        feature("420502001001002", [ring(111.305, 30.70, 111.32, 30.71)]),  # overlaps row 0
        feature("420502001001003", [ring(111.33, 30.70, 111.34, 30.71)]),  # outside parent
        feature("420502007001001", [ring(111.30, 30.70, 111.31, 30.71)]),  # no parent
    )
    errors = validate_grid_import(grids, existing_community())
    assert sorted({e.row for e in errors if e.row is not None}) == [1, 2, 3]


# --- staff CSV --------------------------------------------------------------------------

GRID_CODES = {"420502001001001", "420502001001002"}
UNIT_CODES = {"grid-420502001001001", "community-420502001001"}
HEADER = "code,name,role,grid_codes,unit_code,phone,active\n"


def test_a_staff_csv_parses_roles_by_english_value_or_chinese_title() -> None:
    text = (
        "\ufeff"
        + HEADER
        + "S0000001,张燕,网格长,420502001001001,grid-420502001001001,13907170001,是\n"
        "S0000002,李明,part_time_worker,420502001001001;420502001001002,,,false\n"
    )
    staff, errors = parse_staff_csv(text, grid_codes=GRID_CODES, unit_codes=UNIT_CODES)
    assert errors == []
    assert [s.role for s in staff] == [StaffRole.GRID_HEAD, StaffRole.PART_TIME_WORKER]
    assert staff[1].grid_codes == ["420502001001001", "420502001001002"]
    assert staff[1].active is False
    assert staff[1].phone is None


def test_missing_or_unknown_columns_are_file_level_errors() -> None:
    staff, errors = parse_staff_csv(
        "code,name\nS0000001,张燕\n", grid_codes=GRID_CODES, unit_codes=UNIT_CODES
    )
    assert staff == []
    assert {(e.row, e.field) for e in errors} == {(None, "role"), (None, "grid_codes")}
    _, errors = parse_staff_csv(
        "code,name,role,grid_codes,salary\n", grid_codes=GRID_CODES, unit_codes=UNIT_CODES
    )
    assert errors == [RowError(None, None, "salary", "unknown column")]


def test_each_bad_staff_row_gets_its_own_errors() -> None:
    text = HEADER + (
        "S0000001,张燕,网格长,420502001001001,,,\n"  # fine
        "S0000001,王强,网格长,420502001001002,,,\n"  # repeated code
        "S0000003,刘芳,队长,420502001001001,,,\n"  # unknown role
        "S0000004,陈静,兼职网格员,420502001009009,,,\n"  # unknown grid
        "S0000005,杨洋,兼职网格员,420502001001001,urban,,\n"  # unknown unit
        "S0000006,赵磊,兼职网格员,420502001001001,,12345,\n"  # bad phone
        "S0000007,吴敏,兼职网格员,420502001001001,,,maybe\n"  # bad boolean
        "S0000008,周杰,兼职网格员,420502001001001,,,,extra\n"  # too many cells
    )
    staff, errors = parse_staff_csv(text, grid_codes=GRID_CODES, unit_codes=UNIT_CODES)
    assert [s.code for s in staff] == ["S0000001"]
    fields = {(e.row, e.field) for e in errors}
    assert fields == {
        (1, "code"),
        (2, "role"),
        (3, "grid_codes"),
        (4, "unit_code"),
        (5, "phone"),
        (6, "active"),
        (7, "__row__"),
    }


def test_existing_staff_codes_are_refused_unless_replacing() -> None:
    text = HEADER + "S0000001,张燕,网格长,420502001001001,,,\n"
    _, errors = parse_staff_csv(
        text,
        grid_codes=GRID_CODES,
        unit_codes=UNIT_CODES,
        existing_staff_codes={"S0000001"},
        replace_existing=False,
    )
    assert [(e.row, e.field) for e in errors] == [(0, "code")]


def test_grids_written_as_features_parse_back_unchanged() -> None:
    grids = list(existing_community().values())
    features = {"type": "FeatureCollection", "features": [grid_feature(g) for g in grids]}
    parsed_back, errors = parse_grid_features(json.loads(json.dumps(features)))
    assert errors == []
    assert parsed_back == grids
