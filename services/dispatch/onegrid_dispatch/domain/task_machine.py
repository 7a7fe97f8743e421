"""The task state machine (DESIGN §4): assigned → accepted → in_progress → completed, or refused.

A task may also be cancelled by dispatch (re-route, relocation, early closure). TaskState has
no `cancelled` value yet, so a cancelled task keeps its last state and carries
`Task.cancelled_at`; `CANCEL` is therefore a (state → same state) entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from uuid import UUID

from onegrid_contracts.cases import TaskState
from onegrid_dispatch.domain.errors import IllegalTransition


class TaskAction(StrEnum):
    ACCEPT = "accept"
    PROGRESS = "progress"
    COMPLETE = "complete"
    REFUSE = "refuse"
    CANCEL = "cancel"


OPEN_TASK_STATES = frozenset({TaskState.ASSIGNED, TaskState.ACCEPTED, TaskState.IN_PROGRESS})

TASK_TRANSITIONS: Mapping[tuple[TaskState, TaskAction], TaskState] = {
    (TaskState.ASSIGNED, TaskAction.ACCEPT): TaskState.ACCEPTED,
    (TaskState.ASSIGNED, TaskAction.REFUSE): TaskState.REFUSED,
    (TaskState.ASSIGNED, TaskAction.CANCEL): TaskState.ASSIGNED,
    (TaskState.ACCEPTED, TaskAction.PROGRESS): TaskState.IN_PROGRESS,
    (TaskState.ACCEPTED, TaskAction.COMPLETE): TaskState.COMPLETED,
    # Found out only on site that it is another unit's matter.
    (TaskState.ACCEPTED, TaskAction.REFUSE): TaskState.REFUSED,
    (TaskState.ACCEPTED, TaskAction.CANCEL): TaskState.ACCEPTED,
    (TaskState.IN_PROGRESS, TaskAction.PROGRESS): TaskState.IN_PROGRESS,
    (TaskState.IN_PROGRESS, TaskAction.COMPLETE): TaskState.COMPLETED,
    (TaskState.IN_PROGRESS, TaskAction.CANCEL): TaskState.IN_PROGRESS,
}


def task_transition(
    case_id: UUID, task_id: UUID, state: TaskState, action: TaskAction, *, cancelled: bool = False
) -> TaskState:
    """The task's next state, or IllegalTransition."""
    if cancelled:
        raise IllegalTransition(
            case_id, state.value, action.value, task_id=task_id, why="the task was cancelled"
        )
    target = TASK_TRANSITIONS.get((state, action))
    if target is None:
        raise IllegalTransition(case_id, state.value, action.value, task_id=task_id)
    return target
