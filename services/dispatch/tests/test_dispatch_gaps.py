"""Near a boundary at registration; a late acceptance after a delivery failure; operator
suspend/resume over HTTP; a grid worker's verification tasks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from onegrid_contracts.registry import Grid
from onegrid_contracts.tasks import DeptTaskAccepted, DeptTaskDeliveryFailed
from onegrid_dispatch.domain.ports import ManualClock
from onegrid_dispatch.registry import StaticRegistry
from onegrid_dispatch.testing import GRID, T0, WORKER, Harness, report
from onegrid_dispatch.workflow import Workflow

COMMUNITY = GRID[:12]
NEIGHBOUR = COMMUNITY + "002"


def _square(code: str, west: float) -> Grid:
    ring = [[west, 30.70], [west + 0.01, 30.70], [west + 0.01, 30.71], [west, 30.71], [west, 30.70]]
    return Grid.model_validate(
        {
            "code": code,
            "name": "测试网格",
            "level": "grid",
            "parent_code": COMMUNITY,
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
    )


def _workflow(near_m: float) -> Workflow:
    # Two grids side by side; their shared edge is at lon 111.30.
    registry = StaticRegistry(grids=[_square(GRID, 111.29), _square(NEIGHBOUR, 111.30)])
    return Workflow(registry=registry, clock=ManualClock(T0), near_boundary_m=near_m)


def _at(lon: float, lat: float = 30.705) -> Any:
    event = report("environment.exposed_garbage")
    location = event.location.model_copy(update={"lon": lon, "lat": lat})  # type: ignore[union-attr]
    return event.model_copy(update={"location": location})


def test_a_report_within_the_distance_of_another_grid_is_near_a_boundary() -> None:
    workflow = _workflow(50)
    assert workflow.near_boundary(_at(111.2998))  # about 19 m from the neighbour
    assert not workflow.near_boundary(_at(111.295))  # about 480 m from it
    assert not workflow.near_boundary(_at(111.2998, lat=30.75))  # outside every grid


def test_the_boundary_distance_is_configurable_and_zero_turns_it_off() -> None:
    assert workflow_near(_workflow(600), 111.295)
    assert not workflow_near(_workflow(0), 111.2998)


def workflow_near(workflow: Workflow, lon: float) -> bool:
    return workflow.near_boundary(_at(lon))


def lead(case: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in case["tasks"] if t["role"] == "lead" and t["state"] != "cancelled")


@pytest.mark.integration
async def test_an_acceptance_after_a_delivery_failure_takes_the_case_out_of_the_queue(
    harness: Harness,
) -> None:
    h = harness
    event = report(h.city.dept_category)
    case = await h.dispatched(event)
    base = {
        "task_id": lead(case)["task_id"],
        "unit_code": h.city.urban,
        "case_id": event.case_id,
        "case_no": event.case_no,
    }
    await h.reply(DeptTaskDeliveryFailed(**base, at=h.clock.now(), error="HTTP 503", attempts=8))
    await h.wait_case(event.case_id, lambda c: c["operator_queue"] == "delivery_failed")
    queue = await h.client.get("/v1/operator/queue?limit=500", headers=h.operator)
    assert str(event.case_id) in {i["case_id"] for i in queue.json()["items"]}

    # The department is back: the adapter delivers the queued task and it is accepted.
    await h.reply(DeptTaskAccepted(**base, at=h.clock.now(), external_ref="EXT-LATE"))
    case = await h.wait_case(event.case_id, lambda c: c["operator_queue"] is None)
    assert case["state"] == "in_progress"
    assert lead(case)["state"] == "accepted"
    queue = await h.client.get("/v1/operator/queue?limit=500", headers=h.operator)
    assert str(event.case_id) not in {i["case_id"] for i in queue.json()["items"]}


@pytest.mark.integration
async def test_an_operator_suspends_and_resumes_a_case_over_http(harness: Harness) -> None:
    h = harness
    event = report(h.city.dept_category)
    await h.report(event)
    await h.wait_case(event.case_id, lambda c: c["state"] == "dispatched")
    url = f"/v1/cases/{event.case_no}"

    response = await h.client.post(
        f"{url}/suspend", json={"reason": "等待产权方确认"}, headers=h.unit(h.city.urban)
    )
    assert response.status_code == 403
    response = await h.client.post(
        f"{url}/suspend", json={"reason": "等待产权方确认"}, headers=h.operator
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "suspended"
    response = await h.client.post(f"{url}/suspend", json={"reason": "再次"}, headers=h.operator)
    assert response.status_code == 409
    response = await h.client.post(f"{url}/resume", json={}, headers=h.operator)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"reason"}

    response = await h.client.post(
        f"{url}/resume", json={"reason": "产权方已确认"}, headers=h.operator
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "dispatched"
    types = await h.timeline_types(event.case_id)
    assert types[-2:] == ["suspended.v1", "resumed.v1"]


@pytest.mark.integration
async def test_a_grid_worker_reads_their_own_verification_tasks_only(harness: Harness) -> None:
    h = harness
    event = report(h.city.grid_category)
    case = await h.dispatched(event)
    task = lead(case)
    headers = h.unit(task["unit_code"])
    response = await h.client.post(f"/v1/tasks/{task['task_id']}/accept", json={}, headers=headers)
    assert response.status_code == 200, response.text
    response = await h.client.post(
        f"/v1/tasks/{task['task_id']}/complete",
        json={"result": "已清理", "attachments": []},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    await h.wait_case(event.case_id, lambda c: any(t["role"] == "verify" for t in c["tasks"]))

    response = await h.client.get(f"/v1/grid-workers/{WORKER}/verifications", headers=h.worker)
    assert response.status_code == 200, response.text
    mine = [i for i in response.json()["items"] if i["case_id"] == str(event.case_id)]
    assert len(mine) == 1
    assert mine[0]["task"]["role"] == "verify"
    assert mine[0]["case_state"] == "handled"

    other = h.token("S0009999", "grid_worker", grids=(GRID,))
    response = await h.client.get(f"/v1/grid-workers/{WORKER}/verifications", headers=other)
    assert response.status_code == 403
    response = await h.client.get(f"/v1/grid-workers/{WORKER}/verifications", headers=h.operator)
    assert response.status_code == 200
    response = await h.client.get(
        f"/v1/grid-workers/{WORKER}/verifications", headers=h.unit(h.city.urban)
    )
    assert response.status_code == 403
    unknown = f"S{uuid.uuid4().int % 10**7:07d}"
    response = await h.client.get(f"/v1/grid-workers/{unknown}/verifications", headers=h.operator)
    assert response.json()["items"] == []
