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
from onegrid_contracts.cases import CaseEvent
from onegrid_contracts.catalogue import NOTIFY_OUTCOMES
from onegrid_contracts.notify import (
    NotificationOutcome,
    NotifyChannel,
    OutcomeStatus,
    Recipient,
    Urgency,
)
from onegrid_contracts.primitives import ReporterRef
from onegrid_notification.domain.parties import (
    CaseRecord,
    HeldTask,
    JoinedReporter,
    PartyChanges,
    apply,
    changes,
)
from onegrid_notification.domain.planning import CaseParties
from onegrid_notification.domain.policy import choose_channels
from onegrid_notification.domain.templates import TemplateCatalogue, TemplateError, check_sms

SOURCE = "notification"


# --- case read model ---------------------------------------------------------------------


# jsonb as text: inside a record asyncpg reads it in binary, which its json codec cannot.
_LOAD_CASES = """SELECT p.case_id, p.case_no, p.grid_code,
    ARRAY(SELECT (r.reporter_id, r.joined_at, r.reporter::text) FROM case_reporter r
          WHERE r.case_id = p.case_id) AS reporters,
    ARRAY(SELECT (t.task_id, t.unit_code, t.open) FROM case_task t
          WHERE t.case_id = p.case_id) AS tasks
  FROM case_party p WHERE p.case_id = ANY($1::uuid[])"""

# One statement for all of a batch's changes: the party rows first in the statement, but
# the foreign keys are checked at its end, so a new case's reporters may come with it.
_SAVE_CHANGES = """WITH cases AS (
    INSERT INTO case_party (case_id, case_no, grid_code)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
    ON CONFLICT (case_id) DO UPDATE SET grid_code = EXCLUDED.grid_code),
  reporters AS (
    INSERT INTO case_reporter (case_id, reporter_id, reporter, joined_at)
    SELECT * FROM unnest($4::uuid[], $5::text[], $6::jsonb[], $7::timestamptz[])
    ON CONFLICT DO NOTHING)
  INSERT INTO case_task (case_id, task_id, unit_code, open)
  SELECT * FROM unnest($8::uuid[], $9::uuid[], $10::text[], $11::bool[])
  ON CONFLICT (case_id, task_id) DO UPDATE SET open = EXCLUDED.open"""


async def load_cases(conn: asyncpg.Connection, case_ids: Sequence[UUID]) -> dict[UUID, CaseRecord]:
    """The stored parties of `case_ids` (those seen before), in one query."""
    rows = await conn.fetch(_LOAD_CASES, list(set(case_ids)))
    return {
        row["case_id"]: CaseRecord(
            case_id=row["case_id"],
            case_no=row["case_no"],
            grid_code=row["grid_code"],
            reporters=tuple(
                JoinedReporter(rid, joined_at, ReporterRef.model_validate_json(ref))
                for rid, joined_at, ref in row["reporters"]
            ),
            tasks={task_id: HeldTask(unit, is_open) for task_id, unit, is_open in row["tasks"]},
        )
        for row in rows
    }


async def save_changes(conn: asyncpg.Connection, changed: PartyChanges) -> None:
    if not changed:
        return
    await conn.execute(
        _SAVE_CHANGES,
        [c[0] for c in changed.cases],
        [c[1] for c in changed.cases],
        [c[2] for c in changed.cases],
        [case_id for case_id, _ in changed.reporters],
        [r.reporter_id for _, r in changed.reporters],
        [r.reporter.model_dump(mode="json") for _, r in changed.reporters],
        [r.joined_at for _, r in changed.reporters],
        [case_id for case_id, _, _ in changed.tasks],
        [task_id for _, task_id, _ in changed.tasks],
        [t.unit_code for _, _, t in changed.tasks],
        [t.open for _, _, t in changed.tasks],
    )


async def record_case_events(
    conn: asyncpg.Connection, events: Sequence[CaseEvent]
) -> list[CaseParties]:
    """Apply `events` (in order) to their cases' parties and return each event's parties as
    they are after it: one read and at most one write for the lot, not one statement an
    event (a case makes ~9 events, a batch holds ~13)."""
    before = await load_cases(conn, [e.case_id for e in events])
    after = dict(before)
    parties: list[CaseParties] = []
    for event in events:
        case = after[event.case_id] = apply(after.get(event.case_id), event)
        parties.append(case.parties())
    await save_changes(conn, changes(before, after))
    return parties


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
