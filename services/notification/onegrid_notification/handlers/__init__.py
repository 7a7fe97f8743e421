"""Kafka entry points: case events and notification requests become queued notifications.

Each runs in the consumer's transaction (inbox + effect), so a redelivered message queues
nothing twice; the unique (dedup_key, recipient, channel) key guards the rest.
"""

from __future__ import annotations

import uuid

from onegrid_common.consumer import Handler, Incoming, PermanentError, Transaction
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


def on_case_event(notifier: Notifier) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        event = msg.payload
        assert isinstance(event, CaseEvent)
        parties = await store.record_case_event(tx.conn, event)
        planned = plan(event, parties, notifier.plan_context)
        if not planned:
            return
        # One query for the recipients' preferences, one round trip for the rows.
        prefs = await store.preferences(tx.conn, [p.recipient.key for p in planned])
        traceparent = inject_traceparent() or msg.envelope.traceparent
        notifications = []
        for p in planned:
            dedup_key = f"{msg.envelope.id}:{p.template_id}"
            notifications.append(
                store.NewNotification(
                    request_id=uuid.uuid5(_REQUEST_NS, f"{dedup_key}:{p.recipient.key}"),
                    dedup_key=dedup_key,
                    recipient=p.recipient,
                    channels=store.channels_of(p.recipient, (), prefs.get(p.recipient.key)),
                    template_id=p.template_id,
                    template_version=None,
                    variables=p.variables,
                    urgency=p.urgency,
                    case_id=event.case_id,
                    case_no=event.case_no,
                    requested_by="notification",
                    traceparent=traceparent,
                )
            )
        try:
            await store.enqueue_many(tx.conn, notifications, notifier.rendering, notifier.clock())
        except TemplateError as exc:
            raise PermanentError(str(exc)) from exc
        notifier.wake_after_commit(tx.conn)

    return handle


def on_request(notifier: Notifier) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        request = msg.payload
        assert isinstance(request, NotificationRequested)
        recipient = request.recipient
        new = store.NewNotification(
            request_id=request.request_id,
            dedup_key=request.dedup_key,
            recipient=recipient,
            channels=await store.channels_for(tx.conn, recipient, request.channels),
            template_id=request.template_id,
            template_version=request.template_version,
            variables=dict(request.variables),
            urgency=request.urgency,
            case_id=request.case_id,
            case_no=request.case_no,
            requested_by=request.requested_by,
            traceparent=inject_traceparent() or msg.envelope.traceparent,
        )
        try:
            await store.enqueue(tx.conn, new, notifier.rendering, notifier.clock())
        except TemplateError as exc:
            raise PermanentError(f"request {request.request_id}: {exc}") from exc
        notifier.wake_after_commit(tx.conn)

    return handle
