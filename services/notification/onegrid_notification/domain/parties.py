"""A case's parties as notification keeps them, and what one case event changes in them.
Pure: the store loads a batch's cases, applies its events here in order (each event's
notifications are planned with the parties as they are after it), and writes what changed.

- Any event of a case not seen before starts it (number, and grid if the event names one).
- A report (the first or a duplicate's) adds its reporter, unless they already reported it.
- A task assignment gives the unit an open task (verification tasks are the grid's, not a
  unit's holding); a completed, refused or cancelled task is no longer open.
- Registration places the case in a grid, relocation moves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from onegrid_contracts.cases import (
    CaseEvent,
    CaseRegistered,
    CaseRelocated,
    CaseReported,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskRefused,
    TaskRole,
)
from onegrid_contracts.primitives import ReporterRef
from onegrid_notification.domain.planning import CaseParties


@dataclass(frozen=True)
class JoinedReporter:
    reporter_id: str
    joined_at: datetime
    reporter: ReporterRef


@dataclass(frozen=True)
class HeldTask:
    unit_code: str
    open: bool


@dataclass(frozen=True)
class CaseRecord:
    """One case's rows: its number and grid, its reporters, every task a unit took."""

    case_id: UUID
    case_no: str
    grid_code: str | None = None
    reporters: tuple[JoinedReporter, ...] = ()
    tasks: dict[UUID, HeldTask] = field(default_factory=dict)

    def parties(self) -> CaseParties:
        return CaseParties(
            case_id=self.case_id,
            case_no=self.case_no,
            grid_code=self.grid_code,
            # In the order they joined; the id only breaks a tie of the same instant.
            reporters=tuple(
                r.reporter
                for r in sorted(self.reporters, key=lambda r: (r.joined_at, r.reporter_id))
            ),
            open_units=tuple(sorted({t.unit_code for t in self.tasks.values() if t.open})),
        )


def _grid_named_by(event: CaseEvent) -> str | None:
    """The grid `event` places the case in, if it places it."""
    if isinstance(event, CaseRelocated):
        return event.new_grid_code
    if isinstance(event, CaseReported | CaseRegistered):
        return event.grid_code
    return None


def apply(case: CaseRecord | None, event: CaseEvent) -> CaseRecord:
    """`case` (None: not seen before) as it is after `event`."""
    if case is None:
        case = CaseRecord(case_id=event.case_id, case_no=event.case_no)
    grid = _grid_named_by(event)
    if grid is not None and grid != case.grid_code:
        case = replace(case, grid_code=grid)
    if isinstance(event, CaseReported):
        rid = event.reporter.reporter_id
        if all(r.reporter_id != rid for r in case.reporters):
            joined = JoinedReporter(rid, event.at, event.reporter)
            case = replace(case, reporters=(*case.reporters, joined))
    elif isinstance(event, TaskAssigned) and event.role is not TaskRole.VERIFY:
        if event.task_id not in case.tasks:  # assigned once; a late repeat reopens nothing
            held = HeldTask(event.unit_code, open=True)
            case = replace(case, tasks={**case.tasks, event.task_id: held})
    elif isinstance(event, TaskCompleted | TaskRefused | TaskCancelled):
        task = case.tasks.get(event.task_id)
        if task is not None and task.open:
            ended = HeldTask(task.unit_code, open=False)
            case = replace(case, tasks={**case.tasks, event.task_id: ended})
    return case


@dataclass(frozen=True)
class PartyChanges:
    """What a batch's events changed, as rows to write."""

    cases: list[tuple[UUID, str, str | None]]  # new or moved: (case, number, grid)
    reporters: list[tuple[UUID, JoinedReporter]]  # new
    tasks: list[tuple[UUID, UUID, HeldTask]]  # new or ended: (case, task, holding)

    def __bool__(self) -> bool:
        return bool(self.cases or self.reporters or self.tasks)


def changes(before: dict[UUID, CaseRecord], after: dict[UUID, CaseRecord]) -> PartyChanges:
    """The rows to write so that what was `before` is stored as `after`."""
    cases: list[tuple[UUID, str, str | None]] = []
    reporters: list[tuple[UUID, JoinedReporter]] = []
    tasks: list[tuple[UUID, UUID, HeldTask]] = []
    for case_id, case in after.items():
        old = before.get(case_id)
        if old is None or old.grid_code != case.grid_code:
            cases.append((case_id, case.case_no, case.grid_code))
        known = {r.reporter_id for r in old.reporters} if old else set()
        reporters += [(case_id, r) for r in case.reporters if r.reporter_id not in known]
        old_tasks = old.tasks if old else {}
        tasks += [(case_id, t_id, t) for t_id, t in case.tasks.items() if old_tasks.get(t_id) != t]
    return PartyChanges(cases, reporters, tasks)
