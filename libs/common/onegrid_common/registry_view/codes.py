"""Hierarchical grid codes in the spirit of GB/T 30428 (unit grid coding).

    420500            city      (administrative division code, ends in "00")
    420502            district  (administrative division code)
    420502003         street    (+3 digits)
    420502003001      community (+3 digits)
    420502003001001   grid      (+3 digits)
    420502003001001002 building (+3 digits under its grid)

Segments start at 001; 000 is never a street, community, grid or building number.
"""

from __future__ import annotations

from dataclasses import dataclass

from onegrid_contracts.registry import GridLevel, grid_level_of, grid_parent_of


class GridCodeError(ValueError):
    """A code that does not follow the scheme."""


@dataclass(frozen=True)
class GridCodeParts:
    district: str  # 6 digits; the city's own code when level is CITY
    street: str | None = None
    community: str | None = None
    grid: str | None = None

    @property
    def level(self) -> GridLevel:
        return grid_level_of(str(self))

    def __str__(self) -> str:
        parts = (self.district, self.street, self.community, self.grid)
        return "".join(part for part in parts if part)


def parse_grid_code(code: str) -> GridCodeParts:
    """Split a code into its segments, or raise GridCodeError saying what is wrong."""
    try:
        grid_level_of(code)
    except ValueError as exc:
        raise GridCodeError(str(exc)) from None
    segments = [code[i : i + 3] for i in range(6, len(code), 3)]
    if "000" in segments:
        raise GridCodeError(f"grid code {code!r} has a 000 segment; numbering starts at 001")
    if code[4:6] == "00" and len(code) > 6:
        raise GridCodeError(f"grid code {code!r} lies under a city code, not a district")
    padded: list[str | None] = [*segments, None, None, None]
    return GridCodeParts(code[:6], padded[0], padded[1], padded[2])


def build_grid_code(
    district: str, street: int | None = None, community: int | None = None, grid: int | None = None
) -> str:
    """The code of a cell from its district code and segment numbers (1-999)."""
    numbers = [street, community, grid]
    code = district
    for position, number in enumerate(numbers):
        if number is None:
            if any(n is not None for n in numbers[position + 1 :]):
                raise GridCodeError("a lower segment needs every segment above it")
            break
        if not 1 <= number <= 999:
            raise GridCodeError(f"segment number {number} must be between 1 and 999")
        code += f"{number:03d}"
    parse_grid_code(code)
    return code


def parent_code(code: str) -> str | None:
    """The code one level up; None for the city."""
    parse_grid_code(code)
    return grid_parent_of(code)


def path_codes(code: str) -> list[str]:
    """Codes from the city down to `code` itself, e.g. 420500, 420502, 420502003, ..."""
    parse_grid_code(code)
    path = [code]
    parent = grid_parent_of(code)
    while parent is not None:
        path.append(parent)
        parent = grid_parent_of(parent)
    path.reverse()
    return path


def is_within(code: str, ancestor: str) -> bool:
    """Whether `code` is `ancestor` or lies below it."""
    return ancestor in path_codes(code)


def building_code(grid_code: str, number: int) -> str:
    if grid_level_of(grid_code) is not GridLevel.GRID:
        raise GridCodeError(f"buildings belong to a grid-level code, not {grid_code!r}")
    if not 1 <= number <= 999:
        raise GridCodeError(f"building number {number} must be between 1 and 999")
    return f"{grid_code}{number:03d}"
