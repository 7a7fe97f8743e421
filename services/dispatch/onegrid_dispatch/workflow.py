"""The case workflow around the pure domain: load → command → automatic next steps → save
with every event (outbox), in one statement.

Consumers and timers change a case with `Workflow.execute`, in their transaction: the case
row is locked (SELECT … FOR UPDATE) so that replicas apply one case's messages one at a
time, in order. A person's command over HTTP runs with `execute_alone`, outside a
transaction: the case is read without a lock and saved only if its version is still the
one read, else the command is decided again (optimistic; two round trips instead of five).
Either way the state and every event it caused are written by one statement. After a
command the workflow takes the steps no person decides: route a registered case, assign
the on-site check of a handled one, close a verified one, send a rework round back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

import asyncpg

from onegrid_common import metrics, outbox
from onegrid_common.telemetry import continue_case_trace, inject_traceparent
from onegrid_contracts.base import Payload
from onegrid_contracts.cases import (
    CaseEscalated,
    CaseEvent,
    CaseFlaggedForOperator,
    CaseFollowUpAdded,
    CaseOutcome,
    CaseReported,
    CaseState,
    DeadlineBreached,
    DeadlineExtended,
    DeadlineWarning,
    OperatorQueueReason,
    TaskAssigned,
    TaskCancelled,
    TaskRole,
)
from onegrid_contracts.catalogue import CASES_EVENTS, unit_tasks_topic
from onegrid_contracts.envelope import Envelope
from onegrid_contracts.primitives import Actor
from onegrid_contracts.registry import Priority
from onegrid_contracts.tasks import (
    DeptTaskAssigned,
    DeptTaskCancelled,
    DeptTaskFollowUp,
    FollowUpKind,
)
from onegrid_dispatch.db import repository as repo
from onegrid_dispatch.domain.case import SYSTEM, Case, CasePolicy, route_without
from onegrid_dispatch.domain.errors import DomainError
from onegrid_dispatch.domain.ports import Clock, Registry

log = logging.getLogger(__name__)

SOURCE = "dispatch"
Command = Callable[[Case, datetime], list[CaseEvent]]


class CaseNotFound(LookupError):  # noqa: N818 - reads as the API says it
    """No case with that id."""


class CaseBusy(RuntimeError):  # noqa: N818 - reads as the API says it
    """The case changed every time a command was decided on it (see `execute_alone`)."""


@dataclass
class Outcome:
    case: Case
    events: list[CaseEvent]


@dataclass
class Workflow:
    registry: Registry
    clock: Clock
    max_refusals: int = 3
    near_boundary_m: float = 50.0  # another grid this close: the case is near a boundary
    max_save_attempts: int = 5  # of a command outside a transaction (`execute_alone`)

    def policy(self) -> CasePolicy:
        return CasePolicy(calendar=self.registry.calendar(), max_refusals=self.max_refusals)

    # --- entry points ---------------------------------------------------------------------

    async def on_reported(
        self, conn: asyncpg.Connection, event: CaseReported, env: Envelope
    ) -> None:
        """A report from intake: a new case, or another reporter of an open one."""
        if event.duplicate_of is not None:
            loaded = await repo.load_for_update(conn, event.case_id)
            if loaded is not None:
                loaded.case.add_reporter(event)
                await self._save(conn, loaded, [], noted=[(env, event)])
                return
        # Inserted without a look first: for almost every report there is nothing to find.
        # The case, its first steps and their events are one statement, which does nothing
        # when the case exists (the same case reported twice: intake retried, or a replica
        # had it).
        case = Case.from_reported(event)
        case.near_boundary = self.near_boundary(event)
        # The case's own trace: this consumer span (child of intake's publish of the report).
        traceparent = inject_traceparent() or env.traceparent
        loaded = repo.LoadedCase(case, event, version=1, traceparent=traceparent)
        now = self.clock.now()
        events = self._first_steps(case, event, now)
        events += self._advance(case, event, now)
        await self._save(conn, loaded, events, noted=[(env, event)], new=True)

    async def execute(self, conn: asyncpg.Connection, case_id: UUID, command: Command) -> Outcome:
        """Apply `command` to the case, locked in the caller's transaction, then the
        automatic steps; save and emit. Raises CaseNotFound, or the domain's error (nothing
        is written then)."""
        loaded = await repo.load_for_update(conn, case_id)
        if loaded is None:
            raise CaseNotFound(f"no case {case_id}")
        return await self.execute_loaded(conn, loaded, command)

    async def execute_alone(
        self, conn: asyncpg.Connection, case_id: UUID, command: Command
    ) -> Outcome:
        """`execute` outside a transaction, for a person's command: the case is read
        without a lock and everything the command changes is saved in one statement, which
        applies only if nobody saved the case since it was read; if somebody did, the
        command is decided again on the case as it is now. Two round trips instead of the
        five of a transaction (BEGIN, lock, save, events, COMMIT)."""
        return await self._execute_alone(conn, lambda: repo.load(conn, case_id), command)

    async def execute_alone_on_task(
        self, conn: asyncpg.Connection, task_id: UUID, command: Command
    ) -> Outcome:
        """`execute_alone` on the case holding `task_id`; CaseNotFound when no case does."""
        return await self._execute_alone(conn, lambda: repo.load_by_task(conn, task_id), command)

    async def _execute_alone(
        self,
        conn: asyncpg.Connection,
        load: Callable[[], Awaitable[repo.LoadedCase | None]],
        command: Command,
    ) -> Outcome:
        if conn.is_in_transaction():
            # In a transaction a lost race would repeat the command on a stale snapshot
            # under REPEATABLE READ; callers in one use `execute`.
            raise RuntimeError("execute_alone runs outside a transaction")
        for attempt in range(1, self.max_save_attempts + 1):
            loaded = await load()
            if loaded is None:
                raise CaseNotFound("no such case")
            outcome = await self._execute(conn, loaded, command, locked=False)
            if outcome is not None:
                return outcome
            metrics.CASE_SAVE_CONFLICTS.labels(SOURCE).inc()
            log.info("case %s changed while a command ran (attempt %d); deciding again",
                     loaded.case.case_id, attempt)  # fmt: skip
        raise CaseBusy(f"the case changed {self.max_save_attempts} times while the command ran")

    async def execute_loaded(
        self,
        conn: asyncpg.Connection,
        loaded: repo.LoadedCase,
        command: Command,
        *,
        received: Sequence[tuple[str, Envelope, Payload]] = (),
    ) -> Outcome:
        """`execute` on a case the caller loaded for update (a department's reply: the
        case of the task it names), saved with the messages `received` from units'
        systems (topic, envelope, message: kept for the timeline)."""
        outcome = await self._execute(conn, loaded, command, received=received)
        assert outcome is not None
        return outcome

    async def _execute(
        self,
        conn: asyncpg.Connection,
        loaded: repo.LoadedCase,
        command: Command,
        *,
        locked: bool = True,
        received: Sequence[tuple[str, Envelope, Payload]] = (),
    ) -> Outcome | None:
        """None when the case was not `locked` and somebody saved it meanwhile (a locked
        case is always saved: `_save` raises otherwise)."""
        case_id = loaded.case.case_id
        # An operator's request or a late reply arrives in its own trace: the events it
        # causes belong to the case's trace (linked back to the trigger).
        with continue_case_trace(
            "dispatch case update", loaded.traceparent, case_id=str(case_id), service=SOURCE
        ):
            now = self.clock.now()
            events = command(loaded.case, now)
            events += self._advance(loaded.case, loaded.report, now)
            saved = await self._save(conn, loaded, events, locked=locked, received=received)
        return Outcome(loaded.case, events) if saved else None

    async def on_timer(self, conn: asyncpg.Connection, case_id: UUID) -> list[CaseEvent]:
        """Warnings, breaches (escalation) and the default evaluation due now."""
        loaded = await repo.load_for_update(conn, case_id)
        if loaded is None:
            return []
        now = self.clock.now()
        case, policy = loaded.case, self.policy()
        events = case.check_deadlines(now, policy)
        if case.default_evaluation_due(now, policy):
            reporter = case.reporter_ids[0] if case.reporter_ids else "anonymous"
            events += case.apply_default_evaluation(now, reporter, policy)
        events = [self._with_unit_head(e) for e in events]
        for event in events:
            if isinstance(event, DeadlineWarning):
                metrics.DEADLINE_WARNINGS.labels(SOURCE, event.unit_code).inc()
            elif isinstance(event, DeadlineBreached):
                metrics.DEADLINE_BREACHES.labels(SOURCE, event.unit_code).inc()
        # A timer runs outside any trace: what it fires continues the case's trace.
        span = continue_case_trace(
            "dispatch case timer", loaded.traceparent, case_id=str(case_id), service=SOURCE
        )
        with span if events else contextlib.nullcontext():
            await self._save(conn, loaded, events, now=now)
        return events

    def near_boundary(self, event: CaseReported) -> bool:
        """Within near_boundary_m of another grid: the routing may be wrong, say so on the
        case (an operator moves it in one action: relocate)."""
        loc = event.location
        if loc is None or self.near_boundary_m <= 0:
            return False
        return self.registry.near_boundary(loc.lon, loc.lat, self.near_boundary_m)

    # --- the steps nobody decides ---------------------------------------------------------

    def _first_steps(self, case: Case, report: CaseReported, now: datetime) -> list[CaseEvent]:
        """Register automatically when located, categorised and not in doubt; else queue."""
        info = self.registry.category(case.category_code) if case.category_code else None
        doubts = [r.value for r in report.review_reasons]
        if case.category_code is None:
            doubts.append("no_category")
        elif info is None:
            doubts.append(f"unknown_category:{case.category_code}")
        if case.grid_code is None:
            doubts.append("no_grid")
        if doubts or info is None:
            detail = "待人工立案：" + "、".join(dict.fromkeys(doubts))
            return case.flag_for_operator(now, OperatorQueueReason.NEEDS_REVIEW, detail)
        actor = report.actor
        if case.resolved_on_site:
            return case.self_handle(actor, now, report.description)
        return case.register(SYSTEM, now, info.limits, automatic=True)

    def _advance(self, case: Case, report: CaseReported, now: datetime) -> list[CaseEvent]:
        events: list[CaseEvent] = []
        policy = self.policy()
        for _ in range(8):  # each step changes the state; a handful always suffice
            if case.operator_queue is not None:
                break
            if case.state is CaseState.REGISTERED:
                events += self._route(case, report, now, policy)
            elif case.state is CaseState.REWORK:
                events += case.dispatch(SYSTEM, now, case.rework_route(), policy)
            elif case.state is CaseState.HANDLED and not any(
                t.role is TaskRole.VERIFY and t.is_open for t in case.tasks
            ):
                verifier = self.registry.verifier(case.grid_code) if case.grid_code else None
                if verifier is None:
                    detail = f"网格 {case.grid_code} 无网格员可核查"
                    events += case.flag_for_operator(now, OperatorQueueReason.NEEDS_REVIEW, detail)
                else:
                    events += case.assign_verification(
                        SYSTEM, now, verifier.unit_code, verifier.staff_code
                    )
            elif case.state is CaseState.VERIFIED:
                unfixed = [
                    t
                    for t in case.tasks
                    if t.counts and t.attempt == case.attempt and t.fixed is False
                ]
                if unfixed:
                    reason = "；".join(t.result or t.unit_code for t in unfixed)[:1000]
                    events += case.close(SYSTEM, now, CaseOutcome.NOT_FIXABLE, reason)
                else:
                    events += case.close(SYSTEM, now, CaseOutcome.FIXED)
            else:
                break
        return events

    def _route(
        self, case: Case, report: CaseReported, now: datetime, policy: CasePolicy
    ) -> list[CaseEvent]:
        if case.category_code is None or case.grid_code is None:
            return case.flag_for_operator(
                now, OperatorQueueReason.NEEDS_REVIEW, "缺少类别或网格，无法派遣"
            )
        info = self.registry.category(case.category_code)
        severity = info.priority if info else Priority.NORMAL.value
        route = self.registry.route(case.category_code, case.grid_code, severity)
        if route is None:
            return case.flag_for_operator(
                now,
                OperatorQueueReason.NO_ROUTE,
                f"类别 {case.category_code} 在网格 {case.grid_code} 无派遣规则",
            )
        if case.near_boundary and not route.near_boundary:
            route = type(route)(
                route.tier, route.lead_unit, route.assisting_units, route.route_code, True
            )
        remaining = route_without(route, case.excluded_units)
        if remaining is None:
            return case.flag_for_operator(
                now,
                OperatorQueueReason.JURISDICTION_DISPUTE,
                f"规则内单位均已退回：{'、'.join(case.excluded_units)}",
            )
        return case.dispatch(SYSTEM, now, remaining, policy)

    def _with_unit_head(self, event: CaseEvent) -> CaseEvent:
        if isinstance(event, DeadlineWarning) and event.unit_head_staff_id is None:
            head = self.registry.unit_head(event.unit_code)
            if head is not None:
                return event.model_copy(update={"unit_head_staff_id": head})
        return event

    # --- persistence and messages ---------------------------------------------------------

    def _next_timer(self, case: Case, now: datetime | None) -> datetime | None:
        times = []
        timer = case.next_timer_at()
        if timer is not None and not (now is not None and timer <= now):
            times.append(timer)
        if case.state is CaseState.CLOSED and case.closed_at is not None:
            due = case.closed_at + self.policy().evaluation_window
            if now is None or due > now:
                times.append(due)
        return min(times) if times else None

    async def _save(
        self,
        conn: asyncpg.Connection,
        loaded: repo.LoadedCase,
        events: list[CaseEvent],
        *,
        now: datetime | None = None,
        noted: Sequence[tuple[Envelope, Payload]] = (),
        locked: bool = True,
        received: Sequence[tuple[str, Envelope, Payload]] = (),
        new: bool = False,
    ) -> bool:
        """The case with its events and the messages they send to units' systems, in one
        statement. False when it was not `locked` and somebody saved it since it was read,
        or when it is `new` and exists already."""
        case = loaded.case
        key = str(case.case_id)
        emitted: list[tuple[outbox.EventRow, CaseEvent]] = []
        sent: list[tuple[outbox.EventRow, Payload]] = []
        queued = None
        for event in events:
            row = outbox.event_row(source=SOURCE, topic=CASES_EVENTS, key=key, payload=event)
            emitted.append((row, event))
            for unit, message in self._unit_messages(case, loaded.report, event, row.envelope.id):
                topic = unit_tasks_topic(unit)
                task_row = outbox.event_row(source=SOURCE, topic=topic, key=key, payload=message)
                sent.append((task_row, message))
            if isinstance(event, CaseFlaggedForOperator):
                queued = repo.QueueEntry(event.queue_reason.value, event.detail, event.at)
        # A timer tick leaves nothing due at `now` behind: what it could not fire (a clock
        # of a round that was withdrawn) waits for the next command to set a new time.
        path = self.registry.grid_path(case.grid_code) if case.grid_code else ()
        # Case events and departments' messages go to different topics: each topic keeps
        # its own order, and the outbox publishes each batch in the order it was written.
        saved = await repo.save_case(
            conn,
            loaded,
            next_timer_at=self._next_timer(case, now),
            grid_path=path,
            queued=queued,
            emitted=emitted,
            sent=sent,
            noted=noted,
            received=received,
            new=new,
        )
        if not saved and locked and not new:
            raise RuntimeError(f"case {case.case_id} was saved by another writer under our lock")
        return saved

    def _adapter(self, unit: str) -> bool:
        return self.registry.integration_mode(unit) == "adapter"

    def _unit_messages(
        self, case: Case, report: CaseReported, event: CaseEvent, event_id: str
    ) -> list[tuple[str, Payload]]:
        """What adapter units must hear of this event on dept.<unit>.tasks.v1."""
        base = {"case_id": case.case_id, "case_no": case.case_no, "at": event.at}
        out: list[tuple[str, Payload]] = []
        if isinstance(event, TaskAssigned) and event.role is not TaskRole.VERIFY:
            if self._adapter(event.unit_code):
                out.append((event.unit_code, self._assigned(case, report, event)))
        elif isinstance(event, TaskCancelled):
            if self._adapter(event.unit_code):
                cancelled = DeptTaskCancelled(
                    **base, task_id=event.task_id, unit_code=event.unit_code, reason=event.reason
                )
                out.append((event.unit_code, cancelled))
        elif isinstance(event, CaseFollowUpAdded | CaseEscalated | DeadlineExtended):
            if isinstance(event, CaseFollowUpAdded):
                kind, text, attachments = (
                    FollowUpKind.REPORTER_FOLLOWUP,
                    event.text,
                    event.attachments,
                )
            elif isinstance(event, CaseEscalated):
                kind, text, attachments = FollowUpKind.ESCALATED, event.reason, ()
            else:
                kind, text, attachments = FollowUpKind.DEADLINE_CHANGED, event.reason, ()
            deadlines = tuple(c.as_payload() for c in (case.response, case.resolution) if c)
            for task in case.open_tasks():
                if task.role is TaskRole.VERIFY or not self._adapter(task.unit_code):
                    continue
                msg = DeptTaskFollowUp(
                    **base,
                    task_id=task.task_id,
                    unit_code=task.unit_code,
                    # Derived from the event id: a redelivery carries the same follow-up id.
                    followup_id=uuid5(task.task_id, event_id),
                    kind=kind,
                    text=text,
                    attachments=attachments,
                    deadlines=deadlines if kind is FollowUpKind.DEADLINE_CHANGED else (),
                    supervised=case.supervised,
                )
                out.append((task.unit_code, msg))
        return out

    def _assigned(self, case: Case, report: CaseReported, event: TaskAssigned) -> Payload:
        info = self.registry.category(case.category_code) if case.category_code else None
        return DeptTaskAssigned(
            task_id=event.task_id,
            unit_code=event.unit_code,
            case_id=case.case_id,
            case_no=case.case_no,
            at=event.at,
            role=event.role,
            lead_unit_code=case.lead_unit or event.unit_code,
            category_code=case.category_code or "",
            category_name=info.name_zh if info else (case.category_code or "未分类"),
            priority=Priority(info.priority) if info else Priority.NORMAL,
            supervised=case.supervised,
            description=report.description,
            location=report.location,
            address=report.location.address if report.location else None,
            grid_code=case.grid_code,
            occurred_at=report.occurred_at,
            reported_at=report.at,
            deadlines=event.deadlines,
            attachments=report.attachments,
            # Sealed by intake for the unit's adapter; dispatch only passes it on.
            applicant=report.applicant
            if event.role is TaskRole.LEAD and info is not None and info.requires_id_number
            else None,
        )


def actor_label(actor: Actor) -> str:
    return f"{actor.kind.value}:{actor.id}"


__all__ = ["CaseBusy", "CaseNotFound", "DomainError", "Outcome", "Workflow"]
