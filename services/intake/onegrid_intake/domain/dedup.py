"""一事一档: which open case, if any, a new report of the same matter joins.

Candidates come from a geo index (Redis) and are confirmed against PostgreSQL; this module
only decides among confirmed candidates: same category, open, within the category's radius
and time window; the nearest wins, then the oldest.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from onegrid_intake.domain.ports import CategoryRule

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class OpenCase:
    case_id: UUID
    category_code: str
    lon: float
    lat: float
    reported_at: datetime
    open: bool = True


def dedup_enabled(rule: CategoryRule) -> bool:
    return rule.duplicate_radius_m > 0 and rule.duplicate_window_hours > 0


def choose_duplicate(
    *,
    rule: CategoryRule,
    lon: float,
    lat: float,
    at: datetime,
    candidates: Iterable[OpenCase],
) -> OpenCase | None:
    """The open case this report joins, or None for a new case."""
    if not dedup_enabled(rule):
        return None
    window = timedelta(hours=rule.duplicate_window_hours)
    matches: list[tuple[float, datetime, OpenCase]] = []
    for case in candidates:
        if not case.open or case.category_code != rule.code:
            continue
        if not (at - window <= case.reported_at <= at + timedelta(minutes=5)):
            continue
        d = distance_m(lon, lat, case.lon, case.lat)
        if d <= rule.duplicate_radius_m:
            matches.append((d, case.reported_at, case))
    if not matches:
        return None
    matches.sort(key=lambda m: (m[0], m[1]))
    return matches[0][2]


_M_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180
# Beyond this latitude a cell would be too narrow in longitude: one lock per category.
_MAX_CELL_LAT = 80.0


def lock_keys(category_code: str, radius_m: float, lon: float, lat: float) -> list[int]:
    """Advisory lock keys, sorted, that a duplicate search around (lon, lat) must hold.

    The plane is cut into square cells of `radius_m` (in degrees of latitude, the same
    grid for every report of the category); a report locks every cell its search
    circle's bounding box touches. Two reports within `radius_m` of each other both lock
    the cell the second one lies in, so they are decided one at a time; reports further
    apart take disjoint cells (mostly) and never wait on each other. Sorted, so two
    reports lock their common cells in the same order (no deadlock).
    """
    cell = radius_m / _M_PER_DEGREE
    if abs(lat) > _MAX_CELL_LAT or cell <= 0:
        return [_key(f"intake.dedup:{category_code}")]
    margin = 1.05  # rounding and the sphere: lock a little more, never less
    dlat = cell * margin
    dlon = dlat / math.cos(math.radians(min(90.0, abs(lat) + dlat)))
    ys = range(math.floor((lat - dlat) / cell), math.floor((lat + dlat) / cell) + 1)
    xs = range(math.floor((lon - dlon) / cell), math.floor((lon + dlon) / cell) + 1)
    return sorted(
        {_key(f"intake.dedup:{category_code}:{radius_m:g}:{x}:{y}") for x in xs for y in ys}
    )


def _key(text: str) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
