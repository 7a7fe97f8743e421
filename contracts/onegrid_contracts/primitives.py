"""Field types shared by the payload models: codes, places, people, files, secrets.

Each is a constrained type or a small nested model, so one rule (a grid code's shape, the
WGS84 bounds, a masked phone) is written once and appears the same in every JSON Schema.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Codes. Unit codes end up in topic names (dept.<unit>.tasks.v1), hence lower-case and no dots.
UNIT_CODE_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"

GridCode = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{6}([0-9]{3}){0,3}$",
        description="GB/T 30428-style grid code: 6-digit city or district, then 3 digits each for "
        "street, community and grid.",
        examples=["420502003001001"],
    ),
]
UnitCode = Annotated[
    str,
    Field(
        pattern=UNIT_CODE_PATTERN,
        description="Handling unit code: lower-case letters, digits and '-' (it is part of "
        "topic names).",
        examples=["urban", "street-420502003"],
    ),
]
CategoryCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]{1,39}\.[a-z][a-z0-9_]{1,59}$",
        description="Minor category code from the registry taxonomy: '<major>.<minor>'.",
        examples=["environment.exposed_garbage"],
    ),
]
CaseNo = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9]{2,12}-[0-9]{8}-[0-9]{6}$",
        description="Human case number: <city code>-<yyyymmdd>-<6-digit daily sequence>.",
        examples=["4205-20261123-000042"],
    ),
]
StaffCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z][A-Z0-9-]{2,31}$",
        description="Staff code from the registry.",
        examples=["S0000123"],
    ),
]
MaskedPhone = Annotated[
    str,
    Field(
        pattern=r"^1[0-9]{2}\*{4}[0-9]{4}$",
        description="Mainland mobile number with the middle four digits masked.",
        examples=["138****5678"],
    ),
]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256.")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[
    str,
    Field(min_length=1, max_length=1000, description="Why, in the words of the person deciding."),
]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]
Timestamp = Annotated[AwareDatetime, Field(description="RFC 3339 time with UTC offset.")]

MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024


class Strict(BaseModel):
    """Nested value objects: frozen, stripped strings, unknown keys ignored (like payloads)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class ActorKind(StrEnum):
    SYSTEM = "system"  # a onegrid service acting on a rule (automatic registration, timers)
    OPERATOR = "operator"  # command-centre staff
    UNIT = "unit"  # a handling unit, through its workbench or its adapter
    GRID_WORKER = "grid_worker"
    REPORTER = "reporter"


class Actor(Strict):
    """Who did it."""

    kind: ActorKind = Field(description="What kind of party acted.")
    id: str = Field(
        min_length=1,
        max_length=64,
        description="Service name (system), staff id (operator, grid_worker), unit code (unit) "
        "or reporter reference (reporter).",
    )
    name: str | None = Field(
        default=None,
        max_length=64,
        description="Display name; masked for reporters (e.g. '张*').",
    )


class Location(Strict):
    """A point in WGS84 (the registry's polygons use the same datum)."""

    lon: float = Field(ge=-180, le=180, description="Longitude, WGS84 degrees east.")
    lat: float = Field(ge=-90, le=90, description="Latitude, WGS84 degrees north.")
    address: str | None = Field(
        default=None, max_length=200, description="Address text as reported or geocoded."
    )


class Attachment(Strict):
    """A file held by a storage service; messages carry references, never the bytes."""

    url: str = Field(
        min_length=8,
        max_length=2048,
        pattern=r"^https?://\S+$",
        description="Where the file can be fetched (http or https).",
    )
    media_type: str = Field(
        pattern=r"^(image|video|audio|application)/[A-Za-z0-9.+-]{1,64}$",
        description="IANA media type, e.g. image/jpeg.",
    )
    size_bytes: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES, description="Size in bytes.")
    sha256: Sha256Hex


Attachments = Annotated[
    tuple[Attachment, ...],
    Field(max_length=MAX_ATTACHMENTS, description=f"At most {MAX_ATTACHMENTS} files."),
]


class EncryptedValue(Strict):
    """A secret (phone or ID number) sealed with AES-256-GCM; only its key holder opens it."""

    alg: str = Field(
        default="AES-256-GCM", pattern=r"^AES-256-GCM$", description="Cipher; only AES-256-GCM."
    )
    key_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Id of the key that sealed it (keys rotate; old ids stay readable).",
    )
    nonce: str = Field(
        pattern=r"^[A-Za-z0-9+/]{16}$", description="Base64 of the 12-byte GCM nonce."
    )
    ciphertext: str = Field(
        min_length=4,
        max_length=4096,
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        description="Base64 of ciphertext followed by the 16-byte tag.",
    )


class Applicant(Strict):
    """The person a service request (低保, 临时救助, 高龄补贴 …) is for. Sealed for the unit."""

    masked_name: str = Field(min_length=1, max_length=32, description="e.g. '刘*'.")
    masked_phone: MaskedPhone | None = None
    name: EncryptedValue = Field(description="Full name, sealed.")
    id_number: EncryptedValue = Field(description="Resident ID number (18 characters), sealed.")
    phone: EncryptedValue | None = Field(default=None, description="Mobile number, sealed.")


class ReporterRef(Strict):
    """A reporter as other services may see them: a reference and masked contact only."""

    reporter_id: str = Field(
        min_length=1,
        max_length=64,
        description="Intake's opaque reporter reference (stable across reports of one person).",
    )
    anonymous: bool = Field(default=False, description="The reporter gave no name or phone.")
    masked_name: str | None = Field(default=None, max_length=32, description="e.g. '张*'.")
    masked_phone: MaskedPhone | None = None
    phone_encrypted: EncryptedValue | None = Field(
        default=None,
        description="The phone sealed for the notification service, which opens it at send "
        "time only.",
    )

    @model_validator(mode="after")
    def _anonymous_has_no_contact(self) -> ReporterRef:
        if self.anonymous and (self.masked_phone or self.phone_encrypted or self.masked_name):
            raise ValueError("an anonymous reporter carries no name or phone")
        return self


# Example values used across the payload examples, so they tell one consistent story.
EX_CASE_ID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
EX_CASE_NO = "4205-20261123-000042"
EX_REPORT_ID = "0b7e4d2c-1a3f-4c5d-9e8f-7a6b5c4d3e2f"
EX_TASK_ID = "d3b2a1c0-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
EX_GRID = "420502003001001"
EX_GRID_PATH = ["420500", "420502", "420502003", "420502003001", "420502003001001"]
EX_LOCATION: dict[str, Any] = {
    "lon": 111.2902,
    "lat": 30.7012,
    "address": "西陵区夷陵大道 58 号锦绣小区南门",
}
EX_PHOTO: dict[str, Any] = {
    "url": "https://files.yichang.example/cases/2026/11/23/a1.jpg",
    "media_type": "image/jpeg",
    "size_bytes": 482113,
    "sha256": "9f2b5c1e0a7d4c3b8e6f1a2d3c4b5a6978e1d2c3b4a5968778695a4b3c2d1e0f",
}
EX_OPERATOR: dict[str, Any] = {"kind": "operator", "id": "S0000007", "name": "李敏"}
EX_SYSTEM: dict[str, Any] = {"kind": "system", "id": "dispatch"}
EX_UNIT: dict[str, Any] = {"kind": "unit", "id": "urban"}
