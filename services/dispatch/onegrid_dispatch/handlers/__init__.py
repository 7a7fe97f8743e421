"""Kafka handlers: reports from intake (`cases.events.v1`) and unit replies
(`dept.<unit>.replies.v1`). Each runs in the consumer's transaction (inbox + outbox)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

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
from onegrid_dispatch.domain.case import Case, CasePolicy, Task
from onegrid_dispatch.domain.errors import DomainError
from onegrid_dispatch.workflow import Workflow

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


def _held_task(loaded: repo.LoadedCase | None, task_id: UUID) -> Task | None:
    if loaded is None:
        return None
    return next((t for t in loaded.case.tasks if t.task_id == task_id), None)


def on_reply(workflow: Workflow) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        reply = msg.payload
        if not isinstance(reply, DeptReply):
            raise PermanentError(f"expected a department reply, got {type(reply).__name__}")
        topic = _REPLY_TOPIC.match(msg.topic)
        topic_unit = topic["unit"] if topic else None
        loaded = await repo.load_for_update_by_task(tx.conn, reply.task_id)
        held = _held_task(loaded, reply.task_id)
        error = None
        if topic_unit != reply.unit_code:
            error = f"reply for unit {reply.unit_code!r} arrived on {msg.topic}"
        elif loaded is None or held is None:
            error = f"no task {reply.task_id}"
        elif held.unit_code != reply.unit_code or loaded.case.case_id != reply.case_id:
            error = f"unit {reply.unit_code!r} does not hold task {reply.task_id}"
        if error is None and loaded is not None:
            actor = Actor(kind=ActorKind.UNIT, id=reply.unit_code, name=reply.handled_by)
            command = _command(reply, actor, workflow.policy())
            try:
                # A refused reply writes nothing: the domain decides before the one save,
                # which keeps the reply for the case timeline too.
                await workflow.execute_loaded(
                    tx.conn, loaded, command, received=[(msg.topic, msg.envelope, reply)]
                )
                return
            except DomainError as exc:
                error = str(exc)
        log.warning("refused %s from %s: %s", msg.envelope.type, msg.topic, error)
        await repo.refuse_reply(
            tx.conn,
            msg.topic,
            msg.envelope,
            reply,
            task_case_id=loaded.case.case_id if loaded else None,
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
