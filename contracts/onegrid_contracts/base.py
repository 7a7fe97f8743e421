"""The base of every message payload: strict on what it declares, tolerant of what it doesn't.

Consumers ignore unknown fields so that a producer may add optional fields within a major
version (DESIGN §3) without breaking anyone. Every concrete payload declares its CloudEvents
type and registers itself, so the envelope can decode a message from its `ce_type` alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

PAYLOAD_TYPES: dict[str, type[Payload]] = {}


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    # e.g. "onegrid.case.reported.v1"; abstract bases leave it unset.
    ce_type: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ce_type = cls.__dict__.get("ce_type", "")
        if ce_type:
            if ce_type in PAYLOAD_TYPES and PAYLOAD_TYPES[ce_type] is not cls:
                raise TypeError(f"CloudEvents type {ce_type!r} is declared twice")
            PAYLOAD_TYPES[ce_type] = cls
