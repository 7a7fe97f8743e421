"""The Case aggregate: each command's state change and the contract events it returns."""

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
    CaseClosed,
    CaseDispatched,
    CaseEvaluated,
    CaseEvent,
    CaseFlaggedForOperator,
    CaseFollowUpAdded,
    CaseHandled,
    CaseOutcome,
    CaseRejected,
    CaseReopened,
    CaseReworkRequested,
    CaseState,
    CaseVerified,
    OperatorQueueReason,
    RefusalReason,
    RejectReason,
    TaskAssigned,
    TaskCancelled,
    TaskRole,
    TaskState,
    Tier,
)
from onegrid_contracts.primitives import Actor, ActorKind
from onegrid_dispatch.domain.case import Case, CasePolicy, CategoryLimits, Route
from onegrid_dispatch.domain.deadlines import TimeLimit
from onegrid_dispatch.domain.errors import IllegalTransition, InvalidCommand

CAL = WorkingCalendar(seed_years_from_chinese_calendar([2026]))
POLICY = CasePolicy(calendar=CAL, max_refusals=3)
LIMITS = CategoryLimits(
    response=TimeLimit(2, WorkingTimeUnit.WORKING_HOURS),
    resolution=TimeLimit(1, WorkingTimeUnit.WORKING_DAYS),
)
OPERATOR = Actor(kind=ActorKind.OPERATOR, id="S0000007")
REPORTER = Actor(kind=ActorKind.REPORTER, id="rp-7c2e91")
WORKER = Actor(kind=ActorKind.GRID_WORKER, id="S0000123")
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=CHINA_TZ)  # a Monday


def unit(code: str) -> Actor:
    return Actor(kind=ActorKind.UNIT, id=code)


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def new_case(
    *, on_site: bool = False, category: str | None = "environment.exposed_garbage"
) -> Case:
    return Case(
        case_id=uuid4(),
        case_no="4205-20261123-000042",
        reported_at=T0,
        category_code=category,
        grid_code="420502003001001",
        resolved_on_site=on_site,
    )


def state_of(case: Case) -> CaseState:
    # A call, so type checkers do not narrow the state across commands.
    return case.state


def types(events: list[CaseEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def registered() -> Case:
    case = new_case()
    case.register(OPERATOR, minutes(1), LIMITS, automatic=True)
    return case


def dispatched(*units: str) -> Case:
    case = registered()
    lead, *assisting = units or ("urban",)
    case.dispatch(OPERATOR, minutes(2), Route(Tier.DEPARTMENT, lead, tuple(assisting)), POLICY)
    return case


def task_of(case: Case, unit_code: str) -> UUID:
    return next(t.task_id for t in reversed(case.tasks) if t.unit_code == unit_code)


def handled(*units: str) -> Case:
    case = dispatched(*units)
    for code in units or ("urban",):
        case.accept_task(task_of(case, code), unit(code), minutes(10))
        case.complete_task(task_of(case, code), unit(code), minutes(60), "已清运")
    return case


def closed_fixed() -> Case:
    case = handled()
    case.verify(WORKER, minutes(90), passed=True, note="现场核查已清理")
    case.close(OPERATOR, minutes(91), CaseOutcome.FIXED)
    return case


# --- the six steps -----------------------------------------------------------------------


def test_full_lifecycle_emits_one_event_per_step() -> None:
    case = new_case()
    events = case.register(OPERATOR, minutes(1), LIMITS, automatic=True)
    events += case.dispatch(OPERATOR, minutes(2), Route(Tier.GRID, "community-a"), POLICY)
    task_id = task_of(case, "community-a")
    events += case.accept_task(task_id, unit("community-a"), minutes(5))
    events += case.progress_task(task_id, unit("community-a"), minutes(20), "已安排人员")
    events += case.complete_task(task_id, unit("community-a"), minutes(60), "已清运")
    events += case.assign_verification(OPERATOR, minutes(61), "community-a", "S0000123")
    events += case.verify(WORKER, minutes(90), passed=True)
    events += case.close(OPERATOR, minutes(91), CaseOutcome.FIXED)
    events += case.evaluate(REPORTER, minutes(200), "rp-7c2e91", 5, "很及时")
    assert types(events) == [
        "CaseRegistered",
        "CaseDispatched",
        "TaskAssigned",
        "TaskAccepted",
        "TaskProgressed",
        "TaskCompleted",
        "CaseHandled",
        "TaskAssigned",
        "CaseVerified",
        "CaseClosed",
        "CaseEvaluated",
    ]
    assert state_of(case) is CaseState.EVALUATED
    assert all(e.case_id == case.case_id for e in events)
    closed = next(e for e in events if isinstance(e, CaseClosed))
    assert closed.outcome is CaseOutcome.FIXED
    assert closed.on_time is True
    verified = next(e for e in events if isinstance(e, CaseVerified))
    assert verified.verification_task_id == case.tasks[-1].task_id


def test_register_without_category_is_refused() -> None:
    case = new_case(category=None)
    with pytest.raises(InvalidCommand, match="no category"):
        case.register(OPERATOR, minutes(1), LIMITS, automatic=False)
    assert state_of(case) is CaseState.REPORTED


def test_reject_as_duplicate_names_the_original() -> None:
    case = new_case()
    original = uuid4()
    (event,) = case.reject(OPERATOR, minutes(1), RejectReason.DUPLICATE, "重复上报", original)
    assert isinstance(event, CaseRejected)
    assert event.duplicate_of == original
    assert state_of(case) is CaseState.REJECTED
    with pytest.raises(InvalidCommand, match="duplicates"):
        new_case().reject(OPERATOR, minutes(1), RejectReason.DUPLICATE, "重复上报")


def test_illegal_command_names_case_state_and_action() -> None:
    case = registered()
    with pytest.raises(IllegalTransition) as refused:
        case.verify(WORKER, minutes(5), passed=True)
    assert (refused.value.case_id, refused.value.state, refused.value.action) == (
        case.case_id,
        "registered",
        "verify_pass",
    )
    assert state_of(case) is CaseState.REGISTERED


def test_self_handled_case_is_registered_and_closed_in_the_grid() -> None:
    case = new_case(on_site=True)
    events = case.self_handle(WORKER, minutes(0), "已现场劝离占道摊贩")
    assert types(events) == ["CaseRegistered", "CaseClosed"]
    closed = events[1]
    assert isinstance(closed, CaseClosed)
    assert closed.self_handled
    assert closed.outcome is CaseOutcome.FIXED
    assert (case.state, case.tier, case.self_handled) == (CaseState.CLOSED, Tier.GRID, True)


def test_self_handle_needs_an_on_site_report() -> None:
    with pytest.raises(InvalidCommand, match="resolved on site"):
        new_case().self_handle(WORKER, minutes(0), "已处理")


def test_recategorise_changes_category_before_dispatch_only() -> None:
    case = registered()
    (event,) = case.recategorise(
        OPERATOR, minutes(2), "street_order.occupied_road_business", LIMITS, "占道经营"
    )
    assert case.category_code == "street_order.occupied_road_business"
    assert event.case_id == case.case_id
    with pytest.raises(IllegalTransition):
        dispatched().recategorise(OPERATOR, minutes(3), "a.b", LIMITS, "x")


# --- dispatch and tasks --------------------------------------------------------------------


def test_dispatch_creates_lead_and_assisting_tasks_with_deadlines() -> None:
    case = registered()
    events = case.dispatch(
        OPERATOR,
        minutes(2),
        Route(Tier.DEPARTMENT, "urban", ("street-420502003",), "route.x.y", near_boundary=True),
        POLICY,
    )
    dispatched_event, lead, assist = events
    assert isinstance(dispatched_event, CaseDispatched)
    assert dispatched_event.attempt == 1
    assert dispatched_event.near_boundary
    assert case.near_boundary
    assert [d.kind.value for d in dispatched_event.deadlines] == ["response", "resolution"]
    assert isinstance(lead, TaskAssigned)
    assert lead.role is TaskRole.LEAD
    assert isinstance(assist, TaskAssigned)
    assert assist.role is TaskRole.ASSIST
    assert state_of(case) is CaseState.DISPATCHED


def test_dispatch_refuses_a_route_naming_a_unit_twice() -> None:
    with pytest.raises(InvalidCommand, match="twice"):
        registered().dispatch(OPERATOR, minutes(2), Route(Tier.STREET, "a1", ("a1",)), POLICY)


def test_a_unit_that_does_not_hold_the_task_is_refused() -> None:
    case = dispatched("urban")
    with pytest.raises(InvalidCommand, match="does not hold"):
        case.accept_task(task_of(case, "urban"), unit("police"), minutes(5))
    assert case.tasks[0].state is TaskState.ASSIGNED


def test_unknown_task_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="has no task"):
        dispatched().accept_task(uuid4(), unit("urban"), minutes(5))


def test_completing_an_unaccepted_task_is_refused() -> None:
    case = dispatched("urban", "water")
    case.accept_task(task_of(case, "urban"), unit("urban"), minutes(5))
    with pytest.raises(IllegalTransition, match="assigned"):
        case.complete_task(task_of(case, "water"), unit("water"), minutes(6), "done")


def test_case_is_handled_only_when_all_its_tasks_are_complete() -> None:
    case = dispatched("urban", "water")
    for code in ("urban", "water"):
        case.accept_task(task_of(case, code), unit(code), minutes(5))
    first = case.complete_task(task_of(case, "urban"), unit("urban"), minutes(30), "路面已清")
    assert types(first) == ["TaskCompleted"]
    assert state_of(case) is CaseState.IN_PROGRESS
    second = case.complete_task(task_of(case, "water"), unit("water"), minutes(40), "管道已修")
    assert types(second) == ["TaskCompleted", "CaseHandled"]
    handled_event = second[1]
    assert isinstance(handled_event, CaseHandled)
    assert len(handled_event.task_ids) == 2
    assert state_of(case) is CaseState.HANDLED


def test_follow_up_goes_to_every_unit_with_an_open_task() -> None:
    case = dispatched("urban", "water")
    case.accept_task(task_of(case, "urban"), unit("urban"), minutes(5))
    case.complete_task(task_of(case, "urban"), unit("urban"), minutes(6), "done")
    (event,) = case.follow_up(REPORTER, minutes(7), uuid4(), "旁边还有一个破沙发")
    assert isinstance(event, CaseFollowUpAdded)
    assert event.forwarded_to == ("water",)


# --- refusals ------------------------------------------------------------------------------


def test_lead_refusal_sends_the_case_back_to_routing_without_that_unit() -> None:
    case = dispatched("police", "street-420502003")
    events = case.refuse_task(
        task_of(case, "police"),
        unit("police"),
        minutes(5),
        RefusalReason.WRONG_JURISDICTION,
        "不属于公安职责",
        POLICY,
    )
    assert types(events) == ["TaskRefused", "TaskCancelled"]
    cancelled = events[1]
    assert isinstance(cancelled, TaskCancelled)
    assert cancelled.unit_code == "street-420502003"
    assert state_of(case) is CaseState.REGISTERED
    assert case.needs_routing
    assert case.excluded_units == ["police"]
    assert case.refusal_count == 1
    with pytest.raises(InvalidCommand, match="refused"):
        case.dispatch(OPERATOR, minutes(6), Route(Tier.DEPARTMENT, "police"), POLICY)
    rerouted = case.dispatch(OPERATOR, minutes(6), Route(Tier.DEPARTMENT, "urban"), POLICY)
    first = rerouted[0]
    assert isinstance(first, CaseDispatched)
    assert first.attempt == 2
    assert first.excluded_unit_codes == ("police",)


def test_assisting_refusal_leaves_the_case_with_the_others() -> None:
    case = dispatched("urban", "water")
    case.accept_task(task_of(case, "urban"), unit("urban"), minutes(5))
    case.complete_task(task_of(case, "urban"), unit("urban"), minutes(30), "已清")
    events = case.refuse_task(
        task_of(case, "water"),
        unit("water"),
        minutes(31),
        RefusalReason.NOT_OUR_MATTER,
        "非本单位",
        POLICY,
    )
    # The lead is done and the refusing assistant is out: nothing is left to do.
    assert types(events) == ["TaskRefused", "CaseHandled"]
    assert state_of(case) is CaseState.HANDLED
    assert case.excluded_units == ["water"]


def test_after_n_refusals_the_case_goes_to_the_operator_as_a_jurisdiction_dispute() -> None:
    case = registered()
    events: list[CaseEvent] = []
    for n, code in enumerate(("police", "urban", "civil")):
        case.dispatch(OPERATOR, minutes(10 * n), Route(Tier.DEPARTMENT, code), POLICY)
        events = case.refuse_task(
            task_of(case, code),
            unit(code),
            minutes(10 * n + 1),
            RefusalReason.WRONG_JURISDICTION,
            "不属于本单位",
            POLICY,
        )
        if n < 2:
            assert case.needs_routing
    flagged = events[-1]
    assert isinstance(flagged, CaseFlaggedForOperator)
    assert flagged.queue_reason is OperatorQueueReason.JURISDICTION_DISPUTE
    assert case.operator_queue is OperatorQueueReason.JURISDICTION_DISPUTE
    assert not case.needs_routing
    # The operator decides the unit; dispatching clears the queue.
    case.dispatch(OPERATOR, minutes(40), Route(Tier.STREET, "street-420502003"), POLICY)
    assert case.operator_queue is None


# --- verification, rework, closure --------------------------------------------------------


def test_failed_verification_sends_the_case_to_rework_and_back_to_the_same_units() -> None:
    case = handled("urban", "water")
    events = case.verify(WORKER, minutes(90), passed=False, note="南门仍有两袋建筑垃圾")
    (rework,) = events
    assert isinstance(rework, CaseReworkRequested)
    assert rework.rework_count == 1
    assert state_of(case) is CaseState.REWORK
    route = case.rework_route()
    assert (route.lead_unit, route.assisting_units) == ("urban", ("water",))
    again = case.dispatch(OPERATOR, minutes(91), route, POLICY)
    assert types(again) == ["CaseDispatched", "TaskAssigned", "TaskAssigned"]
    assert state_of(case) is CaseState.DISPATCHED
    # The new round needs its own completions before the case is handled again.
    case.accept_task(task_of(case, "urban"), unit("urban"), minutes(92))
    case.complete_task(task_of(case, "urban"), unit("urban"), minutes(93), "已清")
    assert state_of(case) is CaseState.IN_PROGRESS


def test_failed_verification_must_say_why() -> None:
    with pytest.raises(InvalidCommand, match="still wrong"):
        handled().verify(WORKER, minutes(90), passed=False)


def test_fixed_is_refused_without_a_passed_verification() -> None:
    case = handled()
    with pytest.raises(IllegalTransition, match="verification passed"):
        case.close(OPERATOR, minutes(91), CaseOutcome.FIXED)
    assert state_of(case) is CaseState.HANDLED


@pytest.mark.parametrize(
    "outcome",
    [
        CaseOutcome.NOT_FIXABLE,
        CaseOutcome.DUPLICATE,
        CaseOutcome.WITHDRAWN,
        CaseOutcome.REFERRED_ELSEWHERE,
    ],
)
def test_other_outcomes_close_an_open_case_with_a_reason_and_withdraw_its_tasks(
    outcome: CaseOutcome,
) -> None:
    case = dispatched("urban")
    events = case.close(OPERATOR, minutes(30), outcome, "来电人撤回诉求")
    assert types(events) == ["TaskCancelled", "CaseClosed"]
    assert case.outcome is outcome
    assert case.open_tasks() == []


def test_closing_without_a_reason_is_refused_unless_fixed() -> None:
    with pytest.raises(InvalidCommand, match="needs a reason"):
        dispatched().close(OPERATOR, minutes(30), CaseOutcome.WITHDRAWN)


def test_verified_case_may_close_as_not_fixable() -> None:
    case = handled()
    case.verify(WORKER, minutes(90), passed=True)
    (closed,) = case.close(OPERATOR, minutes(91), CaseOutcome.NOT_FIXABLE, "产权不明，无法维修")
    assert isinstance(closed, CaseClosed)
    assert closed.outcome is CaseOutcome.NOT_FIXABLE


# --- reopen and evaluation ---------------------------------------------------------------


def test_reopen_within_seven_days_goes_to_rework_and_is_counted() -> None:
    case = closed_fixed()
    events = case.reopen(REPORTER, minutes(91) + timedelta(days=6), "门口又堆满了垃圾", POLICY)
    reopened, rework = events
    assert isinstance(reopened, CaseReopened)
    assert reopened.reopen_count == 1
    assert isinstance(rework, CaseReworkRequested)
    assert rework.rework_count == 1
    assert state_of(case) is CaseState.REWORK
    assert case.outcome is None
    assert case.closed_at is None


def test_reopen_after_seven_days_is_refused() -> None:
    case = closed_fixed()
    with pytest.raises(IllegalTransition, match="reopen window"):
        case.reopen(REPORTER, minutes(91) + timedelta(days=7), "还是没修好", POLICY)
    assert state_of(case) is CaseState.CLOSED
    assert case.reopen_count == 0


def test_an_evaluated_case_may_still_be_reopened_within_the_window() -> None:
    case = closed_fixed()
    case.evaluate(REPORTER, minutes(100), "rp-7c2e91", 1, "没有解决")
    case.reopen(REPORTER, minutes(101), "没有解决", POLICY)
    assert state_of(case) is CaseState.REWORK


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_rating_outside_1_to_5_is_refused(rating: int) -> None:
    with pytest.raises(InvalidCommand, match="1 to 5"):
        closed_fixed().evaluate(REPORTER, minutes(100), "rp-7c2e91", rating)


def test_default_evaluation_is_due_after_seven_days_and_marked_as_such() -> None:
    case = closed_fixed()
    closed_at = minutes(91)
    assert not case.default_evaluation_due(closed_at + timedelta(days=6, hours=23), POLICY)
    assert case.default_evaluation_due(closed_at + timedelta(days=7), POLICY)
    with pytest.raises(InvalidCommand, match="only after"):
        case.evaluate(
            REPORTER, closed_at + timedelta(days=1), "rp-7c2e91", 4, is_default=True, policy=POLICY
        )
    (event,) = case.apply_default_evaluation(closed_at + timedelta(days=7), "rp-7c2e91", POLICY)
    assert isinstance(event, CaseEvaluated)
    assert event.is_default
    assert event.rating == POLICY.default_rating
    assert state_of(case) is CaseState.EVALUATED
    assert case.default_evaluation
    assert not case.default_evaluation_due(closed_at + timedelta(days=8), POLICY)


def test_evaluation_is_refused_before_closure() -> None:
    with pytest.raises(IllegalTransition):
        handled().evaluate(REPORTER, minutes(100), "rp-7c2e91", 5)


# --- relocation and suspension -----------------------------------------------------------


def test_relocating_a_dispatched_case_withdraws_its_tasks_and_returns_it_to_routing() -> None:
    case = dispatched("community-a")
    old_task = task_of(case, "community-a")
    events = case.relocate(OPERATOR, minutes(5), "420502003001002", "属于相邻网格")
    assert types(events) == ["CaseRelocated", "TaskCancelled"]
    assert state_of(case) is CaseState.REGISTERED
    assert case.grid_code == "420502003001002"
    case.dispatch(OPERATOR, minutes(6), Route(Tier.GRID, "community-b"), POLICY)
    with pytest.raises(IllegalTransition, match="cancelled"):
        case.accept_task(old_task, unit("community-a"), minutes(7))


def test_suspend_and_resume_return_to_the_earlier_state() -> None:
    case = dispatched()
    case.accept_task(task_of(case, "urban"), unit("urban"), minutes(5))
    case.suspend(OPERATOR, minutes(10), "暴雨预警暂停户外作业")
    assert state_of(case) is CaseState.SUSPENDED
    with pytest.raises(IllegalTransition):
        case.progress_task(task_of(case, "urban"), unit("urban"), minutes(11), "x")
    (resumed,) = case.resume(OPERATOR, minutes(20), "预警解除", POLICY)
    assert state_of(case) is CaseState.IN_PROGRESS
    assert resumed.case_id == case.case_id


def test_every_event_survives_the_json_round_trip() -> None:
    case = handled("urban", "water")
    events = case.verify(WORKER, minutes(90), passed=True)
    events += case.close(OPERATOR, minutes(91), CaseOutcome.FIXED)
    events += case.evaluate(REPORTER, minutes(100), "rp-7c2e91", 5, "满意")
    for event in events:
        assert type(event).model_validate_json(event.model_dump_json()) == event
