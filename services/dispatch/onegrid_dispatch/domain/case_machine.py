"""The case state machine (DESIGN §4) as an explicit table: (state, action) → rules.

Each rule is (target, guard). The first rule whose guard holds wins; a rule without a guard
always holds. No entry, or no rule whose guard holds, is an IllegalTransition. A target of
`RESUME_PREVIOUS` means "the state the case had when it was suspended".

The aggregate (`case.Case`) states which guards hold for the command at hand; this module
only decides the next state, so the whole machine is visible and testable in one place.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from uuid import UUID

from onegrid_contracts.cases import CaseState
from onegrid_dispatch.domain.errors import IllegalTransition


class CaseAction(StrEnum):
    REGISTER = "register"
    REJECT = "reject"
    RECATEGORISE = "recategorise"
    RELOCATE = "relocate"
    SELF_HANDLE = "self_handle"  # a grid worker resolved it on site: registered and closed
    DISPATCH = "dispatch"
    ACCEPT_TASK = "accept_task"
    PROGRESS_TASK = "progress_task"
    COMPLETE_TASK = "complete_task"
    REFUSE_TASK = "refuse_task"
    ASSIGN_VERIFICATION = "assign_verification"
    VERIFY_PASS = "verify_pass"
    VERIFY_FAIL = "verify_fail"
    CLOSE = "close"
    EVALUATE = "evaluate"
    REOPEN = "reopen"
    FOLLOW_UP = "follow_up"
    SUSPEND = "suspend"
    RESUME = "resume"
    ESCALATE = "escalate"
    REQUEST_EXTENSION = "request_extension"
    DECIDE_EXTENSION = "decide_extension"


class Guard(StrEnum):
    ALL_TASKS_COMPLETED = "all_tasks_completed"  # every live task of the round is complete
    LEAD_TASK = "lead_task"  # the task acted on is the lead unit's
    OUTCOME_NOT_FIXED = "outcome_not_fixed"  # only a passed verification may close as fixed
    WITHIN_REOPEN_WINDOW = "within_reopen_window"  # 7 days after closure


@dataclass(frozen=True)
class Rule:
    target: CaseState | None  # None: RESUME_PREVIOUS
    guard: Guard | None = None


RESUME_PREVIOUS: Final = None

S = CaseState
A = CaseAction

# States where units work and deadline clocks run.
WORKING = (S.DISPATCHED, S.IN_PROGRESS, S.REWORK)
# Not yet closed, rejected or evaluated.
OPEN = (
    S.REPORTED,
    S.REGISTERED,
    S.DISPATCHED,
    S.IN_PROGRESS,
    S.HANDLED,
    S.VERIFIED,
    S.REWORK,
    S.SUSPENDED,
)


def _same(*states: CaseState) -> dict[CaseState, tuple[Rule, ...]]:
    return {state: (Rule(state),) for state in states}


_TABLE: dict[CaseAction, dict[CaseState, tuple[Rule, ...]]] = {
    A.REGISTER: {S.REPORTED: (Rule(S.REGISTERED),)},
    A.REJECT: {S.REPORTED: (Rule(S.REJECTED),)},
    A.SELF_HANDLE: {S.REPORTED: (Rule(S.CLOSED),)},
    A.RECATEGORISE: _same(S.REPORTED, S.REGISTERED),
    A.RELOCATE: {
        **_same(S.REPORTED, S.REGISTERED),
        # Moving a dispatched case withdraws its tasks; it goes back to routing.
        S.DISPATCHED: (Rule(S.REGISTERED),),
        S.IN_PROGRESS: (Rule(S.REGISTERED),),
    },
    A.DISPATCH: {S.REGISTERED: (Rule(S.DISPATCHED),), S.REWORK: (Rule(S.DISPATCHED),)},
    A.ACCEPT_TASK: {S.DISPATCHED: (Rule(S.IN_PROGRESS),), S.IN_PROGRESS: (Rule(S.IN_PROGRESS),)},
    A.PROGRESS_TASK: _same(S.IN_PROGRESS),
    A.COMPLETE_TASK: {
        S.IN_PROGRESS: (Rule(S.HANDLED, Guard.ALL_TASKS_COMPLETED), Rule(S.IN_PROGRESS)),
    },
    A.REFUSE_TASK: {
        # The lead refusing sends the case back to routing without that unit; an assisting
        # unit refusing leaves the case with the others.
        S.DISPATCHED: (Rule(S.REGISTERED, Guard.LEAD_TASK), Rule(S.DISPATCHED)),
        S.IN_PROGRESS: (
            Rule(S.REGISTERED, Guard.LEAD_TASK),
            Rule(S.HANDLED, Guard.ALL_TASKS_COMPLETED),
            Rule(S.IN_PROGRESS),
        ),
    },
    A.ASSIGN_VERIFICATION: _same(S.HANDLED),
    A.VERIFY_PASS: {S.HANDLED: (Rule(S.VERIFIED),)},
    A.VERIFY_FAIL: {S.HANDLED: (Rule(S.REWORK),)},
    A.CLOSE: {
        S.VERIFIED: (Rule(S.CLOSED),),
        **{
            state: (Rule(S.CLOSED, Guard.OUTCOME_NOT_FIXED),)
            for state in (S.REGISTERED, *WORKING, S.HANDLED, S.SUSPENDED)
        },
    },
    A.EVALUATE: {S.CLOSED: (Rule(S.EVALUATED),)},
    A.REOPEN: {
        S.CLOSED: (Rule(S.REWORK, Guard.WITHIN_REOPEN_WINDOW),),
        S.EVALUATED: (Rule(S.REWORK, Guard.WITHIN_REOPEN_WINDOW),),
    },
    A.FOLLOW_UP: _same(*OPEN),
    A.SUSPEND: {state: (Rule(S.SUSPENDED),) for state in (S.REGISTERED, *WORKING)},
    A.RESUME: {S.SUSPENDED: (Rule(RESUME_PREVIOUS),)},
    A.ESCALATE: _same(S.REGISTERED, *WORKING),
    A.REQUEST_EXTENSION: _same(*WORKING),
    A.DECIDE_EXTENSION: _same(*WORKING),
}

CASE_TRANSITIONS: Mapping[tuple[CaseState, CaseAction], tuple[Rule, ...]] = {
    (state, action): rules
    for action, by_state in _TABLE.items()
    for state, rules in by_state.items()
}

_GUARD_FAILURES = {
    Guard.OUTCOME_NOT_FIXED: "only a case whose verification passed may close as 'fixed'",
    Guard.WITHIN_REOPEN_WINDOW: "the reopen window after closure has passed",
}


def case_transition(
    case_id: UUID,
    state: CaseState,
    action: CaseAction,
    holds: Collection[Guard] = (),
    *,
    suspended_from: CaseState | None = None,
) -> CaseState:
    """The case's next state for `action`, given which guards hold, or IllegalTransition."""
    rules = CASE_TRANSITIONS.get((state, action))
    if rules is None:
        raise IllegalTransition(case_id, state.value, action.value)
    for rule in rules:
        if rule.guard is None or rule.guard in holds:
            if rule.target is RESUME_PREVIOUS:
                if suspended_from is None:
                    raise IllegalTransition(
                        case_id, state.value, action.value, why="no state to resume to"
                    )
                return suspended_from
            return rule.target
    failed = [rule.guard for rule in rules if rule.guard is not None]
    why = "; ".join(_GUARD_FAILURES.get(g, f"{g.value} does not hold") for g in failed)
    raise IllegalTransition(case_id, state.value, action.value, why=why)


def allowed_actions(state: CaseState) -> frozenset[CaseAction]:
    """Actions with an entry for this state (guards may still refuse them)."""
    return frozenset(action for (s, action) in CASE_TRANSITIONS if s == state)
