"""HTTP API of dispatch: the units' workbench, operator actions, verification, reporters'
evaluation / follow-ups / reopen, and case queries. Units see only their own cases."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import asyncpg
import httpx
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from onegrid_common import auth
from onegrid_common.auth import Principal, require_roles
from onegrid_common.pagination import Page, PageParams, encode_cursor, page_params
from onegrid_common.problems import PROBLEM_TYPE_PREFIX, Problem
from onegrid_common.service import Runtime, RuntimeDep
from onegrid_common.telemetry import inject_traceparent
from onegrid_contracts.cases import (
    CaseEvent,
    CaseOutcome,
    CaseState,
    DeadlineKind,
    RefusalReason,
    RejectReason,
    TaskRole,
    Tier,
)
from onegrid_contracts.primitives import (
    Actor,
    ActorKind,
    Attachments,
    CategoryCode,
    GridCode,
    Location,
    LongText,
    Reason,
    UnitCode,
)
from onegrid_dispatch import timeline as tl
from onegrid_dispatch.db import repository as repo
from onegrid_dispatch.domain.case import Case, Route, Task
from onegrid_dispatch.domain.errors import IllegalTransition, InvalidCommand
from onegrid_dispatch.settings import settings_of
from onegrid_dispatch.workflow import CaseBusy, CaseNotFound, Outcome, Workflow

_log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["dispatch"])

CONFLICT = PROBLEM_TYPE_PREFIX + "illegal-transition"
CONCURRENT_UPDATE = PROBLEM_TYPE_PREFIX + "concurrent-update"
INVALID = PROBLEM_TYPE_PREFIX + "invalid-command"
NOT_FOUND = PROBLEM_TYPE_PREFIX + "not-found"
FORBIDDEN = PROBLEM_TYPE_PREFIX + "forbidden"


RT = RuntimeDep


def _workflow(rt: Runtime) -> Workflow:
    workflow = rt.state["workflow"]
    assert isinstance(workflow, Workflow)
    return workflow


# --- views ----------------------------------------------------------------------------------


class DeadlineOut(BaseModel):
    kind: DeadlineKind
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    met_at: datetime | None
    paused: bool
    traffic_light: str
    basis: str
    limit_amount: int
    limit_unit: str


class TaskOut(BaseModel):
    task_id: UUID
    unit_code: str
    role: TaskRole
    state: str
    attempt: int
    assigned_at: datetime
    assignee_staff_id: str | None = None
    accepted_at: datetime | None = None
    completed_at: datetime | None = None
    result: str | None = None
    fixed: bool | None = None


class CaseOut(BaseModel):
    case_id: UUID
    case_no: str
    state: CaseState
    category_code: str | None
    grid_code: str | None
    tier: Tier | None
    lead_unit: str | None
    supervised: bool
    near_boundary: bool
    operator_queue: str | None
    outcome: CaseOutcome | None
    outcome_reason: str | None
    self_handled: bool
    refusal_count: int
    rework_count: int
    reopen_count: int
    excluded_units: list[str]
    reported_at: datetime
    registered_at: datetime | None
    closed_at: datetime | None
    rating: int | None
    default_evaluation: bool
    traffic_light: str | None
    deadlines: list[DeadlineOut]
    tasks: list[TaskOut]
    pending_extension: dict[str, Any] | None = None


def task_out(task: Task) -> TaskOut:
    state = "cancelled" if task.cancelled_at is not None else task.state.value
    return TaskOut(
        task_id=task.task_id,
        unit_code=task.unit_code,
        role=task.role,
        state=state,
        attempt=task.attempt,
        assigned_at=task.assigned_at,
        assignee_staff_id=task.assignee_staff_id,
        accepted_at=task.accepted_at,
        completed_at=task.completed_at,
        result=task.result,
        fixed=task.fixed,
    )


def case_out(case: Case, now: datetime) -> CaseOut:
    clocks = [c for c in (case.response, case.resolution) if c is not None]
    light = case.traffic_light(now)
    pending = case.pending_extension
    return CaseOut(
        case_id=case.case_id,
        case_no=case.case_no,
        state=case.state,
        category_code=case.category_code,
        grid_code=case.grid_code,
        tier=case.tier,
        lead_unit=case.lead_unit,
        supervised=case.supervised,
        near_boundary=case.near_boundary,
        operator_queue=case.operator_queue.value if case.operator_queue else None,
        outcome=case.outcome,
        outcome_reason=case.outcome_reason,
        self_handled=case.self_handled,
        refusal_count=case.refusal_count,
        rework_count=case.rework_count,
        reopen_count=case.reopen_count,
        excluded_units=list(case.excluded_units),
        reported_at=case.reported_at,
        registered_at=case.registered_at,
        closed_at=case.closed_at,
        rating=case.rating,
        default_evaluation=case.default_evaluation,
        traffic_light=light.value if light else None,
        deadlines=[
            DeadlineOut(
                kind=c.kind,
                started_at=c.started_at,
                warn_at=c.warn_at,
                due_at=c.due_at,
                met_at=c.met_at,
                paused=c.paused_at is not None,
                traffic_light=c.traffic_light(now).value,
                basis=c.as_payload().basis.value,
                limit_amount=c.limit.amount,
                limit_unit=c.limit.unit.value,
            )
            for c in clocks
        ],
        tasks=[task_out(t) for t in case.tasks],
        pending_extension=(
            {
                "request_id": str(pending.request_id),
                "kind": pending.kind.value,
                "requested_due_at": pending.requested_due_at.isoformat(),
                "task_id": str(pending.task_id) if pending.task_id else None,
            }
            if pending
            else None
        ),
    )


# --- running commands ------------------------------------------------------------------------

Command = Callable[[Case, datetime], list[CaseEvent]]


def _not_found(what: str) -> Problem:
    return Problem(404, "Not found", what, type=NOT_FOUND)


async def _case_id(conn: asyncpg.Connection, ref: str) -> UUID:
    case_id = await repo.find_case_id(conn, ref)
    if case_id is None:
        raise _not_found(f"No case with id or number {ref!r}.")
    return case_id


async def _run(
    rt: Runtime,
    ref: str,
    command: Command,
    check: Callable[[Case], None] | None = None,
) -> CaseOut:
    """Run `command` on the case (`Workflow.execute_alone`); domain errors become 409/422."""

    def guarded(case: Case, now: datetime) -> list[CaseEvent]:
        if check is not None:
            check(case)
        return command(case, now)

    async def run(workflow: Workflow, conn: asyncpg.Connection) -> Outcome:
        # A case id needs no lookup of its own: loading the case for update finds it,
        # or CaseNotFound.
        case_id = repo.as_case_id(ref) or await _case_id(conn, ref)
        return await workflow.execute_alone(conn, case_id, guarded)

    return await _apply(rt, run, f"No case with id or number {ref!r}.")


# A unit's command on its task: the case, the time and who acts (the unit or an operator).
TaskCommand = Callable[[Case, datetime, Actor], list[CaseEvent]]


async def _run_on_task(
    rt: Runtime, task_id: UUID, principal: Principal, command: TaskCommand
) -> CaseOut:
    """Run a unit's `command` on the case holding `task_id`: the case is found by its task
    and read in one statement, then the caller must hold the task (its unit) or be an
    operator."""

    def guarded(case: Case, now: datetime) -> list[CaseEvent]:
        return command(case, now, _task_actor(case, task_id, principal))

    async def run(workflow: Workflow, conn: asyncpg.Connection) -> Outcome:
        return await workflow.execute_alone_on_task(conn, task_id, guarded)

    return await _apply(rt, run, f"No task {task_id}.")


async def _apply(
    rt: Runtime, run: Callable[[Workflow, asyncpg.Connection], Awaitable[Outcome]], missing: str
) -> CaseOut:
    workflow = _workflow(rt)
    async with rt.db.acquire() as conn:
        try:
            outcome = await run(workflow, conn)
        except CaseBusy as exc:
            raise Problem(
                409, "Concurrent update", f"{exc}; try again.", type=CONCURRENT_UPDATE
            ) from exc
        except IllegalTransition as exc:
            raise Problem(409, "Illegal transition", str(exc), type=CONFLICT) from exc
        except InvalidCommand as exc:
            raise Problem(422, "Invalid command", str(exc), type=INVALID) from exc
        except CaseNotFound as exc:
            raise _not_found(missing) from exc
    return case_out(outcome.case, workflow.clock.now())


def _forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, type=FORBIDDEN)


def _actor(principal: Principal, kind: ActorKind) -> Actor:
    return Actor(kind=kind, id=principal.subject[:64], name=principal.name)


# --- workbench ---------------------------------------------------------------------------------


class WorkbenchTask(BaseModel):
    task: TaskOut
    case_id: UUID
    case_no: str
    case_state: CaseState
    category_code: str | None
    grid_code: str | None
    description: str
    supervised: bool
    traffic_light: str | None
    deadlines: list[DeadlineOut]
    followups: list[dict[str, Any]]


@router.get("/units/{unit}/tasks", summary="A unit's open tasks (workbench)")
async def unit_tasks(
    unit: str,
    rt: RT,
    principal: Annotated[
        Principal, Depends(require_roles(auth.OPERATOR, auth.AUDITOR, auth.ANY_UNIT))
    ],
    page: Annotated[PageParams, Depends(page_params)],
    include_closed: bool = False,
) -> Page[WorkbenchTask]:
    if not principal.can_see_unit(unit):
        raise _forbidden(f"A unit sees only its own tasks; this token may not see {unit!r}.")
    after = page.after or {}
    states = None if include_closed else ["assigned", "accepted", "in_progress"]
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(
            """SELECT t.task_id, t.assigned_at, c.data, c.report FROM task t
               JOIN case_ c USING (case_id)
               WHERE t.unit_code = $1 AND ($2::text[] IS NULL OR t.state = ANY($2))
                 AND ($3::timestamptz IS NULL OR (t.assigned_at, t.task_id) > ($3, $4::uuid))
               ORDER BY t.assigned_at, t.task_id LIMIT $5""",
            unit,
            states,
            datetime.fromisoformat(after["at"]) if after else None,
            UUID(after["id"]) if after else None,
            page.limit + 1,
        )
        followups = await conn.fetch(
            """SELECT case_id, at, payload FROM timeline
               WHERE case_id = ANY($1) AND type = 'onegrid.case.followup_added.v1'
               ORDER BY id""",
            list({r["data"]["case_id"] for r in rows}),
        )
    now = _workflow(rt).clock.now()
    items = []
    for row in rows:
        case = repo.decode_case(row["data"])
        task = case.task(row["task_id"])
        out = case_out(case, now)
        items.append(
            WorkbenchTask(
                task=task_out(task),
                case_id=case.case_id,
                case_no=case.case_no,
                case_state=case.state,
                category_code=case.category_code,
                grid_code=case.grid_code,
                description=row["report"]["description"],
                supervised=case.supervised,
                traffic_light=out.traffic_light,
                deadlines=out.deadlines,
                followups=[
                    f["payload"]
                    for f in followups
                    if f["case_id"] == case.case_id and unit in f["payload"].get("forwarded_to", [])
                ],
            )
        )
    return Page.from_rows(
        items,
        page,
        lambda w: {"at": w.task.assigned_at.isoformat(), "id": str(w.task.task_id)},
    )


def _task_actor(case: Case, task_id: UUID, principal: Principal) -> Actor:
    """Who acts on `task_id`: the unit holding it, or an operator; else 403 (logged)."""
    unit = case.task(task_id).unit_code
    if unit in principal.unit_codes:
        return Actor(kind=ActorKind.UNIT, id=unit, name=principal.name)
    if principal.allowed([auth.OPERATOR]):
        return _actor(principal, ActorKind.OPERATOR)
    # Refused and logged: the unit does not hold this task.
    raise _forbidden(f"Task {task_id} is held by unit {unit!r}, not by this token's units.")


UnitOrOperator = Annotated[Principal, Depends(require_roles(auth.OPERATOR, auth.ANY_UNIT))]


class AcceptBody(BaseModel):
    note: str | None = Field(default=None, max_length=1000)
    external_ref: str | None = Field(default=None, max_length=64)


class RefuseBody(BaseModel):
    refusal_reason: RefusalReason
    reason: Reason


class ProgressBody(BaseModel):
    note: LongText
    attachments: Attachments = ()


class CompleteBody(BaseModel):
    result: LongText
    attachments: Attachments = Field(default=(), description="Photo references of the result.")
    fixed: bool = True


class ExtensionBody(BaseModel):
    kind: DeadlineKind = DeadlineKind.RESOLUTION
    requested_due_at: datetime
    reason: Reason


@router.post("/tasks/{task_id}/accept", summary="Accept a task (the unit's response)")
async def accept(task_id: UUID, body: AcceptBody, rt: RT, who: UnitOrOperator) -> CaseOut:
    return await _run_on_task(
        rt,
        task_id,
        who,
        lambda c, now, actor: c.accept_task(
            task_id, actor, now, external_ref=body.external_ref, note=body.note
        ),
    )


@router.post("/tasks/{task_id}/refuse", summary="Refuse a task (wrong jurisdiction)")
async def refuse(task_id: UUID, body: RefuseBody, rt: RT, who: UnitOrOperator) -> CaseOut:
    policy = _workflow(rt).policy()
    return await _run_on_task(
        rt,
        task_id,
        who,
        lambda c, now, actor: c.refuse_task(
            task_id, actor, now, body.refusal_reason, body.reason, policy
        ),
    )


@router.post("/tasks/{task_id}/progress", summary="Report progress")
async def progress(task_id: UUID, body: ProgressBody, rt: RT, who: UnitOrOperator) -> CaseOut:
    return await _run_on_task(
        rt,
        task_id,
        who,
        lambda c, now, actor: c.progress_task(task_id, actor, now, body.note, body.attachments),
    )


@router.post("/tasks/{task_id}/complete", summary="Complete a task with result and photos")
async def complete(task_id: UUID, body: CompleteBody, rt: RT, who: UnitOrOperator) -> CaseOut:
    return await _run_on_task(
        rt,
        task_id,
        who,
        lambda c, now, actor: c.complete_task(
            task_id, actor, now, body.result, body.attachments, fixed=body.fixed
        ),
    )


@router.post("/tasks/{task_id}/extension", summary="Ask for more time")
async def request_extension(
    task_id: UUID, body: ExtensionBody, rt: RT, who: UnitOrOperator
) -> CaseOut:
    return await _run_on_task(
        rt,
        task_id,
        who,
        lambda c, now, actor: c.request_extension(
            actor,
            now,
            uuid4(),
            body.requested_due_at,
            body.reason,
            kind=body.kind,
            task_id=task_id,
        ),
    )


# --- operator actions ------------------------------------------------------------------------

Operator = Annotated[Principal, Depends(require_roles(auth.OPERATOR))]


class QueueItem(BaseModel):
    case_id: UUID
    case_no: str
    state: CaseState
    reason: str
    detail: str | None
    queued_at: datetime


@router.get("/operator/queue", summary="Cases waiting for an operator")
async def operator_queue(
    rt: RT,
    _: Operator,
    page: Annotated[PageParams, Depends(page_params)],
    reason: str | None = None,
) -> Page[QueueItem]:
    after = page.after or {}
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(
            """SELECT q.case_id, c.case_no, c.state, q.reason, q.detail, q.queued_at
               FROM operator_queue q JOIN case_ c USING (case_id)
               WHERE ($1::text IS NULL OR q.reason = $1)
                 AND ($2::timestamptz IS NULL OR (q.queued_at, q.case_id) > ($2, $3::uuid))
               ORDER BY q.queued_at, q.case_id LIMIT $4""",
            reason,
            datetime.fromisoformat(after["at"]) if after else None,
            UUID(after["id"]) if after else None,
            page.limit + 1,
        )
    items = [QueueItem(**dict(r)) for r in rows]
    return Page.from_rows(
        items, page, lambda q: {"at": q.queued_at.isoformat(), "id": str(q.case_id)}
    )


class RegisterBody(BaseModel):
    note: str | None = Field(default=None, max_length=1000)


class RejectBody(BaseModel):
    reject_reason: RejectReason
    reason: Reason
    duplicate_of: UUID | None = None


class RecategoriseBody(BaseModel):
    category_code: CategoryCode
    reason: Reason


class RelocateBody(BaseModel):
    grid_code: GridCode
    reason: Reason
    location: Location | None = None


class DispatchBody(BaseModel):
    """An operator names the units (a jurisdiction dispute, no rule, a failed delivery)."""

    tier: Tier
    lead_unit: UnitCode
    assisting_units: list[UnitCode] = Field(default_factory=list, max_length=16)


class ExtensionDecisionBody(BaseModel):
    approve: bool
    reason: Reason
    new_due_at: datetime | None = None


def _limits(rt: Runtime, category_code: str) -> Any:
    info = _workflow(rt).registry.category(category_code)
    if info is None:
        raise Problem(
            422,
            "Unknown category",
            f"Category {category_code!r} is not in the registry.",
            type=INVALID,
            field="category_code",
        )
    return info.limits


@router.post("/cases/{ref}/register", summary="Register a case (立案)")
async def register(ref: str, body: RegisterBody, rt: RT, who: Operator) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)

    def command(c: Case, now: datetime) -> list[CaseEvent]:
        if c.category_code is None:
            raise InvalidCommand(f"case {c.case_id} has no category: recategorise it first")
        limits = _limits(rt, c.category_code)
        return c.register(actor, now, limits, automatic=False, note=body.note)

    return await _run(rt, ref, command)


@router.post("/cases/{ref}/reject", summary="Do not register (不予立案)")
async def reject(ref: str, body: RejectBody, rt: RT, who: Operator) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)
    return await _run(
        rt,
        ref,
        lambda c, now: c.reject(actor, now, body.reject_reason, body.reason, body.duplicate_of),
    )


@router.post("/cases/{ref}/recategorise", summary="Change the category")
async def recategorise(ref: str, body: RecategoriseBody, rt: RT, who: Operator) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)
    limits = _limits(rt, body.category_code)
    return await _run(
        rt, ref, lambda c, now: c.recategorise(actor, now, body.category_code, limits, body.reason)
    )


@router.post(
    "/cases/{ref}/relocate",
    summary="Move the case to another grid (e.g. a near-boundary case), in one action",
)
async def relocate(ref: str, body: RelocateBody, rt: RT, who: Operator) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)
    path = _workflow(rt).registry.grid_path(body.grid_code)
    return await _run(
        rt,
        ref,
        lambda c, now: c.relocate(
            actor, now, body.grid_code, body.reason, location=body.location, grid_path=path
        ),
    )


@router.post("/cases/{ref}/dispatch", summary="Resolve a dispute: send to named units")
async def operator_dispatch(ref: str, body: DispatchBody, rt: RT, who: Operator) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)
    registry = _workflow(rt).registry
    for unit in (body.lead_unit, *body.assisting_units):
        if registry.integration_mode(unit) is None:
            raise Problem(
                422, "Unknown unit", f"Unit {unit!r} is not in the registry.", type=INVALID
            )
    route = Route(body.tier, body.lead_unit, tuple(body.assisting_units))
    policy = _workflow(rt).policy()
    return await _run(rt, ref, lambda c, now: c.operator_dispatch(actor, now, route, policy))


@router.post("/cases/{ref}/extensions/{request_id}/decision", summary="Approve or refuse")
async def decide_extension(
    ref: str, request_id: UUID, body: ExtensionDecisionBody, rt: RT, who: Operator
) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)
    policy = _workflow(rt).policy()
    return await _run(
        rt,
        ref,
        lambda c, now: c.decide_extension(
            actor,
            now,
            request_id,
            approve=body.approve,
            reason=body.reason,
            policy=policy,
            new_due_at=body.new_due_at,
        ),
    )


# --- verification, evaluation, follow-ups, reopen ------------------------------------------


class VerificationBody(BaseModel):
    passed: bool
    note: str | None = Field(default=None, max_length=1000)
    attachments: Attachments = ()


@router.post("/cases/{ref}/verification", summary="On-site check by a grid worker")
async def verification(
    ref: str,
    body: VerificationBody,
    rt: RT,
    who: Annotated[Principal, Depends(require_roles(auth.GRID_WORKER, auth.OPERATOR))],
) -> CaseOut:
    is_worker = who.has_role(auth.GRID_WORKER)
    actor = _actor(who, ActorKind.GRID_WORKER if is_worker else ActorKind.OPERATOR)

    def check(case: Case) -> None:
        if who.allowed([auth.OPERATOR]):
            return
        assigned = [t.assignee_staff_id for t in case.tasks if t.role is TaskRole.VERIFY]
        if who.subject not in assigned and (
            case.grid_code is None or case.grid_code not in who.grid_codes
        ):
            raise _forbidden(f"Grid worker {who.subject} is not a worker of this case's grid.")

    return await _run(
        rt,
        ref,
        lambda c, now: c.verify(
            actor, now, passed=body.passed, note=body.note, attachments=body.attachments
        ),
        check,
    )


Reporter = Annotated[Principal, Depends(require_roles(auth.REPORTER, auth.OPERATOR))]


def _reporter_check(who: Principal) -> Callable[[Case], None]:
    def check(case: Case) -> None:
        if who.allowed([auth.OPERATOR]):
            return
        if who.subject not in case.reporter_ids:
            raise _forbidden("Only a reporter of this case may do this.")

    return check


def _reporter_actor(who: Principal) -> Actor:
    operator = who.allowed([auth.OPERATOR]) and not who.has_role(auth.REPORTER)
    return _actor(who, ActorKind.OPERATOR if operator else ActorKind.REPORTER)


class EvaluationBody(BaseModel):
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=1000)
    reporter_id: str | None = Field(
        default=None, max_length=64, description="When an operator records it for a reporter."
    )


@router.post("/cases/{ref}/evaluation", summary="The reporter's 1–5 rating")
async def evaluation(ref: str, body: EvaluationBody, rt: RT, who: Reporter) -> CaseOut:
    actor = _reporter_actor(who)

    def command(c: Case, now: datetime) -> list[CaseEvent]:
        reporter = body.reporter_id or (
            who.subject if actor.kind is ActorKind.REPORTER else c.reporter_ids[0]
        )
        return c.evaluate(actor, now, reporter, body.rating, body.comment)

    return await _run(rt, ref, command, _reporter_check(who))


class FollowUpBody(BaseModel):
    text: LongText
    attachments: Attachments = ()


@router.post("/cases/{ref}/followups", summary="More detail from a reporter; reaches the units")
async def followup(ref: str, body: FollowUpBody, rt: RT, who: Reporter) -> CaseOut:
    actor = _reporter_actor(who)
    return await _run(
        rt,
        ref,
        lambda c, now: c.follow_up(actor, now, uuid4(), body.text, body.attachments),
        _reporter_check(who),
    )


class ReopenBody(BaseModel):
    reason: Reason


@router.post("/cases/{ref}/reopen", summary="Not fixed: reopen within 7 days of closure")
async def reopen(ref: str, body: ReopenBody, rt: RT, who: Reporter) -> CaseOut:
    actor = _reporter_actor(who)
    policy = _workflow(rt).policy()
    return await _run(
        rt,
        ref,
        lambda c, now: c.reopen(actor, now, body.reason, policy),
        _reporter_check(who),
    )


# --- queries ---------------------------------------------------------------------------------

Reader = Annotated[
    Principal,
    Depends(
        require_roles(auth.OPERATOR, auth.AUDITOR, auth.SERVICE, auth.ANY_UNIT, auth.GRID_WORKER)
    ),
]


def _sees_all(who: Principal) -> bool:
    return who.allowed([auth.OPERATOR, auth.AUDITOR, auth.SERVICE])


@router.get("/cases", summary="Cases, newest first, with filters")
async def list_cases(
    rt: RT,
    who: Reader,
    page: Annotated[PageParams, Depends(page_params)],
    state: Annotated[list[CaseState] | None, Query()] = None,
    grid: Annotated[str | None, Query(description="Grid code; its sub-grids included.")] = None,
    unit: str | None = None,
    category: str | None = None,
    overdue: bool | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    queue: Literal["any"] | None = None,
) -> Page[CaseOut]:
    for name, value in (("created_from", created_from), ("created_to", created_to)):
        if value is not None and value.tzinfo is None:
            raise Problem(
                422,
                "Invalid filter",
                f"{name} needs a time zone offset.",
                type=INVALID,
                field=name,
            )
    units: list[str] | None = None
    grids: list[str] | None = None
    if not _sees_all(who):
        units = sorted(who.unit_codes) or None
        grids = sorted(who.grid_codes) if not units else None
        if units is None and not grids:
            return Page(items=[])
        if unit is not None and units is not None and unit not in units:
            raise _forbidden(f"A unit sees only its own cases; not {unit!r}.")
    now = _workflow(rt).clock.now()
    after = page.after or {}
    path = None
    if grid is not None:
        path = "/".join(_workflow(rt).registry.grid_path(grid))
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(
            """SELECT data, reported_at, case_id FROM case_
               WHERE ($1::text[] IS NULL OR state = ANY($1))
                 AND ($2::text IS NULL OR grid_path = $2 OR grid_path LIKE $2 || '/%')
                 AND ($3::text IS NULL OR $3 = ANY(units))
                 AND ($4::text IS NULL OR category_code = $4)
                 AND ($5::boolean IS NULL OR $5 = (resolution_due_at < $6 AND resolved_at IS NULL
                      AND state NOT IN ('closed', 'evaluated', 'rejected')))
                 AND ($7::timestamptz IS NULL OR reported_at >= $7)
                 AND ($8::timestamptz IS NULL OR reported_at < $8)
                 AND ($9::text[] IS NULL OR units && $9)
                 AND ($10::text[] IS NULL OR grid_code = ANY($10))
                 AND ($11::text IS NULL OR operator_queue IS NOT NULL)
                 AND ($12::timestamptz IS NULL OR (reported_at, case_id) < ($12, $13::uuid))
               ORDER BY reported_at DESC, case_id DESC LIMIT $14""",
            [s.value for s in state] if state else None,
            path,
            unit,
            category,
            overdue,
            now,
            created_from,
            created_to,
            units,
            grids,
            queue,
            datetime.fromisoformat(after["at"]) if after else None,
            UUID(after["id"]) if after else None,
            page.limit + 1,
        )
    items = [case_out(repo.decode_case(r["data"]), now) for r in rows]
    return Page.from_rows(
        items, page, lambda c: {"at": c.reported_at.isoformat(), "id": str(c.case_id)}
    )


async def _readable_case(rt: Runtime, ref: str, who: Principal) -> tuple[Case, asyncpg.Record]:
    async with rt.db.acquire() as conn:
        case_id = await _case_id(conn, ref)
        row = await conn.fetchrow("SELECT data, units FROM case_ WHERE case_id=$1", case_id)
    assert row is not None
    case = repo.decode_case(row["data"])
    if not _sees_all(who):
        own_unit = bool(who.unit_codes & set(row["units"]))
        own_grid = case.grid_code is not None and case.grid_code in who.grid_codes
        if not (own_unit or own_grid):
            # Not 403: a unit learns nothing about cases it does not hold.
            raise _not_found(f"No case with id or number {ref!r}.")
    return case, row


@router.get("/cases/{ref}", summary="One case by id or case number")
async def get_case(ref: str, rt: RT, who: Reader) -> CaseOut:
    case, _ = await _readable_case(rt, ref, who)
    return case_out(case, _workflow(rt).clock.now())


async def _notifications(rt: Runtime, case_id: UUID) -> tuple[list[dict[str, Any]], str]:
    """The case's notifications from the notification service, and how that went."""
    base = settings_of(rt).notification_url
    if not base:
        return [], "not_configured"
    token = auth.mint_token("dispatch", ["auditor"], settings=rt.settings.security)
    headers = {"Authorization": f"Bearer {token}"}
    traceparent = inject_traceparent()
    if traceparent:
        headers["traceparent"] = traceparent
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    try:
        async with httpx.AsyncClient(base_url=str(base), timeout=5.0) as client:
            for _ in range(20):  # at most 10,000 notifications
                params: dict[str, Any] = {"case_id": str(case_id), "limit": 500}
                if cursor:
                    params["cursor"] = cursor
                response = await client.get("/v1/notifications", params=params, headers=headers)
                response.raise_for_status()
                body = response.json()
                items += body["items"]
                cursor = body.get("next_cursor")
                if not cursor:
                    break
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        _log.warning("timeline of %s: notifications unavailable: %s", case_id, exc)
        return [], "unavailable"
    return items, "ok"


@router.get(
    "/cases/{ref}/timeline",
    summary="The merged timeline: transitions, task messages, department replies, "
    "notifications, in time order, with deadlines and trace ids",
)
async def timeline(
    ref: str, rt: RT, who: Reader, page: Annotated[PageParams, Depends(page_params)]
) -> tl.TimelinePage:
    case, _ = await _readable_case(rt, ref, who)
    async with rt.db.acquire() as conn:
        events = await conn.fetch(
            "SELECT event_id, type, at, actor, reason, trace_id, span_id, payload"
            " FROM timeline WHERE case_id = $1 ORDER BY id",
            case.case_id,
        )
        messages = await conn.fetch(
            "SELECT message_id, direction, type, unit_code, at, trace_id, span_id, payload"
            " FROM task_message WHERE case_id = $1 ORDER BY id",
            case.case_id,
        )
        clock_rows = await conn.fetch(
            "SELECT kind, started_at, warn_at, due_at, met_at, paused_at FROM deadline"
            " WHERE case_id = $1 ORDER BY kind",
            case.case_id,
        )
    notifications, notification_status = await _notifications(rt, case.case_id)
    entries = [tl.lifecycle_entry(r) for r in events]
    entries += [tl.task_message_entry(r) for r in messages]
    entries += [tl.notification_entry(n) for n in notifications]
    merged = tl.merge(entries, [tl.Clock(**dict(r)) for r in clock_rows])
    start = int((page.after or {}).get("i", 0))
    end = start + page.limit
    return tl.TimelinePage(
        case_id=str(case.case_id),
        case_no=case.case_no,
        state=case.state.value,
        items=merged[start:end],
        next_cursor=encode_cursor({"i": end}) if end < len(merged) else None,
        sources={"dispatch": "ok", "notification": notification_status},
    )


__all__ = ["case_out", "encode_cursor", "router"]
