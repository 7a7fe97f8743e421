"""The merged case timeline (pure): lifecycle events, task messages to adapter units, the
departments' replies (what their systems answered, with their own reference numbers) and
notifications, in time order, each with the time since the previous step and where every
deadline stood at that moment. The API gathers the rows; this module shapes and orders them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

EntryKind = Literal["lifecycle", "task_message", "department_reply", "notification"]
Standing = Literal["on_time", "warning", "breached", "met", "paused"]

# Order of kinds at the same instant: the event, then what it sent, then the answers.
_KIND_ORDER: Mapping[str, int] = {
    "lifecycle": 0,
    "task_message": 1,
    "department_reply": 2,
    "notification": 3,
}


class DeadlineStanding(BaseModel):
    kind: str = Field(description="response or resolution")
    standing: Standing
    due_at: datetime
    remaining_s: float = Field(description="Seconds left until due at this step; < 0: overdue.")


class TimelineEntry(BaseModel):
    id: str = Field(description="Event, message or notification id.")
    kind: EntryKind
    type: str
    at: datetime
    actor: dict[str, Any] | None = None
    unit_code: str | None = None
    summary: str
    reason: str | None = None
    external_ref: str | None = Field(
        default=None, description="The department system's own reference number."
    )
    trace_id: str | None = None
    span_id: str | None = None
    since_previous_s: float | None = Field(
        default=None, description="Seconds since the previous step (null for the first)."
    )
    deadlines: list[DeadlineStanding] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)


class TimelinePage(BaseModel):
    case_id: str
    case_no: str
    state: str
    items: list[TimelineEntry]
    next_cursor: str | None = None
    sources: dict[str, str] = Field(
        default_factory=dict,
        description="Each source merged and whether it answered: ok, unavailable, not_configured.",
    )


@dataclass(frozen=True)
class Clock:
    """A deadline clock of the case as it stands (the current round's)."""

    kind: str
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    met_at: datetime | None
    paused_at: datetime | None


def standing_at(clock: Clock, at: datetime) -> DeadlineStanding | None:
    """Where `clock` stood at `at`; None before it started."""
    if at < clock.started_at:
        return None
    remaining = (clock.due_at - at).total_seconds()
    state: Standing
    if clock.met_at is not None and clock.met_at <= at:
        state = "met"
        remaining = (clock.due_at - clock.met_at).total_seconds()
    elif clock.paused_at is not None and clock.paused_at <= at:
        state = "paused"
    elif at >= clock.due_at:
        state = "breached"
    elif at >= clock.warn_at:
        state = "warning"
    else:
        state = "on_time"
    return DeadlineStanding(
        kind=clock.kind, standing=state, due_at=clock.due_at, remaining_s=remaining
    )


def merge(entries: Iterable[TimelineEntry], clocks: Iterable[Clock]) -> list[TimelineEntry]:
    """All entries in time order, with the time since the previous one and the deadlines."""
    clocks = list(clocks)
    ordered = sorted(entries, key=lambda e: (e.at, _KIND_ORDER[e.kind]))
    out: list[TimelineEntry] = []
    previous: datetime | None = None
    for entry in ordered:
        stood = [s for s in (standing_at(c, entry.at) for c in clocks) if s is not None]
        since = (entry.at - previous).total_seconds() if previous is not None else None
        out.append(entry.model_copy(update={"since_previous_s": since, "deadlines": stood}))
        previous = entry.at
    return out


def _short(ce_type: str) -> str:
    return ce_type.removeprefix("onegrid.").removesuffix(".v1")


def lifecycle_entry(row: Mapping[str, Any]) -> TimelineEntry:
    payload: dict[str, Any] = dict(row["payload"])
    unit = payload.get("unit_code") or payload.get("lead_unit_code")
    reason = row["reason"]
    summary = _short(row["type"]) + (f"：{reason}" if reason else "")
    return TimelineEntry(
        id=row["event_id"],
        kind="lifecycle",
        type=row["type"],
        at=row["at"],
        actor=row["actor"],
        unit_code=unit if isinstance(unit, str) else None,
        summary=summary,
        reason=reason,
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        payload=payload,
    )


def task_message_entry(row: Mapping[str, Any]) -> TimelineEntry:
    """A task message to a unit ("out") or a unit's reply ("in")."""
    payload: dict[str, Any] = dict(row["payload"])
    unit = row["unit_code"]
    short = _short(row["type"])
    external_ref = payload.get("external_ref")
    if row["direction"] == "out":
        kind: EntryKind = "task_message"
        summary = f"→ {unit}: {short}"
        actor = None
    else:
        kind = "department_reply"
        detail = (
            payload.get("external_status")
            or payload.get("note")
            or payload.get("result")
            or payload.get("reason")
            or payload.get("error")
        )
        summary = f"← {unit}: {short}"
        if external_ref:
            summary += f" [{external_ref}]"
        if detail:
            summary += f"：{detail}"
        actor = {"kind": "unit", "id": unit, "name": payload.get("handled_by")}
    return TimelineEntry(
        id=row["message_id"],
        kind=kind,
        type=row["type"],
        at=row["at"],
        actor=actor,
        unit_code=unit,
        summary=summary,
        external_ref=external_ref if isinstance(external_ref, str) else None,
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        payload=payload,
    )


def notification_entry(item: Mapping[str, Any]) -> TimelineEntry:
    """One notification as the notification service lists it."""
    status = item.get("status", "?")
    summary = f"✉ {item.get('channel')} → {item.get('recipient')}: {item.get('title')} ({status})"
    return TimelineEntry(
        id=str(item["id"]),
        kind="notification",
        type=f"notification.{item.get('template_id', 'message')}",
        at=datetime.fromisoformat(str(item["created_at"])),
        actor={"kind": "system", "id": "notification"},
        summary=summary,
        reason=item.get("last_error"),
        # The latest send's span when it was sent, else the span that asked for it.
        trace_id=item.get("trace_id"),
        span_id=next(
            (a["span_id"] for a in reversed(item.get("attempt_log") or []) if a.get("span_id")),
            item.get("span_id"),
        ),
        payload={
            k: item.get(k)
            for k in ("channel", "recipient", "template_id", "status", "attempts", "finished_at")
        },
    )
