"""The registry's contract models refuse bad entities with a clear message."""

from typing import Any

import pytest
from pydantic import ValidationError

from onegrid_contracts.registry import (
    REGISTRY_ENTITIES,
    CalendarYear,
    Category,
    Grid,
    RoutingRule,
)

SQUARE = [[111.29, 30.70], [111.291, 30.70], [111.291, 30.701], [111.29, 30.701], [111.29, 30.70]]


def grid(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "code": "420502003001001",
        "name": "学院街社区第1网格",
        "level": "grid",
        "parent_code": "420502003001",
        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
    }
    return data | changes


def test_every_example_in_the_schemas_is_a_valid_entity() -> None:
    for model in REGISTRY_ENTITIES:
        examples = model.model_json_schema()["examples"]
        assert examples
        for example in examples:
            assert model.model_validate(example).key


def test_a_grid_is_keyed_by_its_code_and_ignores_unknown_fields() -> None:
    parsed = Grid.model_validate(grid(added_in_a_later_version=1))
    assert parsed.key == "420502003001001"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"geometry": {"type": "Polygon", "coordinates": [SQUARE[:-1]]}}, "closed"),
        (
            {"geometry": {"type": "Polygon", "coordinates": [[[1, 1], [2, 2], [1, 1]]]}},
            "at least 4",
        ),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[191, 30], [192, 30], [192, 31], [191, 30]]],
                }
            },
            "WGS84",
        ),
        ({"parent_code": "420502003002"}, "parent_code"),
        ({"level": "community"}, "denotes level grid"),
        ({"geometry": None}, "needs a geometry"),
        ({"code": "42050200300100"}, "String should match pattern"),
    ],
)
def test_bad_grids_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Grid.model_validate(grid(**changes))


def test_only_grid_level_cells_can_be_dedicated() -> None:
    with pytest.raises(ValidationError, match="dedicated"):
        Grid(
            code="420502003001",
            name="学院街社区",
            level="community",
            parent_code="420502003",
            kind="school",
        )


def test_a_category_code_starts_with_its_major() -> None:
    example = Category.model_json_schema()["examples"][0]
    with pytest.raises(ValidationError, match="must start with"):
        Category.model_validate(example | {"major_code": "street_order"})


def test_a_rule_leading_by_jurisdiction_names_its_own_tier() -> None:
    with pytest.raises(ValidationError, match="tier"):
        RoutingRule(
            code="route.x",
            category_code="environment.exposed_garbage",
            tier="street",
            lead={"by": "jurisdiction", "tier": "grid"},
        )
    with pytest.raises(ValidationError):
        RoutingRule(
            code="route.x",
            category_code="environment.exposed_garbage",
            tier="department",
            lead={"by": "jurisdiction", "tier": "department"},
        )


def test_a_calendar_year_holds_only_its_own_dates() -> None:
    with pytest.raises(ValidationError, match="outside 2026"):
        CalendarYear(year=2026, holidays=["2027-01-01"])
    with pytest.raises(ValidationError, match="both holiday and workday"):
        CalendarYear(year=2026, holidays=["2026-10-01"], workdays=["2026-10-01"])
    assert CalendarYear(year=2026).key == "2026"
