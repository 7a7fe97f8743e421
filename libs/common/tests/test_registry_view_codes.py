import pytest

from onegrid_common.registry_view.codes import (
    GridCodeError,
    GridCodeParts,
    build_grid_code,
    building_code,
    is_within,
    parent_code,
    parse_grid_code,
    path_codes,
)
from onegrid_contracts.registry import GridLevel


def test_parse_splits_a_grid_code_into_its_segments() -> None:
    parts = parse_grid_code("420502003001012")
    assert parts == GridCodeParts("420502", "003", "001", "012")
    assert parts.level is GridLevel.GRID
    assert str(parts) == "420502003001012"


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("420500", GridLevel.CITY),
        ("420502", GridLevel.DISTRICT),
        ("420502003", GridLevel.STREET),
        ("420502003001", GridLevel.COMMUNITY),
        ("420502003001001", GridLevel.GRID),
    ],
)
def test_the_length_of_a_code_gives_its_level(code: str, level: GridLevel) -> None:
    assert parse_grid_code(code).level is level


@pytest.mark.parametrize(
    "code",
    ["", "42050", "4205020031", "42050200300100100", "42050A003", "420502000001", "420500003"],
)
def test_malformed_codes_are_rejected(code: str) -> None:
    with pytest.raises(GridCodeError):
        parse_grid_code(code)


def test_build_pads_segments_and_refuses_gaps() -> None:
    assert build_grid_code("420502", 3, 1, 12) == "420502003001012"
    assert build_grid_code("420503", 2) == "420503002"
    with pytest.raises(GridCodeError):
        build_grid_code("420502", None, 1)
    with pytest.raises(GridCodeError):
        build_grid_code("420502", 1000)
    with pytest.raises(GridCodeError):
        build_grid_code("420502", 0)


def test_parent_and_path_go_up_to_the_city() -> None:
    assert parent_code("420502003001001") == "420502003001"
    assert parent_code("420502") == "420500"
    assert parent_code("420500") is None
    assert path_codes("420502003001001") == [
        "420500",
        "420502",
        "420502003",
        "420502003001",
        "420502003001001",
    ]
    assert is_within("420502003001001", "420500")
    assert is_within("420502003001001", "420502003")
    assert not is_within("420502003001001", "420502004")


def test_building_codes_extend_a_grid_code() -> None:
    assert building_code("420502003001001", 7) == "420502003001001007"
    with pytest.raises(GridCodeError):
        building_code("420502003001", 1)
