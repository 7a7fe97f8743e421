"""Helpers for intake's integration tests and benchmark: demo-city points, report bodies."""

from __future__ import annotations

import uuid
from typing import Any

import shapely.geometry

from onegrid_contracts.registry import GridLevel

GARBAGE = "environment.exposed_garbage"
MANHOLE = "facilities.manhole_cover"


def grid_points(city: Any) -> list[tuple[str, float, float]]:
    """(grid code, lon, lat) of a point inside each leaf grid of the demo city."""
    out = []
    for grid in city.at_level(GridLevel.GRID):
        if grid.geometry is None or not grid.active:
            continue
        p = shapely.geometry.shape(grid.geometry.model_dump()).representative_point()
        out.append((grid.code, round(p.x, 6), round(p.y, 6)))
    return out


def body(lon: float, lat: float, **overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "channel": "grid_worker_app",
        "category_code": GARBAGE,
        "description": "小区门口垃圾堆积多日无人清理",
        "location": {"lon": lon, "lat": lat},
        "occurred_at": "2026-11-23T09:30:00+08:00",
        "reporter": {"name": "张三", "phone": "13800138000"},
        "attachments": [],
        "resolved_on_site": False,
    }
    report.update(overrides)
    return report


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}
