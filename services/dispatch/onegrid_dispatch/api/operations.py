"""Operator suspend/resume of a case, and a grid worker's on-site checks (verification
tasks). Beside the main router so that each stays small."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, Field

from onegrid_common import auth
from onegrid_common.auth import Principal, require_roles
from onegrid_common.pagination import Page, PageParams, page_params
from onegrid_contracts.cases import CaseEvent, TaskRole
from onegrid_contracts.primitives import ActorKind
from onegrid_dispatch.api import (
    RT,
    CaseOut,
    Operator,
    WorkbenchTask,
    _actor,
    _forbidden,
    _run,
    _workflow,
    case_out,
    task_out,
)
from onegrid_dispatch.db import repository as repo
from onegrid_dispatch.domain.case import Case

router = APIRouter(prefix="/v1", tags=["dispatch"])


class SuspendBody(BaseModel):
    reason: str = Field(min_length=1, max_length=1000, description="Why the case waits.")
    until: AwareDatetime | None = Field(default=None, description="When it should resume.")


class ResumeBody(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


@router.post("/cases/{ref}/suspend", summary="Suspend a case (deadlines stop)")
async def suspend(ref: str, body: SuspendBody, rt: RT, who: Operator) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)

    def command(c: Case, now: datetime) -> list[CaseEvent]:
        return c.suspend(actor, now, body.reason, body.until)

    return await _run(rt, ref, command)


@router.post("/cases/{ref}/resume", summary="Resume a suspended case (deadlines go on)")
async def resume(ref: str, body: ResumeBody, rt: RT, who: Operator) -> CaseOut:
    actor = _actor(who, ActorKind.OPERATOR)
    policy = _workflow(rt).policy()

    def command(c: Case, now: datetime) -> list[CaseEvent]:
        return c.resume(actor, now, body.reason, policy)

    return await _run(rt, ref, command)


WorkerReader = Annotated[
    Principal, Depends(require_roles(auth.GRID_WORKER, auth.OPERATOR, auth.AUDITOR))
]


@router.get(
    "/grid-workers/{staff_code}/verifications",
    summary="A grid worker's on-site checks (verification tasks), oldest first",
)
async def worker_verifications(
    staff_code: str,
    rt: RT,
    who: WorkerReader,
    page: Annotated[PageParams, Depends(page_params)],
    include_closed: bool = False,
) -> Page[WorkbenchTask]:
    if not who.allowed([auth.OPERATOR, auth.AUDITOR]) and who.subject != staff_code:
        raise _forbidden(f"A grid worker sees only their own checks, not those of {staff_code!r}.")
    after: dict[str, Any] = page.after or {}
    states = None if include_closed else ["assigned", "accepted", "in_progress"]
    async with rt.db.acquire() as conn:
        rows = await conn.fetch(
            """SELECT t.task_id, c.data, c.report FROM task t JOIN case_ c USING (case_id)
               WHERE t.role = $1 AND t.assignee_staff_id = $2
                 AND ($3::text[] IS NULL OR t.state = ANY($3))
                 AND ($4::timestamptz IS NULL OR (t.assigned_at, t.task_id) > ($4, $5::uuid))
               ORDER BY t.assigned_at, t.task_id LIMIT $6""",
            TaskRole.VERIFY.value,
            staff_code,
            states,
            datetime.fromisoformat(after["at"]) if after else None,
            UUID(after["id"]) if after else None,
            page.limit + 1,
        )
    now = _workflow(rt).clock.now()
    items = []
    for row in rows:
        case = repo.decode_case(row["data"])
        out = case_out(case, now)
        items.append(
            WorkbenchTask(
                task=task_out(case.task(row["task_id"])),
                case_id=case.case_id,
                case_no=case.case_no,
                case_state=case.state,
                category_code=case.category_code,
                grid_code=case.grid_code,
                description=row["report"]["description"],
                supervised=case.supervised,
                traffic_light=out.traffic_light,
                deadlines=out.deadlines,
                followups=[],
            )
        )
    return Page.from_rows(
        items,
        page,
        lambda w: {"at": w.task.assigned_at.isoformat(), "id": str(w.task.task_id)},
    )
