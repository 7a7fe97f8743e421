"""What comes in: the report a channel submits, over HTTP or on `intake.reports.v1`.

`ReportBody` is the body of `POST /v1/reports`; `ChannelReport` is the same report from a
gateway (hotline, IoT, video) on `intake.reports.v1`, plus the gateway's own report id,
which is both the Kafka key and the idempotency key. Intake validates both with the same
rules. HTTP input is closed (`extra="forbid"`): a misspelt field is an error, not silently
dropped. The nested objects are closed in both forms, for the same reason; the top level of
`ChannelReport` follows the payload rule (unknown fields ignored) so gateways may add
optional fields first.

These messages carry the reporter's phone and ID number in clear, like the HTTP body does:
`intake.reports.v1` is written only by gateways and read only by intake (ACLs), kept for a
short time, and intake encrypts the PII before anything else sees it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from onegrid_contracts.base import Payload
from onegrid_contracts.cases import Channel
from onegrid_contracts.primitives import (
    EX_CASE_ID,
    EX_CASE_NO,
    EX_PHOTO,
    EX_REPORT_ID,
    Attachments,
    CaseNo,
    CategoryCode,
    GridCode,
    LongText,
    StaffCode,
    Timestamp,
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number_is_valid(value: str) -> bool:
    """GB 11643 resident ID: 17 digits and a check character (digit or X)."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def _is_control(char: str) -> bool:
    code = ord(char)
    return (code < 0x20 and char not in "\n\r\t") or 0x7F <= code < 0xA0


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ReportLocation(_Closed):
    """A point (lon/lat, WGS84), or address text (then the report names its grid_code)."""

    lon: float | None = Field(default=None, ge=-180, le=180, description="WGS84 longitude.")
    lat: float | None = Field(default=None, ge=-90, le=90, description="WGS84 latitude.")
    address: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _point_or_address(self) -> ReportLocation:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat, or neither")
        if self.lon is None and self.address is None:
            raise ValueError("give lon and lat, or an address")
        return self

    @property
    def has_point(self) -> bool:
        return self.lon is not None and self.lat is not None


class ReporterInput(_Closed):
    """Who reports. Every field is optional: an empty or absent reporter is anonymous."""

    name: str | None = Field(default=None, min_length=1, max_length=50)
    phone: str | None = Field(
        default=None, pattern=r"^1[3-9][0-9]{9}$", description="Mainland mobile number."
    )
    id_number: str | None = Field(
        default=None,
        pattern=r"^[0-9]{17}[0-9Xx]$",
        description="Resident ID number; needed for service requests only.",
    )
    staff_code: StaffCode | None = Field(
        default=None, description="Set when a grid worker reports (grid_worker_app)."
    )

    @field_validator("id_number")
    @classmethod
    def _id_checksum(cls, value: str | None) -> str | None:
        if value is not None and not id_number_is_valid(value):
            raise ValueError("id_number fails the GB 11643 check character")
        return value.upper() if value is not None else None

    @property
    def anonymous(self) -> bool:
        return self.name is None and self.phone is None and self.id_number is None


class _ReportFields(BaseModel):
    channel: Channel = Field(description="Where the report comes from.")
    category_code: CategoryCode | None = Field(
        default=None, description="Optional for residents: intake proposes one from the text."
    )
    description: LongText = Field(description="What is wrong, in the reporter's words.")
    location: ReportLocation | None = Field(default=None, description="Where the matter is.")
    grid_code: GridCode | None = Field(
        default=None, description="The grid, when the location is address text only."
    )
    occurred_at: Timestamp = Field(description="When the matter was seen.")
    reporter: ReporterInput | None = Field(default=None, description="Null: anonymous.")
    attachments: Attachments = ()
    resolved_on_site: bool = Field(
        default=False, description="A grid worker fixed a small matter on the spot."
    )

    @model_validator(mode="after")
    def _locatable(self) -> Any:
        if self.location is None:
            raise ValueError("location is required: lon/lat, or an address with grid_code")
        if not self.location.has_point and self.grid_code is None:
            raise ValueError("an address without lon/lat needs grid_code")
        if self.resolved_on_site and self.channel != Channel.GRID_WORKER_APP:
            raise ValueError("resolved_on_site is for grid workers (channel grid_worker_app)")
        if any(_is_control(c) for c in self.description):
            raise ValueError("description contains control characters")
        return self


_BODY_EXAMPLE: dict[str, Any] = {
    "channel": "grid_worker_app",
    "category_code": "environment.exposed_garbage",
    "description": "小区门口垃圾堆积多日无人清理",
    "location": {"lon": 111.29, "lat": 30.70},
    "occurred_at": "2026-11-23T09:30:00+08:00",
    "reporter": {"name": "张三", "phone": "13800138000"},
    "attachments": [],
    "resolved_on_site": False,
}


class ReportBody(_ReportFields):
    """The body of `POST /v1/reports` (Idempotency-Key header alongside)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra={"examples": [_BODY_EXAMPLE]},
    )


class ChannelReport(_ReportFields, Payload):
    """A gateway's report on `intake.reports.v1`, keyed by channel_report_id."""

    ce_type = "onegrid.intake.report.v1"
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "channel_report_id": "hotline-20261123-0031187",
                    "gateway": "hotline-12345",
                    "received_at": "2026-11-23T20:12:30+08:00",
                    "channel": "hotline_12345",
                    "category_code": None,
                    "description": "路口井盖破损，晚上有行人差点踩空，请尽快处理",
                    "location": {
                        "lon": None,
                        "lat": None,
                        "address": "西陵区夷陵大道与东山大道交叉口东北角",
                    },
                    "grid_code": "420502003001002",
                    "occurred_at": "2026-11-23T20:05:00+08:00",
                    "reporter": {"name": "陈先生", "phone": "13907175678"},
                    "attachments": [],
                    "resolved_on_site": False,
                },
                {
                    "channel_report_id": "iot-wl-0087-20261123T0312",
                    "gateway": "iot-platform",
                    "received_at": "2026-11-23T03:12:09+08:00",
                    "channel": "iot_sensor",
                    "category_code": "facilities.manhole_cover",
                    "description": "井盖位移传感器 WL-0087 报警：倾角 35°，疑似井盖缺失",
                    "location": {"lon": 111.2931, "lat": 30.7043},
                    "occurred_at": "2026-11-23T03:12:00+08:00",
                    "reporter": None,
                    "attachments": [EX_PHOTO],
                    "resolved_on_site": False,
                },
            ]
        },
    )

    channel_report_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="The gateway's own id of the report: Kafka key and idempotency key.",
    )
    gateway: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Which gateway sent it.",
    )
    received_at: Timestamp = Field(description="When the gateway received it.")


class ReportReceipt(BaseModel):
    """What intake answers (HTTP 202) once the report is committed."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "report_id": EX_REPORT_ID,
                    "case_id": EX_CASE_ID,
                    "case_no": EX_CASE_NO,
                    "duplicate_of": None,
                }
            ]
        },
    )

    report_id: UUID
    case_id: UUID
    case_no: CaseNo
    duplicate_of: UUID | None = Field(
        default=None, description="The open case this report joined, when merged."
    )
