"""Scripted cases for scoring's tests: a small builder of the case events dispatch emits,
and the scripted November 2026 whose scores are computed by hand in the tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid5

from onegrid_contracts.cases import (
    CaseClosed,
    CaseDispatched,
    CaseEscalated,
    CaseEvaluated,
    CaseEvent,
    CaseHandled,
    CaseOutcome,
    CaseRegistered,
    CaseRejected,
    CaseReopened,
    CaseReported,
    CaseReworkRequested,
    CaseVerified,
    Channel,
    Deadline,
    DeadlineBreached,
    DeadlineExtended,
    DeadlineKind,
    EscalationTrigger,
    RefusalReason,
    RejectReason,
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
from onegrid_contracts.primitives import Actor, ActorKind, Location, ReporterRef

CST = timezone(timedelta(hours=8))
NS = UUID("5c0e1a2b-0000-4000-8000-000000000000")
SYSTEM = Actor(kind=ActorKind.SYSTEM, id="dispatch")
OPERATOR = Actor(kind=ActorKind.OPERATOR, id="S0000007")
SATISFACTION = {
    5: Satisfaction.VERY_SATISFIED,
    4: Satisfaction.SATISFIED,
    3: Satisfaction.NEUTRAL,
    2: Satisfaction.DISSATISFIED,
    1: Satisfaction.VERY_DISSATISFIED,
}


def nov(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in November 2026, Beijing time (days past 30 run into December)."""
    return datetime(2026, 11, 1, hour, minute, tzinfo=CST) + timedelta(days=day - 1)


class ScriptedCase:
    """Events of one case, in the order dispatch would emit them."""

    def __init__(
        self,
        name: str,
        *,
        grid: str,
        category: str,
        location: tuple[float, float],
        worker: str | None = None,
        response: timedelta = timedelta(hours=2),
        resolution: timedelta = timedelta(hours=24),
    ) -> None:
        self.name = name
        self.case_id = uuid5(NS, name)
        self.case_no = f"4205-20261101-{sum(map(ord, name)):06d}"
        self.grid, self.category, self.location, self.worker = grid, category, location, worker
        self.response, self.resolution = response, resolution
        self.events: list[CaseEvent] = []
        self.tasks: dict[str, UUID] = {}
        self.lead: str | None = None
        self.tier: Tier | None = None
        self.due: datetime | None = None
        self.attempt = 0
        self.reworks = self.reopens = 0
        self.verify_task: UUID | None = None

    def _base(self, actor: Actor, at: datetime) -> dict[str, object]:
        return {"case_id": self.case_id, "case_no": self.case_no, "actor": actor, "at": at}

    def _add(self, event: CaseEvent) -> ScriptedCase:
        self.events.append(event)
        return self

    def _unit(self, unit: str) -> Actor:
        return Actor(kind=ActorKind.UNIT, id=unit)

    def _worker(self, staff: str) -> Actor:
        return Actor(kind=ActorKind.GRID_WORKER, id=staff)

    def reported(self, at: datetime, *, on_site: bool = False) -> ScriptedCase:
        actor = (
            self._worker(self.worker)
            if self.worker
            else Actor(kind=ActorKind.REPORTER, id=f"rp-{self.name}")
        )
        return self._add(
            CaseReported(
                **self._base(actor, at),
                report_id=uuid5(NS, f"report-{self.name}"),
                channel=Channel.GRID_WORKER_APP if self.worker else Channel.HOTLINE_12345,
                category_code=self.category,
                location=Location(lon=self.location[0], lat=self.location[1]),
                grid_code=self.grid,
                grid_path=(self.grid[:6], self.grid[:9], self.grid[:12], self.grid),
                description=f"scripted case {self.name}",
                occurred_at=at,
                reporter=ReporterRef(reporter_id=f"rp-{self.name}", anonymous=True),
                resolved_on_site=on_site,
            )
        )

    def registered(self, at: datetime) -> ScriptedCase:
        return self._add(
            CaseRegistered(
                **self._base(SYSTEM, at),
                category_code=self.category,
                grid_code=self.grid,
                automatic=True,
            )
        )

    def rejected(self, at: datetime) -> ScriptedCase:
        return self._add(
            CaseRejected(
                **self._base(OPERATOR, at), reject_reason=RejectReason.INVALID, reason="无效上报"
            )
        )

    def dispatched(self, at: datetime, unit: str, tier: Tier, *, new_round: bool) -> ScriptedCase:
        self.attempt += 1
        if new_round:
            self.due = at + self.resolution
        assert self.due is not None
        deadlines = (
            Deadline(kind=DeadlineKind.RESPONSE, due_at=at + self.response, limit_minutes=120),
            Deadline(kind=DeadlineKind.RESOLUTION, due_at=self.due, limit_minutes=1440),
        )
        self.lead, self.tier = unit, tier
        task = uuid5(NS, f"{self.name}-task-{self.attempt}")
        self.tasks[unit] = task
        self._add(
            CaseDispatched(
                **self._base(SYSTEM, at),
                tier=tier,
                lead_unit_code=unit,
                deadlines=deadlines,
                attempt=self.attempt,
            )
        )
        return self._add(
            TaskAssigned(
                **self._base(SYSTEM, at),
                task_id=task,
                unit_code=unit,
                role=TaskRole.LEAD,
                deadlines=deadlines,
            )
        )

    def _task(self, unit: str) -> dict[str, object]:
        return {"task_id": self.tasks[unit], "unit_code": unit}

    def accepted(self, at: datetime, unit: str) -> ScriptedCase:
        return self._add(TaskAccepted(**self._base(self._unit(unit), at), **self._task(unit)))

    def refused(self, at: datetime, unit: str) -> ScriptedCase:
        return self._add(
            TaskRefused(
                **self._base(self._unit(unit), at),
                **self._task(unit),
                refusal_reason=RefusalReason.NOT_OUR_MATTER,
                reason="不属于本单位职责",
            )
        )

    def cancelled(self, at: datetime, unit: str) -> ScriptedCase:
        return self._add(
            TaskCancelled(**self._base(SYSTEM, at), **self._task(unit), reason="案件升级改派")
        )

    def handled(self, at: datetime) -> ScriptedCase:
        assert self.lead is not None
        task = self.tasks[self.lead]
        self._add(
            TaskCompleted(
                **self._base(self._unit(self.lead), at),
                **self._task(self.lead),
                result="已处置完毕",
            )
        )
        return self._add(CaseHandled(**self._base(SYSTEM, at), task_ids=(task,)))

    def verify_assigned(self, at: datetime, staff: str) -> ScriptedCase:
        self.verify_task = uuid5(NS, f"{self.name}-verify-{len(self.events)}")
        return self._add(
            TaskAssigned(
                **self._base(SYSTEM, at),
                task_id=self.verify_task,
                unit_code="community-420502003001",
                role=TaskRole.VERIFY,
                assignee_staff_id=staff,
            )
        )

    def verified(self, at: datetime, staff: str) -> ScriptedCase:
        return self._add(
            CaseVerified(
                **self._base(self._worker(staff), at), verification_task_id=self.verify_task
            )
        )

    def verification_failed(self, at: datetime, staff: str) -> ScriptedCase:
        self.reworks += 1
        return self._add(
            CaseReworkRequested(
                **self._base(self._worker(staff), at),
                cause=ReworkCause.VERIFICATION_FAILED,
                reason="现场仍未清理干净",
                rework_count=self.reworks,
            )
        )

    def closed(self, at: datetime, *, self_handled: bool = False) -> ScriptedCase:
        on_time = None if self.due is None else at < self.due
        if self_handled:
            on_time = True
        return self._add(
            CaseClosed(
                **self._base(SYSTEM, at),
                outcome=CaseOutcome.FIXED,
                self_handled=self_handled,
                on_time=on_time,
                resolution_due_at=None if self_handled else self.due,
            )
        )

    def evaluated(self, at: datetime, rating: int, *, default: bool = False) -> ScriptedCase:
        actor = SYSTEM if default else Actor(kind=ActorKind.REPORTER, id=f"rp-{self.name}")
        return self._add(
            CaseEvaluated(
                **self._base(actor, at),
                reporter_id=f"rp-{self.name}",
                rating=rating,
                satisfaction=SATISFACTION[rating],
                is_default=default,
            )
        )

    def extended(self, at: datetime, new_due: datetime) -> ScriptedCase:
        assert self.due is not None
        old, self.due = self.due, new_due
        return self._add(
            DeadlineExtended(
                **self._base(OPERATOR, at),
                kind=DeadlineKind.RESOLUTION,
                old_due_at=old,
                new_due_at=new_due,
                reason="需协调产权单位，同意延期",
            )
        )

    def breached_and_escalated(self, at: datetime, to_unit: str, to_tier: Tier) -> ScriptedCase:
        assert self.lead is not None
        assert self.due is not None
        assert self.tier is not None
        old_lead, old_tier = self.lead, self.tier
        self._add(
            DeadlineBreached(
                **self._base(SYSTEM, self.due),
                kind=DeadlineKind.RESOLUTION,
                due_at=self.due,
                unit_code=old_lead,
            )
        )
        self._add(
            CaseEscalated(
                **self._base(SYSTEM, at),
                trigger=EscalationTrigger.DEADLINE_BREACHED,
                from_tier=old_tier,
                to_tier=to_tier,
                supervised=True,
                reason="处置时限已到期未办结，升级督办",
            )
        )
        self.cancelled(at, old_lead)
        return self.dispatched(at, to_unit, to_tier, new_round=False)

    def reopened(self, at: datetime) -> ScriptedCase:
        self.reopens += 1
        self.reworks += 1
        reporter = Actor(kind=ActorKind.REPORTER, id=f"rp-{self.name}")
        self._add(
            CaseReopened(**self._base(reporter, at), reason="问题复发", reopen_count=self.reopens)
        )
        return self._add(
            CaseReworkRequested(
                **self._base(reporter, at),
                cause=ReworkCause.REOPENED_BY_REPORTER,
                reason="问题复发",
                rework_count=self.reworks,
            )
        )


# The scripted month: two grids of one community, two grid workers, five units.
G1, G2 = "420502003001001", "420502003001002"
S1, S2 = "S0000123", "S0000456"
URBAN, POLICE, CIVIL = "urban", "police", "civil"
COMMUNITY, STREET = "community-420502003001", "street-420502003"
GARBAGE = "environment.exposed_garbage"
L1, L1_NEAR = (111.2900, 30.7000), (111.2902, 30.7000)  # about 19 m apart
L2, L2_NEAR = (111.3000, 30.7100), (111.3000, 30.7101)  # about 11 m apart
HOUSEHOLDS = {G1: 300, G2: 250}
DEPT = Tier.DEPARTMENT
NOW = nov(30, 12)  # the scripted month is judged on 30 November at noon


def scripted_month() -> list[ScriptedCase]:
    a = ScriptedCase("A", grid=G1, category=GARBAGE, location=L1, worker=S1)
    a.reported(nov(2, 9)).registered(nov(2, 9, 1)).dispatched(
        nov(2, 9, 2), URBAN, DEPT, new_round=True
    )
    a.accepted(nov(2, 9, 30), URBAN).handled(nov(2, 15)).verify_assigned(nov(2, 15, 5), S1)
    a.verified(nov(2, 16), S1).closed(nov(2, 16, 1)).evaluated(nov(3, 10), 5)

    b = ScriptedCase("B", grid=G1, category=GARBAGE, location=L1_NEAR, worker=S1)
    b.reported(nov(5, 9)).registered(nov(5, 9, 1)).dispatched(
        nov(5, 9, 2), URBAN, DEPT, new_round=True
    )
    b.accepted(nov(5, 12), URBAN).handled(nov(6, 15)).verify_assigned(nov(6, 15, 5), S1)
    b.verification_failed(nov(6, 16), S1).dispatched(nov(6, 16, 1), URBAN, DEPT, new_round=True)
    b.accepted(nov(6, 16, 30), URBAN).handled(nov(7, 10)).verify_assigned(nov(7, 10, 5), S1)
    b.verified(nov(8, 11), S1).closed(nov(8, 11, 1)).evaluated(nov(9, 10), 2)

    c = ScriptedCase("C", grid=G2, category="street_order.occupied_road_business", location=L2)
    c.reported(nov(10, 9)).registered(nov(10, 9, 1))
    c.dispatched(nov(10, 9, 2), POLICE, DEPT, new_round=True).refused(nov(10, 9, 20), POLICE)
    c.dispatched(nov(10, 9, 25), URBAN, DEPT, new_round=False).accepted(nov(10, 9, 40), URBAN)
    c.handled(nov(10, 14)).verify_assigned(nov(10, 14, 5), S2).verified(nov(10, 15), S2)
    c.closed(nov(10, 15, 1))  # never evaluated

    d = ScriptedCase("D", grid=G2, category=GARBAGE, location=L2)
    d.reported(nov(12, 9)).registered(nov(12, 9, 1)).dispatched(
        nov(12, 9, 2), URBAN, DEPT, new_round=True
    )
    d.accepted(nov(12, 10), URBAN).extended(nov(12, 16), nov(16, 9, 2)).handled(nov(15, 10))
    d.verify_assigned(nov(15, 10, 5), S2).verified(nov(15, 11), S2).closed(nov(15, 11, 1))
    d.evaluated(nov(22, 11, 1), 4, default=True)

    e = ScriptedCase("E", grid=G2, category="facilities.manhole_cover", location=(111.31, 30.72))
    e.reported(nov(16, 9)).registered(nov(16, 9, 1))
    e.dispatched(nov(16, 9, 2), COMMUNITY, Tier.COMMUNITY, new_round=True)  # never answers
    e.breached_and_escalated(nov(17, 9, 3), STREET, Tier.STREET).accepted(nov(17, 10), STREET)
    e.handled(nov(18, 10)).verify_assigned(nov(18, 10, 5), S2).verified(nov(18, 11), S2)
    e.closed(nov(18, 11, 1)).evaluated(nov(19, 10), 3)

    f = ScriptedCase("F", grid=G1, category=GARBAGE, location=L1, worker=S1)
    f.reported(nov(20, 9), on_site=True).registered(nov(20, 9, 5))
    f.closed(nov(20, 9, 5), self_handled=True)

    g = ScriptedCase("G", grid=G2, category=GARBAGE, location=L2, worker=S2)
    g.reported(nov(21, 9)).rejected(nov(21, 9, 30))

    h = ScriptedCase(
        "H",
        grid=G2,
        category="livelihood.elderly_allowance",
        location=(111.305, 30.715),
        worker=S2,
        resolution=timedelta(days=15),
    )
    h.reported(nov(23, 9)).registered(nov(23, 9, 1))
    h.dispatched(nov(23, 9, 2), CIVIL, DEPT, new_round=True).accepted(nov(23, 10), CIVIL)

    i = ScriptedCase("I", grid=G2, category=GARBAGE, location=L2_NEAR)
    i.reported(nov(24, 9)).registered(nov(24, 9, 1)).dispatched(
        nov(24, 9, 2), URBAN, DEPT, new_round=True
    )
    i.accepted(nov(24, 9, 30), URBAN).handled(nov(24, 15)).verify_assigned(nov(24, 15, 5), S2)
    i.verified(nov(24, 16), S2).closed(nov(24, 16, 1)).evaluated(nov(25, 10), 5)
    i.reopened(nov(26, 10)).dispatched(nov(26, 10, 1), URBAN, DEPT, new_round=True)
    i.accepted(nov(26, 10, 30), URBAN).handled(nov(27, 8, 30)).verify_assigned(nov(27, 8, 35), S2)
    i.verified(nov(27, 9), S2).closed(nov(27, 9, 1)).evaluated(nov(28, 10), 4)
    return [a, b, c, d, e, f, g, h, i]


# Patrol check-ins: (staff, grid, time).
CHECKINS: list[tuple[str, str, datetime]] = [
    (S1, G1, nov(2, 8)),
    (S1, G1, nov(2, 8, 30)),  # 30 minutes after the first: the same patrol
    (S1, G1, nov(2, 14)),
    (S1, G1, nov(3, 9)),
    (S2, G2, nov(2, 9)),
    (S2, G2, nov(2, 15)),
]
