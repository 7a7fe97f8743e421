"""The registry, read side: what every service needs to READ the city's master data.

- `RegistryView` (view): the registry in memory, caught up from the compacted `registry.*`
  topics at start and kept current; grid/unit/category/staff lookups, `locate`, `route`,
  `covering_unit`, `calendar`.
- codes: GB/T 30428-style grid codes (parse_grid_code, path_codes, parent_code, ...).
- locate: `GridIndex(grids).locate(lon, lat, near_m)` -> `Location | None`.
- routing: `Router(rules, units).route(category, grid, severity)` -> `RouteDecision`,
  `RoutingError`, `next_tier`.
- geometry: GeoJSON <-> shapely, a local metric projection.
"""

from onegrid_common.registry_view.locate import GridIndex, Location, Neighbour
from onegrid_common.registry_view.routing import (
    RouteDecision,
    Router,
    RoutingError,
    next_tier,
)
from onegrid_common.registry_view.view import (
    REGISTRY_TOPICS,
    RegistryNotCaughtUpError,
    RegistryView,
)

__all__ = [
    "REGISTRY_TOPICS",
    "GridIndex",
    "Location",
    "Neighbour",
    "RegistryNotCaughtUpError",
    "RegistryView",
    "RouteDecision",
    "Router",
    "RoutingError",
    "next_tier",
]
