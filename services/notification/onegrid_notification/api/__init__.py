"""HTTP API: notifications with status and attempts (operators, auditors), and channel
preferences per recipient (operators, admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from onegrid_common.auth import Principal, require_roles
from onegrid_common.pagination import Page, PageParams, page_params
from onegrid_common.problems import PROBLEM_TYPE_PREFIX, Problem
from onegrid_common.service import RuntimeDep
from onegrid_contracts.notify import NotifyChannel
from onegrid_notification.db import store

router = APIRouter(prefix="/v1", tags=["notification"])
RECIPIENT_KEY = r"^(reporter|staff|unit|operators):[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


RT = RuntimeDep
Readers = Annotated[Principal, Depends(require_roles("operator", "auditor", "admin"))]
Editors = Annotated[Principal, Depends(require_roles("operator", "admin"))]


class Attempt(BaseModel):
    n: int
    started_at: datetime
    finished_at: datetime | None
    result: str | None = Field(description="delivered, retry, failed, interrupted; null: in flight")
    error: str | None
    provider_message_id: str | None
    span_id: str | None = Field(default=None, description="The send span of this attempt.")


class NotificationOut(BaseModel):
    id: UUID
    request_id: UUID
    dedup_key: str
    recipient: str = Field(description="Recipient key <kind>:<id>.")
    masked_phone: str | None = None
    channel: NotifyChannel
    template_id: str
    template_version: int
    title: str
    text: str
    sms_parts: int | None
    urgency: str
    case_id: UUID | None
    case_no: str | None
    status: str = Field(description="pending, deferred, sending, delivered or failed")
    attempts: int
    next_attempt_at: datetime | None
    deferred_until: datetime | None
    provider_message_id: str | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    trace_id: str | None = Field(default=None, description="The case's trace.")
    span_id: str | None = Field(
        default=None, description="The span that asked for it (its sends are children)."
    )
    attempt_log: list[Attempt] = Field(default_factory=list)


def _trace_ids(traceparent: str | None) -> tuple[str | None, str | None]:
    parts = (traceparent or "").split("-")
    return (parts[1], parts[2]) if len(parts) == 4 else (None, None)


def _out(row: Any, attempts: list[Any]) -> NotificationOut:
    contact = row["recipient"].get("contact") or {}
    trace_id, span_id = _trace_ids(row["traceparent"])
    return NotificationOut(
        id=row["id"],
        request_id=row["request_id"],
        dedup_key=row["dedup_key"],
        recipient=row["recipient_key"],
        masked_phone=contact.get("masked_phone"),
        channel=NotifyChannel(row["channel"]),
        template_id=row["template_id"],
        template_version=row["template_version"],
        title=row["title"],
        text=row["body"],
        sms_parts=row["sms_parts"],
        urgency=row["urgency"],
        case_id=row["case_id"],
        case_no=row["case_no"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"]
        if row["status"] in ("pending", "deferred")
        else None,
        deferred_until=row["deferred_until"],
        provider_message_id=row["provider_message_id"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        trace_id=trace_id,
        span_id=span_id,
        attempt_log=[Attempt(**{k: a[k] for k in Attempt.model_fields}) for a in attempts],
    )


@router.get("/notifications", response_model=Page[NotificationOut])
async def list_notifications(
    rt: RT,
    _: Readers,
    page: Annotated[PageParams, Depends(page_params)],
    case_id: Annotated[UUID | None, Query(description="Notifications of one case.")] = None,
    recipient: Annotated[
        str | None, Query(pattern=RECIPIENT_KEY, description="Recipient key, e.g. staff:S0000901.")
    ] = None,
) -> Page[NotificationOut]:
    if case_id is None and recipient is None:
        raise Problem(
            400,
            detail="give case_id or recipient",
            type=PROBLEM_TYPE_PREFIX + "missing-filter",
            errors=[{"field": "query.case_id", "message": "case_id or recipient is required"}],
        )
    after = page.after or {}
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM notification WHERE ($1::uuid IS NULL OR case_id = $1)"
            " AND ($2::text IS NULL OR recipient_key = $2)"
            " AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4::uuid))"
            " ORDER BY created_at, id LIMIT $5",
            case_id,
            recipient,
            datetime.fromisoformat(after["t"]) if after else None,
            UUID(after["id"]) if after else None,
            page.limit + 1,
        )
        attempts = await conn.fetch(
            "SELECT * FROM notification_attempt WHERE notification_id = ANY($1::uuid[])"
            " ORDER BY notification_id, n",
            [r["id"] for r in rows],
        )
    by_id: dict[UUID, list[Any]] = {}
    for a in attempts:
        by_id.setdefault(a["notification_id"], []).append(a)
    items = [_out(r, by_id.get(r["id"], [])) for r in rows]
    return Page.from_rows(items, page, lambda n: {"t": n.created_at.isoformat(), "id": str(n.id)})


class PreferenceIn(BaseModel):
    channels: list[NotifyChannel] = Field(
        default_factory=list, max_length=4, description="Fallback order; empty: the default."
    )
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    webhook_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")


class PreferenceOut(PreferenceIn):
    recipient: str
    updated_at: datetime | None = None


@router.get("/preferences/{recipient}", response_model=PreferenceOut)
async def get_preference(
    rt: RT, _: Editors, recipient: Annotated[str, Path(pattern=RECIPIENT_KEY)]
) -> PreferenceOut:
    async with rt.db.acquire() as conn:
        pref = await store.get_preference(conn, recipient)
    if pref is None:
        raise Problem(
            404, detail=f"no preference for {recipient}", type=PROBLEM_TYPE_PREFIX + "not-found"
        )
    return PreferenceOut(
        recipient=recipient,
        channels=list(pref.channels),
        email=pref.email,
        webhook_url=pref.webhook_url,
        updated_at=pref.updated_at,
    )


@router.put("/preferences/{recipient}", response_model=PreferenceOut)
async def put_preference(
    rt: RT, _: Editors, recipient: Annotated[str, Path(pattern=RECIPIENT_KEY)], body: PreferenceIn
) -> PreferenceOut:
    if len(set(body.channels)) != len(body.channels):
        raise Problem(
            422,
            detail="channels lists a channel twice",
            errors=[{"field": "body.channels", "message": "each channel at most once"}],
        )
    async with rt.db.acquire() as conn:
        pref = await store.put_preference(
            conn,
            store.Preference(recipient, tuple(body.channels), body.email, body.webhook_url),
        )
    return PreferenceOut(
        recipient=recipient,
        channels=list(pref.channels),
        email=pref.email,
        webhook_url=pref.webhook_url,
        updated_at=pref.updated_at,
    )
