"""Kafka handlers: reports from intake (`cases.events.v1`) and unit replies
(`dept.<unit>.replies.v1`). Each runs in the consumer's transaction (inbox + outbox)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from onegrid_common.consumer import Handler, Incoming, PermanentError, Transaction
from onegrid_contracts.cases import CaseEvent, CaseReported, OperatorQueueReason
from onegrid_contracts.primitives import Actor, ActorKind
from onegrid_contracts.tasks import (
    DeptExtensionRequested,
    DeptReply,
    DeptTaskAccepted,
    DeptTaskCompleted,
    DeptTaskDeliveryFailed,
    DeptTaskProgressed,
    DeptTaskRefused,
)
from onegrid_dispatch.db import repository as repo
from onegrid_dispatch.domain.case import Case, CasePolicy
from onegrid_dispatch.domain.errors import DomainError
from onegrid_dispatch.workflow import CaseNotFound, Workflow

log = logging.getLogger(__name__)

REPLIES_PATTERN = r"^dept\.[a-z][a-z0-9-]*\.replies\.v1$"
_REPLY_TOPIC = re.compile(r"^dept\.(?P<unit>[^.]+)\.replies\.v1$")


def on_case_reported(workflow: Workflow) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        if not isinstance(msg.payload, CaseReported):
            raise PermanentError(f"expected CaseReported, got {type(msg.payload).__name__}")
        await workflow.on_reported(tx.conn, msg.payload, msg.envelope)

    return handle


def _command(
    reply: DeptReply, actor: Actor, policy: CasePolicy
) -> Callable[[Case, datetime], list[CaseEvent]]:
    """The domain command a reply stands for; the reply's own time is when it happened."""
    if isinstance(reply, DeptTaskAccepted):
        return lambda c, _now: c.accept_task(
            reply.task_id, actor, reply.at, external_ref=reply.external_ref, note=reply.note
        )
    if isinstance(reply, DeptTaskProgressed):
        return lambda c, _now: c.progress_task(
            reply.task_id, actor, reply.at, reply.note, reply.attachments
        )
    if isinstance(reply, DeptTaskCompleted):
        return lambda c, _now: c.complete_task(
            reply.task_id, actor, reply.at, reply.result, reply.attachments, fixed=reply.fixed
        )
    if isinstance(reply, DeptTaskRefused):
        return lambda c, _now: c.refuse_task(
            reply.task_id, actor, reply.at, reply.refusal_reason, reply.reason, policy
        )
    if isinstance(reply, DeptExtensionRequested):
        return lambda c, _now: c.request_extension(
            actor,
            reply.at,
            reply.request_id,
            reply.requested_due_at,
            reply.reason,
            kind=reply.kind,
            task_id=reply.task_id,
        )
    if isinstance(reply, DeptTaskDeliveryFailed):
        detail = f"{reply.unit_code} 任务送达失败（{reply.attempts} 次）：{reply.error}"
        return lambda c, _now: c.withdraw_for_operator(
            reply.at, reply.task_id, OperatorQueueReason.DELIVERY_FAILED, detail[:1000]
        )
    raise PermanentError(f"unknown reply type {type(reply).__name__}")


def on_reply(workflow: Workflow) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        reply = msg.payload
        if not isinstance(reply, DeptReply):
            raise PermanentError(f"expected a department reply, got {type(reply).__name__}")
        topic = _REPLY_TOPIC.match(msg.topic)
        topic_unit = topic["unit"] if topic else None
        # Kept for the case timeline too: what the department answered, with its reference.
        task = await repo.record_reply(tx.conn, msg.topic, msg.envelope, reply)
        error = None
        if topic_unit != reply.unit_code:
            error = f"reply for unit {reply.unit_code!r} arrived on {msg.topic}"
        elif task is None:
            error = f"no task {reply.task_id}"
        elif task["unit_code"] != reply.unit_code or task["case_id"] != reply.case_id:
            error = f"unit {reply.unit_code!r} does not hold task {reply.task_id}"
        if error is None and task is not None:
            actor = Actor(kind=ActorKind.UNIT, id=reply.unit_code, name=reply.handled_by)
            try:
                # A refused reply writes nothing: the domain decides before the one save.
                await workflow.execute(
                    tx.conn, task["case_id"], _command(reply, actor, workflow.policy())
                )
                return
            except (DomainError, CaseNotFound) as exc:
                error = str(exc)
        log.warning("refused %s from %s: %s", msg.envelope.type, msg.topic, error)
        await repo.refuse_reply(
            tx.conn,
            message_id=msg.envelope.id,
            case_id=task["case_id"] if task else None,
            task_id=reply.task_id,
            unit_code=reply.unit_code,
            type_=msg.envelope.type,
            error=error or "refused",
        )

    return handle


REPLY_TYPES = (
    DeptTaskAccepted,
    DeptTaskRefused,
    DeptTaskProgressed,
    DeptTaskCompleted,
    DeptExtensionRequested,
    DeptTaskDeliveryFailed,
)

__all__ = ["REPLIES_PATTERN", "REPLY_TYPES", "on_case_reported", "on_reply"]
