"""Deadlines: traffic light, warnings and breaches that fire once, escalation, extensions."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest

from onegrid_common.working_time import (
    CHINA_TZ,
    WorkingCalendar,
    WorkingTimeUnit,
    seed_years_from_chinese_calendar,
)
from onegrid_contracts.cases import (
    CalendarBasis,
    CaseDispatched,
    CaseEscalated,
    CaseEvent,
    DeadlineBreached,
    DeadlineExtended,
    DeadlineKind,
    DeadlineWarning,
    EscalationTrigger,
    Tier,
)
from onegrid_contracts.primitives import Actor, ActorKind
from onegrid_dispatch.domain.case import Case, CasePolicy, CategoryLimits, Route
from onegrid_dispatch.domain.deadlines import (
    DeadlineClock,
    TimeLimit,
    TrafficLight,
    default_evaluation_due,
)
from onegrid_dispatch.domain.errors import InvalidCommand

CAL = WorkingCalendar(seed_years_from_chinese_calendar([2026]))
POLICY = CasePolicy(calendar=CAL)
HOURS, DAYS = WorkingTimeUnit.WORKING_HOURS, WorkingTimeUnit.WORKING_DAYS
LIMITS = CategoryLimits(response=TimeLimit(2, HOURS), resolution=TimeLimit(1, DAYS))
OPERATOR = Actor(kind=ActorKind.OPERATOR, id="S0000007")
URBAN = Actor(kind=ActorKind.UNIT, id="urban")


def at(d: int, h: int, mi: int = 0, s: int = 0, *, month: int = 11) -> datetime:
    return datetime(2026, month, d, h, mi, s, tzinfo=CHINA_TZ)


DISPATCHED_AT = at(23, 9, 32)  # Monday: response due 11:32, its warning at 11:08


def dispatched(tier: Tier = Tier.STREET, when: datetime = DISPATCHED_AT) -> Case:
    case = Case(uuid4(), "4205-20261123-000042", when, "environment.exposed_garbage", "420502")
    case.register(OPERATOR, when, LIMITS, automatic=True)
    case.dispatch(OPERATOR, when, Route(tier, "urban"), POLICY)
    return case


def lead_task(case: Case) -> UUID:
    return case.tasks[-1].task_id


def types(events: list[CaseEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


# --- the clock -----------------------------------------------------------------------------


def response_clock() -> DeadlineClock:
    return DeadlineClock.start(DeadlineKind.RESPONSE, TimeLimit(2, HOURS), DISPATCHED_AT, CAL)


def test_clock_due_and_warning_points_are_in_working_time() -> None:
    clock = response_clock()
    assert clock.due_at == at(23, 11, 32)
    assert clock.warn_at == at(23, 11, 8)  # 80% of 120 working minutes = 96 minutes


@pytest.mark.parametrize(
    ("now", "light"),
    [
        (at(23, 9, 32), TrafficLight.GREEN),
        (at(23, 11, 7, 59), TrafficLight.GREEN),
        (at(23, 11, 8), TrafficLight.YELLOW),
        (at(23, 11, 31, 59), TrafficLight.YELLOW),
        (at(23, 11, 32), TrafficLight.RED),
        (at(25, 9, 0), TrafficLight.RED),
    ],
)
def test_traffic_light_boundaries(now: datetime, light: TrafficLight) -> None:
    assert response_clock().traffic_light(now) is light


def test_fraction_is_0_8_at_the_warning_point_and_1_at_the_due_time() -> None:
    clock = response_clock()
    assert clock.fraction(clock.warn_at, CAL) == pytest.approx(0.8)
    assert clock.fraction(clock.due_at, CAL) == 1.0
    # One working hour past due: 11:32-12:00 and 13:30-14:02 (lunch does not count).
    assert clock.fraction(at(23, 14, 2), CAL) == pytest.approx(1.5)


def test_a_met_clock_keeps_the_light_it_had_when_met() -> None:
    clock = response_clock()
    clock.meet(at(23, 11, 10))
    assert clock.traffic_light(at(30, 9, 0)) is TrafficLight.YELLOW
    assert clock.check(at(30, 9, 0)).breach_due is False
    assert clock.next_timer_at() is None


def test_limit_in_working_days_skips_the_weekend() -> None:
    friday = at(27, 16, 0)
    clock = DeadlineClock.start(DeadlineKind.RESOLUTION, TimeLimit(1, DAYS), friday, CAL)
    assert clock.due_at == at(30, 16, 0)


def test_deadline_into_a_year_without_calendar_data_is_marked_weekends_only() -> None:
    when = at(31, 16, 0, month=12)
    case = Case(uuid4(), "4205-20261231-000001", when, "environment.exposed_garbage", "420502")
    case.register(OPERATOR, when, LIMITS, automatic=True)
    event = case.dispatch(OPERATOR, when, Route(Tier.GRID, "urban"), POLICY)[0]
    assert isinstance(event, CaseDispatched)
    assert {d.kind: d.basis for d in event.deadlines} == {
        DeadlineKind.RESPONSE: CalendarBasis.WEEKENDS_ONLY,
        DeadlineKind.RESOLUTION: CalendarBasis.WEEKENDS_ONLY,
    }
    assert case.resolution is not None
    assert case.resolution.due_at == datetime(2027, 1, 1, 16, 0, tzinfo=CHINA_TZ)


# --- timers on the case ------------------------------------------------------------------


def test_warning_then_breach_then_escalation_each_fire_once() -> None:
    case = dispatched(Tier.STREET)
    assert case.next_timer_at() == at(23, 11, 8)
    assert case.check_deadlines(at(23, 11, 7), POLICY) == []

    warning = case.check_deadlines(at(23, 11, 8), POLICY)
    assert types(warning) == ["DeadlineWarning"]
    assert isinstance(warning[0], DeadlineWarning)
    assert warning[0].kind is DeadlineKind.RESPONSE
    assert warning[0].unit_code == "urban"
    assert warning[0].elapsed_ratio == pytest.approx(0.8)
    assert case.check_deadlines(at(23, 11, 20), POLICY) == []
    assert case.next_timer_at() == at(23, 11, 32)

    breach = case.check_deadlines(at(23, 11, 32), POLICY)
    assert types(breach) == ["DeadlineBreached", "CaseEscalated"]
    escalated = breach[1]
    assert isinstance(escalated, CaseEscalated)
    assert (escalated.from_tier, escalated.to_tier) == (Tier.STREET, Tier.DEPARTMENT)
    assert escalated.trigger is EscalationTrigger.DEADLINE_BREACHED
    assert case.supervised
    assert case.tier is Tier.DEPARTMENT
    assert case.check_deadlines(at(23, 11, 40), POLICY) == []
    assert case.traffic_light(at(23, 11, 40)) is TrafficLight.RED


def test_a_late_timer_skips_the_warning_and_breaches_once() -> None:
    case = dispatched(Tier.GRID)
    events = case.check_deadlines(at(23, 15, 0), POLICY)
    assert types(events) == ["DeadlineBreached", "CaseEscalated"]
    assert case.check_deadlines(at(23, 15, 1), POLICY) == []


def test_escalation_at_the_department_tier_stays_there_and_is_supervised() -> None:
    case = dispatched(Tier.DEPARTMENT)
    events = case.check_deadlines(at(23, 12, 0), POLICY)
    escalated = events[-1]
    assert isinstance(escalated, CaseEscalated)
    assert (escalated.from_tier, escalated.to_tier) == (Tier.DEPARTMENT, Tier.DEPARTMENT)
    assert escalated.supervised


def test_accepting_in_time_stops_the_response_clock() -> None:
    case = dispatched()
    case.accept_task(lead_task(case), URBAN, at(23, 10, 0))
    assert case.traffic_lights(at(23, 12, 0))[DeadlineKind.RESPONSE] is TrafficLight.GREEN
    # Only the resolution clock remains: 1 working day from 09:32 Monday, warning at 80%.
    assert case.next_timer_at() == CAL.add_working_time(DISPATCHED_AT, 0.8, DAYS).at
    events = case.check_deadlines(at(24, 9, 32), POLICY)
    assert types(events) == ["DeadlineBreached", "CaseEscalated"]
    breached = events[0]
    assert isinstance(breached, DeadlineBreached)
    assert breached.kind is DeadlineKind.RESOLUTION


def test_handled_case_has_no_timers() -> None:
    case = dispatched()
    case.accept_task(lead_task(case), URBAN, at(23, 10, 0))
    case.complete_task(lead_task(case), URBAN, at(23, 15, 0), "已清运")
    assert case.next_timer_at() is None
    assert case.check_deadlines(at(30, 9, 0), POLICY) == []


def test_operator_escalation_goes_one_tier_up() -> None:
    case = dispatched(Tier.GRID)
    (event,) = case.escalate(OPERATOR, at(23, 10, 0), EscalationTrigger.OPERATOR, "群众反映强烈")
    assert isinstance(event, CaseEscalated)
    assert event.to_tier is Tier.COMMUNITY


# --- suspension ----------------------------------------------------------------------------


def test_suspension_stops_the_clock_and_resume_gives_back_the_time_left() -> None:
    case = dispatched()
    case.suspend(OPERATOR, at(23, 10, 0), "等待产权单位确认")
    assert case.check_deadlines(at(24, 9, 0), POLICY) == []
    case.resume(OPERATOR, at(24, 9, 0), "产权单位已确认", POLICY)
    # 1 h 32 min of working time was left at 10:00 Monday; from 09:00 Tuesday: 10:32.
    assert case.response is not None
    assert case.response.due_at == at(24, 10, 32)


# --- extensions ----------------------------------------------------------------------------


def test_approved_extension_moves_the_deadline_and_rearms_the_timers() -> None:
    case = dispatched()
    case.accept_task(lead_task(case), URBAN, at(23, 10, 0))
    assert types(case.check_deadlines(at(24, 9, 40), POLICY)) == [
        "DeadlineBreached",
        "CaseEscalated",
    ]
    request = uuid4()
    new_due = at(26, 17, 30)
    events = case.request_extension(
        URBAN, at(24, 10, 0), request, new_due, "需协调产权单位", task_id=lead_task(case)
    )
    assert types(events) == ["DeadlineExtensionRequested"]
    (extended,) = case.decide_extension(
        OPERATOR, at(24, 10, 30), request, approve=True, reason="同意延期", policy=POLICY
    )
    assert isinstance(extended, DeadlineExtended)
    assert extended.new_due_at == new_due
    assert case.traffic_light(at(24, 11, 0)) is not TrafficLight.RED
    assert case.pending_extension is None
    # Warned again before the new due time, breached again at it; each once.
    warn_at = case.next_timer_at()
    assert warn_at is not None
    assert at(24, 10, 30) < warn_at < new_due
    assert types(case.check_deadlines(warn_at, POLICY)) == ["DeadlineWarning"]
    assert types(case.check_deadlines(new_due, POLICY))[0] == "DeadlineBreached"
    assert case.check_deadlines(new_due + timedelta(hours=1), POLICY) == []


def test_refused_extension_leaves_the_deadline() -> None:
    case = dispatched()
    due = case.resolution.due_at if case.resolution else None
    request = uuid4()
    case.request_extension(URBAN, at(23, 10, 0), request, at(27, 17, 30), "工作量大")
    events = case.decide_extension(
        OPERATOR, at(23, 10, 5), request, approve=False, reason="应在时限内完成", policy=POLICY
    )
    assert types(events) == ["DeadlineExtensionRefused"]
    assert case.resolution is not None
    assert case.resolution.due_at == due


def test_extension_must_move_the_deadline_later() -> None:
    case = dispatched()
    with pytest.raises(InvalidCommand, match="not later"):
        case.request_extension(URBAN, at(23, 10, 0), uuid4(), at(23, 10, 0), "x")


def test_only_one_extension_request_waits_at_a_time() -> None:
    case = dispatched()
    case.request_extension(URBAN, at(23, 10, 0), uuid4(), at(27, 17, 30), "x")
    with pytest.raises(InvalidCommand, match="already has extension request"):
        case.request_extension(URBAN, at(23, 10, 1), uuid4(), at(28, 17, 30), "y")


def test_deciding_an_unknown_request_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="no pending extension"):
        dispatched().decide_extension(
            OPERATOR, at(23, 10, 0), uuid4(), approve=True, reason="x", policy=POLICY
        )


# --- evaluation window ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "due"),
    [(timedelta(days=6, hours=23, minutes=59), False), (timedelta(days=7), True)],
)
def test_default_evaluation_is_due_seven_days_after_closure(after: timedelta, due: bool) -> None:
    closed = at(23, 16, 0)
    assert default_evaluation_due(closed, closed + after) is due
