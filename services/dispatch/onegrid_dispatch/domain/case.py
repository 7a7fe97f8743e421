"""The Case aggregate: state, tasks, deadlines and flags; every command returns its events.

Commands check the transition tables (case_machine, task_machine) first, then change the
case, then return the contract payloads (onegrid_contracts.cases) to publish, in order. No
I/O: the calendar and the policy come in as arguments, ids come from `new_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypedDict
from uuid import UUID, uuid4

from onegrid_common.working_time import WorkingCalendar
from onegrid_contracts.cases import (
    CaseClosed,
    CaseDispatched,
    CaseEscalated,
    CaseEvaluated,
    CaseEvent,
    CaseFlaggedForOperator,
    CaseFollowUpAdded,
    CaseHandled,
    CaseOutcome,
    CaseRecategorised,
    CaseRegistered,
    CaseRejected,
    CaseRelocated,
    CaseReopened,
    CaseReported,
    CaseResumed,
    CaseReworkRequested,
    CaseState,
    CaseSuspended,
    CaseVerified,
    DeadlineBreached,
    DeadlineExtended,
    DeadlineExtensionRefused,
    DeadlineExtensionRequested,
    DeadlineKind,
    DeadlineWarning,
    EscalationTrigger,
    OperatorQueueReason,
    RefusalReason,
    RejectReason,
    ReworkCause,
    Satisfaction,
    TaskAccepted,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskProgressed,
    TaskRefused,
    TaskRole,
    TaskState,
    Tier,
)
from onegrid_contracts.primitives import Actor, ActorKind, Attachment, Location
from onegrid_dispatch.domain.case_machine import (
    CASE_TRANSITIONS,
    CaseAction,
    Guard,
    case_transition,
)
from onegrid_dispatch.domain.deadlines import (
    DeadlineClock,
    TimeLimit,
    TrafficLight,
    default_evaluation_due,
    within_reopen_window,
)
from onegrid_dispatch.domain.errors import IllegalTransition, InvalidCommand
from onegrid_dispatch.domain.task_machine import OPEN_TASK_STATES, TaskAction, task_transition

SYSTEM = Actor(kind=ActorKind.SYSTEM, id="dispatch")

# Escalation goes one tier up; the department tier is the top and stays (supervised).
NEXT_TIER = {
    Tier.GRID: Tier.COMMUNITY,
    Tier.COMMUNITY: Tier.STREET,
    Tier.STREET: Tier.DEPARTMENT,
    Tier.DEPARTMENT: Tier.DEPARTMENT,
}

SATISFACTION_BY_RATING = {
    5: Satisfaction.VERY_SATISFIED,
    4: Satisfaction.SATISFIED,
    3: Satisfaction.NEUTRAL,
    2: Satisfaction.DISSATISFIED,
    1: Satisfaction.VERY_DISSATISFIED,
}

_LIGHT_ORDER = (TrafficLight.GREEN, TrafficLight.YELLOW, TrafficLight.RED)


class _Base(TypedDict):
    """The fields every case event carries."""

    case_id: UUID
    case_no: str
    actor: Actor
    at: datetime


@dataclass(frozen=True)
class CasePolicy:
    """The city's rules for the workflow; the calendar counts every deadline."""

    calendar: WorkingCalendar
    max_refusals: int = 3  # refusals after which routing stops and an operator decides
    reopen_window: timedelta = timedelta(days=7)
    evaluation_window: timedelta = timedelta(days=7)
    default_rating: int = 4  # 满意: what a reporter's silence counts as

    def __post_init__(self) -> None:
        if self.max_refusals < 1:
            raise ValueError("max_refusals must be at least 1")
        if self.default_rating not in SATISFACTION_BY_RATING:
            raise ValueError("default_rating must be 1 to 5")


@dataclass(frozen=True)
class CategoryLimits:
    response: TimeLimit
    resolution: TimeLimit


@dataclass(frozen=True)
class Route:
    """Routing's answer: tier, lead unit, assisting units (from the registry's rules)."""

    tier: Tier
    lead_unit: str
    assisting_units: tuple[str, ...] = ()
    route_code: str | None = None
    near_boundary: bool = False

    @property
    def units(self) -> tuple[str, ...]:
        return (self.lead_unit, *self.assisting_units)


@dataclass
class Task:
    task_id: UUID
    unit_code: str
    role: TaskRole
    attempt: int  # the dispatch that created it (CaseDispatched.attempt)
    assigned_at: datetime
    state: TaskState = TaskState.ASSIGNED
    assignee_staff_id: str | None = None
    accepted_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    result: str | None = None
    fixed: bool | None = None

    @property
    def is_open(self) -> bool:
        return self.cancelled_at is None and self.state in OPEN_TASK_STATES

    @property
    def counts(self) -> bool:
        """Part of the handling: not cancelled, not refused, not a verification."""
        return (
            self.cancelled_at is None
            and self.state is not TaskState.REFUSED
            and self.role is not TaskRole.VERIFY
        )


@dataclass(frozen=True)
class ExtensionRequest:
    request_id: UUID
    kind: DeadlineKind
    requested_due_at: datetime
    task_id: UUID | None
    requested_at: datetime


@dataclass
class Case:
    case_id: UUID
    case_no: str
    reported_at: datetime
    category_code: str | None = None
    grid_code: str | None = None
    resolved_on_site: bool = False
    state: CaseState = CaseState.REPORTED
    limits: CategoryLimits | None = None
    registered_at: datetime | None = None
    tier: Tier | None = None
    lead_unit: str | None = None
    attempt: int = 0
    tasks: list[Task] = field(default_factory=list)
    response: DeadlineClock | None = None
    resolution: DeadlineClock | None = None
    supervised: bool = False  # 督办
    near_boundary: bool = False
    refusal_count: int = 0
    rework_count: int = 0
    reopen_count: int = 0
    excluded_units: list[str] = field(default_factory=list)
    operator_queue: OperatorQueueReason | None = None
    suspended_from: CaseState | None = None
    pending_extension: ExtensionRequest | None = None
    outcome: CaseOutcome | None = None
    outcome_reason: str | None = None
    self_handled: bool = False
    closed_at: datetime | None = None
    rating: int | None = None
    default_evaluation: bool = False
    reporter_ids: list[str] = field(default_factory=list)  # every reporter (一事一档)

    @classmethod
    def from_reported(cls, event: CaseReported) -> Case:
        return cls(
            case_id=event.case_id,
            case_no=event.case_no,
            reported_at=event.at,
            category_code=event.category_code,
            grid_code=event.grid_code,
            resolved_on_site=event.resolved_on_site,
            reporter_ids=[event.reporter.reporter_id],
        )

    def add_reporter(self, event: CaseReported) -> None:
        """Another report of the same matter joined this case (no transition)."""
        if event.reporter.reporter_id not in self.reporter_ids:
            self.reporter_ids.append(event.reporter.reporter_id)

    def flag_for_operator(
        self, at: datetime, reason: OperatorQueueReason, detail: str | None = None
    ) -> list[CaseEvent]:
        """The case waits for an operator (no state change): review, dispute, no route."""
        if self.state in (CaseState.CLOSED, CaseState.EVALUATED, CaseState.REJECTED):
            raise InvalidCommand(f"case {self.case_id} is {self.state.value}: nothing to decide")
        self.operator_queue = reason
        return [
            CaseFlaggedForOperator(
                **self._base(SYSTEM, at),
                queue_reason=reason,
                detail=detail[:1000] if detail else None,
            )
        ]

    def operator_dispatch(
        self,
        actor: Actor,
        at: datetime,
        route: Route,
        policy: CasePolicy,
        *,
        new_id: Callable[[], UUID] = uuid4,
    ) -> list[CaseEvent]:
        """An operator settles the queue (a jurisdiction dispute, no route, a failed
        delivery) by naming the units; a unit that refused earlier may be named again."""
        if self.operator_queue is None:
            raise InvalidCommand(f"case {self.case_id} is not waiting for an operator")
        if self.state is not CaseState.REGISTERED:
            raise IllegalTransition(
                self.case_id,
                self.state.value,
                CaseAction.DISPATCH.value,
                why="withdraw the open tasks first (relocate) or wait for the refusal",
            )
        self.excluded_units = [u for u in self.excluded_units if u not in route.units]
        return self.dispatch(actor, at, route, policy, new_id=new_id)

    def withdraw_for_operator(
        self, at: datetime, task_id: UUID, reason: OperatorQueueReason, detail: str
    ) -> list[CaseEvent]:
        """A task could not be delivered yet: an operator decides (relocate, re-route).

        The task stays open: the adapter keeps it queued and delivers it when the
        department is back, and its acceptance then takes the case out of the queue
        (`accept_task`). Withdrawing it here would queue a cancellation behind it."""
        task = self.task(task_id)
        if not task.is_open:
            return []
        return self.flag_for_operator(at, reason, detail)

    # --- helpers ------------------------------------------------------------------------

    def _to(
        self, action: CaseAction, holds: Sequence[Guard] = (), *, dry_run: bool = False
    ) -> CaseState:
        target = case_transition(
            self.case_id, self.state, action, holds, suspended_from=self.suspended_from
        )
        if not dry_run:
            self.state = target
        return target

    def _base(self, actor: Actor, at: datetime) -> _Base:
        return {"case_id": self.case_id, "case_no": self.case_no, "actor": actor, "at": at}

    def task(self, task_id: UUID) -> Task:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise InvalidCommand(f"case {self.case_id} has no task {task_id}")

    def open_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.is_open]

    def _current(self) -> list[Task]:
        return [t for t in self.tasks if t.counts and t.attempt == self.attempt]

    def _all_completed(self) -> bool:
        current = self._current()
        return bool(current) and all(t.state is TaskState.COMPLETED for t in current)

    def _lead_task(self) -> Task | None:
        for task in reversed(self.tasks):
            if task.role is TaskRole.LEAD and task.counts and task.unit_code == self.lead_unit:
                return task
        return None

    def _clocks(self) -> list[DeadlineClock]:
        return [c for c in (self.response, self.resolution) if c is not None]

    def _task_for(self, task_id: UUID, actor: Actor, action: TaskAction) -> Task:
        task = self.task(task_id)
        # A reply from a unit that does not hold the task is refused.
        if actor.kind is ActorKind.UNIT and actor.id != task.unit_code:
            raise InvalidCommand(
                f"unit {actor.id!r} does not hold task {task_id} (held by {task.unit_code!r})"
            )
        task.state = task_transition(
            self.case_id, task.task_id, task.state, action, cancelled=task.cancelled_at is not None
        )
        return task

    def _cancel_open_tasks(self, actor: Actor, at: datetime, reason: str) -> list[CaseEvent]:
        events: list[CaseEvent] = []
        for task in self.open_tasks():
            task_transition(self.case_id, task.task_id, task.state, TaskAction.CANCEL)
            task.cancelled_at = at
            events.append(
                TaskCancelled(
                    **self._base(actor, at),
                    task_id=task.task_id,
                    unit_code=task.unit_code,
                    reason=reason,
                )
            )
        return events

    def _handled(self, at: datetime) -> list[CaseEvent]:
        done = self._current()
        if self.resolution is not None:
            self.resolution.meet(at)
        summary = "；".join(t.result for t in done if t.result) or None
        return [
            CaseHandled(
                **self._base(SYSTEM, at),
                task_ids=tuple(t.task_id for t in done),
                summary=summary[:4000] if summary else None,
            )
        ]

    # --- 立案 register ------------------------------------------------------------------

    def register(
        self,
        actor: Actor,
        at: datetime,
        limits: CategoryLimits,
        *,
        automatic: bool,
        note: str | None = None,
    ) -> list[CaseEvent]:
        if self.category_code is None:
            raise InvalidCommand(f"case {self.case_id} has no category: recategorise it first")
        self._to(CaseAction.REGISTER)
        self.limits, self.registered_at, self.operator_queue = limits, at, None
        return [
            CaseRegistered(
                **self._base(actor, at),
                category_code=self.category_code,
                grid_code=self.grid_code,
                automatic=automatic,
                note=note,
            )
        ]

    def reject(
        self,
        actor: Actor,
        at: datetime,
        reject_reason: RejectReason,
        reason: str,
        duplicate_of: UUID | None = None,
    ) -> list[CaseEvent]:
        if reject_reason is RejectReason.DUPLICATE and duplicate_of is None:
            raise InvalidCommand("a rejection as duplicate must name the case it duplicates")
        self._to(CaseAction.REJECT)
        self.operator_queue = None
        return [
            CaseRejected(
                **self._base(actor, at),
                reject_reason=reject_reason,
                reason=reason,
                duplicate_of=duplicate_of,
            )
        ]

    def recategorise(
        self, actor: Actor, at: datetime, category_code: str, limits: CategoryLimits, reason: str
    ) -> list[CaseEvent]:
        self._to(CaseAction.RECATEGORISE)
        old, self.category_code, self.limits = self.category_code, category_code, limits
        return [
            CaseRecategorised(
                **self._base(actor, at),
                old_category_code=old,
                new_category_code=category_code,
                reason=reason,
            )
        ]

    def relocate(
        self,
        actor: Actor,
        at: datetime,
        grid_code: str,
        reason: str,
        *,
        location: Location | None = None,
        grid_path: tuple[str, ...] = (),
        near_boundary: bool = False,
    ) -> list[CaseEvent]:
        """Move the case to another grid; a dispatched case goes back to routing."""
        self._to(CaseAction.RELOCATE)
        old, self.grid_code, self.near_boundary = self.grid_code, grid_code, near_boundary
        events: list[CaseEvent] = [
            CaseRelocated(
                **self._base(actor, at),
                old_grid_code=old,
                new_grid_code=grid_code,
                location=location,
                grid_path=grid_path,
                reason=reason,
            )
        ]
        if self.state is CaseState.REGISTERED:
            self.lead_unit = None
            events += self._cancel_open_tasks(actor, at, reason)
        return events

    def self_handle(self, actor: Actor, at: datetime, result: str) -> list[CaseEvent]:
        """A grid worker resolved it on site (就地解决): registered and closed in the grid."""
        if not self.resolved_on_site:
            raise InvalidCommand(f"case {self.case_id} was not reported as resolved on site")
        if self.category_code is None:
            raise InvalidCommand(f"case {self.case_id} has no category: recategorise it first")
        self._to(CaseAction.SELF_HANDLE)
        self.registered_at = self.closed_at = at
        self.tier, self.self_handled = Tier.GRID, True
        self.outcome, self.outcome_reason = CaseOutcome.FIXED, result
        base = self._base(actor, at)
        return [
            CaseRegistered(
                **base,
                category_code=self.category_code,
                grid_code=self.grid_code,
                automatic=True,
                note=result[:1000],
            ),
            CaseClosed(
                **base,
                outcome=CaseOutcome.FIXED,
                reason=None,
                self_handled=True,
                on_time=True,
            ),
        ]

    # --- 派遣 dispatch ------------------------------------------------------------------

    def dispatch(
        self,
        actor: Actor,
        at: datetime,
        route: Route,
        policy: CasePolicy,
        *,
        new_id: Callable[[], UUID] = uuid4,
    ) -> list[CaseEvent]:
        if len(set(route.units)) != len(route.units):
            raise InvalidCommand(f"route names a unit twice: {', '.join(route.units)}")
        refused = [u for u in route.units if u in self.excluded_units]
        if refused:
            raise InvalidCommand(
                f"route includes {', '.join(refused)}, which refused case {self.case_id}"
            )
        if self.limits is None:
            raise InvalidCommand(f"case {self.case_id} has no time limits: register it first")
        new_round = self.state is CaseState.REWORK or self.resolution is None
        self._to(CaseAction.DISPATCH)
        self.attempt += 1
        self.tier, self.lead_unit = route.tier, route.lead_unit
        self.near_boundary = route.near_boundary
        self.operator_queue = None
        calendar = policy.calendar
        # The response clock restarts for every unit sent; the resolution clock once per round.
        self.response = DeadlineClock.start(
            DeadlineKind.RESPONSE, self.limits.response, at, calendar
        )
        if new_round:
            self.resolution = DeadlineClock.start(
                DeadlineKind.RESOLUTION, self.limits.resolution, at, calendar
            )
        deadlines = tuple(c.as_payload() for c in self._clocks())
        base = self._base(actor, at)
        events: list[CaseEvent] = [
            CaseDispatched(
                **base,
                tier=route.tier,
                lead_unit_code=route.lead_unit,
                assisting_unit_codes=route.assisting_units,
                excluded_unit_codes=tuple(self.excluded_units),
                route_code=route.route_code,
                near_boundary=route.near_boundary,
                deadlines=deadlines,
                attempt=self.attempt,
            )
        ]
        for unit in route.units:
            role = TaskRole.LEAD if unit == route.lead_unit else TaskRole.ASSIST
            task = Task(new_id(), unit, role, self.attempt, at)
            self.tasks.append(task)
            events.append(
                TaskAssigned(
                    **base,
                    task_id=task.task_id,
                    unit_code=unit,
                    role=role,
                    deadlines=deadlines,
                )
            )
        return events

    # --- 处置反馈 the units' replies ------------------------------------------------------

    def accept_task(
        self,
        task_id: UUID,
        actor: Actor,
        at: datetime,
        *,
        external_ref: str | None = None,
        note: str | None = None,
    ) -> list[CaseEvent]:
        self._to(CaseAction.ACCEPT_TASK, dry_run=True)
        task = self._task_for(task_id, actor, TaskAction.ACCEPT)
        self._to(CaseAction.ACCEPT_TASK)
        task.accepted_at = at
        if task.role is TaskRole.LEAD and self.response is not None:
            self.response.meet(at)
        if self.operator_queue is OperatorQueueReason.DELIVERY_FAILED:
            self.operator_queue = None  # the department is back: the case goes on
        return [
            TaskAccepted(
                **self._base(actor, at),
                task_id=task_id,
                unit_code=task.unit_code,
                external_ref=external_ref,
                note=note,
            )
        ]

    def progress_task(
        self,
        task_id: UUID,
        actor: Actor,
        at: datetime,
        note: str,
        attachments: tuple[Attachment, ...] = (),
    ) -> list[CaseEvent]:
        self._to(CaseAction.PROGRESS_TASK, dry_run=True)
        task = self._task_for(task_id, actor, TaskAction.PROGRESS)
        self._to(CaseAction.PROGRESS_TASK)
        return [
            TaskProgressed(
                **self._base(actor, at),
                task_id=task_id,
                unit_code=task.unit_code,
                note=note,
                attachments=attachments,
            )
        ]

    def complete_task(
        self,
        task_id: UUID,
        actor: Actor,
        at: datetime,
        result: str,
        attachments: tuple[Attachment, ...] = (),
        *,
        fixed: bool = True,
    ) -> list[CaseEvent]:
        self._to(CaseAction.COMPLETE_TASK, [Guard.ALL_TASKS_COMPLETED], dry_run=True)
        task = self._task_for(task_id, actor, TaskAction.COMPLETE)
        task.completed_at, task.result, task.fixed = at, result, fixed
        holds = [Guard.ALL_TASKS_COMPLETED] if self._all_completed() else []
        self._to(CaseAction.COMPLETE_TASK, holds)
        events: list[CaseEvent] = [
            TaskCompleted(
                **self._base(actor, at),
                task_id=task_id,
                unit_code=task.unit_code,
                result=result,
                attachments=attachments,
                fixed=fixed,
            )
        ]
        if self.state is CaseState.HANDLED:
            events += self._handled(at)
        return events

    def refuse_task(
        self,
        task_id: UUID,
        actor: Actor,
        at: datetime,
        refusal_reason: RefusalReason,
        reason: str,
        policy: CasePolicy,
    ) -> list[CaseEvent]:
        """Wrong jurisdiction: the unit is left out from now on. The lead refusing sends the
        case back to routing (the other tasks are withdrawn); after `max_refusals` refusals
        routing stops and the case waits for an operator as a jurisdiction dispute."""
        self._to(CaseAction.REFUSE_TASK, [Guard.LEAD_TASK], dry_run=True)
        task = self._task_for(task_id, actor, TaskAction.REFUSE)
        self.refusal_count += 1
        if task.unit_code not in self.excluded_units:
            self.excluded_units.append(task.unit_code)
        holds = []
        if task.role is TaskRole.LEAD:
            holds.append(Guard.LEAD_TASK)
        if self._all_completed():
            holds.append(Guard.ALL_TASKS_COMPLETED)
        self._to(CaseAction.REFUSE_TASK, holds)
        events: list[CaseEvent] = [
            TaskRefused(
                **self._base(actor, at),
                task_id=task_id,
                unit_code=task.unit_code,
                refusal_reason=refusal_reason,
                reason=reason,
            )
        ]
        if self.state is CaseState.REGISTERED:
            self.lead_unit = None
            events += self._cancel_open_tasks(SYSTEM, at, "主办单位退回，案件重新派遣")
            if self.refusal_count >= policy.max_refusals:
                self.operator_queue = OperatorQueueReason.JURISDICTION_DISPUTE
                events.append(
                    CaseFlaggedForOperator(
                        **self._base(SYSTEM, at),
                        queue_reason=OperatorQueueReason.JURISDICTION_DISPUTE,
                        detail=f"{self.refusal_count} 次退回：{'、'.join(self.excluded_units)}",
                    )
                )
        elif self.state is CaseState.HANDLED:
            events += self._handled(at)
        return events

    @property
    def needs_routing(self) -> bool:
        """Registered, not dispatched, and not waiting for an operator."""
        return self.state is CaseState.REGISTERED and self.operator_queue is None

    def follow_up(
        self,
        actor: Actor,
        at: datetime,
        followup_id: UUID,
        text: str,
        attachments: tuple[Attachment, ...] = (),
    ) -> list[CaseEvent]:
        """A reporter's follow-up; it goes to every unit holding an open task."""
        self._to(CaseAction.FOLLOW_UP)
        units = tuple(dict.fromkeys(t.unit_code for t in self.open_tasks()))
        return [
            CaseFollowUpAdded(
                **self._base(actor, at),
                followup_id=followup_id,
                text=text,
                attachments=attachments,
                forwarded_to=units,
            )
        ]

    # --- 核查结案 verify and close --------------------------------------------------------

    def assign_verification(
        self,
        actor: Actor,
        at: datetime,
        unit_code: str,
        staff_id: str,
        *,
        new_id: Callable[[], UUID] = uuid4,
    ) -> list[CaseEvent]:
        """A grid worker of the case's grid checks on site."""
        self._to(CaseAction.ASSIGN_VERIFICATION)
        task = Task(new_id(), unit_code, TaskRole.VERIFY, self.attempt, at)
        task.assignee_staff_id = staff_id
        self.tasks.append(task)
        return [
            TaskAssigned(
                **self._base(actor, at),
                task_id=task.task_id,
                unit_code=unit_code,
                role=TaskRole.VERIFY,
                assignee_staff_id=staff_id,
            )
        ]

    def _verification_task(self) -> Task | None:
        for task in reversed(self.tasks):
            if task.role is TaskRole.VERIFY and task.is_open:
                return task
        return None

    def verify(
        self,
        actor: Actor,
        at: datetime,
        *,
        passed: bool,
        note: str | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> list[CaseEvent]:
        """Pass: verified (close follows). Fail: rework, back to the units; counted."""
        if not passed and not note:
            raise InvalidCommand("a failed verification must say what is still wrong")
        self._to(CaseAction.VERIFY_PASS if passed else CaseAction.VERIFY_FAIL)
        check = self._verification_task()
        if check is not None:
            check.state, check.completed_at, check.fixed = TaskState.COMPLETED, at, passed
            check.result = note
        base = self._base(actor, at)
        if passed:
            return [
                CaseVerified(
                    **base,
                    verification_task_id=check.task_id if check else None,
                    note=note,
                    attachments=attachments,
                )
            ]
        self.rework_count += 1
        return [
            CaseReworkRequested(
                **base,
                cause=ReworkCause.VERIFICATION_FAILED,
                reason=note,
                rework_count=self.rework_count,
            )
        ]

    def close(
        self, actor: Actor, at: datetime, outcome: CaseOutcome, reason: str | None = None
    ) -> list[CaseEvent]:
        """Close with how it ended. `fixed` only after a passed verification."""
        if outcome is not CaseOutcome.FIXED and not reason:
            raise InvalidCommand(f"closing as {outcome.value} needs a reason")
        holds = [] if outcome is CaseOutcome.FIXED else [Guard.OUTCOME_NOT_FIXED]
        self._to(CaseAction.CLOSE, holds)
        events = self._cancel_open_tasks(SYSTEM, at, f"案件已结案（{outcome.value}）")
        self.outcome, self.outcome_reason, self.closed_at = outcome, reason, at
        self.suspended_from = None
        for clock in self._clocks():
            clock.paused_at = None
        resolution = self.resolution
        on_time = None
        if resolution is not None:
            resolution.meet(at)
            on_time = resolution.met_at is not None and resolution.met_at < resolution.due_at
        events.append(
            CaseClosed(
                **self._base(actor, at),
                outcome=outcome,
                reason=reason,
                self_handled=False,
                on_time=on_time,
                resolution_due_at=resolution.due_at if resolution else None,
            )
        )
        return events

    def reopen(
        self, actor: Actor, at: datetime, reason: str, policy: CasePolicy
    ) -> list[CaseEvent]:
        """The reporter says it is not fixed, within the window: rework, counted."""
        holds = []
        if self.closed_at is not None and within_reopen_window(
            self.closed_at, at, policy.reopen_window
        ):
            holds.append(Guard.WITHIN_REOPEN_WINDOW)
        self._to(CaseAction.REOPEN, holds)
        self.reopen_count += 1
        self.rework_count += 1
        self.outcome = self.outcome_reason = self.closed_at = None
        self.rating, self.default_evaluation = None, False
        base = self._base(actor, at)
        return [
            CaseReopened(**base, reason=reason, reopen_count=self.reopen_count),
            CaseReworkRequested(
                **base,
                cause=ReworkCause.REOPENED_BY_REPORTER,
                reason=reason,
                rework_count=self.rework_count,
            ),
        ]

    def rework_route(self) -> Route:
        """The units of the last round, sent again on rework."""
        last = [t for t in self.tasks if t.counts and t.attempt == self.attempt]
        lead = next((t.unit_code for t in last if t.role is TaskRole.LEAD), None)
        if lead is None or self.tier is None:
            raise InvalidCommand(f"case {self.case_id} has no earlier units to send back to")
        assisting = tuple(t.unit_code for t in last if t.role is TaskRole.ASSIST)
        return Route(self.tier, lead, assisting, near_boundary=self.near_boundary)

    # --- 综合评价 evaluate --------------------------------------------------------------

    def evaluate(
        self,
        actor: Actor,
        at: datetime,
        reporter_id: str,
        rating: int,
        comment: str | None = None,
        *,
        is_default: bool = False,
        policy: CasePolicy | None = None,
    ) -> list[CaseEvent]:
        if isinstance(rating, bool) or rating not in SATISFACTION_BY_RATING:
            raise InvalidCommand(f"rating must be an integer from 1 to 5, got {rating!r}")
        if is_default:
            window = policy.evaluation_window if policy else timedelta(days=7)
            if self.closed_at is None or not default_evaluation_due(self.closed_at, at, window):
                raise InvalidCommand("a default evaluation is due only after the answer window")
        self._to(CaseAction.EVALUATE)
        self.rating, self.default_evaluation = rating, is_default
        return [
            CaseEvaluated(
                **self._base(actor, at),
                reporter_id=reporter_id,
                rating=rating,
                satisfaction=SATISFACTION_BY_RATING[rating],
                comment=comment,
                is_default=is_default,
            )
        ]

    def default_evaluation_due(self, now: datetime, policy: CasePolicy) -> bool:
        return (
            self.state is CaseState.CLOSED
            and self.closed_at is not None
            and default_evaluation_due(self.closed_at, now, policy.evaluation_window)
        )

    def apply_default_evaluation(
        self, at: datetime, reporter_id: str, policy: CasePolicy
    ) -> list[CaseEvent]:
        return self.evaluate(
            SYSTEM, at, reporter_id, policy.default_rating, is_default=True, policy=policy
        )

    # --- suspension ---------------------------------------------------------------------

    def suspend(
        self, actor: Actor, at: datetime, reason: str, until: datetime | None = None
    ) -> list[CaseEvent]:
        previous = self.state
        self._to(CaseAction.SUSPEND)
        self.suspended_from = previous
        for clock in self._clocks():
            clock.pause(at)
        return [CaseSuspended(**self._base(actor, at), reason=reason, until=until)]

    def resume(
        self, actor: Actor, at: datetime, reason: str, policy: CasePolicy
    ) -> list[CaseEvent]:
        """Deadlines get back the working time they had left when suspended."""
        self._to(CaseAction.RESUME)
        self.suspended_from = None
        for clock in self._clocks():
            clock.resume(at, policy.calendar)
        return [CaseResumed(**self._base(actor, at), reason=reason, resumed_state=self.state)]

    # --- deadlines, escalation, extensions ----------------------------------------------

    def traffic_lights(self, now: datetime) -> dict[DeadlineKind, TrafficLight]:
        return {c.kind: c.traffic_light(now) for c in self._clocks()}

    def traffic_light(self, now: datetime) -> TrafficLight | None:
        """The worst light of the case's deadlines; None before dispatch."""
        lights = self.traffic_lights(now).values()
        return max(lights, key=_LIGHT_ORDER.index) if lights else None

    def next_timer_at(self) -> datetime | None:
        times = [t for c in self._clocks() if (t := c.next_timer_at()) is not None]
        return min(times) if times else None

    def check_deadlines(self, now: datetime, policy: CasePolicy) -> list[CaseEvent]:
        """Warnings and breaches due at `now`, each once; a breach escalates one tier."""
        if self.state in (CaseState.SUSPENDED, CaseState.CLOSED, CaseState.EVALUATED):
            return []
        events: list[CaseEvent] = []
        breached = False
        lead = self._lead_task()
        unit = lead.unit_code if lead else self.lead_unit
        if unit is None:
            return []
        for clock in self._clocks():
            check = clock.check(now)
            if check.breach_due:
                clock.breach_emitted = clock.warning_emitted = True
                breached = True
                events.append(
                    DeadlineBreached(
                        **self._base(SYSTEM, now),
                        kind=clock.kind,
                        due_at=clock.due_at,
                        unit_code=unit,
                        task_id=lead.task_id if lead else None,
                    )
                )
            elif check.warning_due:
                clock.warning_emitted = True
                ratio = min(1.0, max(0.0, clock.fraction(now, policy.calendar)))
                events.append(
                    DeadlineWarning(
                        **self._base(SYSTEM, now),
                        kind=clock.kind,
                        due_at=clock.due_at,
                        elapsed_ratio=ratio,
                        unit_code=unit,
                        task_id=lead.task_id if lead else None,
                    )
                )
        if breached and (self.state, CaseAction.ESCALATE) in CASE_TRANSITIONS:
            events += self.escalate(
                SYSTEM, now, EscalationTrigger.DEADLINE_BREACHED, "处置时限已到期未办结，升级督办"
            )
        return events

    def escalate(
        self, actor: Actor, at: datetime, trigger: EscalationTrigger, reason: str
    ) -> list[CaseEvent]:
        """One tier up and supervised (督办); at the department tier it stays there."""
        self._to(CaseAction.ESCALATE)
        from_tier = self.tier or Tier.GRID
        self.tier, self.supervised = NEXT_TIER[from_tier], True
        return [
            CaseEscalated(
                **self._base(actor, at),
                trigger=trigger,
                from_tier=from_tier,
                to_tier=self.tier,
                supervised=True,
                reason=reason,
            )
        ]

    def _clock(self, kind: DeadlineKind) -> DeadlineClock:
        clock = self.response if kind is DeadlineKind.RESPONSE else self.resolution
        if clock is None or clock.met_at is not None:
            raise InvalidCommand(f"case {self.case_id} has no running {kind.value} deadline")
        return clock

    def request_extension(
        self,
        actor: Actor,
        at: datetime,
        request_id: UUID,
        requested_due_at: datetime,
        reason: str,
        *,
        kind: DeadlineKind = DeadlineKind.RESOLUTION,
        task_id: UUID | None = None,
    ) -> list[CaseEvent]:
        self._to(CaseAction.REQUEST_EXTENSION, dry_run=True)
        clock = self._clock(kind)
        if self.pending_extension is not None:
            raise InvalidCommand(
                f"case {self.case_id} already has extension request "
                f"{self.pending_extension.request_id} waiting for a decision"
            )
        if requested_due_at <= clock.due_at:
            raise InvalidCommand(
                f"requested due time {requested_due_at.isoformat()} is not later than the "
                f"current {clock.due_at.isoformat()}"
            )
        if task_id is not None:
            task = self.task(task_id)
            if actor.kind is ActorKind.UNIT and actor.id != task.unit_code:
                raise InvalidCommand(f"unit {actor.id!r} does not hold task {task_id}")
        self._to(CaseAction.REQUEST_EXTENSION)
        self.pending_extension = ExtensionRequest(request_id, kind, requested_due_at, task_id, at)
        return [
            DeadlineExtensionRequested(
                **self._base(actor, at),
                request_id=request_id,
                task_id=task_id,
                kind=kind,
                requested_due_at=requested_due_at,
                reason=reason,
            )
        ]

    def decide_extension(
        self,
        actor: Actor,
        at: datetime,
        request_id: UUID,
        *,
        approve: bool,
        reason: str,
        policy: CasePolicy,
        new_due_at: datetime | None = None,
    ) -> list[CaseEvent]:
        """An operator approves (optionally with another due time) or refuses a request."""
        self._to(CaseAction.DECIDE_EXTENSION, dry_run=True)
        request = self.pending_extension
        if request is None or request.request_id != request_id:
            raise InvalidCommand(f"case {self.case_id} has no pending extension {request_id}")
        if not approve:
            self._to(CaseAction.DECIDE_EXTENSION)
            self.pending_extension = None
            return [
                DeadlineExtensionRefused(
                    **self._base(actor, at),
                    request_id=request_id,
                    reason=reason,
                )
            ]
        clock = self._clock(request.kind)
        target = new_due_at or request.requested_due_at
        if target <= clock.due_at:
            raise InvalidCommand("the approved due time must be later than the current one")
        self._to(CaseAction.DECIDE_EXTENSION)
        old = clock.due_at
        clock.extend_to(target, at, policy.calendar)
        self.pending_extension = None
        return [
            DeadlineExtended(
                **self._base(actor, at),
                request_id=request_id,
                task_id=request.task_id,
                kind=request.kind,
                old_due_at=old,
                new_due_at=target,
                reason=reason,
            )
        ]


def route_without(route: Route, excluded: Sequence[str]) -> Route | None:
    """The route with units that refused left out; an assisting unit takes the lead when
    the lead refused. None when nobody is left: an operator must decide."""
    units = [u for u in route.units if u not in excluded]
    if not units:
        return None
    return Route(
        tier=route.tier,
        lead_unit=units[0],
        assisting_units=tuple(units[1:]),
        route_code=route.route_code,
        near_boundary=route.near_boundary,
    )


__all__ = [
    "SYSTEM",
    "Case",
    "CasePolicy",
    "CategoryLimits",
    "ExtensionRequest",
    "IllegalTransition",
    "Route",
    "Task",
    "route_without",
]
