"""Kafka entry points: case events and notification requests become queued notifications.

Each runs in the consumer's transaction (inbox + effect), so a redelivered message queues
nothing twice; the unique (dedup_key, recipient, channel) key guards the rest. The
handlers defer their work to the batch's flush: its case events' parties read and written
once (`notify_case_events`), then every notification queued in one write
(`queue_notifications`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from onegrid_common.consumer import Flush, Handler, Incoming, PermanentError, Transaction
from onegrid_common.telemetry import inject_traceparent
from onegrid_contracts.cases import (
    CaseClosed,
    CaseDispatched,
    CaseEscalated,
    CaseEvent,
    CaseFlaggedForOperator,
    CaseHandled,
    CaseRegistered,
    CaseRejected,
    CaseRelocated,
    CaseReported,
    DeadlineBreached,
    DeadlineWarning,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskRefused,
)
from onegrid_contracts.notify import NotificationRequested
from onegrid_notification.db import store
from onegrid_notification.domain.planning import Planned, plan
from onegrid_notification.domain.templates import TemplateError
from onegrid_notification.sender import Notifier

CASE_EVENT_TYPES: tuple[type[CaseEvent], ...] = (
    CaseReported,
    CaseRegistered,
    CaseRelocated,
    CaseRejected,
    CaseDispatched,
    TaskAssigned,
    TaskCompleted,
    TaskRefused,
    TaskCancelled,
    CaseHandled,
    CaseClosed,
    DeadlineWarning,
    DeadlineBreached,
    CaseEscalated,
    CaseFlaggedForOperator,
)
_REQUEST_NS = uuid.UUID("5b1f0c1e-9d8a-4c53-8f0e-6a1d2b3c4d5e")


def queue_notifications(notifier: Notifier) -> Flush:
    """The deferred write of a batch's notifications (`Transaction.defer`): the
    preferences of all their recipients in one query and every row in one round trip,
    instead of both once an event (~13 events a batch under load)."""

    async def queue(conn: asyncpg.Connection, notifications: list[store.NewNotification]) -> None:
        try:
            await store.enqueue_choosing_channels(
                conn, notifications, notifier.rendering, notifier.clock()
            )
        except TemplateError as exc:
            # Applied again one message per savepoint, the failing one is dead-lettered.
            raise PermanentError(str(exc)) from exc
        notifier.wake_after_commit(conn)

    return queue


@dataclass(frozen=True)
class _CaseEventMessage:
    message_id: str
    traceparent: str | None
    event: CaseEvent


def notify_case_events(notifier: Notifier, queue: Flush) -> Flush:
    """The deferred work of a batch's case events: their parties recorded (one read, one
    write), each event planned with the parties as they are after it, and the lot queued."""

    async def notify(conn: asyncpg.Connection, messages: list[_CaseEventMessage]) -> None:
        parties = await store.record_case_events(conn, [m.event for m in messages])
        notifications = [
            _notification(m, planned)
            for m, after in zip(messages, parties, strict=True)
            for planned in plan(m.event, after, notifier.plan_context)
        ]
        if notifications:
            await queue(conn, notifications)

    return notify


def _notification(message: _CaseEventMessage, planned: Planned) -> store.NewNotification:
    dedup_key = f"{message.message_id}:{planned.template_id}"
    return store.NewNotification(
        request_id=uuid.uuid5(_REQUEST_NS, f"{dedup_key}:{planned.recipient.key}"),
        dedup_key=dedup_key,
        recipient=planned.recipient,
        channels=(),  # the recipient's preference and kind choose them
        template_id=planned.template_id,
        template_version=None,
        variables=planned.variables,
        urgency=planned.urgency,
        case_id=message.event.case_id,
        case_no=message.event.case_no,
        requested_by="notification",
        traceparent=message.traceparent,
    )


def on_case_event(notify: Flush) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        event = msg.payload
        assert isinstance(event, CaseEvent)
        traceparent = inject_traceparent() or msg.envelope.traceparent
        tx.defer(notify, _CaseEventMessage(msg.envelope.id, traceparent, event))

    return handle


def on_request(queue: Flush) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        request = msg.payload
        assert isinstance(request, NotificationRequested)
        new = store.NewNotification(
            request_id=request.request_id,
            dedup_key=request.dedup_key,
            recipient=request.recipient,
            channels=tuple(request.channels),  # none asked for: as for a case event
            template_id=request.template_id,
            template_version=request.template_version,
            variables=dict(request.variables),
            urgency=request.urgency,
            case_id=request.case_id,
            case_no=request.case_no,
            requested_by=request.requested_by,
            traceparent=inject_traceparent() or msg.envelope.traceparent,
        )
        tx.defer(queue, new)

    return handle
