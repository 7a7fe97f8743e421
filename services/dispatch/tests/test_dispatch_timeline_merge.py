"""The merged case timeline: time order, time since the previous step, where each deadline
stood at every step, and the department's reference in reply summaries."""

from __future__ import annotations

from datetime import datetime, timedelta

from onegrid_common.working_time import CHINA_TZ
from onegrid_dispatch.timeline import (
    Clock,
    TimelineEntry,
    merge,
    standing_at,
    task_message_entry,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=CHINA_TZ)
RESOLUTION = Clock(
    kind="resolution",
    started_at=T0,
    warn_at=T0 + timedelta(hours=8),
    due_at=T0 + timedelta(hours=10),
    met_at=None,
    paused_at=None,
)


def entry(name: str, at: datetime, kind: str = "lifecycle") -> TimelineEntry:
    return TimelineEntry.model_validate(
        {"id": name, "kind": kind, "type": name, "at": at, "summary": name}
    )


def test_entries_come_in_time_order_with_the_time_since_the_previous_step() -> None:
    merged = merge(
        [
            entry("closed", T0 + timedelta(hours=3)),
            entry("reported", T0 - timedelta(minutes=5)),
            entry("mail", T0 + timedelta(hours=3), "notification"),
            entry("dispatched", T0),
        ],
        [RESOLUTION],
    )
    assert [e.id for e in merged] == ["reported", "dispatched", "closed", "mail"]
    assert [e.since_previous_s for e in merged] == [None, 300.0, 3 * 3600.0, 0.0]


def test_each_step_shows_where_the_deadline_stood_then() -> None:
    assert standing_at(RESOLUTION, T0 - timedelta(minutes=1)) is None
    stood = [standing_at(RESOLUTION, T0 + timedelta(hours=h)) for h in (1, 9, 11)]
    assert [s.standing for s in stood if s] == ["on_time", "warning", "breached"]
    assert [s.remaining_s for s in stood if s] == [9 * 3600.0, 3600.0, -3600.0]
    met = Clock(**{**RESOLUTION.__dict__, "met_at": T0 + timedelta(hours=2)})
    later = standing_at(met, T0 + timedelta(hours=11))
    assert later is not None
    assert later.standing == "met"
    assert later.remaining_s == 8 * 3600.0


def test_a_department_reply_names_the_department_reference_and_status() -> None:
    row = {
        "message_id": "m-1",
        "direction": "in",
        "type": "onegrid.dept.reply.progressed.v1",
        "unit_code": "urban",
        "at": T0,
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "payload": {"external_ref": "CG-2026-0001", "external_status": "处置中"},
    }
    reply = task_message_entry(row)
    assert reply.kind == "department_reply"
    assert reply.external_ref == "CG-2026-0001"
    assert reply.summary == "← urban: dept.reply.progressed [CG-2026-0001]：处置中"
    sent = task_message_entry({**row, "direction": "out", "type": "onegrid.dept.task.assigned.v1"})
    assert sent.kind == "task_message"
    assert sent.summary == "→ urban: dept.task.assigned"
