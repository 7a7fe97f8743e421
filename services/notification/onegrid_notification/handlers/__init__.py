"""Kafka entry points: case events and notification requests become queued notifications.

Each runs in the consumer's transaction (inbox + effect), so a redelivered message queues
nothing twice; the unique (dedup_key, recipient, channel) key guards the rest. What they
plan is queued once the batch's handlers have run, in one write (`queue_notifications`).
"""

from __future__ import annotations

import uuid

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
from onegrid_notification.domain.planning import plan
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


def on_case_event(notifier: Notifier, queue: Flush) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        event = msg.payload
        assert isinstance(event, CaseEvent)
        parties = await store.record_case_event(tx.conn, event)
        traceparent = inject_traceparent() or msg.envelope.traceparent
        for p in plan(event, parties, notifier.plan_context):
            dedup_key = f"{msg.envelope.id}:{p.template_id}"
            new = store.NewNotification(
                request_id=uuid.uuid5(_REQUEST_NS, f"{dedup_key}:{p.recipient.key}"),
                dedup_key=dedup_key,
                recipient=p.recipient,
                channels=(),  # the recipient's preference and kind choose them
                template_id=p.template_id,
                template_version=None,
                variables=p.variables,
                urgency=p.urgency,
                case_id=event.case_id,
                case_no=event.case_no,
                requested_by="notification",
                traceparent=traceparent,
            )
            tx.defer(queue, new)

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
