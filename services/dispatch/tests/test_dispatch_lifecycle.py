"""Dispatch end to end in-process: reports from Kafka, replies from adapters, the workbench,
operator actions, verification, evaluation, deadlines; real PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from onegrid_common.service import Runtime
from onegrid_common.testing.helpers import eventually, read_topic
from onegrid_contracts.cases import RefusalReason
from onegrid_contracts.catalogue import unit_tasks_topic
from onegrid_contracts.envelope import decode
from onegrid_contracts.tasks import (
    DeptTaskAccepted,
    DeptTaskAssigned,
    DeptTaskCompleted,
    DeptTaskDeliveryFailed,
    DeptTaskFollowUp,
    DeptTaskRefused,
)
from onegrid_dispatch import timers
from onegrid_dispatch.testing import T0, WORKER, Harness, report

pytestmark = pytest.mark.integration


def lead_task(case: dict[str, Any], state: str = "assigned") -> dict[str, Any]:
    return next(t for t in case["tasks"] if t["role"] == "lead" and t["state"] == state)


async def work_task(h: Harness, case: dict[str, Any], task: dict[str, Any]) -> None:
    """The unit holding `task` accepts and completes it, by workbench or by adapter."""
    unit = task["unit_code"]
    if h.rt.state["workflow"].registry.integration_mode(unit) == "adapter":
        base = {
            "task_id": task["task_id"],
            "unit_code": unit,
            "case_id": case["case_id"],
            "case_no": case["case_no"],
            "at": h.clock.now(),
        }
        await h.reply(DeptTaskAccepted(**base, external_ref="EXT-1"))
        await h.reply(DeptTaskCompleted(**base, result="已处理完毕"))
        return
    headers = h.unit(unit)
    response = await h.client.post(f"/v1/tasks/{task['task_id']}/accept", json={}, headers=headers)
    assert response.status_code == 200, response.text
    response = await h.client.post(
        f"/v1/tasks/{task['task_id']}/complete",
        json={"result": "已清理", "attachments": []},
        headers=headers,
    )
    assert response.status_code == 200, response.text


async def verify(h: Harness, case_id: str, passed: bool, note: str | None = None) -> Any:
    return await h.client.post(
        f"/v1/cases/{case_id}/verification",
        json={"passed": passed, "note": note},
        headers=h.worker,
    )


@pytest.mark.parametrize(
    ("category_attr", "tier"),
    [
        ("grid_category", "grid"),
        ("community_category", "community"),
        ("street_category", "street"),
        ("dept_category", "department"),
    ],
)
async def test_full_lifecycle_of_each_tier(harness: Harness, category_attr: str, tier: str) -> None:
    h = harness
    h.clock.set(T0)
    event = report(getattr(h.city, category_attr))
    case = await h.dispatched(event)
    assert case["tier"] == tier
    assert {d["kind"] for d in case["deadlines"]} == {"response", "resolution"}
    assert case["traffic_light"] == "green"
    h.clock.set(T0 + timedelta(minutes=20))
    for task in [t for t in case["tasks"] if t["state"] == "assigned"]:
        await work_task(h, case, task)
    case = await h.wait_case(event.case_id, lambda c: c["state"] == "handled")
    check = next(t for t in case["tasks"] if t["role"] == "verify")
    assert check["assignee_staff_id"] == WORKER
    response = await verify(h, str(event.case_id), passed=True, note="现场已核实")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "closed"
    assert response.json()["outcome"] == "fixed"
    response = await h.client.post(
        f"/v1/cases/{event.case_no}/evaluation",
        json={"rating": 5, "comment": "很满意"},
        headers=h.reporter(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "evaluated"
    types = await h.timeline_types(event.case_id)
    assert types[:3] == ["reported.v1", "registered.v1", "dispatched.v1"]
    assert types[-4:] == ["verified.v1", "task.cancelled.v1", "closed.v1", "evaluated.v1"] or (
        types[-3:] == ["verified.v1", "closed.v1", "evaluated.v1"]
    )
    assert types.count("handled.v1") == 1


M = TypeVar("M", DeptTaskAssigned, DeptTaskFollowUp)


async def urban_messages(h: Harness, kind: type[M], case_id: uuid.UUID) -> list[M]:
    """The case's messages of `kind` on the urban unit's task topic, once there is one: the
    outbox relay publishes them after the commit the test waited for, and the topic holds
    earlier tests' messages, so reading until any record arrives is not enough."""

    async def found() -> list[M]:
        records = await read_topic(
            h.settings.kafka.bootstrap_servers, unit_tasks_topic(h.city.urban), 10**6, 1.0
        )
        payloads = [decode(r.headers, r.value)[1] for r in records]
        return [p for p in payloads if isinstance(p, kind) and p.case_id == case_id]

    messages: list[M] = await eventually(found, timeout_s=30, what=f"{kind.__name__} of {case_id}")
    return messages


async def test_adapter_unit_gets_the_task_on_its_topic(harness: Harness) -> None:
    h = harness
    event = report(h.city.dept_category)
    await h.report(event)
    await h.wait_case(event.case_id, lambda c: c["state"] == "dispatched")
    mine = await urban_messages(h, DeptTaskAssigned, event.case_id)
    assert len(mine) == 1
    assert mine[0].category_name == "测试类别"
    assert mine[0].description == event.description


async def test_a_department_reply_is_kept_for_the_timeline_only_under_its_own_case(
    harness: Harness,
) -> None:
    h = harness
    event = report(h.city.dept_category)
    case = await h.dispatched(event)
    task = lead_task(case)
    base = {"case_no": event.case_no, "at": h.clock.now(), "unit_code": task["unit_code"]}
    # The task named under another case: refused, and not put in either case's timeline.
    stray_case = uuid.uuid4()
    await h.reply(
        DeptTaskAccepted(
            **base, case_id=stray_case, task_id=task["task_id"], external_ref="STRAY-1"
        )
    )
    await h.reply(
        DeptTaskAccepted(
            **base, case_id=event.case_id, task_id=task["task_id"], external_ref="DEPT-1"
        )
    )
    await h.wait_case(event.case_id, lambda c: any(t["state"] == "accepted" for t in c["tasks"]))

    async def refused() -> list[str]:
        async with h.rt.db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT error FROM refused_reply WHERE task_id = $1", task["task_id"]
            )
        return [r["error"] for r in rows]

    assert "does not hold task" in (await eventually(refused))[0]
    async with h.rt.db.acquire() as conn:
        kept = await conn.fetch(
            "SELECT case_id, payload FROM task_message WHERE task_id = $1 AND direction = 'in'",
            task["task_id"],
        )
    assert [(r["case_id"], r["payload"]["external_ref"]) for r in kept] == [
        (event.case_id, "DEPT-1")
    ]


async def test_refusal_reroutes_without_the_unit_then_dispute_goes_to_operator(
    harness: Harness,
) -> None:
    h = harness
    h.clock.set(T0)
    event = report(h.city.disputed_category)
    case = await h.dispatched(event)
    assert case["lead_unit"] == h.city.police
    base = {"case_id": event.case_id, "case_no": event.case_no, "at": h.clock.now()}
    police_task = lead_task(case)["task_id"]
    # A unit that does not hold the task is refused and logged; nothing changes.
    await h.reply(
        DeptTaskAccepted(**base, task_id=police_task, unit_code=h.city.urban, external_ref="X")
    )
    refusal = DeptTaskRefused(
        **base,
        task_id=police_task,
        unit_code=h.city.police,
        refusal_reason=RefusalReason.NOT_OUR_MATTER,
        reason="不属于公安职责",
    )
    await h.reply(refusal)
    case = await h.wait_case(
        event.case_id, lambda c: c["lead_unit"] == h.city.urban and c["state"] == "dispatched"
    )
    assert case["excluded_units"] == [h.city.police]
    assert case["refusal_count"] == 1
    async with h.rt.db.acquire() as conn:
        refused = await conn.fetch(
            "SELECT unit_code, error FROM refused_reply WHERE case_id=$1", event.case_id
        )
        # Refused, and still on the case's timeline: what the department sent is history.
        kept = await conn.fetch(
            "SELECT unit_code, type FROM task_message WHERE task_id=$1 AND direction='in'"
            " ORDER BY at, type",
            police_task,
        )
    assert [r["unit_code"] for r in refused] == [h.city.urban]
    assert [(r["unit_code"], r["type"]) for r in kept] == [
        (h.city.urban, DeptTaskAccepted.ce_type),
        (h.city.police, DeptTaskRefused.ce_type),
    ]
    urban_task = lead_task(case)["task_id"]
    response = await h.client.post(
        f"/v1/tasks/{urban_task}/refuse",
        json={"refusal_reason": "wrong_jurisdiction", "reason": "不归城管"},
        headers=h.unit(h.city.urban),
    )
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["state"] == "registered"
    assert case["operator_queue"] == "jurisdiction_dispute"
    response = await h.client.get("/v1/operator/queue?limit=500", headers=h.operator)
    assert str(event.case_id) in [q["case_id"] for q in response.json()["items"]]
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/dispatch",
        json={"tier": "department", "lead_unit": h.city.police},
        headers=h.operator,
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "dispatched"
    assert response.json()["lead_unit"] == h.city.police


async def test_failed_verification_sends_the_case_back_as_rework(harness: Harness) -> None:
    h = harness
    h.clock.set(T0)
    event = report(h.city.grid_category)
    case = await h.dispatched(event)
    await work_task(h, case, lead_task(case))
    response = await verify(h, str(event.case_id), passed=False, note="仍有两袋垃圾")
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["state"] == "dispatched"
    assert case["rework_count"] == 1
    second = lead_task(case)
    assert second["attempt"] == 2
    assert second["unit_code"] == h.city.grid_unit
    await work_task(h, case, second)
    assert (await verify(h, str(event.case_id), passed=True)).json()["state"] == "closed"
    # The reporter reopens within 7 days: rework again, counted.
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/reopen", json={"reason": "又堆满了"}, headers=h.reporter()
    )
    assert response.status_code == 200, response.text
    assert response.json()["reopen_count"] == 1
    assert response.json()["rework_count"] == 2
    # Someone else's case: a reporter who did not report it may not reopen it.
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/reopen", json={"reason": "x"}, headers=h.reporter("rp-9")
    )
    assert response.status_code == 403


async def test_warning_then_breach_escalates_one_tier_and_supervises(harness: Harness) -> None:
    h = harness
    h.clock.set(T0)
    event = report(h.city.street_category)
    case = await h.dispatched(event)
    response_due = next(d for d in case["deadlines"] if d["kind"] == "response")
    # 2 working hours from 09:00: warning at 10:36, due 11:00.
    h.clock.set(T0 + timedelta(hours=1, minutes=40))
    while await timers.fire_due(h.rt):
        pass
    case = await h.case(event.case_id)
    assert case["traffic_light"] == "yellow"
    h.clock.set(T0 + timedelta(hours=2, minutes=1))
    while await timers.fire_due(h.rt):
        pass
    case = await h.case(event.case_id)
    assert case["traffic_light"] == "red"
    assert case["tier"] == "department"
    assert case["supervised"] is True
    async with h.rt.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT type, payload FROM timeline WHERE case_id=$1 AND type LIKE '%deadline%'"
            " ORDER BY id",
            event.case_id,
        )
    kinds = [(r["type"], r["payload"]["kind"]) for r in rows]
    assert kinds == [
        ("onegrid.case.deadline.warning.v1", "response"),
        ("onegrid.case.deadline.breached.v1", "response"),
    ]
    assert rows[0]["payload"]["unit_head_staff_id"] == "S0000007"
    assert response_due["due_at"].startswith("2026-11-23T11:00")
    response = await h.client.get("/v1/cases?overdue=false&limit=500", headers=h.operator)
    assert response.status_code == 200


async def test_timers_fire_once_with_two_runtimes(harness: Harness) -> None:
    h = harness
    h.clock.set(T0)
    events = [report(h.city.grid_category) for _ in range(20)]
    for event in events:
        await h.report(event)
    for event in events:
        await h.wait_case(event.case_id, lambda c: c["state"] == "dispatched")
    service = replace(h.rt.service, subscriptions=None, background=())
    other = Runtime(service=service, settings=h.settings)
    other.state["workflow"] = h.rt.state["workflow"]
    other.pool = None
    await other.start()
    try:
        other.state["workflow"] = h.rt.state["workflow"]  # the same manual clock
        h.clock.set(T0 + timedelta(hours=1, minutes=40))

        async def drain(rt: Runtime) -> int:
            total = 0
            while n := await timers.fire_due(rt, limit=3):
                total += n
            return total

        await asyncio.gather(drain(h.rt), drain(other))
    finally:
        await other.stop()
    async with h.rt.db.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM timeline WHERE case_id = ANY($1)"
            " AND type = 'onegrid.case.deadline.warning.v1'",
            [e.case_id for e in events],
        )
    assert count == len(events)


async def test_followup_reaches_adapter_unit_with_open_task(harness: Harness) -> None:
    h = harness
    h.clock.set(T0)
    event = report(h.city.dept_category, reporter="rp-0042")
    await h.report(event)
    await h.wait_case(event.case_id, lambda c: c["state"] == "dispatched")
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/followups",
        json={"text": "旁边还有一个破沙发"},
        headers=h.reporter("rp-0042"),
    )
    assert response.status_code == 200, response.text
    followups = await urban_messages(h, DeptTaskFollowUp, event.case_id)
    assert [f.text for f in followups] == ["旁边还有一个破沙发"]
    # The street office (workbench, assisting) sees it in its task list.
    response = await h.client.get(
        f"/v1/units/{h.city.street_unit}/tasks?limit=500", headers=h.unit(h.city.street_unit)
    )
    mine = [t for t in response.json()["items"] if t["case_id"] == str(event.case_id)]
    assert mine
    assert mine[0]["followups"][0]["text"] == "旁边还有一个破沙发"


async def test_delivery_failure_goes_to_operator_queue(harness: Harness) -> None:
    h = harness
    event = report(h.city.dept_category)
    case = await h.dispatched(event)
    await h.reply(
        DeptTaskDeliveryFailed(
            task_id=lead_task(case)["task_id"],
            unit_code=h.city.urban,
            case_id=event.case_id,
            case_no=event.case_no,
            at=h.clock.now(),
            error="HTTP 503",
            attempts=8,
        )
    )
    case = await h.wait_case(event.case_id, lambda c: c["operator_queue"] == "delivery_failed")
    # The adapter keeps the task queued: it is not withdrawn (a cancellation would follow it).
    assert case["state"] == "dispatched"
    assert lead_task(case)["state"] == "assigned"


async def test_report_in_doubt_waits_for_operator_who_registers_it(harness: Harness) -> None:
    h = harness
    event = report(None)
    await h.report(event)
    case = await h.wait_case(event.case_id, lambda c: c["operator_queue"] == "needs_review")
    assert case["state"] == "reported"
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/recategorise",
        json={"category_code": h.city.grid_category, "reason": "照片显示为垃圾"},
        headers=h.operator,
    )
    assert response.status_code == 200, response.text
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/register", json={}, headers=h.operator
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "dispatched"
    # Registering twice is an illegal transition, answered 409 with a problem body.
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/register", json={}, headers=h.operator
    )
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_resolved_on_site_is_closed_in_the_grid(harness: Harness) -> None:
    h = harness
    event = report(h.city.grid_category, resolved_on_site=True)
    await h.report(event)
    case = await h.wait_case(event.case_id, lambda c: c["state"] == "closed")
    assert case["self_handled"] is True
    assert case["outcome"] == "fixed"
    assert case["tier"] == "grid"


async def test_duplicate_report_joins_the_case_and_default_evaluation_after_7_days(
    harness: Harness,
) -> None:
    h = harness
    h.clock.set(T0)
    event = report(h.city.grid_category, reporter="rp-a")
    case = await h.dispatched(event)
    dup = event.model_copy(
        update={
            "report_id": uuid.uuid4(),
            "duplicate_of": event.case_id,
            "reporter": event.reporter.model_copy(update={"reporter_id": "rp-b"}),
        }
    )
    await h.report(dup)
    for _ in range(100):
        if (await h.timeline_types(event.case_id)).count("reported.v1") == 2:
            break
        await asyncio.sleep(0.1)
    # The second reporter joined the case: they may add a follow-up.
    response = await h.client.post(
        f"/v1/cases/{event.case_id}/followups", json={"text": "还在"}, headers=h.reporter("rp-b")
    )
    assert response.status_code == 200, response.text
    await work_task(h, case, lead_task(case))
    await h.wait_case(event.case_id, lambda c: c["state"] == "handled")
    assert (await verify(h, str(event.case_id), passed=True)).json()["state"] == "closed"
    types = await h.timeline_types(event.case_id)
    assert types.count("reported.v1") == 2
    h.clock.set(T0 + timedelta(days=7, minutes=1))
    while await timers.fire_due(h.rt):
        pass
    case = await h.case(event.case_id)
    assert case["state"] == "evaluated"
    assert case["default_evaluation"] is True


async def test_a_report_delivered_again_changes_nothing_and_a_later_duplicate_still_joins(
    harness: Harness,
) -> None:
    h = harness
    event = report(h.city.grid_category, reporter="rp-a")
    case = await h.dispatched(event)
    await h.report(event)  # intake published it again: a new message, the same case
    dup = event.model_copy(
        update={
            "report_id": uuid.uuid4(),
            "duplicate_of": event.case_id,
            "reporter": event.reporter.model_copy(update={"reporter_id": "rp-b"}),
        }
    )
    await h.report(dup)  # after the repeat on the same partition: read once it is done
    for _ in range(100):
        if (await h.timeline_types(event.case_id)).count("reported.v1") == 2:
            break
        await asyncio.sleep(0.1)
    assert (await h.timeline_types(event.case_id)).count("reported.v1") == 2
    after = await h.case(event.case_id)
    assert (after["state"], len(after["tasks"])) == ("dispatched", len(case["tasks"]))


async def test_units_see_only_their_own_cases(harness: Harness) -> None:
    h = harness
    event = report(h.city.grid_category)
    await h.report(event)
    await h.wait_case(event.case_id, lambda c: c["state"] == "dispatched")
    response = await h.client.get(f"/v1/cases/{event.case_id}", headers=h.unit(h.city.urban))
    assert response.status_code == 404
    response = await h.client.get(f"/v1/cases/{event.case_id}", headers=h.unit(h.city.grid_unit))
    assert response.status_code == 200
    response = await h.client.get(
        f"/v1/units/{h.city.grid_unit}/tasks", headers=h.unit(h.city.urban)
    )
    assert response.status_code == 403
    response = await h.client.get("/v1/cases?limit=500", headers=h.unit(h.city.urban))
    assert str(event.case_id) not in [c["case_id"] for c in response.json()["items"]]
    # Filters and cursor paging.
    response = await h.client.get(
        f"/v1/cases?grid={h.city.grid_unit[5:14]}&state=dispatched&limit=1", headers=h.operator
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    response = await h.client.get(
        f"/v1/cases?grid={h.city.grid_unit[5:14]}&state=dispatched&limit=1&cursor={page['next_cursor']}",
        headers=h.operator,
    )
    assert response.json()["items"][0]["case_id"] != page["items"][0]["case_id"]


async def test_only_the_unit_holding_a_task_or_an_operator_acts_on_it(harness: Harness) -> None:
    h = harness
    event = report(h.city.grid_category)
    case = await h.dispatched(event)
    task = lead_task(case)
    assert task["unit_code"] != h.city.urban
    url = f"/v1/tasks/{task['task_id']}/accept"
    response = await h.client.post(url, json={}, headers=h.unit(h.city.urban))
    assert response.status_code == 403
    assert f"held by unit {task['unit_code']!r}" in response.json()["detail"]
    unknown = uuid.uuid4()
    response = await h.client.post(
        f"/v1/tasks/{unknown}/accept", json={}, headers=h.unit(task["unit_code"])
    )
    assert response.status_code == 404
    assert response.json()["detail"] == f"No task {unknown}."
    # The refused call changed nothing; an operator may act for the unit.
    response = await h.client.get(f"/v1/cases/{event.case_id}", headers=h.operator)
    assert lead_task(response.json())["task_id"] == task["task_id"]
    response = await h.client.post(url, json={}, headers=h.operator)
    assert response.status_code == 200, response.text
    assert lead_task(response.json(), "accepted")["task_id"] == task["task_id"]
