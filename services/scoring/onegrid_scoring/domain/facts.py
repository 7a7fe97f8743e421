"""What scoring knows about one case: its events folded, in order, into plain facts.

The fold is pure and deterministic: the same events in the same order give the same
facts, which is what makes `onegrid scores rebuild` give the same numbers as the live
service. Events arrive in per-case order (keyed by case id); ties in time keep the order
in which they were recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from onegrid_contracts.cases import (
    CaseClosed,
    CaseDispatched,
    CaseEscalated,
    CaseEvaluated,
    CaseEvent,
    CaseHandled,
    CaseOutcome,
    CaseRecategorised,
    CaseRegistered,
    CaseRejected,
    CaseRelocated,
    CaseReopened,
    CaseReported,
    CaseReworkRequested,
    CaseVerified,
    DeadlineExtended,
    DeadlineKind,
    ReworkCause,
    Satisfaction,
    TaskAccepted,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskRefused,
    TaskRole,
    Tier,
)
from onegrid_contracts.primitives import ActorKind


@dataclass
class TaskFact:
    task_id: UUID
    unit_code: str
    role: TaskRole
    assigned_at: datetime
    response_due_at: datetime | None = None
    accepted_at: datetime | None = None
    refused_at: datetime | None = None
    cancelled_at: datetime | None = None
    completed_at: datetime | None = None
    # A lead task whose case was then sent to another lead unit, not by rework or
    # escalation: the dispatch was wrong (错误派遣).
    rerouted: bool = False

    @property
    def responded_at(self) -> datetime | None:
        answers = [t for t in (self.accepted_at, self.refused_at) if t is not None]
        return min(answers) if answers else None


@dataclass(frozen=True)
class Dispatch:
    at: datetime
    lead_unit: str
    tier: Tier
    # Sent back to units after rework or up a tier after escalation: not a correction.
    planned: bool


@dataclass(frozen=True)
class Escalation:
    at: datetime
    supervised: bool
    lead_unit: str | None  # the lead unit when it was escalated


@dataclass(frozen=True)
class Closure:
    at: datetime
    outcome: CaseOutcome
    self_handled: bool
    on_time: bool | None
    due_at: datetime | None
    tier: Tier | None  # the tier that held the case when it closed


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    rating: int
    satisfaction: Satisfaction
    is_default: bool

    @property
    def satisfied(self) -> bool:
        return self.satisfaction in (Satisfaction.SATISFIED, Satisfaction.VERY_SATISFIED)


@dataclass
class Verification:
    task_id: UUID
    staff_code: str
    assigned_at: datetime
    due_at: datetime | None = None  # from the task's deadlines, when dispatch set one
    done_at: datetime | None = None
    passed: bool | None = None


@dataclass
class CaseFacts:
    case_id: UUID
    reported_at: datetime | None = None
    reporter_staff: str | None = None  # the grid worker who filed it, if one did
    category_code: str | None = None
    grid_code: str | None = None
    location: tuple[float, float] | None = None  # (lon, lat)
    registered_at: datetime | None = None
    rejected_at: datetime | None = None
    dispatches: list[Dispatch] = field(default_factory=list)
    tasks: dict[UUID, TaskFact] = field(default_factory=dict)
    escalations: list[Escalation] = field(default_factory=list)
    handled: list[datetime] = field(default_factory=list)
    reworks: list[tuple[datetime, ReworkCause]] = field(default_factory=list)
    reopens: list[datetime] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)
    resolution_due_at: datetime | None = None
    deferred: bool = False  # an approved extension of the resolution deadline (延期)
    evaluations: list[Evaluation] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    tier: Tier | None = None
    _replan: bool = False  # a rework or escalation happened since the last dispatch

    # -- derived ---------------------------------------------------------------------

    @property
    def closure(self) -> Closure | None:
        """The closure in force: the last one, unless the case was reopened after it."""
        if not self.closures:
            return None
        last = self.closures[-1]
        if self.reopens and self.reopens[-1] >= last.at:
            return None
        return last

    def lead_at(self, at: datetime) -> str | None:
        """The lead unit holding the case at `at` (the last dispatch at or before it)."""
        lead = None
        for dispatch in self.dispatches:
            if dispatch.at <= at:
                lead = dispatch.lead_unit
        return lead

    def first_lead_dispatch(self, unit: str) -> datetime | None:
        return next((d.at for d in self.dispatches if d.lead_unit == unit), None)

    @property
    def current_lead(self) -> str | None:
        return self.dispatches[-1].lead_unit if self.dispatches else None

    # -- the fold ----------------------------------------------------------------------

    def apply(self, event: CaseEvent) -> None:
        match event:
            case CaseReported():
                if event.duplicate_of is not None:
                    return  # another reporter joining an open case; not a new case
                self.reported_at = event.at
                if event.actor.kind is ActorKind.GRID_WORKER:
                    self.reporter_staff = event.actor.id
                self.category_code = event.category_code or self.category_code
                self.grid_code = event.grid_code
                if event.location is not None:
                    self.location = (event.location.lon, event.location.lat)
            case CaseRegistered():
                self.registered_at = self.registered_at or event.at
                self.category_code = event.category_code
                self.grid_code = event.grid_code or self.grid_code
            case CaseRejected():
                self.rejected_at = event.at
            case CaseRecategorised():
                self.category_code = event.new_category_code
            case CaseRelocated():
                self.grid_code = event.new_grid_code
                if event.location is not None:
                    self.location = (event.location.lon, event.location.lat)
            case CaseDispatched():
                self._dispatched(event)
            case TaskAssigned():
                self._assigned(event)
            case TaskAccepted():
                if (task := self.tasks.get(event.task_id)) is not None:
                    task.accepted_at = task.accepted_at or event.at
            case TaskRefused():
                if (task := self.tasks.get(event.task_id)) is not None:
                    task.refused_at = task.refused_at or event.at
            case TaskCancelled():
                if (task := self.tasks.get(event.task_id)) is not None:
                    task.cancelled_at = task.cancelled_at or event.at
            case TaskCompleted():
                if (task := self.tasks.get(event.task_id)) is not None:
                    task.completed_at = event.at
            case CaseHandled():
                self.handled.append(event.at)
            case CaseVerified():
                self._verification_done(event.verification_task_id, event.at, passed=True)
            case CaseReworkRequested():
                self.reworks.append((event.at, event.cause))
                self._replan = True
                if (
                    event.cause is ReworkCause.VERIFICATION_FAILED
                    and event.actor.kind is ActorKind.GRID_WORKER
                ):
                    self._verification_done(None, event.at, passed=False)
            case CaseReopened():
                self.reopens.append(event.at)
            case CaseClosed():
                self.closures.append(
                    Closure(
                        at=event.at,
                        outcome=event.outcome,
                        self_handled=event.self_handled,
                        on_time=event.on_time,
                        due_at=event.resolution_due_at,
                        tier=Tier.GRID if event.self_handled else self.tier,
                    )
                )
            case CaseEvaluated():
                self.evaluations.append(
                    Evaluation(event.at, event.rating, event.satisfaction, event.is_default)
                )
            case DeadlineExtended():
                if event.kind is DeadlineKind.RESOLUTION:
                    self.deferred = True
                    self.resolution_due_at = event.new_due_at
            case CaseEscalated():
                self.escalations.append(Escalation(event.at, event.supervised, self.current_lead))
                self.tier = event.to_tier
                self._replan = True
            case _:
                pass

    def _dispatched(self, event: CaseDispatched) -> None:
        previous = self.dispatches[-1] if self.dispatches else None
        if previous is not None and not self._replan and previous.lead_unit != event.lead_unit_code:
            for task in self.tasks.values():
                if task.role is TaskRole.LEAD and task.unit_code == previous.lead_unit:
                    task.rerouted = task.rerouted or task.assigned_at >= previous.at
        self.dispatches.append(
            Dispatch(event.at, event.lead_unit_code, event.tier, planned=self._replan)
        )
        self._replan = False
        self.tier = event.tier
        for deadline in event.deadlines:
            if deadline.kind is DeadlineKind.RESOLUTION:
                self.resolution_due_at = deadline.due_at

    def _assigned(self, event: TaskAssigned) -> None:
        if event.role is TaskRole.VERIFY:
            if event.assignee_staff_id is not None:
                due = next(
                    (d.due_at for d in event.deadlines if d.kind is DeadlineKind.RESOLUTION), None
                )
                self.verifications.append(
                    Verification(event.task_id, event.assignee_staff_id, event.at, due_at=due)
                )
            return
        response = next(
            (d.due_at for d in event.deadlines if d.kind is DeadlineKind.RESPONSE), None
        )
        self.tasks[event.task_id] = TaskFact(
            event.task_id, event.unit_code, event.role, event.at, response_due_at=response
        )

    def _verification_done(self, task_id: UUID | None, at: datetime, *, passed: bool) -> None:
        for check in reversed(self.verifications):
            if (task_id is None and check.done_at is None) or check.task_id == task_id:
                if check.done_at is None:
                    check.done_at, check.passed = at, passed
                return


def fold(case_id: UUID, events: Iterable[CaseEvent]) -> CaseFacts:
    """The facts of one case from its events, in the order they were recorded."""
    facts = CaseFacts(case_id)
    for event in events:
        facts.apply(event)
    return facts


# -- stored facts ------------------------------------------------------------------------

# Scoring keeps each case's facts folded as its events arrive, so computing a period reads
# one row per case. Bump this whenever the fold or the facts change: rows stored under
# another version are folded again from the case's events.
FACTS_VERSION = 1

Json = dict[str, Any]  # JSON of the shape facts_to_json writes


def _t(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _at(text: object) -> datetime | None:
    return None if text is None else datetime.fromisoformat(str(text))


def _required_at(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


def facts_to_json(facts: CaseFacts) -> Json:
    """The facts as plain JSON (datetimes in ISO 8601, enums by value)."""
    return {
        "case_id": str(facts.case_id),
        "reported_at": _t(facts.reported_at),
        "reporter_staff": facts.reporter_staff,
        "category_code": facts.category_code,
        "grid_code": facts.grid_code,
        "location": None if facts.location is None else list(facts.location),
        "registered_at": _t(facts.registered_at),
        "rejected_at": _t(facts.rejected_at),
        "dispatches": [[_t(d.at), d.lead_unit, d.tier.value, d.planned] for d in facts.dispatches],
        "tasks": [
            [
                str(t.task_id),
                t.unit_code,
                t.role.value,
                _t(t.assigned_at),
                _t(t.response_due_at),
                _t(t.accepted_at),
                _t(t.refused_at),
                _t(t.cancelled_at),
                _t(t.completed_at),
                t.rerouted,
            ]
            for t in facts.tasks.values()
        ],
        "escalations": [[_t(e.at), e.supervised, e.lead_unit] for e in facts.escalations],
        "handled": [_t(at) for at in facts.handled],
        "reworks": [[_t(at), cause.value] for at, cause in facts.reworks],
        "reopens": [_t(at) for at in facts.reopens],
        "closures": [
            [
                _t(c.at),
                c.outcome.value,
                c.self_handled,
                c.on_time,
                _t(c.due_at),
                None if c.tier is None else c.tier.value,
            ]
            for c in facts.closures
        ],
        "resolution_due_at": _t(facts.resolution_due_at),
        "deferred": facts.deferred,
        "evaluations": [
            [_t(e.at), e.rating, e.satisfaction.value, e.is_default] for e in facts.evaluations
        ],
        "verifications": [
            [str(v.task_id), v.staff_code, _t(v.assigned_at), _t(v.due_at), _t(v.done_at), v.passed]
            for v in facts.verifications
        ],
        "tier": None if facts.tier is None else facts.tier.value,
        "replan": facts._replan,
    }


def facts_from_json(data: Json) -> CaseFacts:
    """The facts `facts_to_json` wrote (a KeyError or ValueError if it did not)."""
    tasks = [
        TaskFact(
            UUID(t[0]),
            t[1],
            TaskRole(t[2]),
            _required_at(t[3]),
            response_due_at=_at(t[4]),
            accepted_at=_at(t[5]),
            refused_at=_at(t[6]),
            cancelled_at=_at(t[7]),
            completed_at=_at(t[8]),
            rerouted=t[9],
        )
        for t in data["tasks"]
    ]
    location = data["location"]
    return CaseFacts(
        case_id=UUID(data["case_id"]),
        reported_at=_at(data["reported_at"]),
        reporter_staff=data["reporter_staff"],
        category_code=data["category_code"],
        grid_code=data["grid_code"],
        location=None if location is None else (location[0], location[1]),
        registered_at=_at(data["registered_at"]),
        rejected_at=_at(data["rejected_at"]),
        dispatches=[
            Dispatch(_required_at(d[0]), d[1], Tier(d[2]), d[3]) for d in data["dispatches"]
        ],
        tasks={t.task_id: t for t in tasks},
        escalations=[Escalation(_required_at(e[0]), e[1], e[2]) for e in data["escalations"]],
        handled=[_required_at(at) for at in data["handled"]],
        reworks=[(_required_at(r[0]), ReworkCause(r[1])) for r in data["reworks"]],
        reopens=[_required_at(at) for at in data["reopens"]],
        closures=[
            Closure(
                _required_at(c[0]),
                CaseOutcome(c[1]),
                c[2],
                c[3],
                _at(c[4]),
                None if c[5] is None else Tier(c[5]),
            )
            for c in data["closures"]
        ],
        resolution_due_at=_at(data["resolution_due_at"]),
        deferred=data["deferred"],
        evaluations=[
            Evaluation(_required_at(e[0]), e[1], Satisfaction(e[2]), e[3])
            for e in data["evaluations"]
        ],
        verifications=[
            Verification(UUID(v[0]), v[1], _required_at(v[2]), _at(v[3]), _at(v[4]), v[5])
            for v in data["verifications"]
        ],
        tier=None if data["tier"] is None else Tier(data["tier"]),
        _replan=data["replan"],
    )
