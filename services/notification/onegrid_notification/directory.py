"""Registry lookups of notification: names for templates, and staff contacts at send time.

`RegistryDirectory` wraps the shared read model (onegrid_common.registry_view.RegistryView);
`StaticDirectory` holds fixed data for tests and demos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from onegrid_common.registry_view import RegistryView
from onegrid_contracts.registry import StaffRole

GRID_WORKER_ROLES = (StaffRole.GRID_HEAD, StaffRole.FULL_TIME_WORKER, StaffRole.PART_TIME_WORKER)


class NotifyDirectory(Protocol):
    def unit_name(self, unit_code: str) -> str: ...

    def grid_name(self, grid_code: str) -> str: ...

    def grid_workers(self, grid_code: str) -> list[str]: ...

    def unit_head(self, unit_code: str) -> str | None:
        """Staff code of the unit's head."""
        ...

    def staff_phone(self, staff_code: str) -> str | None:
        """The public work phone of an active staff member."""
        ...


class RegistryDirectory:
    def __init__(self, view: RegistryView) -> None:
        self.view = view

    def unit_name(self, unit_code: str) -> str:
        unit = self.view.unit(unit_code)
        return unit.name if unit is not None else unit_code

    def grid_name(self, grid_code: str) -> str:
        grid = self.view.grid(grid_code)
        return grid.name if grid is not None else grid_code

    def grid_workers(self, grid_code: str) -> list[str]:
        return [s.code for s in self.view.staff_for_grid(grid_code, GRID_WORKER_ROLES)]

    def unit_head(self, unit_code: str) -> str | None:
        head = self.view.unit_head(unit_code)
        return head.code if head is not None and head.active else None

    def staff_phone(self, staff_code: str) -> str | None:
        staff = self.view.staff(staff_code)
        return staff.phone if staff is not None and staff.active else None


@dataclass
class StaticDirectory:
    units: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)  # name, head
    grids: Mapping[str, str] = field(default_factory=dict)
    workers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    phones: Mapping[str, str] = field(default_factory=dict)

    def unit_name(self, unit_code: str) -> str:
        return self.units.get(unit_code, (unit_code, None))[0]

    def grid_name(self, grid_code: str) -> str:
        return self.grids.get(grid_code, grid_code)

    def grid_workers(self, grid_code: str) -> list[str]:
        return list(self.workers.get(grid_code, ()))

    def unit_head(self, unit_code: str) -> str | None:
        return self.units.get(unit_code, (unit_code, None))[1]

    def staff_phone(self, staff_code: str) -> str | None:
        return self.phones.get(staff_code)
