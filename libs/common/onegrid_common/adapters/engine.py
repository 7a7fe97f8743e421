"""The adapter engine: inbox → per-unit delivery queue → department → replies via the outbox.

How a task travels (DESIGN §5 applied to departments):
1. The consumer handler (inside the runtime's inbox transaction, so a redelivered message
   is a no-op) only writes the message to `adapter_delivery`, keyed by task id / follow-up
   id (a second copy under a new message id is dropped too). Nothing waits on the
   department here, so a department outage never blocks or dead-letters the topic.
2. One worker per unit (a PostgreSQL advisory lock makes it one across replicas) takes the
   oldest pending message and calls the `DepartmentClient`, with backoff between attempts
   and a circuit breaker around the department. Strictly in `seq` order: a department's
   backlog arrives in the order dispatch sent it.
3. The outcome and its reply (accepted / refused) commit in one transaction with the
   outbox row. A message whose retry budget ran out (by attempts, or by time waiting behind
   the head of the queue) gets one DeptTaskDeliveryFailed reply and stays pending: it is
   still delivered when the department comes back, and its reply follows.
4. Status comes back by polling (a loop per unit) or callbacks (`record_updates`), deduped
   by the department's update id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from onegrid_common import db, metrics, outbox
from onegrid_common.adapters.client import (
    TERMINAL_UPDATES,
    Accepted,
    CallContext,
    DepartmentClient,
    DepartmentRejectedError,
    DepartmentUnavailableError,
    DeptUpdate,
    OpenTask,
    Refused,
)
from onegrid_common.adapters.resilience import Backoff, BreakerState, CircuitBreaker
from onegrid_common.consumer import Incoming, PermanentError, Subscription, Transaction
from onegrid_common.telemetry import (
    SERVICE,
    context_from_traceparent,
    continue_case_trace,
    get_tracer,
    inject_traceparent,
)
from onegrid_contracts.catalogue import unit_replies_topic, unit_tasks_topic
from onegrid_contracts.tasks import (
    DeptExtensionRequested,
    DeptMessage,
    DeptReply,
    DeptTaskAccepted,
    DeptTaskAssigned,
    DeptTaskCancelled,
    DeptTaskCompleted,
    DeptTaskDeliveryFailed,
    DeptTaskFollowUp,
    DeptTaskProgressed,
    DeptTaskRefused,
)

log = logging.getLogger("onegrid.adapters")

DELIVERIES = Counter(
    "onegrid_adapter_deliveries",
    "Messages an adapter handed to its department, by unit, kind and outcome "
    "(accepted, refused, delivered, rejected, skipped, failed_reported).",
    ["service", "unit", "kind", "outcome"],
    registry=metrics.REGISTRY,
)
DELIVERY_QUEUE = Gauge(
    "onegrid_adapter_delivery_queue",
    "Messages waiting in the adapter's delivery queue for the department, by unit.",
    ["service", "unit"],
    registry=metrics.REGISTRY,
)
BREAKER_OPEN = Gauge(
    "onegrid_adapter_breaker_open",
    "1 while the circuit breaker around the department is open or half-open.",
    ["service", "unit"],
    registry=metrics.REGISTRY,
)
UPDATES = Counter(
    "onegrid_adapter_updates",
    "Department status updates, by unit and outcome (recorded, duplicate, unknown, "
    "not_ready, stale).",
    ["service", "unit", "outcome"],
    registry=metrics.REGISTRY,
)


class DeliveryPolicy(BaseSettings):
    """Retry budget, breaker and polling (`ONEGRID_ADAPTER_*`)."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_ADAPTER_", extra="ignore")

    max_attempts: int = Field(default=6, ge=1, le=1000)
    backoff_base_s: float = Field(default=1.0, ge=0.0)
    backoff_cap_s: float = Field(default=60.0, gt=0.0)
    backoff_jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=15.0, gt=0.0)
    call_timeout_s: float = Field(default=15.0, gt=0.0)
    poll_interval_s: float = Field(default=10.0, gt=0.0)
    idle_interval_s: float = Field(default=0.5, gt=0.0)

    def backoff(self) -> Backoff:
        return Backoff(
            base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, jitter=self.backoff_jitter
        )

    @property
    def budget_s(self) -> float:
        """How long a message may wait for its department before DeliveryFailed is sent."""
        return self.backoff().budget_s(self.max_attempts)


@dataclass(frozen=True)
class AdapterUnit:
    """One unit this adapter serves, and the client of its department system."""

    unit_code: str
    client: DepartmentClient


@dataclass
class UpdateResult:
    recorded: int = 0
    duplicates: int = 0
    unknown: int = 0  # no such task here
    not_ready: int = 0  # the task's acceptance is not recorded yet: the sender should retry
    stale: int = 0  # the task is already closed


def _now() -> datetime:
    return datetime.now(UTC)


def _dedup_key(message: DeptMessage) -> tuple[str, str]:
    if isinstance(message, DeptTaskAssigned):
        return "assign", f"assign:{message.task_id}"
    if isinstance(message, DeptTaskFollowUp):
        return "followup", f"followup:{message.followup_id}"
    if isinstance(message, DeptTaskCancelled):
        return "cancel", f"cancel:{message.task_id}"
    raise PermanentError(f"{type(message).__name__} is not a task message")


_MODELS: dict[str, type[DeptMessage]] = {
    "assign": DeptTaskAssigned,
    "followup": DeptTaskFollowUp,
    "cancel": DeptTaskCancelled,
}


def _decode_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def reply_for_update(task: asyncpg.Record, unit_code: str, update: DeptUpdate) -> DeptReply:
    """The canonical reply of a translated department update."""
    common: dict[str, Any] = {
        "task_id": task["task_id"],
        "unit_code": unit_code,
        "case_id": task["case_id"],
        "case_no": task["case_no"],
        "at": update.at,
        "handled_by": update.handled_by,
    }
    if update.kind == "progressed":
        return DeptTaskProgressed(
            **common,
            note=update.note or update.external_status or "处理中",
            external_status=update.external_status,
        )
    if update.kind == "completed":
        return DeptTaskCompleted(
            **common, result=update.result or update.note or "已办结", fixed=update.fixed
        )
    if update.kind == "refused":
        return DeptTaskRefused(
            **common, refusal_reason=update.refusal_reason, reason=update.note or "部门退回"
        )
    assert update.requested_due_at is not None  # checked by DeptUpdate
    request_id = update.request_id or uuid.uuid5(task["task_id"], update.update_id)
    return DeptExtensionRequested(
        **common,
        request_id=request_id,
        kind=update.deadline_kind,
        requested_due_at=update.requested_due_at,
        reason=update.note or "申请延期",
    )


class UnitWorker:
    """Delivers one unit's queue in order and polls its department."""

    def __init__(
        self,
        *,
        service: str,
        unit: AdapterUnit,
        policy: DeliveryPolicy,
        pool: asyncpg.Pool,
        engine: AdapterEngine,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.unit_code = unit.unit_code
        self.client = unit.client
        self.policy = policy
        self.backoff = policy.backoff()
        self.breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_reset_s)
        self._pool = pool
        self._engine = engine
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self.replies_topic = unit_replies_topic(unit.unit_code)
        self.is_leader = False
        self._expiry_checked_at = -math.inf

    def wake(self) -> None:
        self._wake.set()

    def wake_after_commit(self, conn: asyncpg.Connection) -> None:
        """Wake the worker once `conn`'s transaction has ended."""
        db.set_after_commit(conn, self._wake)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.01))
        self._wake.clear()

    async def run(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await self._run_leader(conn)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.is_leader = False
                log.warning(
                    "%s/%s: delivery worker lost the database: %s",
                    self.service,
                    self.unit_code,
                    exc,
                )
                await asyncio.sleep(2.0)

    async def _run_leader(self, conn: asyncpg.Connection) -> None:
        lock = f"onegrid-adapter:{self.service}:{self.unit_code}"
        db.mark_session_state(conn)  # the leader's lock ends with the pool's reset
        while True:
            if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", lock):
                break
            await asyncio.sleep(2.0)  # another replica delivers this unit
        self.is_leader = True
        try:
            while True:
                await self._step(conn)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock)

    async def _step(self, conn: asyncpg.Connection) -> None:
        # Budgets are checked once an idle interval, not before every delivery: under
        # load a step is one statement, and an expiry is still reported within that time.
        now = time.monotonic()
        if now - self._expiry_checked_at >= self.policy.idle_interval_s:
            self._expiry_checked_at = now
            await self._report_expired(conn)
        row = await conn.fetchrow(
            "SELECT *, count(*) OVER () AS waiting FROM adapter_delivery"
            " WHERE unit_code = $1 AND status = 'pending' ORDER BY seq LIMIT 1",
            self.unit_code,
        )
        waiting = row["waiting"] if row is not None else 0
        DELIVERY_QUEUE.labels(self.service, self.unit_code).set(waiting)
        BREAKER_OPEN.labels(self.service, self.unit_code).set(
            0 if self.breaker.state is BreakerState.CLOSED else 1
        )
        if row is None:
            await self._sleep(self.policy.idle_interval_s)
            return
        # Re-check at least every second so budgets expire on time while waiting.
        delay = (row["next_attempt_at"] - _now()).total_seconds()
        if delay > 0:
            await self._sleep(min(delay, 1.0))
            return
        if not self.breaker.allow():
            await self._sleep(min(self.breaker.retry_in(), 1.0))
            return
        await self._attempt(conn, row)

    async def _attempt(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        kind: str = row["kind"]
        message = _MODELS[kind].model_validate(_decode_json(row["message"]))
        task = await conn.fetchrow("SELECT * FROM adapter_task WHERE task_id = $1", row["task_id"])
        if kind != "assign" and (task is None or task["external_ref"] is None):
            # The department never took this task (refused, rejected): nothing to tell it.
            async with conn.transaction():
                await self._finish(conn, row, "skipped")
                if kind == "cancel":
                    await self._close_task(conn, row["task_id"])
            DELIVERIES.labels(self.service, self.unit_code, kind, "skipped").inc()
            return
        tracer = get_tracer()
        with tracer.start_as_current_span(
            f"{self.unit_code} deliver {kind}",
            context=context_from_traceparent(row["traceparent"]),
            kind=SpanKind.CLIENT,
            attributes={
                "onegrid.case_id": str(row["case_id"]),
                "onegrid.task_id": str(row["task_id"]),
                "onegrid.unit": self.unit_code,
                "onegrid.attempt": row["attempts"] + 1,
                SERVICE: self.service,
            },
        ) as span:
            idempotency = str(row["task_id"])
            if isinstance(message, DeptTaskFollowUp):
                idempotency = str(message.followup_id)
            elif kind == "cancel":
                idempotency = f"cancel:{row['task_id']}"
            ctx = CallContext(self.unit_code, idempotency, inject_traceparent())
            try:
                outcome = await asyncio.wait_for(
                    self._call(message, task, ctx), timeout=self.policy.call_timeout_s
                )
            except DepartmentRejectedError as exc:
                span.record_exception(exc)
                self.breaker.record_success()  # it answered: the department is up
                metrics.DEPARTMENT_CALL_ERRORS.labels(
                    self.service, self.unit_code, "rejected"
                ).inc()
                await self._rejected(conn, row, str(exc))
                return
            except Exception as exc:
                span.record_exception(exc)
                reason = (
                    exc.reason
                    if isinstance(exc, DepartmentUnavailableError)
                    else ("timeout" if isinstance(exc, TimeoutError) else "error")
                )
                if not isinstance(exc, DepartmentUnavailableError | TimeoutError):
                    log.exception("%s/%s: department client failed", self.service, self.unit_code)
                await self._failed_attempt(conn, row, reason, str(exc) or type(exc).__name__)
                return
            self.breaker.record_success()
            await self._succeeded(conn, row, message, outcome)

    async def _call(
        self, message: DeptMessage, task: asyncpg.Record | None, ctx: CallContext
    ) -> Accepted | Refused | None:
        if isinstance(message, DeptTaskAssigned):
            return await self.client.deliver(message, ctx)
        assert task is not None
        assert task["external_ref"] is not None
        if isinstance(message, DeptTaskFollowUp):
            await self.client.follow_up(message, task["external_ref"], ctx)
        elif isinstance(message, DeptTaskCancelled):
            await self.client.cancel(message, task["external_ref"], ctx)
        return None

    async def _finish(self, conn: asyncpg.Connection, row: asyncpg.Record, status: str) -> None:
        await conn.execute(
            "UPDATE adapter_delivery SET status = $2, attempts = attempts + $3, done_at = now()"
            " WHERE seq = $1",
            row["seq"],
            status,
            0 if status == "skipped" else 1,
        )

    async def _close_task(self, conn: asyncpg.Connection, task_id: uuid.UUID) -> None:
        await conn.execute(
            "UPDATE adapter_task SET state = 'closed', closed_at = now()"
            " WHERE task_id = $1 AND state <> 'closed'",
            task_id,
        )

    async def _emit(
        self, conn: asyncpg.Connection, reply: DeptReply, traceparent: str | None = None
    ) -> None:
        await outbox.enqueue(
            conn,
            source=self.service,
            topic=self.replies_topic,
            key=str(reply.case_id),
            payload=reply,
            traceparent=traceparent,
        )

    def _reply_fields(self, row: asyncpg.Record, message: DeptMessage) -> dict[str, Any]:
        return {
            "task_id": row["task_id"],
            "unit_code": self.unit_code,
            "case_id": row["case_id"],
            "case_no": message.case_no,
            "at": _now(),
        }

    async def _succeeded(
        self,
        conn: asyncpg.Connection,
        row: asyncpg.Record,
        message: DeptMessage,
        outcome: Accepted | Refused | None,
    ) -> None:
        kind = row["kind"]
        async with conn.transaction():
            await self._finish(conn, row, "delivered")
            if isinstance(outcome, Accepted):
                await conn.execute(
                    "UPDATE adapter_task SET external_ref = $2, state = 'open',"
                    " delivered_at = now() WHERE task_id = $1",
                    row["task_id"],
                    outcome.external_ref,
                )
                await self._emit(
                    conn,
                    DeptTaskAccepted(
                        **self._reply_fields(row, message),
                        external_ref=outcome.external_ref,
                        note=outcome.note,
                        handled_by=outcome.handled_by,
                    ),
                )
            elif isinstance(outcome, Refused):
                await self._close_task(conn, row["task_id"])
                await self._emit(
                    conn,
                    DeptTaskRefused(
                        **self._reply_fields(row, message),
                        refusal_reason=outcome.refusal_reason,
                        reason=outcome.reason,
                        handled_by=outcome.handled_by,
                    ),
                )
            elif kind == "cancel":
                await self._close_task(conn, row["task_id"])
        label = {Accepted: "accepted", Refused: "refused"}.get(type(outcome), "delivered")
        DELIVERIES.labels(self.service, self.unit_code, kind, label).inc()

    async def _rejected(self, conn: asyncpg.Connection, row: asyncpg.Record, error: str) -> None:
        message = _MODELS[row["kind"]].model_validate(_decode_json(row["message"]))
        async with conn.transaction():
            await self._finish(conn, row, "rejected")
            if row["kind"] == "assign":
                await self._close_task(conn, row["task_id"])
            if not row["failure_reported"]:
                await self._emit(
                    conn,
                    DeptTaskDeliveryFailed(
                        **self._reply_fields(row, message),
                        error=f"department rejected the {row['kind']} message: {error}"[:2000],
                        attempts=row["attempts"] + 1,
                    ),
                )
        DELIVERIES.labels(self.service, self.unit_code, row["kind"], "rejected").inc()

    async def _failed_attempt(
        self, conn: asyncpg.Connection, row: asyncpg.Record, reason: str, error: str
    ) -> None:
        attempts = row["attempts"] + 1
        self.breaker.record_failure()
        metrics.DEPARTMENT_CALL_ERRORS.labels(self.service, self.unit_code, reason).inc()
        delay = self.backoff.delay(attempts, self._rng)
        await conn.execute(
            "UPDATE adapter_delivery SET attempts = $2, last_error = $3, next_attempt_at = $4"
            " WHERE seq = $1",
            row["seq"],
            attempts,
            error[:2000],
            _now() + timedelta(seconds=delay),
        )
        log.warning(
            "%s/%s: %s of task %s failed (attempt %d): %s",
            self.service,
            self.unit_code,
            row["kind"],
            row["task_id"],
            attempts,
            error,
        )
        await self._report_expired(conn)

    async def _report_expired(self, conn: asyncpg.Connection) -> None:
        """One DeliveryFailed per message whose retry budget ran out; it stays queued."""
        rows = await conn.fetch(
            "SELECT * FROM adapter_delivery WHERE unit_code = $1 AND status = 'pending'"
            " AND NOT failure_reported AND (attempts >= $2"
            "   OR enqueued_at < now() - make_interval(secs => $3))"
            " ORDER BY seq",
            self.unit_code,
            self.policy.max_attempts,
            self.policy.budget_s,
        )
        if not rows:
            return
        head_error = await conn.fetchval(
            "SELECT last_error FROM adapter_delivery WHERE unit_code = $1 AND status = 'pending'"
            " ORDER BY seq LIMIT 1",
            self.unit_code,
        )
        for row in rows:
            message = _MODELS[row["kind"]].model_validate(_decode_json(row["message"]))
            error = row["last_error"] or (
                f"department unavailable; queued behind earlier messages ({head_error})"
            )
            async with conn.transaction():
                await conn.execute(
                    "UPDATE adapter_delivery SET failure_reported = true WHERE seq = $1",
                    row["seq"],
                )
                await self._emit(
                    conn,
                    DeptTaskDeliveryFailed(
                        **self._reply_fields(row, message),
                        error=f"{row['kind']} not delivered after the retry budget: {error}"[:2000],
                        attempts=max(1, row["attempts"]),
                    ),
                    # In the message's own trace (its case's), whichever step noticed it.
                    traceparent=row["traceparent"],
                )
            DELIVERIES.labels(self.service, self.unit_code, row["kind"], "failed_reported").inc()

    async def poll_loop(self) -> None:
        if not getattr(self.client, "supports_polling", False):
            return
        while True:
            await asyncio.sleep(self.policy.poll_interval_s)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s/%s: polling failed", self.service, self.unit_code)

    async def poll_once(self) -> int:
        """Ask the department about the open tasks once; the number of replies recorded."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT task_id, case_id, external_ref, delivered_at FROM adapter_task"
                " WHERE unit_code = $1 AND state = 'open' ORDER BY delivered_at LIMIT 500",
                self.unit_code,
            )
        if not rows or not self.breaker.allow():
            return 0
        open_tasks = [
            OpenTask(r["task_id"], r["case_id"], r["external_ref"], r["delivered_at"]) for r in rows
        ]
        ctx = CallContext(self.unit_code, f"poll:{uuid.uuid4()}", inject_traceparent())
        try:
            updates = await asyncio.wait_for(
                self.client.poll(open_tasks, ctx), timeout=self.policy.call_timeout_s
            )
        except Exception as exc:
            self.breaker.record_failure()
            reason = exc.reason if isinstance(exc, DepartmentUnavailableError) else "poll_error"
            metrics.DEPARTMENT_CALL_ERRORS.labels(self.service, self.unit_code, reason).inc()
            log.warning("%s/%s: status poll failed: %s", self.service, self.unit_code, exc)
            return 0
        self.breaker.record_success()
        result = await self._engine.record_updates(self.unit_code, updates)
        return result.recorded


class AdapterEngine:
    """Everything an adapter service runs: the task handler, workers, pollers, updates."""

    def __init__(
        self,
        *,
        service: str,
        units: Sequence[AdapterUnit],
        policy: DeliveryPolicy,
        pool: asyncpg.Pool,
    ) -> None:
        if not units:
            raise ValueError(f"{service}: an adapter serves at least one unit")
        self.service = service
        self.policy = policy
        self._pool = pool
        self.workers: dict[str, UnitWorker] = {}
        self._topic_units: dict[str, str] = {}
        for unit in units:
            if unit.unit_code in self.workers:
                raise ValueError(f"{service}: unit {unit.unit_code!r} is configured twice")
            self.workers[unit.unit_code] = UnitWorker(
                service=service, unit=unit, policy=policy, pool=pool, engine=self
            )
            self._topic_units[unit_tasks_topic(unit.unit_code)] = unit.unit_code

    def subscription(self) -> Subscription:
        handlers = {
            DeptTaskAssigned.ce_type: self.on_task,
            DeptTaskFollowUp.ce_type: self.on_task,
            DeptTaskCancelled.ce_type: self.on_task,
        }
        return Subscription(name="tasks", topics=tuple(self._topic_units), handlers=handlers)

    async def on_task(self, tx: Transaction, msg: Incoming) -> None:
        """Queue a task message for its department (idempotent by task / follow-up id)."""
        payload = msg.payload
        if not isinstance(payload, DeptMessage):
            raise PermanentError(f"{type(payload).__name__} is not a department task message")
        unit = self._topic_units.get(msg.topic)
        if unit is None or payload.unit_code != unit:
            raise PermanentError(
                f"message for unit {payload.unit_code!r} arrived on {msg.topic}; "
                "a unit's tasks belong on its own topic"
            )
        kind, dedup = _dedup_key(payload)
        if isinstance(payload, DeptTaskAssigned):
            await tx.conn.execute(
                "INSERT INTO adapter_task (task_id, unit_code, case_id, case_no)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                payload.task_id,
                unit,
                payload.case_id,
                payload.case_no,
            )
        await tx.conn.execute(
            "INSERT INTO adapter_delivery (unit_code, dedup_key, kind, task_id, case_id,"
            " message, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (dedup_key) DO NOTHING",
            unit,
            dedup,
            kind,
            payload.task_id,
            payload.case_id,
            payload.model_dump(mode="json"),
            inject_traceparent() or msg.envelope.traceparent,
        )
        self.workers[unit].wake_after_commit(tx.conn)

    async def run(self) -> None:
        loops = [w.run() for w in self.workers.values()]
        loops += [w.poll_loop() for w in self.workers.values()]
        await asyncio.gather(*loops)

    async def record_updates(self, unit_code: str, updates: Sequence[DeptUpdate]) -> UpdateResult:
        """Turn department status updates into replies, once each, oldest first."""
        if unit_code not in self.workers:
            raise KeyError(f"{self.service} does not serve unit {unit_code!r}")
        worker = self.workers[unit_code]
        result = UpdateResult()
        async with self._pool.acquire() as conn:
            for update in sorted(updates, key=lambda u: u.at):
                outcome = await self._record_one(conn, worker, update)
                setattr(result, outcome, getattr(result, outcome) + 1)
                UPDATES.labels(self.service, unit_code, outcome).inc()
        return result

    async def _record_one(
        self, conn: asyncpg.Connection, worker: UnitWorker, update: DeptUpdate
    ) -> str:
        async with conn.transaction():
            if update.task_id is not None:
                task = await conn.fetchrow(
                    "SELECT * FROM adapter_task WHERE task_id = $1 AND unit_code = $2 FOR UPDATE",
                    update.task_id,
                    worker.unit_code,
                )
            else:
                task = await conn.fetchrow(
                    "SELECT * FROM adapter_task WHERE unit_code = $1 AND external_ref = $2"
                    " FOR UPDATE",
                    worker.unit_code,
                    update.external_ref,
                )
            if task is None:
                return "unknown"
            if task["state"] == "queued":
                return "not_ready"
            if task["state"] == "closed":
                return "stale"
            status = await conn.execute(
                "INSERT INTO adapter_update (unit_code, task_id, update_id, kind)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                worker.unit_code,
                task["task_id"],
                update.update_id,
                update.kind,
            )
            if not status.endswith(" 1"):
                return "duplicates"
            # A poll or callback comes in its own trace (or none): the reply continues the
            # task's trace, linked to what brought the update.
            task_trace = await conn.fetchval(
                "SELECT traceparent FROM adapter_delivery WHERE task_id = $1 AND kind = 'assign'",
                task["task_id"],
            )
            with continue_case_trace(
                f"{worker.unit_code} department update",
                task_trace,
                {"onegrid.unit": worker.unit_code, "onegrid.update": update.kind},
                case_id=str(task["case_id"]),
                service=self.service,
            ):
                await worker._emit(conn, reply_for_update(task, worker.unit_code, update))
            if update.kind in TERMINAL_UPDATES:
                await worker._close_task(conn, task["task_id"])
        return "recorded"
