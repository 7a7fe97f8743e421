"""SQL of notification: the case read model, preferences, and the notification queue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from onegrid_common import outbox
from onegrid_contracts.cases import (
    CaseEvent,
    CaseRegistered,
    CaseRelocated,
    CaseReported,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskRefused,
    TaskRole,
)
from onegrid_contracts.catalogue import NOTIFY_OUTCOMES
from onegrid_contracts.notify import (
    NotificationOutcome,
    NotifyChannel,
    OutcomeStatus,
    Recipient,
    Urgency,
)
from onegrid_contracts.primitives import ReporterRef
from onegrid_notification.domain.planning import CaseParties
from onegrid_notification.domain.policy import choose_channels
from onegrid_notification.domain.templates import TemplateCatalogue, TemplateError, check_sms

SOURCE = "notification"


# --- case read model ---------------------------------------------------------------------


# The case's parties: number, grid, reporters (in the order they joined) and the units
# holding an open task. {party} is the case_party row to read the number and grid from,
# {reporters} and {units} the rows to read those from.
_PARTIES = """SELECT {party}.case_no, {party}.grid_code,
     (SELECT coalesce(jsonb_agg(r.reporter ORDER BY r.joined_at, r.reporter_id), '[]')
        FROM {reporters} r) AS reporters,
     (SELECT coalesce(array_agg(DISTINCT t.unit_code ORDER BY t.unit_code), '{{}}')
        FROM {units} t) AS units"""
_REPORTERS = "(SELECT reporter, joined_at, reporter_id FROM case_reporter WHERE case_id = $1)"
_UNITS = "(SELECT unit_code FROM case_task WHERE case_id = $1 AND open)"

_UPSERT_PARTY = """INSERT INTO case_party (case_id, case_no, grid_code) VALUES ($1, $2, $3)
    ON CONFLICT (case_id) DO UPDATE SET grid_code = $3
    -- Most events name no grid: no new row version for those.
    WHERE $3 IS NOT NULL AND case_party.grid_code IS DISTINCT FROM $3
    RETURNING case_no, grid_code"""


def _record_statement(change: str = "", reporters: str = _REPORTERS, units: str = _UNITS) -> str:
    """An event's party row, its change to the reporters or the units ({change}: more
    CTEs), and the parties as they are after it, in one statement. The reads see the tables
    as before the statement, so what it writes is read from the CTEs that write it."""
    return f"""WITH written AS ({_UPSERT_PARTY}),
  party AS (
    SELECT case_no, grid_code FROM written
    UNION ALL
    SELECT case_no, grid_code FROM case_party
    WHERE case_id = $1 AND NOT EXISTS (SELECT FROM written)){change}
  {_PARTIES.format(party="party", reporters=reporters, units=units)} FROM party"""


# Most events change no reporter and no task.
_RECORD_EVENT = _record_statement()
# A reporter joins (the first one or a duplicate's): read with the reporters before.
_RECORD_REPORTER_JOINS = _record_statement(
    """,
  joined AS (
    INSERT INTO case_reporter (case_id, reporter_id, reporter, joined_at)
    VALUES ($1, $4, $5, $6) ON CONFLICT DO NOTHING
    RETURNING reporter, joined_at, reporter_id)""",
    reporters=f"({_REPORTERS[1:-1]} UNION ALL SELECT * FROM joined)",
)
# A unit takes a task (verification tasks are the grid's, not a unit's holding).
_RECORD_TASK_OPENS = _record_statement(
    """,
  opened AS (
    INSERT INTO case_task (case_id, task_id, unit_code, open) VALUES ($1, $4, $5, true)
    ON CONFLICT DO NOTHING RETURNING unit_code)""",
    units=f"({_UNITS[1:-1]} UNION ALL SELECT * FROM opened)",
)
# A unit's task ends (completed, refused, cancelled).
_RECORD_TASK_ENDS = _record_statement(
    """,
  ended AS (UPDATE case_task SET open = false WHERE case_id = $1 AND task_id = $4)""",
    units=f"({_UNITS[1:-1]} AND task_id <> $4)",
)


async def record_case_event(conn: asyncpg.Connection, event: CaseEvent) -> CaseParties:
    """Apply `event` to the case's parties and return them as they are after it (one
    round trip)."""
    grid = (
        getattr(event, "grid_code", None)
        if isinstance(event, CaseReported | CaseRegistered)
        else None
    )
    if isinstance(event, CaseRelocated):
        grid = event.new_grid_code
    statement, *change = _member_change(event)
    row = await conn.fetchrow(statement, event.case_id, event.case_no, grid, *change)
    return _parties_of(event.case_id, row)


def _member_change(event: CaseEvent) -> tuple[Any, ...]:
    """The statement that records `event` and its arguments after the party's three:
    the reporter who joins, the task a unit takes or ends, or none."""
    if isinstance(event, CaseReported):
        return (
            _RECORD_REPORTER_JOINS,
            event.reporter.reporter_id,
            event.reporter.model_dump(mode="json"),
            event.at,
        )
    if isinstance(event, TaskAssigned) and event.role is not TaskRole.VERIFY:
        return (_RECORD_TASK_OPENS, event.task_id, event.unit_code)
    if isinstance(event, TaskCompleted | TaskRefused | TaskCancelled):
        return (_RECORD_TASK_ENDS, event.task_id)
    return (_RECORD_EVENT,)


def _parties_of(case_id: UUID, case: asyncpg.Record | None) -> CaseParties:
    if case is None:
        raise LookupError(f"case {case_id} unknown")
    return CaseParties(
        case_id=case_id,
        case_no=case["case_no"],
        grid_code=case["grid_code"],
        reporters=tuple(ReporterRef.model_validate(r) for r in case["reporters"]),
        open_units=tuple(case["units"]),
    )


# --- preferences -------------------------------------------------------------------------


@dataclass(frozen=True)
class Preference:
    recipient_key: str
    channels: tuple[NotifyChannel, ...] = ()
    email: str | None = None
    webhook_url: str | None = None
    updated_at: datetime | None = None


async def get_preference(conn: asyncpg.Connection, key: str) -> Preference | None:
    return (await preferences(conn, [key])).get(key)


async def preferences(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, Preference]:
    """The stored preferences of `keys` (those that have one), in one query."""
    rows = await conn.fetch(
        "SELECT * FROM preference WHERE recipient_key = ANY($1::text[])", list(set(keys))
    )
    return {
        row["recipient_key"]: Preference(
            recipient_key=row["recipient_key"],
            channels=tuple(NotifyChannel(c) for c in row["channels"]),
            email=row["email"],
            webhook_url=row["webhook_url"],
            updated_at=row["updated_at"],
        )
        for row in rows
    }


def channels_of(
    recipient: Recipient, requested: Sequence[NotifyChannel], pref: Preference | None
) -> tuple[NotifyChannel, ...]:
    """The channels to try for `recipient`, in fallback order (see `choose_channels`)."""
    return choose_channels(
        recipient.kind,
        requested,
        pref.channels if pref else None,
        has_webhook=bool(pref and pref.webhook_url),
    )


async def put_preference(conn: asyncpg.Connection, pref: Preference) -> Preference:
    row = await conn.fetchrow(
        "INSERT INTO preference (recipient_key, channels, email, webhook_url)"
        " VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (recipient_key) DO UPDATE SET channels = $2, email = $3, webhook_url = $4,"
        " updated_at = now() RETURNING updated_at",
        pref.recipient_key,
        [c.value for c in pref.channels],
        pref.email,
        pref.webhook_url,
    )
    return Preference(
        pref.recipient_key, pref.channels, pref.email, pref.webhook_url, row["updated_at"]
    )


# --- the notification queue --------------------------------------------------------------


@dataclass(frozen=True)
class NewNotification:
    request_id: UUID
    dedup_key: str
    recipient: Recipient
    channels: tuple[NotifyChannel, ...]  # fallback order; the first is tried first
    template_id: str
    template_version: int | None
    variables: dict[str, str | int | float | bool]
    urgency: Urgency
    case_id: UUID | None
    case_no: str | None
    requested_by: str
    extra: dict[str, Any] = field(default_factory=dict)
    # The span that asked for it (W3C traceparent): the send is traced as its child.
    traceparent: str | None = None


@dataclass(frozen=True)
class Rendering:
    catalogue: TemplateCatalogue
    sms_sign_name: str


def outcome_event(
    row: asyncpg.Record | dict[str, Any],
    status: OutcomeStatus,
    at: datetime,
    *,
    error: str | None = None,
    deferred_until: datetime | None = None,
) -> outbox.EventRow:
    """The NotificationOutcome of `row` (a notification row), ready for the outbox."""
    outcome = NotificationOutcome(
        request_id=row["request_id"],
        dedup_key=row["dedup_key"],
        recipient_key=row["recipient_key"],
        channel=NotifyChannel(row["channel"]),
        status=status,
        attempts=row["attempts"],
        error=error[:2000] if error else None,
        deferred_until=deferred_until,
        provider_message_id=row.get("provider_message_id"),
        case_id=row["case_id"],
        at=at,
    )
    return outbox.event_row(
        source=SOURCE,
        topic=NOTIFY_OUTCOMES,
        key=row["recipient_key"],
        payload=outcome,
        # The subject names the case, like every case message (logs and spans carry it).
        subject=str(row["case_id"]) if row["case_id"] else None,
    )


async def emit_outcome(
    conn: asyncpg.Connection,
    row: asyncpg.Record | dict[str, Any],
    status: OutcomeStatus,
    at: datetime,
    *,
    error: str | None = None,
    deferred_until: datetime | None = None,
) -> None:
    """Write the outcome of `row` in the caller's transaction."""
    event = outcome_event(row, status, at, error=error, deferred_until=deferred_until)
    await outbox.enqueue_row(conn, event)


_INSERT_NOTIFICATION = """INSERT INTO notification (id, request_id, dedup_key, recipient_key,
    channel, recipient, fallback, template_id, template_version, variables, title, body,
    sms_parts, urgency, case_id, case_no, requested_by, status, next_attempt_at, last_error,
    finished_at, traceparent)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
    $20, CASE WHEN $18 = 'failed' THEN $19::timestamptz END, $21)
  ON CONFLICT (dedup_key, recipient_key, channel) DO NOTHING RETURNING *"""


async def enqueue(
    conn: asyncpg.Connection, n: NewNotification, rendering: Rendering, now: datetime
) -> UUID | None:
    """`enqueue_many` of one notification."""
    (queued,) = await enqueue_many(conn, [n], rendering, now)
    return queued


async def enqueue_many(
    conn: asyncpg.Connection,
    notifications: Sequence[NewNotification],
    rendering: Rendering,
    now: datetime,
) -> list[UUID | None]:
    """Queue each notification on its first channel that can carry it, all in one round
    trip; channels before it whose text cannot be rendered for them (an SMS too long) are
    recorded as failed. Returns, for each, the queued row id; None when it was queued
    before (same dedup key, recipient and channel) or no channel could carry it. Template
    errors raise TemplateError before anything is written."""
    args: list[tuple[Any, ...]] = []
    queued_ids: list[UUID | None] = []
    for n in notifications:
        # Render once up front: an unknown template or missing variable fails every channel.
        rendered = rendering.catalogue.render(n.template_id, n.template_version, n.variables)
        channels = list(n.channels)
        queued_id: UUID | None = None
        while channels and queued_id is None:
            channel = channels.pop(0)
            parts: int | None = None
            error: str | None = None
            if channel is NotifyChannel.SMS:
                try:
                    parts = check_sms(rendering.sms_sign_name, rendered.body).parts
                except TemplateError as exc:
                    error = str(exc)
            row_id = uuid.uuid4()
            if error is None:
                queued_id = row_id
            args.append(
                (
                    row_id,
                    n.request_id,
                    n.dedup_key,
                    n.recipient.key,
                    channel.value,
                    n.recipient.model_dump(mode="json"),
                    [c.value for c in channels],
                    rendered.template_id,
                    rendered.template_version,
                    n.variables,
                    rendered.title,
                    rendered.body,
                    parts,
                    n.urgency.value,
                    n.case_id,
                    n.case_no,
                    n.requested_by,
                    "failed" if error else "pending",
                    now,
                    error,
                    n.traceparent,
                )
            )
        queued_ids.append(queued_id)
    if not args:
        return queued_ids
    # A row taken before (redelivery) returns nothing: only new rows come back.
    new = {row["id"]: row for row in await conn.fetchmany(_INSERT_NOTIFICATION, args)}
    for row in new.values():
        if row["status"] == "failed":
            await dead_letter(conn, row, row["last_error"], now)
    return [queued if queued in new else None for queued in queued_ids]


async def enqueue_choosing_channels(
    conn: asyncpg.Connection,
    notifications: Sequence[NewNotification],
    rendering: Rendering,
    now: datetime,
) -> list[UUID | None]:
    """`enqueue_many` of notifications whose `channels` are those asked for: where none
    are, the recipient's preference and kind choose them (`channels_of`), the preferences
    of all such recipients read in one query."""
    keys = [n.recipient.key for n in notifications if not n.channels]
    prefs = await preferences(conn, keys) if keys else {}
    chosen = [
        n
        if n.channels
        else replace(n, channels=channels_of(n.recipient, (), prefs.get(n.recipient.key)))
        for n in notifications
    ]
    return await enqueue_many(conn, chosen, rendering, now)


async def dead_letter(
    conn: asyncpg.Connection, row: asyncpg.Record, error: str, now: datetime
) -> None:
    await conn.execute(
        "INSERT INTO dead_letter (notification_id, recipient_key, channel, error, attempts, at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        row["id"],
        row["recipient_key"],
        row["channel"],
        error,
        row["attempts"],
        now,
    )
    await emit_outcome(conn, row, OutcomeStatus.FAILED, now, error=error)


def next_notification(row: asyncpg.Record) -> NewNotification | None:
    """The same message on the next fallback channel, or None when none is left."""
    if not row["fallback"]:
        return None
    return NewNotification(
        request_id=row["request_id"],
        dedup_key=row["dedup_key"],
        recipient=Recipient.model_validate(row["recipient"]),
        channels=tuple(NotifyChannel(c) for c in row["fallback"]),
        template_id=row["template_id"],
        template_version=row["template_version"],
        variables=row["variables"],
        urgency=Urgency(row["urgency"]),
        case_id=row["case_id"],
        case_no=row["case_no"],
        requested_by=row["requested_by"],
        traceparent=row["traceparent"],
    )
