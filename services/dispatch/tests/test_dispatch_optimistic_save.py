"""A person's command runs outside a transaction: the case is saved only if nobody saved it
since it was read; otherwise the command is decided again on the case as it is now."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime
from uuid import UUID

import pytest

from onegrid_contracts.cases import CaseEvent
from onegrid_dispatch.db import repository as repo
from onegrid_dispatch.domain.case import Case
from onegrid_dispatch.testing import Harness, report
from onegrid_dispatch.workflow import CaseBusy, Workflow

pytestmark = pytest.mark.integration


async def _dispatched_case(h: Harness) -> UUID:
    event = report(h.city.dept_category)
    await h.report(event)
    await h.wait_case(event.case_id, lambda c: c["state"] == "dispatched")
    return event.case_id


async def _version(h: Harness, case_id: UUID) -> int:
    version: int = await h.rt.db.fetchval("SELECT version FROM case_ WHERE case_id=$1", case_id)
    return version


async def _save_elsewhere(h: Harness, loaded: repo.LoadedCase) -> None:
    """Another writer saves the case (a copy of what was read) on its own connection."""
    async with h.rt.db.acquire() as other:
        assert await repo.save_case(other, copy.deepcopy(loaded), next_timer_at=None, grid_path=())


async def test_a_stale_save_writes_nothing_and_says_so(harness: Harness) -> None:
    h = harness
    case_id = await _dispatched_case(h)
    async with h.rt.db.acquire() as conn:
        stale = await repo.load(conn, case_id)
        assert stale is not None
        await _save_elsewhere(h, stale)
        before = await _version(h, case_id)
        timeline = await conn.fetchval("SELECT count(*) FROM timeline WHERE case_id=$1", case_id)
        stale.case.supervised = True

        assert not await repo.save_case(conn, stale, next_timer_at=None, grid_path=())

        assert await _version(h, case_id) == before
        assert (await h.case(case_id))["supervised"] is False
        after = await conn.fetchval("SELECT count(*) FROM timeline WHERE case_id=$1", case_id)
        assert after == timeline


async def test_a_command_is_decided_again_when_the_case_changed_meanwhile(
    harness: Harness,
) -> None:
    h = harness
    case_id = await _dispatched_case(h)
    workflow: Workflow = h.rt.state["workflow"]
    start = await _version(h, case_id)
    decided: list[int] = []

    async def load_then_changed_by_someone() -> repo.LoadedCase | None:
        loaded = await repo.load(conn, case_id)
        assert loaded is not None
        if not decided:  # the first time only: somebody saves between read and save
            await _save_elsewhere(h, loaded)
        return loaded

    def supervise(case: Case, _now: datetime) -> list[CaseEvent]:
        decided.append(case.case_id.int)
        case.supervised = True
        return []

    async with h.rt.db.acquire() as conn:
        outcome = await workflow._execute_alone(conn, load_then_changed_by_someone, supervise)

    assert len(decided) == 2  # decided on the stale case, then on the saved one
    assert outcome.case.supervised
    assert await _version(h, case_id) == start + 2  # the other writer's save, then ours
    assert (await h.case(case_id))["supervised"] is True


async def test_a_case_that_changes_every_time_ends_in_case_busy(harness: Harness) -> None:
    h = harness
    case_id = await _dispatched_case(h)
    workflow: Workflow = h.rt.state["workflow"]
    start = await _version(h, case_id)

    async def always_changed() -> repo.LoadedCase | None:
        loaded = await repo.load(conn, case_id)
        assert loaded is not None
        await _save_elsewhere(h, loaded)
        return loaded

    def supervise(case: Case, _now: datetime) -> list[CaseEvent]:
        case.supervised = True
        return []

    async with h.rt.db.acquire() as conn:
        with pytest.raises(CaseBusy):
            await workflow._execute_alone(conn, always_changed, supervise)

    # Only the other writer's saves landed; the command never did.
    assert await _version(h, case_id) == start + workflow.max_save_attempts
    assert (await h.case(case_id))["supervised"] is False


async def test_a_command_alone_refuses_to_run_inside_a_transaction(harness: Harness) -> None:
    h = harness
    case_id = await _dispatched_case(h)
    workflow: Workflow = h.rt.state["workflow"]
    async with h.rt.db.acquire() as conn, conn.transaction():
        with pytest.raises(RuntimeError, match="outside a transaction"):
            await workflow.execute_alone(conn, case_id, lambda _c, _n: [])


async def test_concurrent_acceptances_of_one_task_accept_it_once(harness: Harness) -> None:
    """Concurrent HTTP commands on one case: one wins, the others are decided again on the
    accepted task (an illegal transition, or nothing new), never applied twice."""
    h = harness
    case_id = await _dispatched_case(h)
    case = await h.case(case_id)
    task = next(t for t in case["tasks"] if t["role"] == "lead")
    url = f"/v1/tasks/{task['task_id']}/accept"
    answers = await asyncio.gather(
        *(h.client.post(url, json={}, headers=h.operator) for _ in range(4))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 200
    assert all(s in (200, 409) for s in statuses)
    types = await h.timeline_types(case_id)
    assert len([t for t in types if "accepted" in t]) == 1, types
