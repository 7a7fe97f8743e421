"""The case read model (a batch's events applied to their cases' parties with one read and
one write) and the notification queue."""

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
    RefusalReason,
    TaskAssigned,
    TaskCompleted,
    TaskRefused,
    TaskRole,
    Tier,
)
from onegrid_contracts.notify import NotifyChannel, Recipient, RecipientKind, Urgency
from onegrid_contracts.primitives import Actor, ActorKind, Location, ReporterRef
from onegrid_notification.db import store
from onegrid_notification.domain.planning import CaseParties
from onegrid_notification.domain.templates import TemplateCatalogue
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
        [parties] = await store.record_case_events(conn, [event])
        return parties


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


async def test_a_batch_gives_each_event_the_parties_as_they_are_after_it(
    pool: asyncpg.Pool,
) -> None:
    case, other = _case(), _case()
    reported = _reported(case, grid=GRID)
    again = reported.model_copy(update={"report_id": uuid.uuid4()})  # the same reporter
    later = {**case, "at": case["at"] + timedelta(minutes=5)}
    second = _reported(later, grid=None)
    task: dict[str, Any] = {**case, "task_id": uuid.uuid4(), "unit_code": "urban"}
    verify = {**case, "task_id": uuid.uuid4(), "unit_code": "grid"}
    batch = [
        reported,
        _dispatched(other),
        again,
        second,
        TaskAssigned(**task, role=TaskRole.LEAD),
        TaskAssigned(**verify, role=TaskRole.VERIFY),
        TaskCompleted(**task, result="垃圾已全部清运"),
    ]
    async with pool.acquire() as conn, conn.transaction():
        parties = await store.record_case_events(conn, batch)
    ids = [[r.reporter_id for r in p.reporters] for p in parties]
    first, by_second = reported.reporter.reporter_id, second.reporter.reporter_id
    assert ids == [[first], [], [first], [first, by_second], *[[first, by_second]] * 3]
    assert [p.open_units for p in parties] == [(), (), (), (), ("urban",), ("urban",), ()]
    assert [p.grid_code for p in parties] == [GRID, None, GRID, GRID, GRID, GRID, GRID]
    # What the batch wrote is what the next batch reads.
    stored = await _record(pool, _dispatched(case))
    assert ([r.reporter_id for r in stored.reporters], stored.open_units, stored.grid_code) == (
        [first, by_second],
        (),
        GRID,
    )
    assert stored.reporters[1] == second.reporter
    assert (await _record(pool, _dispatched(other))).case_no == other["case_no"]


# --- the notification queue --------------------------------------------------------------


def _notification(
    recipient: Recipient, channels: tuple[NotifyChannel, ...], text: str = "短消息"
) -> store.NewNotification:
    return store.NewNotification(
        request_id=uuid.uuid4(),
        dedup_key=f"test:{uuid.uuid4()}",
        recipient=recipient,
        channels=channels,
        template_id="t",
        template_version=None,
        variables={"text": text},
        urgency=Urgency.NORMAL,
        case_id=None,
        case_no=None,
        requested_by="test",
    )


_RENDERING = store.Rendering(TemplateCatalogue({("t", 1): "{{ text }}"}), "【测试】")


async def _rows(pool: asyncpg.Pool, dedup_keys: list[str]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT dedup_key, channel, status, fallback FROM notification"
        " WHERE dedup_key = ANY($1::text[]) ORDER BY dedup_key, created_at",
        dedup_keys,
    )
    return rows


async def test_notifications_queued_together_each_get_their_first_channel(
    pool: asyncpg.Pool,
) -> None:
    staff = Recipient(kind=RecipientKind.STAFF, id="S1000001")
    reporter = Recipient(kind=RecipientKind.REPORTER, id="rp-1")
    batch = [
        _notification(staff, (NotifyChannel.APP_PUSH, NotifyChannel.SMS)),
        _notification(reporter, (NotifyChannel.SMS,)),
    ]
    async with pool.acquire() as conn, conn.transaction():
        queued = await store.enqueue_many(conn, batch, _RENDERING, datetime.now(UTC))
    assert all(q is not None for q in queued)
    rows = {r["dedup_key"]: r for r in await _rows(pool, [n.dedup_key for n in batch])}
    first, second = (rows[n.dedup_key] for n in batch)
    assert (first["channel"], first["status"], first["fallback"]) == (
        "app_push",
        "pending",
        ["sms"],
    )
    assert (second["channel"], second["status"], second["fallback"]) == ("sms", "pending", [])
    ids = await pool.fetch("SELECT id FROM notification WHERE dedup_key = $1", batch[0].dedup_key)
    assert [r["id"] for r in ids] == [queued[0]]


async def test_a_text_too_long_for_sms_is_dead_lettered_and_the_next_channel_queued(
    pool: asyncpg.Pool,
) -> None:
    staff = Recipient(kind=RecipientKind.STAFF, id="S1000002")
    too_long = _notification(staff, (NotifyChannel.SMS, NotifyChannel.APP_PUSH), "长" * 400)
    fits = _notification(staff, (NotifyChannel.SMS,))
    async with pool.acquire() as conn, conn.transaction():
        queued = await store.enqueue_many(conn, [too_long, fits], _RENDERING, datetime.now(UTC))
    assert None not in queued
    rows = await _rows(pool, [too_long.dedup_key])
    assert [(r["channel"], r["status"], r["fallback"]) for r in rows] == [
        ("sms", "failed", ["app_push"]),
        ("app_push", "pending", []),
    ]
    dead = await pool.fetch(
        "SELECT d.channel, d.error FROM dead_letter d JOIN notification n"
        " ON n.id = d.notification_id WHERE n.dedup_key = $1",
        too_long.dedup_key,
    )
    assert [r["channel"] for r in dead] == ["sms"]
    assert "parts" in dead[0]["error"]


async def test_notifications_queued_before_are_not_queued_again(pool: asyncpg.Pool) -> None:
    staff = Recipient(kind=RecipientKind.STAFF, id="S1000003")
    batch = [_notification(staff, (NotifyChannel.APP_PUSH,)) for _ in range(2)]
    async with pool.acquire() as conn, conn.transaction():
        await store.enqueue_many(conn, batch[:1], _RENDERING, datetime.now(UTC))
    async with pool.acquire() as conn, conn.transaction():
        queued = await store.enqueue_many(conn, batch, _RENDERING, datetime.now(UTC))
    assert queued[0] is None  # the first was queued before
    assert queued[1] is not None
    assert len(await _rows(pool, [n.dedup_key for n in batch])) == 2


async def test_preferences_are_read_for_many_recipients_at_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await store.put_preference(
            conn, store.Preference("staff:S1", (NotifyChannel.EMAIL,), "a@b.cn", None, None)
        )
        prefs = await store.preferences(conn, ["staff:S1", "staff:S2", "staff:S1"])
    assert list(prefs) == ["staff:S1"]
    assert prefs["staff:S1"].channels == (NotifyChannel.EMAIL,)


async def test_reporters_join_in_order_and_a_redelivered_report_adds_none(
    pool: asyncpg.Pool,
) -> None:
    case = _case()
    first = _reported(case, grid=GRID)
    joining = _reported({**case, "at": case["at"] + timedelta(minutes=5)}, grid=GRID)
    alone = await _record(pool, first)
    together = await _record(pool, joining)
    again = await _record(pool, joining)
    ids = [first.reporter.reporter_id, joining.reporter.reporter_id]
    assert [r.reporter_id for r in alone.reporters] == ids[:1]
    assert [r.reporter_id for r in together.reporters] == ids
    assert [r.reporter_id for r in again.reporters] == ids


async def test_a_unit_holds_the_case_until_its_last_open_task_ends(pool: asyncpg.Pool) -> None:
    case = _case()
    await _record(pool, _reported(case, grid=GRID))
    lead: dict[str, Any] = {**case, "task_id": uuid.uuid4(), "unit_code": "urban"}
    helper: dict[str, Any] = {**case, "task_id": uuid.uuid4(), "unit_code": "police"}
    await _record(pool, TaskAssigned(**lead, role=TaskRole.LEAD))
    both = await _record(pool, TaskAssigned(**helper, role=TaskRole.ASSIST))
    again = await _record(pool, TaskAssigned(**helper, role=TaskRole.ASSIST))
    refused = await _record(
        pool,
        TaskRefused(
            **helper, refusal_reason=RefusalReason.NOT_OUR_MATTER, reason="不属于本单位职责"
        ),
    )
    assert both.open_units == ("police", "urban")
    assert again.open_units == ("police", "urban")
    assert refused.open_units == ("urban",)


async def test_channels_asked_for_are_kept_and_the_others_chosen_by_preference_and_kind(
    pool: asyncpg.Pool,
) -> None:
    prefers_mail = Recipient(kind=RecipientKind.STAFF, id="S1000010")
    no_preference = Recipient(kind=RecipientKind.STAFF, id="S1000011")
    async with pool.acquire() as conn:
        await store.put_preference(
            conn,
            store.Preference(prefers_mail.key, (NotifyChannel.EMAIL,), "s10@yc.gov.cn", None),
        )
    batch = [
        _notification(prefers_mail, ()),
        _notification(prefers_mail, (NotifyChannel.SMS,)),  # asked for: the preference waits
        _notification(no_preference, ()),
    ]
    async with pool.acquire() as conn, conn.transaction():
        queued = await store.enqueue_choosing_channels(conn, batch, _RENDERING, datetime.now(UTC))
    assert None not in queued
    rows = {r["dedup_key"]: r for r in await _rows(pool, [n.dedup_key for n in batch])}
    assert [(rows[n.dedup_key]["channel"], rows[n.dedup_key]["fallback"]) for n in batch] == [
        ("email", []),
        ("sms", []),
        ("app_push", ["sms"]),
    ]
