"""One case, one trace: a 路灯故障 report goes from intake through dispatch to the 数字城管
system (adapter-urban and its simulator) and back, is verified on site, closed and
evaluated; every span of it is in the report's trace, forms one tree, and later requests
are linked into it. Then its merged timeline, and the metrics every service counted."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from onegrid_common.telemetry import CASE_ID, SERVICE
from onegrid_common.testing.helpers import eventually
from onegrid_contracts.registry import GridLevel

from .conftest import CaseFlow

pytestmark = pytest.mark.integration

STREETLIGHT = "construction.illegal_building"  # urban management: 数字城管 code 01/01
GARBAGE = "environment.exposed_garbage"  # stays in the grid (workbench)


def _grid_point(flow: CaseFlow, n: int) -> tuple[str, float, float]:
    import shapely.geometry

    grids = [g for g in flow.city.at_level(GridLevel.GRID) if g.geometry is not None and g.active]
    grid = grids[n]
    p = shapely.geometry.shape(grid.geometry.model_dump()).representative_point()
    return grid.code, round(p.x, 6), round(p.y, 6)


async def report(flow: CaseFlow, category: str, n: int) -> tuple[dict[str, Any], str]:
    """POST a grid worker's report; the receipt and the request's trace id."""
    grid, lon, lat = _grid_point(flow, n)
    body = {
        "channel": "grid_worker_app",
        "category_code": category,
        "description": f"测试上报 {uuid.uuid4().hex[:6]}：设施故障需要处理",
        "location": {"lon": lon, "lat": lat},
        "occurred_at": "2026-11-23T09:30:00+08:00",
        "reporter": {"name": "张三", "phone": "13800138000"},
        "attachments": [],
        "resolved_on_site": False,
    }
    headers = {
        **flow.headers(f"w-{uuid.uuid4().hex[:6]}", "grid_worker", grids=(grid,)),
        "Idempotency-Key": uuid.uuid4().hex,
    }
    async with flow.client("intake") as intake:
        response = await intake.post("/v1/reports", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json(), response.headers["traceparent"].split("-")[1]


async def case_of(flow: CaseFlow, ref: str) -> dict[str, Any] | None:
    async with flow.client("dispatch") as dispatch:
        response = await dispatch.get(f"/v1/cases/{ref}", headers=flow.headers("op", "operator"))
    return response.json() if response.status_code == 200 else None


async def wait_state(flow: CaseFlow, ref: str, *states: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        case = await case_of(flow, ref)
        return case if case and case["state"] in states else None

    try:
        result: dict[str, Any] = await eventually(reached, what=f"case {ref} in {states}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last: {await case_of(flow, ref)}") from None
    return result


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def _attr(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)


def span_tree(spans: Sequence[ReadableSpan], trace_id: str) -> str:
    """The trace as indented text (for failure messages): name, kind, service."""
    mine = sorted(
        (s for s in spans if _hex(s.context.trace_id, 32) == trace_id),
        key=lambda s: s.start_time or 0,
    )
    ids = {s.context.span_id for s in mine}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in mine:
        parent = s.parent.span_id if s.parent and s.parent.span_id in ids else None
        children.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in children.get(parent, []):
            orphan = " (ORPHAN)" if depth == 0 and s.parent else ""
            lines.append(f"{'  ' * depth}{s.name} [{s.kind.name} {_attr(s, SERVICE)}]{orphan}")
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def lifecycle() -> dict[str, Any]:
    return {}


async def test_a_case_is_one_trace_from_report_to_evaluation(
    case_flow: CaseFlow, lifecycle: dict[str, Any]
) -> None:
    flow = case_flow
    receipt, trace_id = await report(flow, STREETLIGHT, 3)
    case_id, case_no = str(receipt["case_id"]), receipt["case_no"]
    lifecycle.update(case_id=case_id, case_no=case_no, trace_id=trace_id)

    # The department works through its own system (polled); assisting workbench units too.
    case = await wait_state(flow, case_id, "in_progress", "handled")
    async with flow.client("dispatch") as dispatch:
        for task in case["tasks"]:
            if task["role"] != "assist" or task["state"] != "assigned":
                continue
            unit = flow.headers(f"staff-{task['unit_code']}"[:60], f"unit:{task['unit_code']}")
            accepted = await dispatch.post(
                f"/v1/tasks/{task['task_id']}/accept", json={}, headers=unit
            )
            assert accepted.status_code == 200, accepted.text
            done = await dispatch.post(
                f"/v1/tasks/{task['task_id']}/complete", json={"result": "已配合处置"}, headers=unit
            )
            assert done.status_code == 200, done.text
    try:
        await wait_state(flow, case_id, "handled")
    except AssertionError:
        names = sorted({f"{s.name}@{_attr(s, SERVICE)}" for s in flow.spans.get_finished_spans()})
        raise AssertionError(f"sim cases {len(flow.sim.cases)}; spans {names}") from None
    case = await wait_state(flow, case_id, "handled")
    verify_task = next(t for t in case["tasks"] if t["role"] == "verify")
    worker = verify_task["assignee_staff_id"]
    async with flow.client("dispatch") as dispatch:
        verified = await dispatch.post(
            f"/v1/cases/{case_no}/verification",
            json={"passed": True, "note": "现场核查：路灯已修复"},
            headers=flow.headers(worker, "grid_worker", grids=(case["grid_code"],)),
        )
        assert verified.status_code == 200, verified.text
        verify_trace = verified.headers["traceparent"].split("-")[1]
        assert verified.json()["state"] == "closed"
        evaluated = await dispatch.post(
            f"/v1/cases/{case_no}/evaluation",
            json={"rating": 5, "comment": "很满意"},
            headers=flow.headers("op-1", "operator"),
        )
        assert evaluated.status_code == 200, evaluated.text
    assert evaluated.json()["state"] == "evaluated"
    lifecycle["verify_trace"] = verify_trace

    def case_spans() -> list[ReadableSpan]:
        return [s for s in flow.spans.get_finished_spans() if _attr(s, CASE_ID) == case_id]

    # The last events reach their consumers: evaluated (intake, scoring), closed (notification).
    last_consumers = {("intake", "evaluated"), ("scoring", "evaluated"), ("notification", "closed")}
    wanted = {(svc, event) for svc, event in last_consumers if svc in flow.urls}

    def all_consumed() -> bool:
        seen = {
            (_attr(s, SERVICE), event)
            for s in case_spans()
            for event in ("evaluated", "closed")
            if s.kind is SpanKind.CONSUMER and f".{event}." in s.name
        }
        return wanted <= seen

    await eventually(all_consumed, what=f"{wanted} consumed")
    if "notification" in flow.urls:
        # The parties are told (SMS, app push): sends in the case's trace.
        await eventually(
            lambda: [s for s in case_spans() if s.name.startswith("notification send")],
            what="a notification sent",
        )

    def settled() -> list[ReadableSpan] | None:
        """The case's trace once every recorded span's parent is recorded too (a parent
        still running when its children ended shows up a moment later)."""
        spans = flow.spans.get_finished_spans()
        ids = {_hex(s.context.span_id, 16) for s in spans}
        mine = [s for s in spans if _hex(s.context.trace_id, 32) == trace_id]
        missing = [s for s in mine if s.parent and _hex(s.parent.span_id, 16) not in ids]
        return None if missing else list(spans)

    try:
        spans = await eventually(settled, timeout_s=20, what="every parent span recorded")
    except AssertionError:
        raise AssertionError(span_tree(flow.spans.get_finished_spans(), trace_id)) from None
    by_id = {_hex(s.context.span_id, 16): s for s in spans}
    in_case_trace = [s for s in spans if _hex(s.context.trace_id, 32) == trace_id]
    tree = span_tree(spans, trace_id)

    # Every span about the case is in the report's trace, and every service took part.
    outside = [s for s in case_spans() if s not in in_case_trace]
    assert not outside, "case spans outside the case's trace:\n" + "\n".join(
        f"{s.name} [{_attr(s, SERVICE)}] {s.status.description}:\n"
        + span_tree(spans, _hex(s.context.trace_id, 32))
        for s in outside
    )
    services = {_attr(s, SERVICE) for s in in_case_trace}
    expected = {"intake", "dispatch", "adapter-urban", "urban-system"} | {
        s for s in ("notification", "scoring") if s in flow.urls
    }
    assert expected <= services, f"services {services}\n{tree}"
    # One tree: the report request is the only root, every other parent was recorded.
    roots = [s for s in in_case_trace if s.parent is None]
    assert [(r.name, _attr(r, SERVICE)) for r in roots] == [("POST /v1/reports", "intake")], tree
    # Every message span names its case.
    messages = [s for s in in_case_trace if s.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER)]
    assert messages
    unnamed = [s.name for s in messages if _attr(s, CASE_ID) != case_id]
    assert not unnamed, f"message spans without the case id: {unnamed}"

    def parent(span: ReadableSpan) -> ReadableSpan:
        """The nearest ancestor made by a service (FastAPI's own endpoint and dependency
        spans, which name no service, sit in between)."""
        assert span.parent is not None
        found = by_id[_hex(span.parent.span_id, 16)]
        while _attr(found, SERVICE) is None and found.parent is not None:
            found = by_id[_hex(found.parent.span_id, 16)]
        return found

    def assert_child(child: ReadableSpan, expected: ReadableSpan) -> None:
        got = parent(child)
        assert got is expected, f"{child.name}: parent {got.name}, not {expected.name}\n{tree}"

    def one(service: str, kind: SpanKind, pattern: str) -> ReadableSpan:
        found = [
            s
            for s in in_case_trace
            if _attr(s, SERVICE) == service and s.kind is kind and re.search(pattern, s.name)
        ]
        assert found, f"no {kind.name} span of {service} matching {pattern!r}"
        return found[0]

    # report → outbox publish → dispatch consumes → task to the unit → adapter → department
    publish = one("intake", SpanKind.PRODUCER, r"^cases\.events\.v1 publish .*reported")
    assert_child(publish, roots[0])
    assert _attr(publish, "messaging.destination.name") == "cases.events.v1"
    consumed = one("dispatch", SpanKind.CONSUMER, r"^cases\.events\.v1 process .*reported")
    assert_child(consumed, publish)
    task_sent = one("dispatch", SpanKind.PRODUCER, r"^dept\.urban\.tasks\.v1 publish .*assigned")
    assert_child(task_sent, consumed)
    task_got = one("adapter-urban", SpanKind.CONSUMER, r"^dept\.urban\.tasks\.v1 process")
    assert_child(task_got, task_sent)
    call = one("adapter-urban", SpanKind.CLIENT, r"^urban deliver assign")
    assert _hex(call.context.trace_id, 32) == trace_id
    department = one("urban-system", SpanKind.SERVER, r"^POST /api/v2/cases")
    assert_child(department, call)  # the traceparent header reached the department
    reply = one("adapter-urban", SpanKind.PRODUCER, r"^dept\.urban\.replies\.v1 publish .*acc")
    assert_child(reply, call)
    assert_child(one("dispatch", SpanKind.CONSUMER, r"replies\.v1 process .*accepted"), reply)
    # A polled status comes back in the task's trace too.
    # (the update runs under the task's stored traceparent: the consumed task message)
    completed = one("adapter-urban", SpanKind.PRODUCER, r"publish .*completed")
    update = parent(completed)
    assert (update.name, update.kind) == ("urban department update", SpanKind.INTERNAL), tree
    assert_child(update, task_got)
    # The verification request has its own trace; its effect is in the case's, linked.
    later = [
        s
        for s in in_case_trace
        if s.name == "dispatch case update"
        and any(_hex(link.context.trace_id, 32) == verify_trace for link in s.links)
    ]
    assert later, "no case-trace span linked to the verification request"
    if "notification" in flow.urls:
        sends = [s for s in in_case_trace if s.name.startswith("notification send")]
        assert sends
        assert all(s.kind is SpanKind.CLIENT for s in sends)
        asked = {(parent(s).kind, _attr(parent(s), SERVICE)) for s in sends}
        assert asked == {(SpanKind.CONSUMER, "notification")}, tree
    for service, event in sorted(wanted):
        got = one(service, SpanKind.CONSUMER, rf"^cases\.events\.v1 process .*\.{event}\.")
        assert parent(got).kind is SpanKind.PRODUCER
        assert _attr(parent(got), SERVICE) == "dispatch"


async def test_the_timeline_merges_transitions_task_messages_replies_and_notifications(
    case_flow: CaseFlow, lifecycle: dict[str, Any]
) -> None:
    if "case_no" not in lifecycle:
        pytest.skip("needs the lifecycle test's case")
    flow = case_flow
    async with flow.client("dispatch") as dispatch:
        response = await dispatch.get(
            f"/v1/cases/{lifecycle['case_no']}/timeline?limit=500",
            headers=flow.headers("op", "operator"),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    items = body["items"]
    kinds = {e["kind"] for e in items}
    assert {"lifecycle", "task_message", "department_reply"} <= kinds
    times = [e["at"] for e in items]
    assert items[0]["type"] == "onegrid.case.reported.v1"
    assert items[0]["since_previous_s"] is None
    assert all(e["since_previous_s"] is not None for e in items[1:])
    assert len(times) == len(set(e["id"] for e in items))
    accepted = next(e for e in items if e["type"] == "onegrid.dept.reply.accepted.v1")
    assert accepted["external_ref"]  # the 数字城管 case number
    assert accepted["external_ref"] in accepted["summary"]
    assert accepted["unit_code"] == "urban"
    assert accepted["trace_id"] == lifecycle["trace_id"]
    dispatched = next(e for e in items if e["type"] == "onegrid.case.dispatched.v1")
    assert {d["kind"] for d in dispatched["deadlines"]} == {"response", "resolution"}
    assert all(d["standing"] == "on_time" for d in dispatched["deadlines"])
    # The department accepted, then handled it: the stored clocks follow the case.
    assert {d["kind"]: d["standing"] for d in items[-1]["deadlines"]} == {
        "response": "met",
        "resolution": "met",
    }
    assert all(e["trace_id"] == lifecycle["trace_id"] for e in items if e["kind"] != "notification")
    if "notification" in flow.urls:
        assert body["sources"]["notification"] == "ok"
        told = [e for e in items if e["kind"] == "notification"]
        assert told, "no notification on the timeline"
        assert all(e["trace_id"] == lifecycle["trace_id"] and e["span_id"] for e in told)
    else:
        assert body["sources"]["notification"] == "not_configured"


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        raw_labels, value = line[len(name) + 1 :].rsplit("} ", 1)
        got = dict(re.findall(r'(\w+)="([^"]*)"', raw_labels))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


async def scrape(flow: CaseFlow, service: str) -> str:
    async with flow.client(service) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_metrics_count_messages_lag_and_deadline_breaches_by_unit(
    case_flow: CaseFlow, lifecycle: dict[str, Any]
) -> None:
    flow = case_flow
    before = await scrape(flow, "dispatch")
    receipt, _ = await report(flow, GARBAGE, 11)  # a grid task nobody works on
    lifecycle["breached_case_no"] = receipt["case_no"]
    case = await wait_state(flow, str(receipt["case_id"]), "dispatched")
    unit = case["lead_unit"]
    warnings0 = _sample(before, "onegrid_deadline_warnings_total", service="dispatch", unit=unit)
    breaches0 = _sample(before, "onegrid_deadline_breaches_total", service="dispatch", unit=unit)

    # Into the first deadline's warning window (a clock already past due warns no more) ...
    first = min(case["deadlines"], key=lambda d: d["due_at"])
    warn_at, due_at = (datetime.fromisoformat(first[k]) for k in ("warn_at", "due_at"))
    flow.clock.offset = warn_at + (due_at - warn_at) / 2 - datetime.now(UTC)

    async def warned() -> str | None:
        text = await scrape(flow, "dispatch")
        labels = {"service": "dispatch", "unit": unit}
        return (
            text if _sample(text, "onegrid_deadline_warnings_total", **labels) > warnings0 else None
        )

    await eventually(warned, what=f"a deadline warning of {unit} on /metrics")
    flow.clock.offset += timedelta(days=30)  # ... then far past both limits: breached

    async def escalated() -> bool:
        c = await case_of(flow, str(receipt["case_id"]))
        return bool(c and c["supervised"])

    await eventually(escalated, what="the case escalated")
    text = await scrape(flow, "dispatch")
    assert _sample(text, "onegrid_deadline_breaches_total", service="dispatch", unit=unit) > (
        breaches0
    )
    consumed = _sample(
        text, "onegrid_messages_consumed_total", service="dispatch", topic="cases.events.v1"
    )
    assert consumed >= 2
    assert _sample(text, "onegrid_messages_produced_total", service="dispatch") >= 1

    async def lag_measured() -> bool:
        lag_text = await scrape(flow, "dispatch")
        return "onegrid_consumer_lag{" in lag_text and 'service="dispatch"' in lag_text

    await eventually(lag_measured, what="dispatch consumer lag on /metrics")
    intake = await scrape(flow, "intake")
    assert (
        _sample(
            intake, "onegrid_messages_produced_total", service="intake", topic="cases.events.v1"
        )
        >= 2
    )
    assert _sample(intake, "onegrid_http_requests_total", service="intake", status="202") >= 2


async def test_onegrid_trace_prints_the_timeline_as_a_tree_and_as_json(
    case_flow: CaseFlow, lifecycle: dict[str, Any]
) -> None:
    if "breached_case_no" not in lifecycle:
        pytest.skip("needs the metrics test's breached case")
    from typer.testing import CliRunner

    from onegrid_cli.main import app

    flow, case_no = case_flow, lifecycle["breached_case_no"]
    runner = CliRunner()
    url = flow.urls["dispatch"]

    # The CLI is synchronous and the services run in this event loop: call it in a thread.
    shown = await asyncio.to_thread(runner.invoke, app, ["trace", case_no, "--url", url])
    assert shown.exit_code == 0, shown.output
    assert f"Case {case_no}" in shown.output
    assert "case.reported" in shown.output
    assert "case.dispatched" in shown.output
    assert "BREACHED" in shown.output  # the clock moved 30 days past both limits
    assert "SLOW" in shown.output  # ... so the step after the move took 30 days

    token = flow.headers("ops", "operator")["Authorization"].removeprefix("Bearer ")
    as_json = await asyncio.to_thread(
        runner.invoke,
        app,
        ["trace", case_no, "--json", "--slow", "1"],
        env={"ONEGRID_DISPATCH_URL": url, "ONEGRID_TOKEN": token},
    )
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["case_no"] == case_no
    assert body["items"][0]["type"] == "onegrid.case.reported.v1"
    standings = {d["standing"] for e in body["items"] for d in e["deadlines"]}
    assert "breached" in standings

    missing = await asyncio.to_thread(
        runner.invoke, app, ["trace", "4205-20991231-999999", "--url", url]
    )
    assert missing.exit_code == 1
    assert "no case '4205-20991231-999999'" in missing.output
