"""Bulk imports validated as a whole: grids from a GeoJSON FeatureCollection, staff from CSV.

Each function returns every error it finds, one per bad row and field; the caller applies a
batch only when the list is empty, so nothing is ever half-applied. `RowError.row` is the
0-based index of the feature or CSV data row (the header is not a row); errors about the file
as a whole have row None.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pydantic import ValidationError
from shapely.geometry.base import BaseGeometry

from onegrid_common.registry_view.geometry import LocalProjection, to_shape
from onegrid_contracts.registry import Grid, Staff, StaffRole, grid_level_of, grid_parent_of


@dataclass(frozen=True)
class RowError:
    row: int | None
    code: str | None
    field: str
    message: str


def _pydantic_errors(row: int, code: str | None, exc: ValidationError) -> list[RowError]:
    errors = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "__root__"
        errors.append(RowError(row, code, field, error["msg"]))
    return errors


# --- grids -----------------------------------------------------------------------------


def grid_feature(grid: Grid) -> dict[str, Any]:
    """A grid as a GeoJSON Feature: the inverse of `parse_grid_features` for one grid."""
    properties = grid.model_dump(mode="json", exclude={"geometry"})
    geometry = None if grid.geometry is None else grid.geometry.model_dump(mode="json")
    return {"type": "Feature", "id": grid.code, "properties": properties, "geometry": geometry}


def parse_grid_features(collection: Mapping[str, Any]) -> tuple[list[Grid], list[RowError]]:
    """Grids from a GeoJSON FeatureCollection whose feature properties carry the Grid fields
    (code, name, kind, households, residents, active; level and parent_code may be omitted:
    they follow from the code). Returns the grids that parsed and an error per bad field."""
    if collection.get("type") != "FeatureCollection" or not isinstance(
        collection.get("features"), list
    ):
        return [], [RowError(None, None, "type", "expected a GeoJSON FeatureCollection")]
    grids: list[Grid] = []
    errors: list[RowError] = []
    for row, feature in enumerate(collection["features"]):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            errors.append(RowError(row, None, "type", "expected a GeoJSON Feature"))
            continue
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            errors.append(RowError(row, None, "properties", "expected an object"))
            continue
        code = properties.get("code")
        code = code if isinstance(code, str) else None
        data = dict(properties)
        if code is not None:
            try:
                data.setdefault("level", grid_level_of(code).value)
                data.setdefault("parent_code", grid_parent_of(code))
            except ValueError as exc:
                errors.append(RowError(row, code, "code", str(exc)))
                continue
        data["geometry"] = feature.get("geometry")
        try:
            grids.append(Grid.model_validate(data))
        except ValidationError as exc:
            errors.extend(_pydantic_errors(row, code, exc))
    return grids, errors


def validate_grid_import(
    batch: Sequence[Grid],
    existing: Mapping[str, Grid],
    *,
    replace_existing: bool = False,
    overlap_tolerance_m2: float = 1.0,
    outside_parent_tolerance_m2: float = 1.0,
) -> list[RowError]:
    """Check a batch of grids against itself and the registry's current grids.

    Rules: polygons are valid (no self-intersection, non-zero area); codes are unique in the
    batch and, unless `replace_existing`, new to the registry; every parent exists in the
    batch or the registry; siblings (same parent) overlap by at most `overlap_tolerance_m2`;
    a child lies inside its parent except for at most `outside_parent_tolerance_m2`.
    """
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row, grid in enumerate(batch):
        if grid.code in seen:
            errors.append(
                RowError(row, grid.code, "code", f"code repeats row {seen[grid.code]} of the batch")
            )
        else:
            seen[grid.code] = row
        if grid.code in existing and not replace_existing:
            errors.append(RowError(row, grid.code, "code", "a grid with this code already exists"))
    merged: dict[str, Grid] = {**existing, **{g.code: g for g in batch}}
    for row, grid in enumerate(batch):
        if grid.parent_code is not None and grid.parent_code not in merged:
            errors.append(
                RowError(
                    row,
                    grid.code,
                    "parent_code",
                    f"parent {grid.parent_code} is neither in the batch nor in the registry",
                )
            )

    # Geometry, in metres around the data.
    shapes: dict[str, BaseGeometry] = {}
    for code, grid in merged.items():
        if grid.geometry is not None:
            shapes[code] = to_shape(grid.geometry)
    projection = LocalProjection.around(list(shapes.values()))
    metric = {code: projection.project(shape) for code, shape in shapes.items()}
    valid: set[str] = set()
    for code, shape in metric.items():
        if shape.is_valid and shape.area > 0:
            valid.add(code)
    for row, grid in enumerate(batch):
        if grid.code in metric and grid.code not in valid:
            reason = shapely.is_valid_reason(shapes[grid.code])
            if reason == "Valid Geometry":
                reason = "the polygon has no area"
            errors.append(RowError(row, grid.code, "geometry", f"invalid polygon: {reason}"))

    batch_rows = {g.code: row for row, g in enumerate(batch)}
    errors.extend(_sibling_overlaps(merged, metric, valid, batch_rows, overlap_tolerance_m2))
    for code, row in batch_rows.items():
        grid = merged[code]
        parent = grid.parent_code
        if parent is None or code not in valid or parent not in valid:
            continue
        outside = metric[code].difference(metric[parent]).area
        if outside > outside_parent_tolerance_m2:
            errors.append(
                RowError(
                    row,
                    code,
                    "geometry",
                    f"{outside:.0f} m² lies outside the parent {parent}",
                )
            )
    errors.sort(key=lambda e: (e.row if e.row is not None else -1, e.field))
    return errors


def _sibling_overlaps(
    merged: Mapping[str, Grid],
    metric: Mapping[str, BaseGeometry],
    valid: Collection[str],
    batch_rows: Mapping[str, int],
    tolerance_m2: float,
) -> list[RowError]:
    """An error on each batch row whose polygon overlaps a sibling's beyond the tolerance."""
    by_parent: dict[str | None, list[str]] = defaultdict(list)
    for code in sorted(valid):
        by_parent[merged[code].parent_code].append(code)
    errors: list[RowError] = []
    for siblings in by_parent.values():
        if len(siblings) < 2 or not any(code in batch_rows for code in siblings):
            continue
        geometries = np.array([metric[code] for code in siblings], dtype=object)
        tree = shapely.STRtree(geometries)
        left, right = tree.query(geometries, predicate="intersects")
        for i, j in zip(left, right, strict=True):
            if i >= j:
                continue
            a, b = siblings[int(i)], siblings[int(j)]
            if a not in batch_rows and b not in batch_rows:
                continue
            area = shapely.intersection(geometries[i], geometries[j]).area
            if area <= tolerance_m2:
                continue
            # Blame the batch row (the later one if both are new).
            blamed, other = (b, a) if b in batch_rows else (a, b)
            errors.append(
                RowError(
                    batch_rows[blamed],
                    blamed,
                    "geometry",
                    f"overlaps sibling {other} by {area:.0f} m²",
                )
            )
    return errors


# --- staff -----------------------------------------------------------------------------

STAFF_CSV_COLUMNS = ("code", "name", "role", "grid_codes", "unit_code", "phone", "active")
"""Staff CSV: UTF-8, a header row naming these columns (any order; `unit_code`, `phone` and
`active` optional). `role` is the English value or the Chinese title (网格长, 专职网格员,
兼职网格员, 网格指导员, 网格信息员, 单位负责人); `grid_codes` separates codes with ";" ;
`active` is true/false/1/0/是/否 (default true)."""

_REQUIRED_STAFF_COLUMNS = ("code", "name", "role", "grid_codes")
_ROLE_TITLES = {
    "网格长": StaffRole.GRID_HEAD,
    "专职网格员": StaffRole.FULL_TIME_WORKER,
    "兼职网格员": StaffRole.PART_TIME_WORKER,
    "网格指导员": StaffRole.GRID_INSTRUCTOR,
    "网格信息员": StaffRole.INFORMATION_OFFICER,
    "信息员": StaffRole.INFORMATION_OFFICER,
    "单位负责人": StaffRole.UNIT_HEAD,
}
_TRUE = {"true", "1", "yes", "是", ""}
_FALSE = {"false", "0", "no", "否"}


def parse_staff_csv(
    text: str,
    *,
    grid_codes: Collection[str],
    unit_codes: Collection[str],
    existing_staff_codes: Collection[str] = (),
    replace_existing: bool = True,
) -> tuple[list[Staff], list[RowError]]:
    """Parse and validate a staff CSV as a whole: each row a valid Staff, codes unique in the
    file (and new unless `replace_existing`), every grid and unit it names known."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [column for column in _REQUIRED_STAFF_COLUMNS if column not in header]
    if missing:
        return [], [RowError(None, None, column, "missing column") for column in missing]
    unknown = [column for column in header if column not in STAFF_CSV_COLUMNS]
    if unknown:
        return [], [RowError(None, None, column, "unknown column") for column in unknown]

    staff: list[Staff] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row, record in enumerate(reader):
        values = {key.strip(): (value or "").strip() for key, value in record.items() if key}
        if None in record:
            errors.append(RowError(row, values.get("code"), "__row__", "more cells than columns"))
            continue
        code = values.get("code") or None
        row_errors: list[RowError] = []
        role = _ROLE_TITLES.get(values["role"], values["role"])
        active_text = values.get("active", "").lower()
        if active_text not in _TRUE | _FALSE:
            row_errors.append(RowError(row, code, "active", f"not a boolean: {active_text!r}"))
        codes = [c.strip() for c in values["grid_codes"].replace(",", ";").split(";") if c.strip()]
        data = {
            "code": code,
            "name": values["name"],
            "role": role,
            "grid_codes": codes,
            "unit_code": values.get("unit_code") or None,
            "phone": values.get("phone") or None,
            "active": active_text not in _FALSE,
        }
        try:
            person = Staff.model_validate(data)
        except ValidationError as exc:
            errors.extend(row_errors + _pydantic_errors(row, code, exc))
            continue
        for grid_code in person.grid_codes:
            if grid_code not in grid_codes:
                row_errors.append(RowError(row, code, "grid_codes", f"unknown grid {grid_code}"))
        if person.unit_code is not None and person.unit_code not in unit_codes:
            row_errors.append(RowError(row, code, "unit_code", f"unknown unit {person.unit_code}"))
        if person.code in seen:
            row_errors.append(RowError(row, code, "code", f"code repeats row {seen[person.code]}"))
        else:
            seen[person.code] = row
        if not replace_existing and person.code in existing_staff_codes:
            row_errors.append(RowError(row, code, "code", "a staff member with this code exists"))
        errors.extend(row_errors)
        if not row_errors:
            staff.append(person)
    return staff, errors
