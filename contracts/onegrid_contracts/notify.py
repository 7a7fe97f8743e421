"""Notifications: any service asks on `notify.requests.v1`; notification answers with the
outcome on `notify.outcomes.v1`. Both are keyed by the recipient key (`<kind>:<id>`), so one
person's messages stay in order and rate limits see them together.

Exactly once per (dedup_key, recipient, channel): the requester chooses the dedup key
(e.g. `<event id>:<template id>`), and a repeated request with the same key is a no-op.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import ConfigDict, Field, field_validator

from onegrid_contracts.base import Payload
from onegrid_contracts.primitives import (
    EX_CASE_ID,
    EX_CASE_NO,
    CaseNo,
    EncryptedValue,
    MaskedPhone,
    Strict,
    Timestamp,
)


class RecipientKind(StrEnum):
    REPORTER = "reporter"  # id: intake's reporter reference
    STAFF = "staff"  # id: registry staff code (grid workers, unit heads, operators)
    UNIT = "unit"  # id: unit code; delivered to the unit's head or its webhook
    OPERATORS = "operators"  # id: an operator desk, e.g. "command-centre"


class NotifyChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WEBHOOK = "webhook"
    APP_PUSH = "app_push"


class Urgency(StrEnum):
    NORMAL = "normal"  # deferred during quiet hours
    URGENT = "urgent"  # sent at once, quiet hours or not


class OutcomeStatus(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # the retry budget is spent on every allowed channel
    DEFERRED = "deferred"  # quiet hours or rate limit: will be sent later


class Contact(Strict):
    """How to reach a recipient not in the registry (reporters). Phones travel sealed."""

    masked_phone: MaskedPhone | None = None
    phone: EncryptedValue | None = Field(default=None, description="Sealed mobile number.")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Recipient(Strict):
    kind: RecipientKind
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    contact: Contact | None = Field(
        default=None, description="For reporters; staff and units are looked up in the registry."
    )

    @property
    def key(self) -> str:
        """The Kafka key of every message to this recipient."""
        return f"{self.kind.value}:{self.id}"


TemplateVariable = Annotated[str, Field(max_length=500)] | int | float | bool
_RECIPIENT: dict[str, Any] = {
    "kind": "reporter",
    "id": "rp-7c2e91",
    "contact": {
        "masked_phone": "138****5678",
        "phone": {
            "alg": "AES-256-GCM",
            "key_id": "pii-2026-11",
            "nonce": "q83vEjRWeJCrze8S",
            "ciphertext": "3q2+7wAAAAAbH1u0k9Vv8hY5t3XK1mB2cQ==",
        },
        "email": None,
    },
}


class NotificationRequested(Payload):
    """Tell someone something, by template."""

    ce_type = "onegrid.notify.requested.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                    "dedup_key": "9b0e6c1a-2f3d-4e5a-8b7c-6d5e4f3a2b1c:case_closed_survey",
                    "recipient": _RECIPIENT,
                    "channels": ["sms"],
                    "template_id": "case_closed_survey",
                    "template_version": 1,
                    "variables": {
                        "case_no": EX_CASE_NO,
                        "summary": "小区门口垃圾已清运",
                        "survey_url": "https://12345.yichang.example/s/6f1c2a9e",
                    },
                    "urgency": "normal",
                    "case_id": EX_CASE_ID,
                    "case_no": EX_CASE_NO,
                    "requested_by": "dispatch",
                    "requested_at": "2026-11-23T16:40:02+08:00",
                },
                {
                    "request_id": "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
                    "dedup_key": "f00d1e55-1111-4222-8333-944455556666:deadline_warning",
                    "recipient": {"kind": "staff", "id": "S0000901", "contact": None},
                    "channels": ["app_push", "sms"],
                    "template_id": "deadline_warning",
                    "template_version": None,
                    "variables": {"case_no": EX_CASE_NO, "unit_name": "市城管局", "hours_left": 3},
                    "urgency": "urgent",
                    "case_id": EX_CASE_ID,
                    "case_no": EX_CASE_NO,
                    "requested_by": "dispatch",
                    "requested_at": "2026-11-24T14:19:08+08:00",
                },
            ]
        }
    )

    request_id: UUID
    dedup_key: str = Field(
        min_length=1,
        max_length=200,
        description="Sent at most once per (dedup_key, recipient, channel).",
    )
    recipient: Recipient
    channels: tuple[NotifyChannel, ...] = Field(
        default=(),
        max_length=4,
        description="Preferred channels, in fallback order; empty: the recipient's preference.",
    )
    template_id: str = Field(pattern=r"^[a-z][a-z0-9_.]{1,63}$")
    template_version: int | None = Field(
        default=None, ge=1, description="Pin a template version; null: the current one."
    )
    variables: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")], TemplateVariable] = (
        Field(default_factory=dict, max_length=32)
    )
    urgency: Urgency = Urgency.NORMAL
    case_id: UUID | None = None
    case_no: CaseNo | None = None
    requested_by: str = Field(min_length=1, max_length=64, description="Requesting service.")
    requested_at: Timestamp

    @field_validator("channels")
    @classmethod
    def _distinct(cls, value: tuple[NotifyChannel, ...]) -> tuple[NotifyChannel, ...]:
        if len(set(value)) != len(value):
            raise ValueError("channels lists a channel twice")
        return value


class NotificationOutcome(Payload):
    """What became of a request on one channel."""

    ce_type = "onegrid.notify.outcome.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                    "dedup_key": "9b0e6c1a-2f3d-4e5a-8b7c-6d5e4f3a2b1c:case_closed_survey",
                    "recipient_key": "reporter:rp-7c2e91",
                    "channel": "sms",
                    "status": "delivered",
                    "attempts": 1,
                    "error": None,
                    "deferred_until": None,
                    "provider_message_id": "SMS2026112316400287",
                    "case_id": EX_CASE_ID,
                    "at": "2026-11-23T16:40:03+08:00",
                },
                {
                    "request_id": "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
                    "dedup_key": "f00d1e55-1111-4222-8333-944455556666:deadline_warning",
                    "recipient_key": "staff:S0000901",
                    "channel": "sms",
                    "status": "deferred",
                    "attempts": 0,
                    "error": None,
                    "deferred_until": "2026-11-25T08:00:00+08:00",
                    "provider_message_id": None,
                    "case_id": EX_CASE_ID,
                    "at": "2026-11-24T22:30:00+08:00",
                },
            ]
        }
    )

    request_id: UUID
    dedup_key: str = Field(min_length=1, max_length=200)
    recipient_key: str = Field(
        pattern=r"^(reporter|staff|unit|operators):[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
    )
    channel: NotifyChannel
    status: OutcomeStatus
    attempts: int = Field(ge=0, le=1000)
    error: str | None = Field(default=None, max_length=2000)
    deferred_until: Timestamp | None = None
    provider_message_id: str | None = Field(default=None, max_length=128)
    case_id: UUID | None = None
    at: Timestamp
