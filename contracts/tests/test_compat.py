import copy
import subprocess
import sys
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel, Field

from onegrid_contracts.compat import (
    CONSTRAINT_TIGHTENED,
    ENUM_VALUE_REMOVED,
    FIELD_NOW_REQUIRED,
    FIELD_REMOVED,
    TYPE_NARROWED,
    TYPE_WIDENED,
    Break,
    breaking_changes,
    check_against,
    format_report,
)
from onegrid_contracts.generate import SCHEMA_DIR


class Kind(StrEnum):
    A = "a"
    B = "b"


class Inner(BaseModel):
    lon: float = Field(ge=-180, le=180)


class Old(BaseModel):
    name: str = Field(max_length=100)
    count: int = Field(ge=0)
    kind: Kind
    note: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=10)
    where: Inner


def old_schema() -> dict[str, Any]:
    return Old.model_json_schema()


def kinds(breaks: list[Break]) -> set[tuple[str, str]]:
    return {(b.path, b.kind) for b in breaks}


def test_identical_schemas_are_compatible() -> None:
    assert breaking_changes(old_schema(), old_schema()) == []


def test_adding_an_optional_field_is_allowed() -> None:
    new = old_schema()
    new["properties"]["extra"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert breaking_changes(old_schema(), new) == []


def test_relaxing_constraints_and_adding_enum_values_is_allowed() -> None:
    new = old_schema()
    new["properties"]["name"]["maxLength"] = 200
    new["properties"]["count"]["minimum"] = -5
    new["$defs"]["Kind"]["enum"].append("c")
    assert breaking_changes(old_schema(), new) == []


def test_removed_field_is_caught() -> None:
    new = old_schema()
    del new["properties"]["note"]
    assert kinds(breaking_changes(old_schema(), new)) == {("Old.note", FIELD_REMOVED)}


def test_new_required_field_is_caught() -> None:
    new = old_schema()
    new["properties"]["owner"] = {"type": "string"}
    new["required"].append("owner")
    assert kinds(breaking_changes(old_schema(), new)) == {("Old.owner", FIELD_NOW_REQUIRED)}


def test_optional_field_made_required_is_caught() -> None:
    new = old_schema()
    new["required"].append("tags")
    assert ("Old.tags", FIELD_NOW_REQUIRED) in kinds(breaking_changes(old_schema(), new))


def test_type_changed_is_caught_both_ways() -> None:
    new = old_schema()
    new["properties"]["count"] = {"type": "string"}
    found = kinds(breaking_changes(old_schema(), new))
    assert ("Old.count", TYPE_NARROWED) in found
    assert ("Old.count", TYPE_WIDENED) in found


def test_number_narrowed_to_integer_is_caught_but_integer_to_number_only_widens() -> None:
    new = old_schema()
    new["$defs"]["Inner"]["properties"]["lon"]["type"] = "integer"
    assert ("Old.where.lon", TYPE_NARROWED) in kinds(breaking_changes(old_schema(), new))
    back = breaking_changes(new, old_schema())
    assert {b.kind for b in back} == {TYPE_WIDENED}


def test_nullable_field_losing_null_is_narrowed_and_gaining_null_is_widened() -> None:
    new = old_schema()
    new["properties"]["note"] = {"type": "string"}
    assert kinds(breaking_changes(old_schema(), new)) == {("Old.note", TYPE_NARROWED)}
    assert kinds(breaking_changes(new, old_schema())) == {("Old.note", TYPE_WIDENED)}


def test_enum_value_removed_is_caught_through_refs() -> None:
    new = old_schema()
    new["$defs"]["Kind"]["enum"] = ["a"]
    found = breaking_changes(old_schema(), new)
    assert kinds(found) == {("Old.kind", ENUM_VALUE_REMOVED)}
    assert "'b'" in found[0].detail


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda s: s["properties"]["name"].__setitem__("maxLength", 50), "Old.name"),
        (lambda s: s["properties"]["name"].__setitem__("minLength", 3), "Old.name"),
        (lambda s: s["properties"]["name"].__setitem__("pattern", "^[a-z]+$"), "Old.name"),
        (lambda s: s["properties"]["count"].__setitem__("minimum", 1), "Old.count"),
        (lambda s: s["properties"]["count"].__setitem__("maximum", 99), "Old.count"),
        (lambda s: s["properties"]["tags"].__setitem__("maxItems", 5), "Old.tags"),
        (lambda s: s["$defs"]["Inner"]["properties"]["lon"].__setitem__("le", 0), None),
        (
            lambda s: s["$defs"]["Inner"]["properties"]["lon"].__setitem__("maximum", 0),
            "Old.where.lon",
        ),
    ],
)
def test_tightened_constraint_is_caught(mutate: Any, path: str | None) -> None:
    new = copy.deepcopy(old_schema())
    mutate(new)
    found = kinds(breaking_changes(old_schema(), new))
    if path is None:  # "le" is not a JSON Schema keyword: no change for consumers
        assert found == set()
    else:
        assert (path, CONSTRAINT_TIGHTENED) in found


def test_item_type_change_inside_arrays_is_caught() -> None:
    new = old_schema()
    new["properties"]["tags"]["items"] = {"type": "integer"}
    assert ("Old.tags[]", TYPE_NARROWED) in kinds(breaking_changes(old_schema(), new))


def test_current_models_do_not_break_the_committed_schemas() -> None:
    result = check_against(SCHEMA_DIR)
    assert result == {}, "breaking changes against contracts/schemas:\n" + format_report(result)


def test_checker_cli_compares_against_a_git_ref() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "onegrid_contracts.compat", "--git-ref", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
