"""The case read model: the parties an event leaves, read in the statement that writes it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from onegrid_common import migrations
from onegrid_common.testing.helpers import pool_for, unique
from onegrid_contracts.cases import (
    CaseDispatched,
    CaseRegistered,
    CaseRelocated,
    CaseReported,
    Channel,
    Deadline,
    DeadlineKind,
    TaskAssigned,
    TaskCompleted,
    TaskRole,
    Tier,
)
from onegrid_contracts.primitives import Actor, ActorKind, Location, ReporterRef
from onegrid_notification.db import store
from onegrid_notification.domain.planning import CaseParties
from onegrid_notification.main import make_service

pytestmark = pytest.mark.integration

GRID, NEXT_GRID = "420502003001001", "420502003001002"


@pytest_asyncio.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    schema = unique("notify")
    service = make_service()
    assert service.migrations is not None
    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrations.migrate(conn, schema, [("notification", service.migrations)])
    finally:
        await conn.close()
    pool = await pool_for(pg_dsn, schema)
    try:
        yield pool
    finally:
        await pool.close()


def _case() -> dict[str, Any]:
    return {
        "case_id": uuid.uuid4(),
        "case_no": f"4205-20261123-{uuid.uuid4().int % 1_000_000:06d}",
        "actor": Actor(kind=ActorKind.SYSTEM, id="dispatch"),
        "at": datetime.now(UTC),
    }


def _dispatched(case: dict[str, Any]) -> CaseDispatched:
    due = case["at"] + timedelta(hours=8)
    resolution = Deadline(kind=DeadlineKind.RESOLUTION, due_at=due, limit_minutes=480)
    return CaseDispatched(
        **case, tier=Tier.DEPARTMENT, lead_unit_code="urban", deadlines=(resolution,)
    )


def _reported(case: dict[str, Any], grid: str | None) -> CaseReported:
    return CaseReported(
        **case,
        report_id=uuid.uuid4(),
        channel=Channel.HOTLINE_12345,
        category_code="environment.exposed_garbage",
        grid_code=grid,
        grid_path=(grid,) if grid else (),
        description="江边步道垃圾堆积",
        occurred_at=case["at"],
        reporter=ReporterRef(reporter_id=f"rp-{uuid.uuid4().hex[:8]}", anonymous=True),
    )


async def _record(pool: asyncpg.Pool, event: Any) -> CaseParties:
    async with pool.acquire() as conn, conn.transaction():
        return await store.record_case_event(conn, event)


async def test_the_event_that_places_or_moves_a_case_returns_its_new_grid(
    pool: asyncpg.Pool,
) -> None:
    case = _case()
    await _record(pool, _reported(case, grid=None))
    registered = CaseRegistered(
        **case, category_code="environment.exposed_garbage", grid_code=GRID, automatic=False
    )
    assert (await _record(pool, registered)).grid_code == GRID
    relocated = CaseRelocated(
        **case,
        old_grid_code=GRID,
        new_grid_code=NEXT_GRID,
        location=Location(lon=111.29, lat=30.70),
        grid_path=(NEXT_GRID,),
        reason="事发地点在道路北侧，属于相邻网格",
    )
    parties = await _record(pool, relocated)
    assert (parties.grid_code, len(parties.reporters)) == (NEXT_GRID, 1)


async def test_an_event_of_a_case_not_seen_before_starts_its_parties(pool: asyncpg.Pool) -> None:
    case = _case()
    parties = await _record(pool, _dispatched(case))
    assert (parties.case_no, parties.grid_code, parties.reporters) == (case["case_no"], None, ())


async def test_units_hold_the_case_while_their_task_is_open(pool: asyncpg.Pool) -> None:
    case = _case()
    await _record(pool, _reported(case, grid=GRID))
    task: dict[str, Any] = {**case, "task_id": uuid.uuid4(), "unit_code": "urban"}
    assigned = await _record(pool, TaskAssigned(**task, role=TaskRole.LEAD))
    dispatched = await _record(pool, _dispatched(case))
    completed = await _record(pool, TaskCompleted(**task, result="垃圾已全部清运"))
    assert (assigned.open_units, dispatched.open_units, completed.open_units) == (
        ("urban",),
        ("urban",),
        (),
    )
    assert dispatched.grid_code == GRID
