"""Registry entities: the city's master data, as published on the compacted `registry.*` topics.

Every entity is one record on its topic, keyed by its code (`CalendarYear`: by the year as a
decimal string), so a compacted topic holds the latest version of each entity and a reader
catches up by consuming it from the start:

| entity        | topic                     | key      | CloudEvents type                 |
|---------------|---------------------------|----------|----------------------------------|
| Grid          | registry.grids.v1         | code     | onegrid.registry.grid.v1         |
| Building      | registry.buildings.v1     | code     | onegrid.registry.building.v1     |
| Unit          | registry.units.v1         | code     | onegrid.registry.unit.v1         |
| Staff         | registry.staff.v1         | code     | onegrid.registry.staff.v1        |
| Category      | registry.categories.v1    | code     | onegrid.registry.category.v1     |
| RoutingRule   | registry.routes.v1        | code     | onegrid.registry.route.v1        |
| CalendarYear  | registry.calendars.v1     | year     | onegrid.registry.calendar.v1     |

Deletion: a deleted entity is published as a tombstone, i.e. a record with the entity's key
and a null value (no body). The CloudEvents headers are still set (`ce_type` is the entity's
type, `ce_subject` the key) so a tombstone is traceable, but a consumer must not decode a
null value: it removes the key from its read model. Compaction later drops the key entirely.
Deactivation (`active=False`) is different: the entity stays known (old cases still name it)
but takes no new work.

Grid codes follow GB/T 30428 unit-grid coding: a 6-digit administrative division code for
the city (ending in "00") or district, then 3 digits each for street, community and grid;
a building adds 3 digits to its grid's code. The parent of a code is its prefix (a district's
parent is the city: its first 4 digits + "00").
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from onegrid_contracts.base import Payload
from onegrid_contracts.cases import Tier

# --- codes -----------------------------------------------------------------------------

GRID_CODE_LENGTHS: dict[str, int] = {
    "city": 6,
    "district": 6,
    "street": 9,
    "community": 12,
    "grid": 15,
}
BUILDING_CODE_LENGTH = 18

GridCode = Annotated[str, Field(pattern=r"^\d{6}(\d{3}){0,3}$", examples=["420502003001001"])]
DistrictCode = Annotated[str, Field(pattern=r"^\d{4}(0[1-9]|[1-9]\d)$", examples=["420502"])]
BuildingCode = Annotated[str, Field(pattern=r"^\d{18}$", examples=["420502003001001002"])]
# Unit codes name Kafka topics (dept.<unit>.tasks.v1): lowercase letters, digits, hyphens.
UnitCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$", examples=["urban"])]
StaffCode = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9-]{2,31}$", examples=["S0000123"])]
# "<major>.<minor>", e.g. "environment.exposed_garbage"
CategoryCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]{1,39}\.[a-z][a-z0-9_]{1,59}$",
        examples=["environment.exposed_garbage"],
    ),
]
MajorCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,39}$", examples=["environment"])]
RuleCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{1,119}$")]
# A public work phone: mainland mobile or a landline with area code.
Phone = Annotated[
    str, Field(pattern=r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$", examples=["0717-6221234"])
]
ChineseName = Annotated[str, Field(min_length=1, max_length=100)]


class GridLevel(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"  # 街道 / 乡镇
    COMMUNITY = "community"  # 社区 / 村
    GRID = "grid"


class GridKind(StrEnum):
    """基础网格 or one of the dedicated grids (专属网格) drawn around a single institution."""

    BASE = "base"
    SCHOOL = "school"
    HOSPITAL = "hospital"
    MARKET = "market"
    INDUSTRIAL_PARK = "industrial_park"
    SCENIC_AREA = "scenic_area"


def grid_level_of(code: str) -> GridLevel:
    """The level a well-formed grid code denotes (raises ValueError otherwise)."""
    if not re.fullmatch(r"\d{6}(\d{3}){0,3}", code):
        raise ValueError(f"grid code {code!r} must be 6, 9, 12 or 15 digits")
    if len(code) == 6:
        if code[4:] == "00":
            return GridLevel.CITY
        return GridLevel.DISTRICT
    return {9: GridLevel.STREET, 12: GridLevel.COMMUNITY, 15: GridLevel.GRID}[len(code)]


def grid_parent_of(code: str) -> str | None:
    """The parent's code: the prefix one level up; the city has none."""
    level = grid_level_of(code)
    if level is GridLevel.CITY:
        return None
    if level is GridLevel.DISTRICT:
        return code[:4] + "00"
    return code[:-3]


# --- geometry (GeoJSON, WGS84 lon/lat) -------------------------------------------------


def _check_position(position: tuple[float, float]) -> None:
    lon, lat = position
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(f"position {list(position)} is outside WGS84 bounds (lon ±180, lat ±90)")


def _check_ring(ring: list[tuple[float, float]]) -> None:
    if len(ring) < 4:
        raise ValueError("a linear ring needs at least 4 positions (first repeated last)")
    if ring[0] != ring[-1]:
        raise ValueError("a linear ring must be closed: its last position must equal its first")
    for position in ring:
        _check_position(position)


Position = tuple[float, float]


class _Geometry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Geometry):
    type: Literal["Point"] = "Point"
    coordinates: Position

    @field_validator("coordinates")
    @classmethod
    def _in_bounds(cls, value: Position) -> Position:
        _check_position(value)
        return value


class Polygon(_Geometry):
    """GeoJSON Polygon: an exterior ring then holes; rings closed. Validity (no self-crossing)
    is checked by the registry's import validation, which has the geometry library."""

    type: Literal["Polygon"] = "Polygon"
    coordinates: list[list[Position]] = Field(min_length=1)

    @field_validator("coordinates")
    @classmethod
    def _rings(cls, value: list[list[Position]]) -> list[list[Position]]:
        for ring in value:
            _check_ring(ring)
        return value


class MultiPolygon(_Geometry):
    type: Literal["MultiPolygon"] = "MultiPolygon"
    coordinates: list[list[list[Position]]] = Field(min_length=1)

    @field_validator("coordinates")
    @classmethod
    def _rings(cls, value: list[list[list[Position]]]) -> list[list[list[Position]]]:
        for polygon in value:
            if not polygon:
                raise ValueError("a polygon needs an exterior ring")
            for ring in polygon:
                _check_ring(ring)
        return value


Area = Annotated[Polygon | MultiPolygon, Field(discriminator="type")]

_SQUARE_EXAMPLE: dict[str, JsonValue] = {
    "type": "Polygon",
    "coordinates": [
        [[111.29, 30.70], [111.292, 30.70], [111.292, 30.702], [111.29, 30.702], [111.29, 30.70]]
    ],
}


# --- entities --------------------------------------------------------------------------


class RegistryEntity(Payload):
    """Base of the registry's entities: each knows its compacted topic and record key."""

    topic: ClassVar[str] = ""

    @property
    def key(self) -> str:
        code: str = getattr(self, "code")  # noqa: B009 - every entity but CalendarYear has one
        return code


class Grid(RegistryEntity):
    """A cell of the grid hierarchy: city, district, street, community or grid (单元网格)."""

    ce_type: ClassVar[str] = "onegrid.registry.grid.v1"
    topic: ClassVar[str] = "registry.grids.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "420502003001001",
                    "name": "学院街社区第1网格",
                    "level": "grid",
                    "parent_code": "420502003001",
                    "kind": "base",
                    "geometry": _SQUARE_EXAMPLE,
                    "households": 312,
                    "residents": 905,
                    "active": True,
                }
            ]
        }
    )

    code: GridCode
    name: ChineseName
    level: GridLevel
    parent_code: GridCode | None = Field(
        default=None, description="the code one level up; None only for the city"
    )
    kind: GridKind = GridKind.BASE
    geometry: Area | None = Field(
        default=None, description="GeoJSON, WGS84; required at level grid, optional above"
    )
    households: int = Field(default=0, ge=0)
    residents: int = Field(default=0, ge=0)
    active: bool = True

    @model_validator(mode="after")
    def _hierarchy(self) -> Grid:
        level = grid_level_of(self.code)
        if level is not self.level:
            raise ValueError(f"code {self.code!r} denotes level {level}, not {self.level}")
        expected_parent = grid_parent_of(self.code)
        if self.parent_code != expected_parent:
            raise ValueError(
                f"parent_code of {self.code!r} must be {expected_parent!r}, "
                f"not {self.parent_code!r}"
            )
        if self.level is GridLevel.GRID and self.geometry is None:
            raise ValueError("a grid of level grid needs a geometry")
        if self.kind is not GridKind.BASE and self.level is not GridLevel.GRID:
            raise ValueError("only level grid can be a dedicated grid")
        return self


class Building(RegistryEntity):
    """A building (楼栋) in a grid; its QR code leads residents to the grid's contact card."""

    ce_type: ClassVar[str] = "onegrid.registry.building.v1"
    topic: ClassVar[str] = "registry.buildings.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "420502003001001002",
                    "grid_code": "420502003001001",
                    "name": "学院街12号楼",
                    "address": "湖北省宜昌市西陵区学院街12号",
                    "point": {"type": "Point", "coordinates": [111.2905, 30.7008]},
                    "active": True,
                }
            ]
        }
    )

    code: BuildingCode
    grid_code: Annotated[str, Field(pattern=r"^\d{15}$")]
    name: ChineseName
    address: str = Field(default="", max_length=200)
    point: Point
    active: bool = True

    @model_validator(mode="after")
    def _in_its_grid(self) -> Building:
        if self.code[:15] != self.grid_code:
            raise ValueError(f"building code {self.code!r} must start with its grid code")
        return self


class UnitKind(StrEnum):
    DEPARTMENT = "department"  # city department (职能部门)
    STREET_OFFICE = "street_office"  # 街道办事处
    COMMUNITY_OFFICE = "community_office"  # 社区居委会
    GRID = "grid"  # the grid's own team (网格长 and workers): the grid micro-loop

    @property
    def tier(self) -> Tier:
        return {
            UnitKind.DEPARTMENT: Tier.DEPARTMENT,
            UnitKind.STREET_OFFICE: Tier.STREET,
            UnitKind.COMMUNITY_OFFICE: Tier.COMMUNITY,
            UnitKind.GRID: Tier.GRID,
        }[self]


class IntegrationMode(StrEnum):
    WORKBENCH = "workbench"  # staff use onegrid's workbench API
    ADAPTER = "adapter"  # reached through dept.<unit>.tasks.v1 / replies.v1 and an adapter


class Unit(RegistryEntity):
    """A handling unit: anything that can be given a task."""

    ce_type: ClassVar[str] = "onegrid.registry.unit.v1"
    topic: ClassVar[str] = "registry.units.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "urban",
                    "name": "宜昌市城市管理执法局",
                    "kind": "department",
                    "jurisdiction": ["420500"],
                    "integration_mode": "adapter",
                    "head_staff_code": None,
                    "contact_name": "指挥中心值班室",
                    "contact_phone": "0717-6221234",
                    "active": True,
                },
                {
                    "code": "street-420502003",
                    "name": "西陵区学院街道办事处",
                    "kind": "street_office",
                    "jurisdiction": ["420502003"],
                    "integration_mode": "workbench",
                    "head_staff_code": "S0000007",
                    "contact_name": "王建国",
                    "contact_phone": "0717-6234567",
                    "active": True,
                },
            ]
        }
    )

    code: UnitCode
    name: ChineseName
    kind: UnitKind
    jurisdiction: list[GridCode] = Field(
        min_length=1,
        description="grid codes at any level; the unit covers those cells and all below them",
    )
    integration_mode: IntegrationMode
    head_staff_code: StaffCode | None = Field(
        default=None, description="the head, who receives deadline warnings"
    )
    contact_name: str = Field(default="", max_length=100)
    contact_phone: Phone | None = None
    active: bool = True

    @field_validator("jurisdiction")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("jurisdiction lists a grid code twice")
        return value


class StaffRole(StrEnum):
    GRID_HEAD = "grid_head"  # 网格长
    FULL_TIME_WORKER = "full_time_worker"  # 专职网格员
    PART_TIME_WORKER = "part_time_worker"  # 兼职网格员
    GRID_INSTRUCTOR = "grid_instructor"  # 网格指导员
    INFORMATION_OFFICER = "information_officer"  # 网格信息员
    UNIT_HEAD = "unit_head"  # 单位负责人: heads a unit, receives its deadline warnings


class Staff(RegistryEntity):
    """A person of the grid teams or a unit. Only public work contact is carried here."""

    ce_type: ClassVar[str] = "onegrid.registry.staff.v1"
    topic: ClassVar[str] = "registry.staff.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "S0000123",
                    "name": "张燕",
                    "role": "full_time_worker",
                    "grid_codes": ["420502003001001"],
                    "unit_code": "community-420502003001",
                    "phone": "13907171234",
                    "active": True,
                }
            ]
        }
    )

    code: StaffCode
    name: ChineseName
    role: StaffRole
    grid_codes: list[GridCode] = Field(default_factory=list, description="grids assigned")
    unit_code: UnitCode | None = None
    phone: Phone | None = Field(default=None, description="public work phone, shown to residents")
    active: bool = True

    @field_validator("grid_codes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("grid_codes lists a grid twice")
        return value


class Priority(StrEnum):
    """A category's default priority, also a case's severity. Ordered: see PRIORITY_RANK."""

    URGENT = "urgent"  # 紧急
    HIGH = "high"  # 较急
    NORMAL = "normal"  # 一般
    LOW = "low"


PRIORITY_RANK: dict[Priority, int] = {
    Priority.LOW: 0,
    Priority.NORMAL: 1,
    Priority.HIGH: 2,
    Priority.URGENT: 3,
}


class LimitUnit(StrEnum):
    WORKING_HOURS = "working_hours"  # counted in the working-day calendar's office hours
    WORKING_DAYS = "working_days"
    MINUTES = "minutes"  # clock minutes around the clock: emergencies do not wait for Monday


class TimeLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: int = Field(gt=0)
    unit: LimitUnit


class Category(RegistryEntity):
    """A minor category of the taxonomy, with its major category, limits and intake hints."""

    ce_type: ClassVar[str] = "onegrid.registry.category.v1"
    topic: ClassVar[str] = "registry.categories.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "environment.exposed_garbage",
                    "name_zh": "暴露垃圾",
                    "major_code": "environment",
                    "major_name_zh": "市容环境",
                    "priority": "normal",
                    "response_limit": {"amount": 2, "unit": "working_hours"},
                    "resolution_limit": {"amount": 1, "unit": "working_days"},
                    "default_tier": "grid",
                    "requires_id_number": False,
                    "keywords": ["垃圾", "垃圾堆", "乱扔", "脏乱"],
                    "duplicate_radius_m": 50,
                    "duplicate_window_hours": 24,
                    "active": True,
                }
            ]
        }
    )

    code: CategoryCode
    name_zh: ChineseName
    major_code: MajorCode
    major_name_zh: ChineseName
    priority: Priority = Priority.NORMAL
    response_limit: TimeLimit
    resolution_limit: TimeLimit
    default_tier: Tier
    requires_id_number: bool = Field(
        default=False, description="service requests filed on a resident's behalf need the ID"
    )
    keywords: list[Annotated[str, Field(min_length=1, max_length=20)]] = Field(
        default_factory=list, description="Chinese keywords for intake's rule-based classifier"
    )
    duplicate_radius_m: int = Field(default=50, ge=0, le=5000)
    duplicate_window_hours: int = Field(default=24, ge=0, le=24 * 30)
    active: bool = True

    @model_validator(mode="after")
    def _major_prefix(self) -> Category:
        if self.code.split(".", 1)[0] != self.major_code:
            raise ValueError(f"category code {self.code!r} must start with {self.major_code!r}.")
        return self


class FixedUnit(BaseModel):
    """Always this unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    by: Literal["unit"] = "unit"
    unit_code: UnitCode


class CoveringUnit(BaseModel):
    """The unit of this tier (grid team, community office or street office) whose
    jurisdiction covers the case's grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    by: Literal["jurisdiction"] = "jurisdiction"
    tier: Literal[Tier.GRID, Tier.COMMUNITY, Tier.STREET]


UnitSelector = Annotated[FixedUnit | CoveringUnit, Field(discriminator="by")]


class RoutingRule(RegistryEntity):
    """Category (optionally narrowed by district, grid kind, minimum severity) → tier and units.

    Among the active rules that match a case the most specific wins: grid kind counts more
    than district, district more than the severity floor; `precedence` breaks the remaining
    ties (higher wins), then the code.
    """

    ce_type: ClassVar[str] = "onegrid.registry.route.v1"
    topic: ClassVar[str] = "registry.routes.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "route.environment.exposed_garbage",
                    "category_code": "environment.exposed_garbage",
                    "district_code": None,
                    "grid_kind": None,
                    "min_severity": None,
                    "tier": "grid",
                    "lead": {"by": "jurisdiction", "tier": "grid"},
                    "assisting": [],
                    "precedence": 0,
                    "active": True,
                },
                {
                    "code": "route.safety.fire_hazard.market",
                    "category_code": "safety.fire_hazard",
                    "district_code": None,
                    "grid_kind": "market",
                    "min_severity": None,
                    "tier": "department",
                    "lead": {"by": "unit", "unit_code": "fire"},
                    "assisting": [{"by": "unit", "unit_code": "market"}],
                    "precedence": 0,
                    "active": True,
                },
            ]
        }
    )

    code: RuleCode
    category_code: CategoryCode
    district_code: DistrictCode | None = None
    grid_kind: GridKind | None = None
    min_severity: Priority | None = Field(
        default=None, description="applies only to cases at least this severe"
    )
    tier: Tier
    lead: UnitSelector
    assisting: list[UnitSelector] = Field(default_factory=list)
    precedence: int = 0
    active: bool = True

    @model_validator(mode="after")
    def _lead_matches_tier(self) -> RoutingRule:
        if isinstance(self.lead, CoveringUnit) and self.lead.tier != self.tier:
            raise ValueError(
                f"lead selects the covering unit at tier {self.lead.tier}, "
                f"but the rule's tier is {self.tier}"
            )
        if self.lead in self.assisting:
            raise ValueError("the lead unit cannot also be an assisting unit")
        return self


class CalendarSource(StrEnum):
    SEEDED = "seeded"  # from the chinese-calendar package
    EDITED = "edited"  # entered by city IT from the State Council's announcement


class CalendarYear(RegistryEntity):
    """One year of the working-day calendar: public holidays and adjusted working days (调休).

    Weekends are implicit: a day is a working day if it is a weekday and not a holiday, or
    if it is listed as an adjusted working day. A year with no CalendarYear counts weekends only.
    """

    ce_type: ClassVar[str] = "onegrid.registry.calendar.v1"
    topic: ClassVar[str] = "registry.calendars.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "year": 2026,
                    "holidays": ["2026-01-01", "2026-01-02", "2026-01-03"],
                    "workdays": ["2026-01-04"],
                    "source": "seeded",
                }
            ]
        }
    )

    year: int = Field(ge=2000, le=2100)
    holidays: list[date] = Field(default_factory=list, description="days off (法定节假日)")
    workdays: list[date] = Field(
        default_factory=list, description="weekend days worked in lieu (调休上班)"
    )
    source: CalendarSource = CalendarSource.SEEDED

    @property
    def key(self) -> str:
        return str(self.year)

    @model_validator(mode="after")
    def _dates(self) -> CalendarYear:
        for name, days in (("holidays", self.holidays), ("workdays", self.workdays)):
            for day in days:
                if day.year != self.year:
                    raise ValueError(f"{name} lists {day.isoformat()}, outside {self.year}")
            if len(set(days)) != len(days):
                raise ValueError(f"{name} lists a date twice")
        both = set(self.holidays) & set(self.workdays)
        if both:
            raise ValueError(
                f"dates both holiday and workday: {sorted(d.isoformat() for d in both)}"
            )
        return self


REGISTRY_ENTITIES: tuple[type[RegistryEntity], ...] = (
    Grid,
    Building,
    Unit,
    Staff,
    Category,
    RoutingRule,
    CalendarYear,
)
