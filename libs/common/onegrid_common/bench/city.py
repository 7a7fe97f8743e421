"""The demo city as the registry serves it, and the reports a bench sends into it.

Load is not uniform in a real city: a few places (markets, old residential blocks, school
gates) and a few categories (garbage, parking, street vendors) make most reports. Both
are drawn from Zipf-like weights, seeded, so two runs send the same reports.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import shapely.geometry
from shapely.geometry.base import BaseGeometry

# Who reports on which channel, in what share (the 12345 hotline relays through a gateway).
CHANNEL_MIX: tuple[tuple[str, str, float], ...] = (
    ("grid_worker_app", "grid_worker", 0.55),
    ("hotline_12345", "service", 0.25),
    ("wechat", "reporter", 0.12),
    ("resident_app", "reporter", 0.08),
)
CITY_TZ = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Grid:
    code: str
    shape: BaseGeometry


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    requires_id_number: bool = False  # civil affairs applications: the applicant's ID


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id(rng: random.Random) -> str:
    """A well-formed GB 11643 resident ID number (Yichang region code; made up)."""
    born = datetime(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
    body = f"420502{born:%Y%m%d}{rng.randint(0, 999):03d}"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + _ID_CHECK[total % 11]


@dataclass(frozen=True)
class City:
    grids: tuple[Grid, ...]
    categories: tuple[Category, ...]
    workbench_units: frozenset[str]
    adapter_units: frozenset[str]


async def _all(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
        resp = await client.get(path, params=query)
        resp.raise_for_status()
        page = resp.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _entity(item: dict[str, Any]) -> dict[str, Any]:
    # The registry answers entities as they are, possibly wrapped with metadata.
    inner = item.get("entity")
    return inner if isinstance(inner, dict) else item


async def load_city(registry_url: str, token: str) -> City:
    """Leaf grids with their polygons, active categories and units, from the registry."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=registry_url, headers=headers, timeout=30) as client:
        grids = [_entity(g) for g in await _all(client, "/v1/grids", level="grid")]
        categories = [_entity(c) for c in await _all(client, "/v1/categories")]
        units = [_entity(u) for u in await _all(client, "/v1/units")]
    city = City(
        grids=tuple(
            Grid(g["code"], shapely.geometry.shape(g["geometry"]))
            for g in grids
            if g.get("geometry") and g.get("active", True)
        ),
        categories=tuple(
            Category(c["code"], c.get("name_zh") or c["code"], bool(c.get("requires_id_number")))
            for c in categories
            if c.get("active", True)
        ),
        workbench_units=frozenset(
            u["code"] for u in units if u.get("integration_mode") == "workbench"
        ),
        adapter_units=frozenset(u["code"] for u in units if u.get("integration_mode") == "adapter"),
    )
    if not city.grids or not city.categories:
        raise RuntimeError(
            f"the registry at {registry_url} has {len(city.grids)} grids and "
            f"{len(city.categories)} categories: seed the demo city first"
        )
    return city


def zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


@dataclass(frozen=True)
class Report:
    body: dict[str, Any]
    role: str  # the role of the token that sends it
    grid_code: str
    category_code: str


class ReportMaker:
    """Reports with hotspots: places and categories drawn from Zipf weights (seeded).

    `spread_m` is how far from its place's anchor a report lies: small spreads make
    duplicates (一事一档) as several people report one matter.
    """

    def __init__(
        self, city: City, *, seed: int = 7, hotspot_s: float = 1.1, spread_m: float = 150.0
    ) -> None:
        self._rng = random.Random(seed)
        grids = list(city.grids)
        categories = list(city.categories)
        self._rng.shuffle(grids)
        self._rng.shuffle(categories)
        self._grids = grids
        self._categories = categories
        self._grid_weights = zipf_weights(len(grids), hotspot_s)
        self._category_weights = zipf_weights(len(categories), hotspot_s)
        # A few anchors per grid (a market, a school gate, a block): reports gather there.
        self._anchors = {g.code: [self._point_in(g.shape) for _ in range(4)] for g in grids}
        self._spread_deg = spread_m / 111_195
        self._channels = [c for c, _, _ in CHANNEL_MIX]
        self._channel_weights = [w for _, _, w in CHANNEL_MIX]
        self._roles = {c: r for c, r, _ in CHANNEL_MIX}

    def _point_in(self, shape: BaseGeometry) -> tuple[float, float]:
        minx, miny, maxx, maxy = shape.bounds
        for _ in range(200):
            x = round(self._rng.uniform(minx, maxx), 6)
            y = round(self._rng.uniform(miny, maxy), 6)
            if shape.contains(shapely.geometry.Point(x, y)):
                return x, y
        p = shape.representative_point()
        return round(p.x, 6), round(p.y, 6)

    def next(self) -> Report:
        rng = self._rng
        grid = rng.choices(self._grids, self._grid_weights)[0]
        category = rng.choices(self._categories, self._category_weights)[0]
        ax, ay = rng.choice(self._anchors[grid.code])
        lon, lat = ax, ay
        for _ in range(20):  # stay inside the grid: a point outside goes to an operator
            x = round(ax + rng.gauss(0, self._spread_deg / 2), 6)
            y = round(ay + rng.gauss(0, self._spread_deg / 2), 6)
            if grid.shape.contains(shapely.geometry.Point(x, y)):
                lon, lat = x, y
                break
        channel = rng.choices(self._channels, self._channel_weights)[0]
        now = datetime.now(CITY_TZ).replace(microsecond=0)
        body: dict[str, Any] = {
            "channel": channel,
            "category_code": category.code,
            "description": f"{category.name_zh}：现场发现问题，影响居民生活，请尽快处理。",
            "location": {"lon": lon, "lat": lat},
            "occurred_at": (now - timedelta(minutes=rng.randint(1, 90))).isoformat(),
            "reporter": {
                "name": rng.choice(("张三", "李四", "王芳", "刘洋", "陈静")),
                "phone": f"13{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}",
            },
            "attachments": [],
            "resolved_on_site": False,
        }
        if category.requires_id_number:
            body["reporter"]["id_number"] = resident_id(rng)
        return Report(body, self._roles[channel], grid.code, category.code)
