"""What intake needs from the registry read model, as a narrow port.

`onegrid_common.registry_view.RegistryView` satisfies it through a small adapter in
`onegrid_intake.main`; tests may give any object with these methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GridMatch:
    """The grid containing a point (or named by a report) and its path from the city down."""

    code: str
    path: tuple[str, ...]  # city first, `code` last


@dataclass(frozen=True)
class CategoryRule:
    """What intake uses of a category: keywords for classification, the duplicate window."""

    code: str
    keywords: tuple[str, ...]
    duplicate_radius_m: int
    duplicate_window_hours: int
    active: bool = True
    requires_id_number: bool = False  # a service request filed for a resident (民政)


class Registry(Protocol):
    def locate(self, lon: float, lat: float) -> GridMatch | None: ...

    def grid(self, code: str) -> GridMatch | None: ...

    def category(self, code: str) -> CategoryRule | None: ...

    def categories(self) -> Sequence[CategoryRule]: ...
