"""The transition tables themselves: every legal entry, and every other pair refused."""

from __future__ import annotations

import itertools
from uuid import uuid4

import pytest

from onegrid_contracts.cases import CaseState, TaskState
from onegrid_dispatch.domain.case_machine import (
    CASE_TRANSITIONS,
    CaseAction,
    Guard,
    allowed_actions,
    case_transition,
)
from onegrid_dispatch.domain.errors import IllegalTransition
from onegrid_dispatch.domain.task_machine import TASK_TRANSITIONS, TaskAction, task_transition

S, A = CaseState, CaseAction
CASE_ID, TASK_ID = uuid4(), uuid4()

# The main path of the six-step loop (上报 → 立案 → 派遣 → 处置反馈 → 核查结案 → 综合评价).
MAIN_PATH = [
    (S.REPORTED, A.REGISTER, (), S.REGISTERED),
    (S.REGISTERED, A.DISPATCH, (), S.DISPATCHED),
    (S.DISPATCHED, A.ACCEPT_TASK, (), S.IN_PROGRESS),
    (S.IN_PROGRESS, A.PROGRESS_TASK, (), S.IN_PROGRESS),
    (S.IN_PROGRESS, A.COMPLETE_TASK, (), S.IN_PROGRESS),
    (S.IN_PROGRESS, A.COMPLETE_TASK, (Guard.ALL_TASKS_COMPLETED,), S.HANDLED),
    (S.HANDLED, A.VERIFY_PASS, (), S.VERIFIED),
    (S.VERIFIED, A.CLOSE, (), S.CLOSED),
    (S.CLOSED, A.EVALUATE, (), S.EVALUATED),
]
SIDE_PATHS = [
    (S.REPORTED, A.REJECT, (), S.REJECTED),
    (S.REPORTED, A.SELF_HANDLE, (), S.CLOSED),
    (S.HANDLED, A.VERIFY_FAIL, (), S.REWORK),
    (S.REWORK, A.DISPATCH, (), S.DISPATCHED),
    (S.CLOSED, A.REOPEN, (Guard.WITHIN_REOPEN_WINDOW,), S.REWORK),
    (S.EVALUATED, A.REOPEN, (Guard.WITHIN_REOPEN_WINDOW,), S.REWORK),
    (S.DISPATCHED, A.REFUSE_TASK, (Guard.LEAD_TASK,), S.REGISTERED),
    (S.DISPATCHED, A.REFUSE_TASK, (), S.DISPATCHED),
    (S.IN_PROGRESS, A.REFUSE_TASK, (Guard.LEAD_TASK,), S.REGISTERED),
    (S.IN_PROGRESS, A.REFUSE_TASK, (Guard.ALL_TASKS_COMPLETED,), S.HANDLED),
    (S.IN_PROGRESS, A.REFUSE_TASK, (), S.IN_PROGRESS),
    (S.IN_PROGRESS, A.RELOCATE, (), S.REGISTERED),
    (S.IN_PROGRESS, A.SUSPEND, (), S.SUSPENDED),
    (S.IN_PROGRESS, A.CLOSE, (Guard.OUTCOME_NOT_FIXED,), S.CLOSED),
    (S.IN_PROGRESS, A.ESCALATE, (), S.IN_PROGRESS),
]


@pytest.mark.parametrize(("state", "action", "holds", "target"), MAIN_PATH + SIDE_PATHS)
def test_legal_case_transition(
    state: CaseState, action: CaseAction, holds: tuple[Guard, ...], target: CaseState
) -> None:
    assert case_transition(CASE_ID, state, action, holds) is target


def _all_guards() -> tuple[Guard, ...]:
    # With every guard holding, a pair is refused only if it has no entry at all.
    return tuple(Guard)


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (state, action)
        for state, action in itertools.product(CaseState, CaseAction)
        if (state, action) not in CASE_TRANSITIONS
    ],
)
def test_every_case_pair_without_an_entry_is_refused(state: CaseState, action: CaseAction) -> None:
    with pytest.raises(IllegalTransition) as refused:
        case_transition(CASE_ID, state, action, _all_guards(), suspended_from=S.IN_PROGRESS)
    assert refused.value.case_id == CASE_ID
    assert refused.value.state == state.value
    assert refused.value.action == action.value
    assert str(CASE_ID) in str(refused.value)


def test_the_table_refuses_most_pairs_and_terminal_states_allow_little() -> None:
    assert allowed_actions(S.REJECTED) == frozenset()
    assert allowed_actions(S.EVALUATED) == {A.REOPEN}
    assert allowed_actions(S.CLOSED) == {A.EVALUATE, A.REOPEN}


def test_resume_returns_to_the_state_before_suspension() -> None:
    target = case_transition(CASE_ID, S.SUSPENDED, A.RESUME, suspended_from=S.DISPATCHED)
    assert target is S.DISPATCHED


def test_resume_without_a_remembered_state_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="no state to resume to"):
        case_transition(CASE_ID, S.SUSPENDED, A.RESUME)


def test_closing_as_fixed_without_verification_is_refused_with_the_reason() -> None:
    with pytest.raises(IllegalTransition, match="verification passed"):
        case_transition(CASE_ID, S.HANDLED, A.CLOSE)


def test_reopen_outside_the_window_is_refused_with_the_reason() -> None:
    with pytest.raises(IllegalTransition, match="reopen window"):
        case_transition(CASE_ID, S.CLOSED, A.REOPEN)


def test_every_open_state_takes_follow_ups() -> None:
    for state in CaseState:
        closed = state in (S.CLOSED, S.EVALUATED, S.REJECTED)
        assert ((state, A.FOLLOW_UP) in CASE_TRANSITIONS) is not closed


# --- tasks -------------------------------------------------------------------------------

T, TA = TaskState, TaskAction

LEGAL_TASK = [
    (T.ASSIGNED, TA.ACCEPT, T.ACCEPTED),
    (T.ASSIGNED, TA.REFUSE, T.REFUSED),
    (T.ACCEPTED, TA.PROGRESS, T.IN_PROGRESS),
    (T.ACCEPTED, TA.COMPLETE, T.COMPLETED),
    (T.ACCEPTED, TA.REFUSE, T.REFUSED),
    (T.IN_PROGRESS, TA.PROGRESS, T.IN_PROGRESS),
    (T.IN_PROGRESS, TA.COMPLETE, T.COMPLETED),
    (T.ASSIGNED, TA.CANCEL, T.ASSIGNED),
    (T.ACCEPTED, TA.CANCEL, T.ACCEPTED),
    (T.IN_PROGRESS, TA.CANCEL, T.IN_PROGRESS),
]


@pytest.mark.parametrize(("state", "action", "target"), LEGAL_TASK)
def test_legal_task_transition(state: TaskState, action: TaskAction, target: TaskState) -> None:
    assert task_transition(CASE_ID, TASK_ID, state, action) is target


def test_task_table_is_exactly_the_legal_list() -> None:
    assert dict(TASK_TRANSITIONS) == {(s, a): t for s, a, t in LEGAL_TASK}


@pytest.mark.parametrize(
    ("state", "action"),
    [p for p in itertools.product(TaskState, TaskAction) if p not in TASK_TRANSITIONS],
)
def test_every_task_pair_without_an_entry_is_refused(state: TaskState, action: TaskAction) -> None:
    with pytest.raises(IllegalTransition) as refused:
        task_transition(CASE_ID, TASK_ID, state, action)
    assert refused.value.task_id == TASK_ID
    assert f"task {TASK_ID}" in str(refused.value)


def test_a_cancelled_task_takes_nothing() -> None:
    with pytest.raises(IllegalTransition, match="cancelled"):
        task_transition(CASE_ID, TASK_ID, T.ACCEPTED, TA.COMPLETE, cancelled=True)
